/**
 * The demo releases, for real: built by demo/builder, booted from their own
 * target systems, upgraded by release_handler on the node. Every check looks
 * at the node itself over distributed Erlang (tools/beam/probe.erl).
 */
import fs from "node:fs/promises";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startNode, stopAll, type BeamNode } from "../../tools/beam/nodes";
import { buildRelease, instantiate, REPO_ROOT, type Release } from "../../tools/beam/releases";
import { freePort, GreetingClient } from "../../tools/beam/tcp";
import { withTimeout } from "../support/calls";

const OUT = path.join(REPO_ROOT, "tests", ".out", `releases-${process.pid}`);
// The agent is in every release, idle without BEAMDECK_URL.
const WITH_AGENT = true;

afterAll(async () => {
  await stopAll();
  await fs.rm(OUT, { recursive: true, force: true });
});

describe("rel_test: the forum's upgrade, for real", () => {
  let rel: Release;
  let node: BeamNode;
  let port: number;
  const SUP = "'Elixir.RelTest.Supervisor'";

  const acceptorPid = async (): Promise<string> => {
    const children = await node.rpc(`[P || {_, P, _, _} <- supervisor:which_children(${SUP})]`);
    const m = /^\[(<[\d.]+>)\]$/.exec(children);
    if (!m) throw new Error(`unexpected children ${children}`);
    return m[1];
  };
  // The Task.async handlers are linked to the acceptor (and the acceptor to the supervisor).
  const handlerPids = async (acceptor: string): Promise<string[]> =>
    node.rpcJson<string[]>(`{links, L} = process_info(list_to_pid("${acceptor}"), links), [P || P <- L, is_pid(P), P =/= whereis(${SUP})]`);
  const alive = (pid: string): Promise<string> => node.rpc(`is_process_alive(list_to_pid("${pid}"))`);
  const onOldCode = (): Promise<string[]> => node.rpcJson<string[]>(`lists:sort([P || P <- processes(), erlang:check_process_code(P, 'Elixir.TestListener')])`);

  beforeAll(async () => {
    rel = await buildRelease("rel_test", { agent: WITH_AGENT });
    const dir = path.join(OUT, "rel_test");
    await instantiate(rel.templateDir, dir);
    port = await freePort();
    // No BEAMDECK_URL: the agent stays idle.
    node = await startNode({ release: "rel_test", dir, env: { REL_TEST_PORT: String(port), BEAMDECK_URL: undefined } });
  });

  it("is a real release: 0.1.0 permanent, 0.1.1 and 0.1.2 waiting as packages", async () => {
    expect(rel.versions).toEqual(["0.1.0", "0.1.1", "0.1.2"]);
    expect(node.bootVersion).toBe("0.1.0");
    const releases = await node.rpcJson<Array<[string, string, string[], string]>>("release_handler:which_releases()");
    expect(releases.map(([n, v, , s]) => [n, v, s])).toEqual([["rel_test", "0.1.0", "permanent"]]);
    const files = await fs.readdir(path.join(node.dir, "releases"));
    expect(files).toEqual(expect.arrayContaining(["rel_test-0.1.1.tar.gz", "rel_test-0.1.2.tar.gz", "0.1.0", "RELEASES"]));
    expect(files).not.toContain("0.1.1");
    const apps = await node.rpcJson<Array<[string, string, string]>>("application:which_applications()");
    const names = apps.map(([a]) => a);
    expect(names).toEqual(expect.arrayContaining(["rel_test", "elixir", "logger", "sasl"]));
    if (WITH_AGENT) expect(names).toContain("beamdeck_agent");
    expect(await node.rpc("code:root_dir()")).toBe(JSON.stringify(node.dir));
  });

  it("greets a client with the 0.1.0 greeting", async () => {
    const c = await GreetingClient.connect(port);
    expect(await c.hello()).toBe("Hey there!\n");
    expect(await c.hello()).toBe("Hey there!\n");
    c.close();
  });

  it("0.1.0 → 0.1.1: install keeps everyone on old code, make_permanent kills them (brutal post-purge)", async () => {
    const client = await GreetingClient.connect(port);
    expect(await client.hello()).toBe("Hey there!\n");
    const supBefore = await node.rpc(`whereis(${SUP})`);
    const acceptor = await acceptorPid();
    const handlers = await handlerPids(acceptor);
    expect(handlers).toHaveLength(1);
    const handler = handlers[0];
    expect(await onOldCode()).toEqual([]);

    expect(await node.rpc(`release_handler:unpack_release("rel_test-0.1.1")`)).toBe(`{ok,"0.1.1"}`);
    expect(await node.rpc(`release_handler:install_release("0.1.1")`)).toBe(`{ok,"0.1.0",[]}`);

    // Nothing has died; the connection is served by old code (loop/1 calls
    // itself locally, so it never reaches the new module).
    expect(await alive(acceptor)).toBe("true");
    expect(await alive(handler)).toBe("true");
    expect(await acceptorPid()).toBe(acceptor);
    expect(await client.hello()).toBe("Hey there!\n");
    expect(await onOldCode()).toEqual([acceptor, handler].sort());
    const releases = await node.rpcJson<Array<[string, string, string[], string]>>("release_handler:which_releases()");
    expect(releases.map(([, v, , s]) => [v, s])).toEqual([
      ["0.1.1", "current"],
      ["0.1.0", "permanent"],
    ]);

    expect(await node.rpc(`release_handler:make_permanent("0.1.1")`)).toBe("ok");

    // The post-purge killed both; the supervisor restarted the acceptor on new code.
    expect(await alive(acceptor)).toBe("false");
    expect(await alive(handler)).toBe("false");
    expect(
      await withTimeout(
        client.closed.then(() => "closed"),
        5000,
        "old connection",
      ),
    ).toBe("closed");
    expect(client.open).toBe(false);
    expect(await node.rpc(`whereis(${SUP})`)).toBe(supBefore);
    const newAcceptor = await acceptorPid();
    expect(newAcceptor).not.toBe(acceptor);
    expect(await onOldCode()).toEqual([]);

    const fresh = await GreetingClient.connect(port);
    expect(await fresh.hello()).toBe("Hey there, next version!\n");
    fresh.close();

    // The node's own report of who died, and why (the forum's SUPERVISOR REPORT).
    const log = await fs.readFile(node.logFile, "utf8");
    expect(log).toMatch(/Child Task of Supervisor RelTest\.Supervisor terminated\n\*\* \(exit\) killed/);
  });

  it("0.1.1 → 0.1.2, then back down to 0.1.1 through the relup's downgrade path", async () => {
    expect(await node.rpc(`release_handler:unpack_release("rel_test-0.1.2")`)).toBe(`{ok,"0.1.2"}`);
    expect(await node.rpc(`release_handler:install_release("0.1.2")`)).toBe(`{ok,"0.1.1",[]}`);
    expect(await node.rpc(`release_handler:make_permanent("0.1.2")`)).toBe("ok");
    const c3 = await GreetingClient.connect(port);
    expect(await c3.hello()).toBe("Hey there, version three!\n");

    expect(await node.rpc(`release_handler:install_release("0.1.1")`)).toBe(`{ok,"0.1.1",[]}`);
    // Still running 0.1.2's loop until the purge.
    expect(await c3.hello()).toBe("Hey there, version three!\n");
    expect(await node.rpc(`release_handler:make_permanent("0.1.1")`)).toBe("ok");
    await withTimeout(c3.closed, 5000, "0.1.2 connection");
    const c4 = await GreetingClient.connect(port);
    expect(await c4.hello()).toBe("Hey there, next version!\n");
    c4.close();
  });

  it("a restarted node boots the permanent release", async () => {
    await node.stop();
    expect(node.alive()).toBe(false);
    node = await startNode({ release: "rel_test", dir: node.dir, env: { REL_TEST_PORT: String(port) } });
    expect(node.bootVersion).toBe("0.1.1");
    const c = await GreetingClient.connect(port);
    expect(await c.hello()).toBe("Hey there, next version!\n");
    c.close();
  });
});

