/**
 * The agent data path against a real server on a real PostgreSQL (issue 10,
 * items 2, 8, 9, 19): gaps and regressions in event sequence numbers are
 * events and alerts of their own; the per-node process-record cap; node
 * leases after the server is killed; acks of the contiguous prefix only and
 * a 1011 close when storing fails (a trigger in the database makes inserts
 * fail on demand).
 */
import pg from "pg";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { waitFor } from "../support/ports";
import { startPostgres, type TestPostgres } from "../support/postgres";
import { connectRaw, isRefusal, type RawAgent } from "../support/raw-agent";
import { startServer, type TestServer } from "../support/server";
import { httpClient } from "../support/trpc-clients";

let pgServer: TestPostgres;
let url: string;
let server: TestServer;
let db: pg.Client;
let api: ReturnType<typeof httpClient>;

const BOOT = "b0075eed".repeat(4);

beforeAll(async () => {
  pgServer = await startPostgres();
  url = await pgServer.createDatabase("datapath");
  server = await startServer({ databaseUrl: url, env: { BEAMDECK_MAX_PROCESS_RECORDS: "1000", BEAMDECK_LEASE_MS: "2000" } });
  api = httpClient(server.url, { token: server.apiToken });
  db = new pg.Client({ connectionString: url });
  await db.connect();
}, 300_000);
afterAll(async () => {
  await db?.end();
  await server?.stop();
  await pgServer?.stop();
});

async function agent(token: string, name: string): Promise<RawAgent & { acks: number[] }> {
  const a = await connectRaw(server.agentUrl, token, name);
  if (isRefusal(a)) throw new Error(`refused: ${a.status} ${a.body}`);
  const acks: number[] = [];
  a.ws.on("message", (d) => {
    const f = JSON.parse(d.toString()) as { type: string; eventSeq?: number };
    if (f.type === "ack") acks.push(f.eventSeq ?? -1);
  });
  return Object.assign(a, { acks });
}

const event = (seq: number, extra: Record<string, unknown> = {}) => ({
  type: "event",
  seq,
  bootId: BOOT,
  at: Date.now(),
  kind: "supervisor_report",
  context: "child_terminated",
  supervisor: "sup",
  reason: { text: "normal", truncated: false, atom: "normal" },
  offender: { id: "w", pid: "<0.90.0>" },
  ...extra,
});

async function storedSeqs(node: string, bootId = BOOT): Promise<number[]> {
  const r = await db.query<{ seq: number }>(`SELECT seq FROM "Event" WHERE node = $1 AND "bootId" = $2 ORDER BY seq`, [node, bootId]);
  return r.rows.map((x) => x.seq);
}

type Alert = { kind: string; node: string; status: string; title: string; detail: Record<string, unknown> };
const alertsOf = async (node: string) => (await api.alerts.list.query({ status: "all", node })) as unknown as Alert[];

describe("event sequence numbers", () => {
  it("records an undeclared gap as an event and pages; a declared gap only as an event; the ack moves past both", async () => {
    const a = await agent(await server.agentToken("gappy"), "gappy@host");
    await a.hello();
    for (const s of [1, 2, 3]) a.send(event(s));
    await waitFor("ack 3", () => a.acks.includes(3));
    a.send(event(10));
    await waitFor("ack 10", () => a.acks.includes(10));
    const gaps = await db.query<{ context: string; reason: string }>(`SELECT context, reason FROM "Event" WHERE node = 'gappy@host' AND kind = 'event_gap' ORDER BY id`);
    expect(gaps.rows).toEqual([{ context: "undeclared", reason: `seqs 4-9 of boot ${BOOT} missing (6)` }]);
    const alert = await waitFor("the gap alert", async () => (await alertsOf("gappy@host")).find((x) => x.kind === "event_gap") ?? null, 20_000, 300);
    expect(alert.detail).toMatchObject({ context: "undeclared" });

    a.send(event(20, { droppedSeqs: [11, 19] }));
    await waitFor("ack 20", () => a.acks.includes(20));
    const after = await db.query<{ context: string }>(`SELECT context FROM "Event" WHERE node = 'gappy@host' AND kind = 'event_gap' ORDER BY id`);
    expect(after.rows.map((r) => r.context)).toEqual(["undeclared", "declared"]);
    await new Promise((r) => setTimeout(r, 1500));
    expect((await alertsOf("gappy@host")).filter((x) => x.kind === "event_gap")).toHaveLength(1);
    a.close();
  }, 240_000);

  it("sets aside seqs the node's agent never sent (a forged high seq), pages, and stores the real events", async () => {
    const token = await server.agentToken("forged");
    // A connection under the node's name and boot sends a high seq...
    const forger = await agent(token, "victim@host");
    await forger.hello({ lastEventSeq: 0 });
    forger.send(event(1));
    forger.send(event(1_000_000, { droppedSeqs: [2, 999_999] }));
    await waitFor("forged ack", () => forger.acks.includes(1_000_000));
    // ...then the real agent, at seq 1, comes back: its next reports must not be dropped as duplicates.
    const real = await agent(token, "victim@host");
    const welcome = await real.hello({ lastEventSeq: 1 });
    expect(welcome.lastEventSeq).toBe(1);
    expect((await forger.closed).code).toBe(4409);
    real.send(event(2, { reason: { text: "killed", truncated: false, atom: "killed" } }));
    await waitFor("ack 2", () => real.acks.includes(2));
    expect(await storedSeqs("victim@host")).toEqual([1, 2]);
    const kept = await db.query<{ seq: number }>(`SELECT seq FROM "Event" WHERE node = 'victim@host' AND "bootId" LIKE 'regression:%:e%'`);
    expect(kept.rows.map((r) => r.seq)).toEqual([1_000_000]);
    const alerts = await waitFor(
      "the regression alert",
      async () => {
        const all = await alertsOf("victim@host");
        return all.some((x) => x.kind === "event_gap" && x.detail.context === "regression") && all.some((x) => x.kind === "child_terminated") ? all : null;
      },
      20_000,
      300,
    );
    expect(alerts.find((x) => x.kind === "child_terminated")?.title).toMatch(/killed/);
    real.close();
  }, 240_000);

  it("refuses an event of another boot on a connection", async () => {
    const a = await agent(await server.agentToken("otherboot"), "otherboot@host");
    await a.hello();
    a.send(event(1, { bootId: "c0ffee00".repeat(4) }));
    expect((await a.closed).code).toBe(4400);
  }, 240_000);
});

