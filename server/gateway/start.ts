/**
 * Start one beamdeck server instance: database (migrated), live registry,
 * Next.js (unless disabled), HTTP + WebSocket on one port.
 */
import type { Env } from "../storage/database-url";
import { randomUUID } from "node:crypto";
import type { AddressInfo } from "node:net";
import path from "node:path";
import { AlertEngine } from "../alerts/engine";
import { agentTokenStillValid } from "../auth/agent-tokens";
import { sealPlaintextSecrets } from "../alerts/webhooks";
import { InstanceLeases, leaseMs } from "../agents/leases";
import { applyAccessChanges } from "../agents/access-changes";
import { AgentRegistry, DEFAULT_MAX_PROCESS_RECORDS } from "../agents/registry";
import { SystemWatch } from "../agents/system-views";
import { OldCodeWatch } from "../upgrades/old-code-watch";
import { listNodes } from "../agents/node-listing";
import { groupNodes } from "../fleet/groups";
import { RolloutEngine } from "../fleet/rollout-engine";
import { RolloutSteps } from "../fleet/rollout-steps";
import { MetricsCounters } from "./metrics";
import { EventStore } from "../events/store";
import { type Hub, LocalHub } from "../live/hub";
import { PgHub } from "../live/pg-hub";
import type { Services } from "../services";
import { openDatabase } from "../storage/db";
import { UpgradeWorkflow } from "../upgrades/workflow";
import { WsSessions } from "../live/ws-sessions";
import { createBeamdeckServer, type WebHandler } from "./http-server";
import { internalListenerOptions, listenerUrl, startInternalListener } from "./internal-listener";

export interface StartOptions {
  port: number;
  host: string;
  web: boolean;
  env?: Env;
  maxFrame?: number;
  quiet?: boolean;
  /** Next.js in development mode (`npm run dev`): pages compile on request and reload on change, no `next build`. */
  dev?: boolean;
}

export interface RunningServer {
  url: string;
  port: number;
  services: Services;
  database: string;
  close(): Promise<void>;
}

async function nextHandler(host: string, port: number, dev: boolean): Promise<WebHandler> {
  process.env.NEXT_TELEMETRY_DISABLED = "1";
  const { default: next } = await import("next");
  const dir = path.resolve(import.meta.dirname, "../..");
  // Same origin in both modes: the dashboard, tRPC, its WebSocket and /agent share this server (and dev's HMR socket under /_next/).
  const app = next({ dev, dir, hostname: host, port });
  await app.prepare();
  const handle = app.getRequestHandler();
  const upgrade = (app as unknown as { getUpgradeHandler?: () => WebHandler["upgrade"] }).getUpgradeHandler?.();
  return { handle: (req, res) => handle(req, res), upgrade };
}

/**
 * Where other instances reach this one (`BEAMDECK_INTERNAL_URL`); by default
 * the internal listener's address when it has one, else this host's name
 * when listening on every address, else the listening address.
 */
function internalUrl(env: Env, host: string, port: number, url: string, listener: string | null): string {
  if (env.BEAMDECK_INTERNAL_URL) return env.BEAMDECK_INTERNAL_URL;
  if (listener) return listener;
  return host === "0.0.0.0" || host === "::" ? listenerUrl(host, port) : url;
}

/** `BEAMDECK_MAX_PROCESS_RECORDS`: the per-node process-record cap sent in `welcome` (floor 1000). */
function maxProcessRecords(env: Env): number {
  const v = Number(env.BEAMDECK_MAX_PROCESS_RECORDS);
  return Number.isFinite(v) && v > 0 ? Math.max(1000, Math.floor(v)) : DEFAULT_MAX_PROCESS_RECORDS;
}

/** `BEAMDECK_ROLLOUT_STEP_TIMEOUT_MS`: how long a rollout waits for one step's outcome before it halts (floor 1 s, default 15 min). */
function rolloutStepTimeoutMs(env: Env): number {
  const v = Number(env.BEAMDECK_ROLLOUT_STEP_TIMEOUT_MS);
  return Number.isFinite(v) && v > 0 ? Math.max(1000, Math.floor(v)) : 15 * 60_000;
}

