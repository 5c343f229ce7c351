/**
 * GET /metrics in the Prometheus text format (docs/operations.md, "Prometheus").
 *
 * Behind an API token (or session) with the viewer role: the metrics name
 * every node and its release. Per node: connected, processes, top mailbox,
 * processes on old code (total with module="", and per module),
 * the system overview (memory, utilisation, run queue, counts against
 * limits), release info, alerts, last upgrade outcome, events stored; per
 * server: agents connected, frames and events ingested, ingest lag, webhook
 * deliveries by outcome. Counters count since this instance started
 * (Prometheus handles the reset at a restart); everything else is read now,
 * from memory or small grouped queries (alerts, deliveries, upgrades).
 */
import type { IncomingMessage, ServerResponse } from "node:http";
import { readStoredHello } from "../agents/protocol";
import { hasRole } from "../auth/roles";
import { authenticate } from "../context";
import type { Services } from "../services";

/** Upper bounds (seconds) of the ingest-lag histogram. */
const LAG_BUCKETS = [0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60];

type Labels = Record<string, string>;

/** Label values escaped as the text format requires (backslash, quote, newline). */
function labelText(labels: Labels): string {
  const parts = Object.entries(labels).map(([k, v]) => `${k}="${v.replace(/\\/g, "\\\\").replace(/"/g, '\\"').replace(/\n/g, "\\n")}"`);
  return parts.length ? `{${parts.join(",")}}` : "";
}

/** One metric family: HELP, TYPE and its samples. */
class Family {
  readonly samples: [Labels, number, string?][] = [];
  constructor(
    readonly name: string,
    readonly type: "gauge" | "counter" | "histogram",
    readonly help: string,
  ) {}
  add(labels: Labels, value: number, suffix = ""): this {
    this.samples.push([labels, value, suffix]);
    return this;
  }
  render(): string {
    const lines = [`# HELP ${this.name} ${this.help}`, `# TYPE ${this.name} ${this.type}`];
    for (const [labels, value, suffix] of this.samples) lines.push(`${this.name}${suffix ?? ""}${labelText(labels)} ${Number.isFinite(value) ? value : 0}`);
    return lines.join("\n");
  }
}

/** Event kinds counted by name per node; the rest count as "other" (the agent names them). */
export const MAX_EVENT_KINDS_PER_NODE = 32;

/** Counters fed by the server's own listeners from the moment it starts. */
export class MetricsCounters {
  readonly frames = new Map<string, number>();
  /** Refused frames by node and type (refusal.ts). */
  readonly refused = new Map<string, { node: string; type: string; n: number }>();
  readonly events = new Map<string, { node: string; kind: string; n: number }>();
  /** Distinct event kinds labelled per node (eventKindLabel). */
  private readonly kindsOf = new Map<string, Set<string>>();
  readonly lagBuckets = LAG_BUCKETS.map(() => 0);
  lagCount = 0;
  lagSum = 0;

  /**
   * An event's kind is the agent's text (notify/1 takes any): the first
   * MAX_EVENT_KINDS_PER_NODE kinds of a node are labels, any later one is
   * "other", so one socket cannot grow /metrics and these counters for good.
   */
  private eventKindLabel(node: string, kind: string): string {
    const kinds = this.kindsOf.get(node) ?? new Set<string>();
    this.kindsOf.set(node, kinds);
    if (kinds.has(kind)) return kind;
    if (kinds.size >= MAX_EVENT_KINDS_PER_NODE) return "other";
    kinds.add(kind);
    return kind;
  }

  constructor(services: Pick<Services, "registry" | "events">) {
    services.registry.onAgentFrame((_node, frame) => this.frames.set(frame.type, (this.frames.get(frame.type) ?? 0) + 1));
    services.registry.onAgentRefusal((node, type) => {
      const key = `${node}\u0000${type ?? ""}`;
      const r = this.refused.get(key) ?? { node, type: type ?? "", n: 0 };
      r.n += 1;
      this.refused.set(key, r);
    });
    services.events.onStored(async (node, stored) => {
      const now = Date.now();
      for (const { frame } of stored) {
        const kind = this.eventKindLabel(node, frame.kind);
        const key = `${node}\u0000${kind}`;
        const e = this.events.get(key) ?? { node, kind, n: 0 };
        e.n += 1;
        this.events.set(key, e);
        const lag = Math.max(0, (now - frame.at) / 1000);
        this.lagCount += 1;
        this.lagSum += lag;
        LAG_BUCKETS.forEach((b, i) => {
          if (lag <= b) this.lagBuckets[i] += 1;
        });
      }
    });
  }
}

