/**
 * Scale-out bench (issue 16): real `beamdeck server` processes on one real
 * PostgreSQL, loaded by tools/loadgen (simulated nodes speaking the agent
 * protocol, in a child process so its CPU is not the servers'). One instance,
 * then three on the same database, in one run:
 * - server CPU (share of a core, from /proc) and RSS, per agent;
 * - event → subscriber latency: the agent's `at` to arrival at a tRPC
 *   WebSocket subscriber (the browser's transport) on another instance than
 *   the one holding the agent (with one instance: the same one);
 * - NOTIFY rate (the instances' own counters, /metrics);
 * - failover (three instances): `kill -9` of one, until every agent it held
 *   is connected to another (the Node rows say so);
 * - events lost and stored twice: rows in the Event table vs the seqs the
 *   generator produced (it replays unacknowledged ones, as the agent does).
 * Facts come from /proc and the database, not from the servers' claims.
 */
import { type ChildProcess, spawn } from "node:child_process";
import crypto from "node:crypto";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import pg from "pg";
import type { FleetSummary } from "../../tools/loadgen/fleet";
import { startPostgres } from "../support/postgres";
import { ROOT, startServer, type TestServer } from "../support/server";
import { wsClient } from "../support/trpc-clients";
import { cpuPercent, type ProcSample, sample } from "./proc-stats";

const TSX = path.join(ROOT, "node_modules/.bin/tsx");
const LOADGEN = path.join(ROOT, "tools/loadgen/main.ts");
/** Bounds of one phase. */
const CONNECT_TIMEOUT_MS = 120_000;
const WARMUP_MS = 10_000;
const WINDOW_MS = 30_000;
const FAILOVER_TIMEOUT_MS = 60_000;
const LOADGEN_EXIT_MS = 60_000;
/** A count "holds" when every agent connects and the p99 of event delivery stays under this. */
const HOLD_P99_MS = 2000;
/** The search for the largest count stops starting new steps after this long (counted from the search's own start:
 * the base phases alone can take longer than this when the base load does not hold). */
const SEARCH_BUDGET_MS = 7 * 60_000;

export interface PhaseResult {
  instances: number;
  agents: number;
  procs: number;
  held: boolean;
  /** Agents connected (the Node rows) at the end of the connect timeout. */
  connected: number;
  connectS: number;
  cpuPctTotal: number;
  cpuPctMaxInstance: number;
  cpuMsPerAgentPerS: number;
  rssMiBTotal: number;
  rssKiBPerAgent: number;
  latencySamples: number;
  p50: number;
  p99: number;
  notifiesPerS: number;
  failoverS: number | null;
  failoverAgents: number | null;
  eventsProduced: number;
  /** Produced but never acknowledged when the generator stopped (a real agent would still hold them for replay). */
  eventsUnacked: number;
  /** Acknowledged by a server but not in the Event table: lost. */
  eventsLost: number;
  eventsStoredTwice: number;
  reconnects: number;
}