export async function startServer(opts: StartOptions): Promise<RunningServer> {
  const env = opts.env ?? process.env;
  const log = opts.quiet ? () => {} : (msg: string) => console.log(`[beamdeck] ${msg}`);
  // A bad setting stops the start before anything is opened.
  const internalOwn = internalListenerOptions(env, opts.host);
  const db = await openDatabase("server", env);
  log(`database: ${db.description}${db.migrationsApplied.length ? ` (applied ${db.migrationsApplied.join(", ")})` : ""}`);
  const sealed = await sealPlaintextSecrets(db.prisma);
  if (sealed > 0) log(`sealed ${sealed} webhook secret(s) stored in clear by an older version`);
  const instanceId = `${process.pid}-${randomUUID().slice(0, 8)}`;
  // On PostgreSQL several instances may share the database: live changes fan out through it.
  const pgHub = db.choice.kind === "postgres" ? new PgHub(db.choice.url, instanceId) : null;
  await pgHub?.start();
  const hub: Hub = pgHub ?? new LocalHub();
  const events = new EventStore(db.prisma, hub);
  const leases = new InstanceLeases(db.prisma, instanceId, leaseMs(env), (nodes) => registry.leasesReleased(nodes));
  const registry = new AgentRegistry(db.prisma, hub, instanceId, events, leases, maxProcessRecords(env));
  const oldCode = new OldCodeWatch(registry);
  const groups = async () => groupNodes(await listNodes({ prisma: db.prisma, registry, oldCode, instanceId }));
  const alerts = new AlertEngine(db.prisma, hub, registry, events, () => services.publicUrl, oldCode, groups);
  const upgrades = new UpgradeWorkflow(db.prisma, hub, registry, alerts.expectations, (node, step, vsn, v) => alerts.upgradeUnverified(node, step, vsn, v));
  events.onStored((node, stored) => upgrades.onStoredEvents(node, stored));
  const steps = new RolloutSteps(db.prisma, instanceId, leases, upgrades, (node) => registry.live(node)?.connected ?? false);
  const rollouts = new RolloutEngine(db.prisma, hub, steps, alerts, groups, instanceId, {
    ttlMs: leaseMs(env),
    stepTimeoutMs: rolloutStepTimeoutMs(env),
    // Held here: the socket decides; held elsewhere: that instance's unexpired lease (also for a node whose socket here closed and that moved on).
    isConnected: async (node) => {
      if (registry.live(node)?.connected) return true;
      const row = await db.prisma.node.findUnique({ where: { name: node }, select: { connectedAt: true, instanceId: true, leaseExpiresAt: true } });
      return Boolean(row?.connectedAt && leases.heldElsewhere(row));
    },
  });
  const wsSessions = new WsSessions(db.prisma);
  const system = new SystemWatch(registry);
  const metrics = new MetricsCounters({ registry, events });
  const services: Services = { prisma: db.prisma, hub, registry, events, alerts, upgrades, rollouts, wsSessions, system, oldCode, metrics, instanceId, publicUrl: env.BEAMDECK_PUBLIC_URL ?? null };

  let web: WebHandler | null = null;
  if (opts.web) web = await nextHandler(opts.host, opts.port, opts.dev ?? false);
  const app = createBeamdeckServer(services, web, opts.maxFrame, internalOwn === null);
  await new Promise<void>((resolve, reject) => {
    app.server.once("error", reject);
    app.server.listen(opts.port, opts.host, () => resolve());
  });
  const port = (app.server.address() as AddressInfo).port;
  const shownHost = opts.host === "0.0.0.0" || opts.host === "::" ? "localhost" : opts.host;
  const url = `http://${shownHost}:${port}`;
  services.publicUrl ??= url;
  const internalListener = internalOwn ? await startInternalListener(services, internalOwn) : null;
  await leases.start(internalUrl(env, opts.host, port, url, internalListener?.url ?? null));
  alerts.start();
  wsSessions.start();
  system.start();
  oldCode.start();
  rollouts.start();

  // Tokens revoked and names rebound through another instance reach this one through the Hub at once;
  // changes written to the database directly (the CLI's `agent-token`) by the recheck below.
  const stopAccessChanges = applyAccessChanges(hub, registry);
  const recheck = setInterval(async () => {
    for (const id of registry.connectedTokenIds()) {
      if (!(await agentTokenStillValid(db.prisma, id).catch(() => true))) registry.disconnectToken(id, "agent token revoked");
    }
    const held = registry.heldNodeNames();
    const bound = held.length === 0 ? [] : await db.prisma.node.findMany({ where: { name: { in: held } }, select: { name: true, boundTokenId: true } }).catch(() => []);
    for (const n of bound) registry.bindingChanged(n.name, n.boundTokenId);
  }, 15_000);
  recheck.unref();

  let closing: Promise<void> | null = null;
  return {
    url,
    port,
    services,
    database: db.description,
    close() {
      closing ??= (async () => {
        clearInterval(recheck);
        stopAccessChanges();
        alerts.stop();
        await rollouts.stop();
        await leases.stop();
        wsSessions.stop();
        system.stop();
        oldCode.stop();
        await app.close();
        await internalListener?.close();
        await pgHub?.close();
        await db.close();
      })();
      return closing;
    },
  };
}