/** The whole exposition, newest state. */
export async function renderMetrics(services: Services, counters: MetricsCounters): Promise<string> {
  const { prisma, registry } = services;
  const fams: Family[] = [];
  const fam = (name: string, type: Family["type"], help: string) => {
    const f = new Family(name, type, help);
    fams.push(f);
    return f;
  };

  const rows = await prisma.node.findMany({ select: { name: true, otpRelease: true, agentVersion: true, hello: true, lastSeenAt: true } });
  const connected = fam("beamdeck_node_connected", "gauge", "1 when the node's agent is connected to this instance");
  const lastSeen = fam("beamdeck_node_last_seen_timestamp_seconds", "gauge", "When the node's agent was last heard from");
  const info = fam("beamdeck_node_info", "gauge", "The node's OTP release, agent version and current release (always 1)");
  const procs = fam("beamdeck_node_processes", "gauge", "Processes on the node");
  const topMailbox = fam("beamdeck_node_top_mailbox_messages", "gauge", "The largest message queue on the node");
  const memory = fam("beamdeck_node_memory_bytes", "gauge", "Node memory by type (erlang:memory/0)");
  const util = fam("beamdeck_node_scheduler_utilization_ratio", "gauge", "Mean normal-scheduler utilisation over the last overview interval (0..1)");
  const runQueue = fam("beamdeck_node_run_queue", "gauge", "Processes and ports waiting in run queues");
  const sysCount = fam("beamdeck_node_system_count", "gauge", "Processes, ports, atoms and ETS tables on the node");
  const sysLimit = fam("beamdeck_node_system_limit", "gauge", "The node's limits for processes, ports, atoms and ETS tables");
  const oldCode = fam("beamdeck_node_old_code_processes", "gauge", "Processes still running old code of a module (after a soft purge), by module");
  for (const row of rows) {
    const node = row.name;
    const live = registry.live(node);
    const isUp = Boolean(live?.connected);
    connected.add({ node }, isUp ? 1 : 0);
    lastSeen.add({ node }, (live && isUp ? Date.now() : row.lastSeenAt.getTime()) / 1000);
    const hello = live?.hello ?? readStoredHello(row.hello);
    const rel = hello.releases?.find((r) => r.status === "current") ?? hello.releases?.find((r) => r.status === "permanent");
    info.add({ node, otp: row.otpRelease ?? "", agent_version: row.agentVersion ?? "", release: rel?.name ?? "", release_vsn: rel?.vsn ?? "" }, 1);
    if (!live) continue;
    const s = live.summary();
    procs.add({ node }, s.processCount);
    topMailbox.add({ node }, s.topMailbox?.mailbox ?? 0);
    const scan = services.oldCode.snapshot(node);
    if (scan) {
      oldCode.add({ node, module: "" }, scan.total);
      for (const m of scan.modules) oldCode.add({ node, module: m.module }, m.count);
    }
    const o = services.system.history(node).at(-1);
    if (!o) continue;
    for (const [kind, bytes] of Object.entries(o.memory)) memory.add({ node, kind }, bytes);
    if (o.schedulerUtilization) util.add({ node }, o.schedulerUtilization.total);
    runQueue.add({ node }, o.runQueue);
    for (const [what, c] of Object.entries(o.counts)) {
      sysCount.add({ node, what }, c.count);
      sysLimit.add({ node, what }, c.limit);
    }
  }

  const alerts = await prisma.alert.groupBy({ by: ["node", "kind", "status"], _count: { _all: true } });
  const alertFam = fam("beamdeck_alerts", "gauge", "Alerts by node, kind and status");
  for (const a of alerts) alertFam.add({ node: a.node, kind: a.kind, status: a.status }, a._count._all);

  // The newest upgrade of each node: a small table, read whole but bounded.
  const upgrades = await prisma.upgrade.findMany({ orderBy: { createdAt: "desc" }, take: 5000, select: { node: true, toVsn: true, status: true, createdAt: true } });
  const lastUpgrade = fam("beamdeck_node_last_upgrade", "gauge", "The node's newest upgrade: target version and status (always 1)");
  const lastUpgradeAt = fam("beamdeck_node_last_upgrade_timestamp_seconds", "gauge", "When the node's newest upgrade started");
  const seen = new Set<string>();
  for (const u of upgrades) {
    if (seen.has(u.node)) continue;
    seen.add(u.node);
    lastUpgrade.add({ node: u.node, to_vsn: u.toVsn, status: u.status }, 1);
    lastUpgradeAt.add({ node: u.node }, u.createdAt.getTime() / 1000);
  }

  const stored = fam("beamdeck_events_stored_total", "counter", "Events stored since this instance started, by node and kind");
  for (const e of counters.events.values()) stored.add({ node: e.node, kind: e.kind }, e.n);

  fam("beamdeck_agents_connected", "gauge", "Agents connected to this instance").add({}, registry.liveNodes().filter((n) => n.connected).length);
  const fanout = services.hub.stats;
  if (fanout) {
    // Several instances on PostgreSQL: how busy the NOTIFY doorbell and the LiveChange rows are.
    const f = fam("beamdeck_live_fanout_total", "counter", "Live changes fanned out through PostgreSQL since this instance started");
    f.add({ what: "notifies" }, fanout.notifies).add({ what: "rows_written" }, fanout.rowsWritten).add({ what: "rows_read" }, fanout.rowsRead).add({ what: "listen_reconnects" }, fanout.reconnects);
  }
  const frames = fam("beamdeck_agent_frames_received_total", "counter", "Agent frames received since this instance started, by type");
  for (const [type, n] of counters.frames) frames.add({ type }, n);
  const refused = fam("beamdeck_agent_frames_refused_total", "counter", "Agent frames the protocol's schema refused since this instance started, by node and type");
  for (const r of counters.refused.values()) refused.add({ node: r.node, type: r.type }, r.n);
  const lag = fam("beamdeck_event_ingest_lag_seconds", "histogram", "From an event's time on the node to its storage here");
  LAG_BUCKETS.forEach((b, i) => {
    lag.add({ le: String(b) }, counters.lagBuckets[i], "_bucket");
  });
  lag.add({ le: "+Inf" }, counters.lagCount, "_bucket").add({}, counters.lagSum, "_sum").add({}, counters.lagCount, "_count");

  const deliveries = await prisma.webhookDelivery.groupBy({ by: ["status"], _count: { _all: true } });
  const del = fam("beamdeck_webhook_deliveries", "gauge", "Webhook deliveries by outcome (pending, delivered, failed)");
  for (const status of ["pending", "delivered", "failed"]) del.add({ status }, deliveries.find((d) => d.status === status)?._count._all ?? 0);

  return `${fams.map((f) => f.render()).join("\n")}\n`;
}

/** The HTTP handler: viewer role and up (an API token for a scraper). */
export async function metricsEndpoint(services: Services, counters: MetricsCounters, req: IncomingMessage, res: ServerResponse): Promise<void> {
  if (req.method !== "GET" && req.method !== "HEAD") {
    res.writeHead(405, { allow: "GET, HEAD", "content-type": "text/plain" });
    return void res.end("GET /metrics\n");
  }
  const { principal, authError } = await authenticate(services, req);
  if (!principal || !hasRole(principal.role, "viewer")) {
    res.writeHead(principal ? 403 : 401, { "content-type": "text/plain", "www-authenticate": "Bearer" });
    return void res.end(`${authError?.message ?? (principal ? "your role does not allow this" : "an API token is needed: Authorization: Bearer <token>")}\n`);
  }
  const body = await renderMetrics(services, counters);
  res.writeHead(200, { "content-type": "text/plain; version=0.0.4; charset=utf-8", "cache-control": "no-store" });
  res.end(req.method === "HEAD" ? undefined : body);
}
