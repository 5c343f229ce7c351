/**
 * The load generator (tools/loadgen) against one real `beamdeck server`:
 * its simulated nodes connect with a fleet token, the server holds their
 * tables (a process detail is answered by the generator), and every event
 * the generator produced is stored exactly once, including the ones
 * produced while the server was down (buffered, replayed after the
 * restart). The counts come from the server's own API, not the generator's.
 * (Synthetic nodes: the generator is a load source, not a BEAM node.)
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Fleet } from "../../tools/loadgen/fleet";
import { waitFor } from "../support/ports";
import { startServer, type TestServer } from "../support/server";
import { httpClient } from "../support/trpc-clients";

const AGENTS = 4;
const PROCS = 2000;
let server: TestServer;
let fleet: Fleet;

/** Every stored event of a node: row count and distinct seqs (of its boot). */
async function stored(node: string, bootId: string): Promise<{ rows: number; seqs: Set<number> }> {
  const trpc = httpClient(server.url, { token: server.apiToken });
  const seqs = new Set<number>();
  let rows = 0;
  let before: string | undefined;
  for (let page = 0; page < 20; page += 1) {
    const r = await trpc.events.list.query({ node, limit: 1000, before });
    for (const e of r.events) {
      if (e.bootId !== bootId) continue;
      rows += 1;
      seqs.add(e.seq);
    }
    if (!r.nextBefore) break;
    before = r.nextBefore;
  }
  return { rows, seqs };
}

beforeAll(async () => {
  server = await startServer();
  const token = await server.agentToken("loadgen", "lgtest_*@*");
  fleet = new Fleet({ url: [server.agentUrl], token, agents: AGENTS, procs: PROCS, interval: 500, churn: 50, eventsPerSecond: 10, prefix: "lgtest", concurrency: 2 });
}, 300_000);

afterAll(async () => {
  await fleet?.stop();
  await server?.stop();
});

describe("load generator against one server", () => {
  it("connects every simulated node; the server lists them connected with their process counts", async () => {
    expect(await fleet.start(60_000)).toBe(AGENTS);
    const trpc = httpClient(server.url, { token: server.apiToken });
    // A reset arrives in frames of 1000 records; a node is connected before its last frame is in (its count then grows).
    const expected = fleet.agents.map((a) => [a.node, PROCS]).sort();
    let listed: (string | number | null)[][] = [];
    await waitFor(
      "all simulated nodes listed connected with their process counts",
      async () => {
        const l = (await trpc.nodes.list.query()).filter((n) => n.name.startsWith("lgtest_"));
        listed = l.map((n) => [n.name, n.connected ? n.processCount : null]).sort();
        return JSON.stringify(listed) === JSON.stringify(expected) ? l : null;
      },
      30_000,
      300,
    ).catch((e) => {
      throw new Error(`${(e as Error).message}; listed [name, count]: ${JSON.stringify(listed)}`);
    });
    expect(listed).toEqual(expected);
  });

  it("answers a process detail the server asks for", async () => {
    const a = fleet.agents[0];
    const r = await server.cli(["proc", a.node, a.hotPid, "--json"], {}, { timeoutMs: 60_000 });
    expect(r.code, r.stderr).toBe(0);
    expect(JSON.parse(r.stdout)).toMatchObject({ pid: a.hotPid, messageQueueLen: 48_213 });
    expect(a.answered.process_detail).toBeGreaterThanOrEqual(1);
  });

  it("every produced event is stored once, including those produced while the server was down", async () => {
    await waitFor("events flowing", async () => fleet.agents.every((a) => a.eventsAcked >= 5), 30_000, 200);
    const before = fleet.agents.map((a) => a.eventsProduced);
    await server.stop();
    // Down: the generator goes on producing into its replay buffers.
    await new Promise((r) => setTimeout(r, 1500));
    const duringDowntime = fleet.agents.map((a, i) => a.eventsProduced - before[i]);
    expect(Math.min(...duringDowntime)).toBeGreaterThan(0);
    await server.restart();
    await waitFor("every node back", async () => fleet.connected() === AGENTS && fleet.agents.every((a) => a.welcomes >= 2), 90_000, 300);
    await new Promise((r) => setTimeout(r, 1000));
    fleet.quiet();
    expect(await fleet.drain(30_000)).toBe(true);
    const summary = fleet.summary();
    expect(summary.eventsDropped).toBe(0);
    for (const n of summary.nodes) {
      const s = await stored(n.node, n.bootId);
      const expected = Array.from({ length: n.events }, (_v, i) => i + 1);
      expect({ node: n.node, rows: s.rows, seqs: [...s.seqs].sort((x, y) => x - y) }).toEqual({ node: n.node, rows: n.events, seqs: expected });
    }
  });
});