describe("storing events fails", () => {
  it("closes with 1011 and acks nothing past the stored prefix; the agent's replay stores every event once", async () => {
    await db.query(`CREATE TABLE IF NOT EXISTS test_fail_events (node text PRIMARY KEY)`);
    await db.query(`CREATE OR REPLACE FUNCTION test_fail_events() RETURNS trigger AS $$
      BEGIN
        IF NEW.seq = 1 AND EXISTS (SELECT 1 FROM test_fail_events WHERE node = NEW.node) THEN RAISE EXCEPTION 'disk full (test)'; END IF;
        RETURN NEW;
      END $$ LANGUAGE plpgsql`);
    await db.query(`CREATE TRIGGER test_fail_events BEFORE INSERT ON "Event" FOR EACH ROW EXECUTE FUNCTION test_fail_events()`);
    await db.query(`INSERT INTO test_fail_events VALUES ('flaky@host')`);
    const token = await server.agentToken("flaky");
    const a = await agent(token, "flaky@host");
    await a.hello();
    a.send(event(1));
    await new Promise((r) => setTimeout(r, 5));
    for (let s = 2; s <= 10; s += 1) a.send(event(s));
    const closed = await a.closed;
    expect(closed.code).toBe(1011);
    expect(closed.reason).toMatch(/storing events failed/);
    expect(a.acks).toEqual([]);
    expect(await storedSeqs("flaky@host")).toEqual([]);

    await db.query(`DELETE FROM test_fail_events`);
    const b = await agent(token, "flaky@host");
    expect((await b.hello({ lastEventSeq: 10 })).lastEventSeq).toBe(0);
    for (let s = 1; s <= 10; s += 1) b.send(event(s));
    await waitFor("ack 10", () => b.acks.includes(10));
    expect(await storedSeqs("flaky@host")).toEqual([1, 2, 3, 4, 5, 6, 7, 8, 9, 10]);
    b.close();
  }, 240_000);

  it("never stalls a socket paused at the queue limit: the failure closes it", async () => {
    await db.query(`INSERT INTO test_fail_events VALUES ('paused@host')`);
    const a = await agent(await server.agentToken("paused"), "paused@host");
    await a.hello();
    for (let s = 1; s <= 25_000; s += 1) a.send(event(s));
    expect((await a.closed).code).toBe(1011);
    expect(a.acks).toEqual([]);
  }, 120_000);
});

describe("process record cap", () => {
  it("sends the cap in welcome and closes an agent that ignores it with a clear reason", async () => {
    const a = await agent(await server.agentToken("hoarder"), "hoarder@host");
    const welcome = await a.hello();
    expect(welcome.maxProcessRecords).toBe(1000);
    const rec = (i: number) => ({
      pid: `<0.${i}.0>`,
      name: null,
      initialCall: null,
      currentFunction: null,
      mailbox: 0,
      memory: 100,
      reductions: 1,
      status: "waiting",
      links: [],
      parent: null,
      ancestors: [],
    });
    a.send({ type: "procs", seq: 1, at: Date.now(), reset: true, total: 1000, upsert: Array.from({ length: 1000 }, (_, i) => rec(i)) });
    a.send({ type: "procs", seq: 2, at: Date.now(), total: 1001, upsert: [rec(5000)] });
    const closed = await a.closed;
    expect(closed.code).toBe(4413);
    expect(closed.reason).toMatch(/over the cap of 1000 records/);
  }, 240_000);
});

describe("instance liveness", () => {
  it("shows a node held by a killed instance as disconnected after restart, and node_down fires", async () => {
    await api.alerts.updateRule.mutate({ kind: "node_down", enabled: true, params: { forSeconds: 1 } });
    const a = await agent(await server.agentToken("orphan"), "orphan@host");
    await a.hello();
    const listed = async () => {
      const r = await server.cli(["nodes", "--json"]);
      return (JSON.parse(r.stdout) as { name: string; connected: boolean }[]).find((n) => n.name === "orphan@host");
    };
    await waitFor("connected", async () => (await listed())?.connected === true);
    await server.kill();
    await a.closed;
    // The node never comes back; the new instance must not believe the dead one still holds it.
    await server.restart();
    api = httpClient(server.url, { token: server.apiToken });
    await waitFor("shown disconnected", async () => (await listed())?.connected === false, 20_000, 300);
    const down = await waitFor("node_down", async () => (await alertsOf("orphan@host")).find((x) => x.kind === "node_down") ?? null, 20_000, 500);
    expect(down.status).toBe("open");
    const rows = await db.query<{ instanceId: string | null; connectedAt: Date | null }>(`SELECT "instanceId", "connectedAt" FROM "Node" WHERE name = 'orphan@host'`);
    expect(rows.rows[0]).toEqual({ instanceId: null, connectedAt: null });
  }, 180_000);
});
