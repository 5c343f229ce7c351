/**
 * A node with a million processes (`+P 2000000`): the agent starts,
 * connects, reports the process count, a stuffed mailbox reaches the server,
 * and the agent's memory stays under its bound (issue 17). Not timing: the
 * waits are generous; what is checked is that each thing happens at all.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { stopAll, type BeamNode } from "../../tools/beam/nodes";
import { startAgentNode, waitConnected } from "../support/beam-node";
import { waitFor } from "../support/ports";
import { startServer, type TestServer } from "../support/server";
import { httpClient } from "../support/trpc-clients";

const MILLION = 1_000_000;
/** Issue 17's bound at 1M processes: processes, ETS and binaries of the agent. */
const MEMORY_BOUND = 150 * 2 ** 20;

let server: TestServer;
let node: BeamNode;

beforeAll(async () => {
  server = await startServer();
  ({ node } = await startAgentNode(server, { env: { ERL_FLAGS: "+P 2000000" } }));
  await waitConnected(server, node.name, true, 60_000);
  // Hibernated idle processes (a few hundred bytes each), held by one registered parent.
  await node.rpc(
    `Self = self(), H = spawn(fun() -> [spawn(erlang, hibernate, [timer, sleep, [infinity]]) || _ <- lists:seq(1, ${MILLION})], Self ! spawned, receive stop -> ok end end), register(bd_million, H), receive spawned -> ok after 600000 -> timeout end`,
    { timeoutMs: 610_000 },
  );
  // Minutes on a loaded 2-core machine: a fresh server's init, the release, a million spawns.
}, 900_000);
afterAll(async () => {
  await stopAll();
  await server?.stop();
});

/** The agent's memory: every process of its application, the ETS tables they own, their off-heap binaries. */
const AGENT_MEMORY = `begin
  M = application_controller:get_master(beamdeck_agent),
  Ps = [P || P <- erlang:processes(), process_info(P, group_leader) =:= {group_leader, M}],
  Heap = lists:sum([Mem || P <- Ps, {memory, Mem} <- [process_info(P, memory)]]),
  Ets = lists:sum([ets:info(T, memory) * erlang:system_info(wordsize) || T <- ets:all(), lists:member(ets:info(T, owner), Ps)]),
  Bins = lists:sum(maps:values(maps:from_list([{Id, S} || P <- Ps, {binary, Bs} <- [process_info(P, binary)], {Id, S, _} <- Bs]))),
  #{processes => length(Ps), bytes => Heap + Ets + Bins}
end`;

describe("a node with a million processes", () => {
  it("the agent stays connected and reports the process count", async () => {
    expect(Number(await node.rpc(`erlang:system_info(process_count)`))).toBeGreaterThanOrEqual(MILLION);
    const counted = await waitFor(
      "the server to report a million processes",
      async () => {
        const r = await server.cli(["nodes", "--json"]);
        if (r.code !== 0) return null;
        const me = (JSON.parse(r.stdout) as { name: string; connected: boolean; processCount: number | null }[]).find((n) => n.name === node.name);
        return me?.connected && (me.processCount ?? 0) >= MILLION ? me : null;
      },
      120_000,
      2000,
    );
    expect(counted.processCount).toBeLessThan(MILLION + 10_000);
  }, 180_000);

  it("a stuffed mailbox reaches the server", async () => {
    const pid = await node.rpcJson<string>(`P = spawn(fun() -> receive stop -> ok end end), register(bd_stuffed, P), [P ! {m, I} || I <- lists:seq(1, 700)], list_to_binary(pid_to_list(P))`);
    const client = httpClient(server.url, { token: server.apiToken });
    const top = await waitFor(
      "the stuffed process first by mailbox",
      async () => {
        const w = await client.procs.window.query({ node: node.name, sort: "mailbox", limit: 3 });
        return w.rows[0]?.pid === pid ? w.rows[0] : null;
      },
      90_000,
      1000,
    );
    expect(top.mailbox).toBe(700);
    expect(top.name).toBe("bd_stuffed");
  }, 120_000);

  it("the agent's memory stays under 150 MB", async () => {
    const mem = await node.rpcJson<{ processes: number; bytes: number }>(AGENT_MEMORY, { timeoutMs: 60_000 });
    expect(mem.processes).toBeGreaterThan(3);
    expect(mem.bytes).toBeLessThan(MEMORY_BOUND);
  }, 90_000);
});