function pct(xs: number[], p: number): number {
  if (xs.length === 0) return Number.NaN;
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor((p / 100) * s.length))];
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function until<T>(what: string, f: () => Promise<T | null | false>, timeoutMs: number, everyMs = 250): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await f();
    if (v) return v;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs / 1000} s waiting for ${what}`);
    await sleep(everyMs);
  }
}

/** The instance's NOTIFY counter; NaN when an overloaded instance does not answer (the table shows it). */
async function notifies(s: TestServer): Promise<number> {
  try {
    const res = await fetch(`${s.url}/metrics`, { headers: { authorization: `Bearer ${s.apiToken}` }, signal: AbortSignal.timeout(10_000) });
    const m = /^beamdeck_live_fanout_total\{what="notifies"\} (\d+)$/m.exec(await res.text());
    if (!m) throw new Error(`${s.url}/metrics has no notifies counter (is it on PostgreSQL?)`);
    return Number(m[1]);
  } catch (e) {
    // An instance too busy to answer (timeout, or its HTTP server dropped the waiting request): shown as NaN.
    if (!["TimeoutError", "TypeError"].includes((e as Error).name)) throw e;
    return Number.NaN;
  }
}

/** Instance id of each server, by the URL its heartbeat row advertises. */
async function instanceIds(db: pg.Client, servers: TestServer[]): Promise<string[]> {
  const r = await db.query<{ id: string; internalUrl: string }>(`SELECT id, "internalUrl" FROM "Instance"`);
  return servers.map((s) => {
    const row = r.rows.find((x) => x.internalUrl === s.url);
    if (!row) throw new Error(`no Instance row for ${s.url}`);
    return row.id;
  });
}

/** Connected nodes of a phase and the instance holding each. */
async function placement(db: pg.Client, prefix: string): Promise<Map<string, string>> {
  const r = await db.query<{ name: string; instanceId: string | null }>(`SELECT name, "instanceId" FROM "Node" WHERE name LIKE $1 AND "connectedAt" IS NOT NULL`, [`${prefix}\\_%`]);
  return new Map(r.rows.filter((x) => x.instanceId !== null).map((x) => [x.name, x.instanceId as string]));
}

function startLoadgen(urls: string[], token: string, agents: number, procs: number, prefix: string, jsonFile: string): { child: ChildProcess; output: () => string } {
  const args = [
    "--url",
    urls.join(","),
    "--token",
    token,
    "--agents",
    String(agents),
    "--procs",
    String(procs),
    "--duration",
    "30m",
    "--events-per-second",
    "1",
    "--prefix",
    prefix,
    "--json",
    jsonFile,
  ];
  const child = spawn(TSX, [LOADGEN, ...args], { cwd: ROOT, stdio: ["ignore", "pipe", "pipe"] });
  let out = "";
  const keep = (d: Buffer) => {
    out = (out + d.toString()).slice(-20_000);
  };
  child.stdout?.on("data", keep);
  child.stderr?.on("data", keep);
  process.once("exit", () => child.kill("SIGKILL"));
  return { child, output: () => out };
}

async function stopLoadgen(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null) return;
  const exited = new Promise<void>((r) => child.once("exit", () => r()));
  child.kill("SIGTERM");
  const t = setTimeout(() => child.kill("SIGKILL"), LOADGEN_EXIT_MS);
  await exited;
  clearTimeout(t);
}

/** One run of the generator against `servers`: steady-state window, then (optionally) kill -9 of the first server. */
async function phase(db: pg.Client, servers: TestServer[], token: string, agents: number, procs: number, o: { failover: boolean; windowMs?: number }): Promise<PhaseResult> {
  const prefix = `bench${servers.length}x${agents}x${procs}_${crypto.randomBytes(3).toString("hex")}`;
  const ids = await instanceIds(db, servers);
  const pids = servers.map((s) => s.pid() ?? 0);
  const idle = pids.map(sample);
  const jsonFile = path.join(os.tmpdir(), `${prefix}.json`);
  const lg = startLoadgen(
    servers.map((s) => s.agentUrl),
    token,
    agents,
    procs,
    prefix,
    jsonFile,
  );
  // The subscriber sits on the last instance; with several, it counts only events of nodes another instance holds.
  const subIndex = servers.length - 1;
  const sub = wsClient(servers[subIndex].url, { token: servers[subIndex].apiToken });
  let measuring = false;
  let owners = new Map<string, string>();
  const lat: number[] = [];
  const subscription = sub.trpc.events.onEvents.subscribe(undefined, {
    onData: (events) => {
      if (!measuring) return;
      const now = Date.now();
      for (const e of events) {
        if (!e.node.startsWith(prefix)) continue;
        if (servers.length > 1 && owners.get(e.node) === ids[subIndex]) continue;
        lat.push(now - e.at);
      }
    },
    onError: () => {},
  });
  const t0 = Date.now();
  let held = true;
  let connectS = Number.NaN;
  try {
    await until(
      `${agents} agents connected (loadgen: ${lg.output().slice(-500)})`,
      async () => {
        if (lg.child.exitCode !== null) throw new Error(`loadgen exited ${lg.child.exitCode}: ${lg.output()}`);
        return (await placement(db, prefix)).size >= agents;
      },
      CONNECT_TIMEOUT_MS,
      500,
    );
    connectS = (Date.now() - t0) / 1000;
  } catch (e) {
    console.log(`  (${agents} × ${procs} on ${servers.length}: ${(e as Error).message.split("\n")[0]})`);
    held = false;
  }
  const connected = (await placement(db, prefix)).size;
  console.log(`  ${servers.length} instance(s): ${connected}/${agents} agents × ${procs} connected${held ? ` in ${round(connectS)} s` : ""}`);
  await sleep(WARMUP_MS);
  owners = await placement(db, prefix);
  const n0 = await Promise.all(servers.map(notifies));
  const s0 = pids.map(sample);
  measuring = true;
  await sleep(o.windowMs ?? WINDOW_MS);
  measuring = false;
  const s1: ProcSample[] = pids.map(sample);
  const n1 = await Promise.all(servers.map(notifies));
  const windowS = (s1[0].at - s0[0].at) / 1000;
  const cpu = s0.map((a, i) => cpuPercent(a, s1[i]));
  const cpuTotal = cpu.reduce((x, y) => x + y, 0);
  const rss = s1.reduce((x, s) => x + s.rssBytes, 0);
  const rssIdle = idle.reduce((x, s) => x + s.rssBytes, 0);

  let failoverS: number | null = null;
  let failoverAgents: number | null = null;
  if (o.failover) {
    const victim = ids[0];
    const theirs = [...owners].filter(([, id]) => id === victim).map(([n]) => n);
    const k0 = Date.now();
    await servers[0].kill();
    try {
      await until(
        "agents of the killed instance connected elsewhere",
        async () => {
          const now = await placement(db, prefix);
          return theirs.every((n) => (now.get(n) ?? victim) !== victim);
        },
        FAILOVER_TIMEOUT_MS,
        100,
      );
      failoverS = (Date.now() - k0) / 1000;
    } catch (e) {
      console.log(`  (failover: ${(e as Error).message})`);
    }
    failoverAgents = theirs.length;
    // Replays of what the dead instance had not acknowledged.
    await sleep(5000);
  }

  subscription.unsubscribe();
  sub.close();
  await stopLoadgen(lg.child);
  // The next phase starts on instances that have worked off this one's backlog (bounded).
  await until(
    "the instances answering again",
    async () =>
      (
        await Promise.all(
          servers
            .filter((s) => s.pid() !== null)
            .map((s) =>
              fetch(`${s.url}/healthz`, { signal: AbortSignal.timeout(2000) }).then(
                (r) => r.ok,
                () => false,
              ),
            ),
        )
      ).every(Boolean),
    60_000,
    500,
  ).catch(() => {});
  if (!fs.existsSync(jsonFile)) throw new Error(`loadgen wrote no summary: ${lg.output()}`);
  const summary = JSON.parse(fs.readFileSync(jsonFile, "utf8")) as FleetSummary;
  fs.rmSync(jsonFile, { force: true });
  const rows = await db.query<{ node: string; bootId: string; seq: number }>(`SELECT node, "bootId", seq FROM "Event" WHERE node LIKE $1`, [`${prefix}\\_%`]);
  const byNode = new Map<string, number[]>();
  for (const r of rows.rows) byNode.set(`${r.node} ${r.bootId}`, [...(byNode.get(`${r.node} ${r.bootId}`) ?? []), r.seq]);
  let lost = 0;
  let twice = 0;
  let unacked = 0;
  for (const n of summary.nodes) {
    const seqs = byNode.get(`${n.node} ${n.bootId}`) ?? [];
    const distinct = new Set(seqs);
    const acked = Math.min(n.acked, n.events);
    for (let q = 1; q <= acked; q += 1) if (!distinct.has(q)) lost += 1;
    twice += seqs.length - distinct.size;
    unacked += n.events - acked;
  }
  const p99 = pct(lat, 99);
  return {
    instances: servers.length,
    agents,
    procs,
    held: held && p99 <= HOLD_P99_MS && summary.eventsAcked === summary.eventsProduced,
    connected,
    connectS: round(connectS),
    cpuPctTotal: round(cpuTotal),
    cpuPctMaxInstance: round(Math.max(...cpu)),
    cpuMsPerAgentPerS: round((10 * cpuTotal) / agents, 2),
    rssMiBTotal: round(rss / 2 ** 20),
    rssKiBPerAgent: round((rss - rssIdle) / 1024 / agents),
    latencySamples: lat.length,
    p50: pct(lat, 50),
    p99,
    notifiesPerS: round(n1.reduce((x, y, i) => x + y - n0[i], 0) / windowS),
    failoverS,
    failoverAgents,
    eventsProduced: summary.eventsProduced,
    eventsUnacked: unacked,
    eventsLost: lost,
    eventsStoredTwice: twice,
    reconnects: summary.reconnects,
  };
}

function round(x: number, digits = 1): number {
  const f = 10 ** digits;
  return Math.round(x * f) / f;
}

function printComparison(one: PhaseResult, three: PhaseResult): void {
  console.log(`\n== scale-out: ${one.agents} simulated agents × ${one.procs} processes at 1 Hz, 1 event/s each (real PostgreSQL, real servers)`);
  const keys = Object.keys(one).filter((k) => !["instances", "agents", "procs"].includes(k)) as (keyof PhaseResult)[];
  const w = Math.max(...keys.map((k) => k.length));
  console.log(`  ${"".padEnd(w)}  ${"1 instance".padStart(12)}  ${"3 instances".padStart(12)}  ${"3 / 1".padStart(7)}`);
  for (const k of keys) {
    const a = one[k];
    const b = three[k];
    const ratio = typeof a === "number" && typeof b === "number" && a !== 0 && Number.isFinite(a) && Number.isFinite(b) ? (b / a).toFixed(2) : "";
    console.log(`  ${k.padEnd(w)}  ${String(a).padStart(12)}  ${String(b).padStart(12)}  ${ratio.padStart(7)}`);
  }
}

/** `npm run bench -- scale`. BEAMDECK_BENCH_AGENTS / BEAMDECK_BENCH_PROCS change the base load (default 200 × 10000); BEAMDECK_BENCH_SCALE_SEARCH=0 skips the search for the largest count. */
export async function scaleBench(): Promise<Record<string, unknown>> {
  const started = Date.now();
  const agents = Number(process.env.BEAMDECK_BENCH_AGENTS ?? 200);
  const procs = Number(process.env.BEAMDECK_BENCH_PROCS ?? 10_000);
  const pgServer = await startPostgres();
  const servers: TestServer[] = [];
  const databaseUrl = await pgServer.createDatabase(`scale_bench_${Date.now()}`);
  const db = new pg.Client({ connectionString: databaseUrl });
  try {
    await db.connect();
    // One data directory (the initial admin's credentials) and one secret for all instances.
    const shared = { databaseUrl, dataDir: fs.mkdtempSync(path.join(os.tmpdir(), "beamdeck-scale-bench-")), env: { BEAMDECK_SECRET_KEY: crypto.randomBytes(32).toString("base64url") } };
    servers.push(await startServer(shared));
    const token = await servers[0].agentToken("scale bench", "bench*@*");
    const one = await phase(db, servers.slice(0, 1), token, agents, procs, { failover: false });
    console.log(`  1 instance done in ${Math.round((Date.now() - started) / 1000)} s`);
    servers.push(...(await Promise.all([startServer(shared), startServer(shared)])));
    const three = await phase(db, servers, token, agents, procs, { failover: true });
    printComparison(one, three);
    // The largest count that holds on three instances: doubling or halving the agents, in the time left.
    await servers[0].restart();
    const search: PhaseResult[] = [];
    // Downward, no further than what connected in the step that did not hold.
    const down = (r: PhaseResult) => Math.max(10, Math.min(Math.floor(r.agents / 2), r.connected - (r.connected % 10)));
    let n = three.held ? agents * 2 : down(three);
    const searching = process.env.BEAMDECK_BENCH_SCALE_SEARCH !== "0";
    const searchStarted = Date.now();
    while (searching && n >= 10 && n <= 2000 && Date.now() - searchStarted < SEARCH_BUDGET_MS) {
      const r = await phase(db, servers, token, n, procs, { failover: false, windowMs: 15_000 });
      search.push(r);
      console.log(`  search: ${n} agents × ${procs} on 3 instances: ${r.held ? "holds" : "does not hold"} (connect ${r.connectS} s, p99 ${r.p99} ms, CPU ${r.cpuPctTotal} %)`);
      if (r.held !== three.held) break;
      if (!three.held && n === 10) break;
      n = three.held ? n * 2 : down(r);
    }
    const largest = [three, ...search].filter((r) => r.held).sort((a, b) => b.agents - a.agents)[0];
    console.log(
      `  largest count that held on 3 instances: ${largest ? `${largest.agents} agents × ${procs} processes` : `none (not even ${Math.min(...search.map((r) => r.agents), agents)})`}; bench ${Math.round((Date.now() - started) / 1000)} s`,
    );
    return { one, three, search, largestHeld: largest ? largest.agents * procs : 0 };
  } finally {
    for (const s of servers) await s.stop().catch(() => {});
    await db.end().catch(() => {});
    await pgServer.stop();
  }
}
