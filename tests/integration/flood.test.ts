/**
 * A flood of 10,000 reports: the host stays responsive, the agent's memory
 * stays bounded, every report is stored or counted as dropped, and the
 * server keeps answering. Then the same with the server down and a small
 * buffer: overflow is counted and reported, nothing unbounded.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { stopAll, type BeamNode } from "../../tools/beam/nodes";
import { startAgentNode, waitConnected } from "../support/beam-node";
import { waitFor } from "../support/ports";
import { startServer, type TestServer } from "../support/server";
import { httpClient } from "../support/trpc-clients";

let server: TestServer;
let node: BeamNode;

beforeAll(async () => {
  server = await startServer();
  ({ node } = await startAgentNode(server));
  await waitConnected(server, node.name);
});
afterAll(async () => {
  await stopAll();
  await server?.stop();
});

type Stats = { buffered: number; dropped: number; overloadDrops: number; lastSeq: number };
const stats = async () => node.rpcJson<Stats>(`maps:with([buffered, dropped, overloadDrops, lastSeq], beamdeck_agent_events:stats())`);

/** A ticker on the node that records how late each 50 ms timer fires (kept in its own state). */
async function startLagProbe(): Promise<void> {
  await node.rpc(
    `P = spawn(fun() -> Loop = fun Loop(Acc) -> T = erlang:monotonic_time(millisecond), receive {stop, From} -> From ! {lags, Acc} after 50 -> Loop([erlang:monotonic_time(millisecond) - T - 50 | Acc]) end end, Loop([]) end), register(bd_lag_probe, P)`,
  );
}
async function stopLagProbe(): Promise<number[]> {
  const lags = await node.rpcJson<number[]>(`whereis(bd_lag_probe) ! {stop, self()}, receive {lags, L} -> L after 5000 -> [] end`);
  return lags.sort((a, b) => a - b);
}

/** The node's rpc and the server's process window, answered one after the other: how long that took (ms). */
async function answerMs(admin: ReturnType<typeof httpClient>): Promise<number> {
  const t0 = Date.now();
  expect(await node.rpc(`1 + 1`, { timeoutMs: 5000 })).toBe("2");
  const answered = await admin.procs.window.query({ node: node.name, sort: "mailbox", limit: 10 });
  expect(answered.rows.length).toBeGreaterThan(0);
  return Date.now() - t0;
}

const p95 = (sorted: number[]) => sorted[Math.floor(sorted.length * 0.95)];

describe("a flood of reports", () => {
  it("10,000 crash reports: node responsive, agent bounded, each report stored or counted", async () => {
    const admin = httpClient(server.url, { token: server.apiToken });
    const before = await stats();
    // This run's reference, before the flood: the same answers, and the lag
    // of the same ticker over 2 s. A loaded machine slows both runs alike;
    // only a flood that holds the node or the server slows the second.
    const quietAnswerMs = await answerMs(admin);
    await startLagProbe();
    await new Promise((r) => setTimeout(r, 2000));
    const quietLags = await stopLagProbe();
    expect(quietLags.length).toBeGreaterThan(5);
    await startLagProbe();
    await node.rpc(`spawn(fun() -> [proc_lib:spawn(fun() -> exit({bd_flood, I}) end) || I <- lists:seq(1, 10000)] end), ok`);
    // While it floods: the node answers, and so does the server.
    expect(await answerMs(admin)).toBeLessThan(4 * quietAnswerMs + 10_000);
    const mem = await node.rpcJson<number>(`element(2, process_info(whereis(beamdeck_agent_events), memory))`);
    expect(mem).toBeLessThan(64 * 1024 * 1024);

    // Everything settles: stored + dropped (buffer) + dropped (overload) = 10,000.
    const settled = await waitFor(
      "the flood to be stored or counted",
      async () => {
        const s = await stats();
        const n = await countFlood();
        const accounted = n + (s.dropped - before.dropped) + (s.overloadDrops - before.overloadDrops);
        return s.buffered === 0 && accounted >= 10_000 ? { s, n } : null;
      },
      90_000,
      1000,
    );
    const lags = await stopLagProbe();
    expect(lags.length).toBeGreaterThan(10);
    // The node stayed responsive: timers fired, late by at most a fraction of a second more than when quiet.
    expect(p95(lags)).toBeLessThan(4 * p95(quietLags) + 500);
    expect(settled.n + (settled.s.dropped - before.dropped) + (settled.s.overloadDrops - before.overloadDrops)).toBe(10_000);
    expect(settled.n).toBeGreaterThan(0);
  }, 180_000);

  it("with the server down and a small buffer, overflow is counted and reported after reconnect", async () => {
    // Restarted by its supervisor with the new buffer: wait for a new pid (the killed one stays registered until it is gone).
    const old = await node.rpc(`Old = whereis(beamdeck_agent_events), application:set_env(beamdeck_agent, event_buffer, 500), exit(Old, kill), pid_to_list(Old)`);
    await waitFor("events process back", async () => {
      const now = await node.rpc(`case whereis(beamdeck_agent_events) of undefined -> none; P -> pid_to_list(P) end`);
      return now !== old && now !== '"none"' && now !== "none";
    });
    await server.stop();
    const before = await stats();
    await node.rpc(`[proc_lib:spawn(fun() -> exit({bd_offline, I}) end) || I <- lists:seq(1, 3000)], ok`);
    const during = await waitFor("overflow", async () => {
      const s = await stats();
      return s.dropped > before.dropped && s.buffered <= 500 ? s : null;
    });
    expect(during.buffered).toBeLessThanOrEqual(500);
    await server.restart();
    await waitConnected(server, node.name, true, 45_000);
    // The agent reports what it dropped as an event of its own.
    const agentEvent = await waitFor(
      "the agent's drop report",
      async () => {
        const evs = JSON.parse((await server.cli(["events", node.name, "--json", "--limit", "1000"])).stdout) as { kind: string; raw?: unknown }[];
        return evs.find((e) => e.kind === "agent") ?? null;
      },
      30_000,
      1000,
    );
    expect(agentEvent.kind).toBe("agent");
    const admin = httpClient(server.url, { token: server.apiToken });
    const list = await admin.events.list.query({ node: node.name, kind: "agent", limit: 5 });
    const detail = await admin.events.get.query({ id: list.events[0].id });
    // `dropped` is a field of the agent's own event, beyond the frame's schema (which passes it through).
    const raw: Record<string, unknown> = detail.raw;
    expect(raw.dropped).toBeGreaterThan(0);
    const offline = await waitFor(
      "the buffered reports",
      async () => {
        const n = await countMarker("bd_offline");
        return n > 0 && (await stats()).buffered === 0 ? n : null;
      },
      30_000,
      1000,
    );
    expect(offline).toBeLessThanOrEqual(500);
  }, 180_000);
});

async function countMarker(marker: string): Promise<number> {
  const admin = httpClient(server.url, { token: server.apiToken });
  let n = 0;
  let before: string | undefined;
  for (;;) {
    const page = await admin.events.list.query({ node: node.name, kind: "crash_report", reason: marker, limit: 1000, before });
    n += page.events.length;
    if (!page.nextBefore) return n;
    before = page.nextBefore;
  }
}
const countFlood = () => countMarker("bd_flood");
