/**
 * A node with a million processes (`+P 2000000`): the agent starts,
 * connects, reports the process count, a stuffed mailbox reaches the server,
 * and the agent's memory stays under its bound (issue 17). Not timing: the
 * waits are generous; what is checked is that each thing happens at all.
 */
import { spawnSync } from "node:child_process";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
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
  // The agent's memory from here to the last test, sampled every 500 ms
  // (bd_footprint, the bench's probe): its peak over the passes the tests
  // below wait for, not a snapshot that may land just after a hibernation.
  const probe = fs.mkdtempSync(path.join(os.tmpdir(), "beamdeck-million-"));
  const c = spawnSync("erlc", ["-o", probe, path.resolve("tests/bench/erl/bd_footprint.erl")], { encoding: "utf8", timeout: 60_000 });
  if (c.status !== 0) throw new Error(`compiling bd_footprint.erl failed: ${c.stderr}`);
  await node.rpc(`code:add_patha("${probe}"), {module, bd_footprint} = code:ensure_loaded(bd_footprint), bd_footprint:mem_watch_start(500)`, { timeoutMs: 120_000 });
  // Minutes on a loaded 2-core machine: a fresh server's init, the release, a million spawns.
}, 900_000);
afterAll(async () => {
  await stopAll();
  await server?.stop();
});

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

  it("the agent's memory peak stays under 150 MB", async () => {
    // At least 15 s of samples: a partial tick comes every 12 s or sooner,
    // and the tests above already waited for passes over every process.
    await new Promise((r) => setTimeout(r, 15_000));
    const after = await node.rpcJson<{ processes: number; total: number }>(`bd_footprint:agent_memory()`, { timeoutMs: 60_000 });
    const watched = await node.rpcJson<{ peak: { processes: number; total: number }; samples: number }>(`bd_footprint:mem_watch_stop()`, { timeoutMs: 60_000 });
    expect(watched.samples).toBeGreaterThanOrEqual(30);
    expect(watched.peak.processes).toBeGreaterThan(3);
    expect(after.processes).toBeGreaterThan(3);
    expect(Math.max(watched.peak.total, after.total)).toBeLessThan(MEMORY_BOUND);
  }, 90_000);
});