describe("bd_counter: {update, M, {advanced, []}} suspends and migrates, never kills", () => {
  let node: BeamNode;

  beforeAll(async () => {
    const rel = await buildRelease("bd_counter", { agent: WITH_AGENT });
    const dir = path.join(OUT, "bd_counter");
    await instantiate(rel.templateDir, dir);
    node = await startNode({ release: "bd_counter", dir });
  });

  it("1.0.0 → 1.1.0 turns the integer state into a map in the same process, and back", async () => {
    expect(node.bootVersion).toBe("1.0.0");
    await node.rpc("[bd_counter_server:bump() || _ <- lists:seq(1, 3)]");
    const pid = await node.rpc("whereis(bd_counter_server)");
    expect(pid).toMatch(/^<0\.\d+\.0>$/);
    expect(await node.rpc("sys:get_state(bd_counter_server)")).toBe("3");

    expect(await node.rpc(`release_handler:unpack_release("bd_counter-1.1.0")`)).toBe(`{ok,"1.1.0"}`);
    // The relup suspends the server around the load and the code_change.
    const relup = await fs.readFile(path.join(node.dir, "releases", "1.1.0", "relup"), "utf8");
    expect(relup.replace(/\s+/g, "")).toContain(
      "{suspend,[bd_counter_server]},{load,{bd_counter_server,brutal_purge,brutal_purge}},{code_change,up,[{bd_counter_server,[]}]},{resume,[bd_counter_server]}",
    );
    expect(await node.rpc(`release_handler:install_release("1.1.0")`)).toBe(`{ok,"1.0.0",[]}`);

    expect(await node.rpc("whereis(bd_counter_server)")).toBe(pid);
    const state = await node.rpcJson<{ count: number; since: number }>("sys:get_state(bd_counter_server)");
    expect(state.count).toBe(3);
    expect(typeof state.since).toBe("number");
    expect(await node.rpc("bd_counter_server:vsn()")).toBe(`"1.1.0"`);
    expect(await node.rpc("bd_counter_server:bump()")).toBe("4");
    // Resumed, not left suspended, nor with calls piling up.
    expect(await node.rpc(`element(2, process_info(whereis(bd_counter_server), status))`)).not.toBe("suspended");
    expect(await node.rpc(`element(2, process_info(whereis(bd_counter_server), message_queue_len))`)).toBe("0");
    expect(await node.rpc(`release_handler:make_permanent("1.1.0")`)).toBe("ok");
    expect(await node.rpc("whereis(bd_counter_server)")).toBe(pid);

    expect(await node.rpc(`release_handler:install_release("1.0.0")`)).toBe(`{ok,"1.0.0",[]}`);
    expect(await node.rpc("whereis(bd_counter_server)")).toBe(pid);
    expect(await node.rpc("sys:get_state(bd_counter_server)")).toBe("4");
    expect(await node.rpc("bd_counter_server:vsn()")).toBe(`"1.0.0"`);
  });
});
