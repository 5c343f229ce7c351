/**
 * The live node view end to end: a real rel_test release with the agent,
 * a real server, checked through the CLI against the node itself.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { BeamNode } from "../../tools/beam/nodes";
import { startAgentNode, startServerAndNode, stopServerAndNodes, waitConnected } from "../support/beam-node";
import { waitFor } from "../support/ports";
import type { TestServer } from "../support/server";
import { cliJson } from "../support/calls";

let server: TestServer;
let node: BeamNode;
let listenPort: number;

beforeAll(async () => {
  ({ server, node, listenPort } = await startServerAndNode());
});
afterAll(() => stopServerAndNodes(server));

interface Proc {
  pid: string;
  name: string | null;
  mailbox: number;
  memory: number;
  reductions: number;
  initialCall: string | null;
  currentFunction: string | null;
}

describe("live node view", () => {
  it("lists the node with its OTP version and process count", async () => {
    const nodes = await cliJson<{ name: string; connected: boolean; otpRelease: string; processCount: number }[]>(server, ["nodes"]);
    const me = nodes.find((n) => n.name === node.name);
    expect(me).toMatchObject({ connected: true, otpRelease: "25" });
    expect(me?.processCount).toBeGreaterThan(50);
  });

  it("shows a process holding exactly 500 messages as mailbox 500 within seconds", async () => {
    const pid = await node.rpc(`P = spawn(fun() -> receive stop -> ok end end), register(bd_hoarder, P), [P ! {msg, I} || I <- lists:seq(1, 500)], P`);
    expect(await node.rpc(`element(2, process_info(whereis(bd_hoarder), message_queue_len))`)).toBe("500");
    const top = await waitFor(
      "mailbox 500 at the top",
      async () => {
        const rows = await cliJson<Proc[]>(server, ["procs", node.name, "--sort", "mailbox", "--limit", "5"]);
        return rows[0]?.pid === pid && rows[0].mailbox === 500 ? rows : null;
      },
      10_000,
      300,
    );
    expect(top[0]).toMatchObject({ pid, name: "bd_hoarder", mailbox: 500, currentFunction: expect.stringMatching(/^erl_eval:|prim_eval:/) });
    for (const key of ["pid", "name", "mailbox", "memory", "reductions", "initialCall", "currentFunction"]) expect(top[0]).toHaveProperty(key);
    // The mailbox drains: the change reaches the table too.
    await node.rpc(`[receive _ -> ok end || _ <- lists:seq(1, 0)], whereis(bd_hoarder) ! stop, ok`);
    await waitFor("hoarder gone", async () => !(await cliJson<Proc[]>(server, ["procs", node.name, "--filter", "bd_hoarder"])).some((p) => p.pid === pid), 10_000, 300);
  });

  it("sorts by memory and reductions, and filters by name or module", async () => {
    const byMem = await cliJson<Proc[]>(server, ["procs", node.name, "--sort", "memory", "--limit", "20"]);
    expect(byMem.map((p) => p.memory)).toEqual([...byMem.map((p) => p.memory)].sort((a, b) => b - a));
    const byRed = await cliJson<Proc[]>(server, ["procs", node.name, "--sort", "reductions", "--limit", "20"]);
    expect(byRed.map((p) => p.reductions)).toEqual([...byRed.map((p) => p.reductions)].sort((a, b) => b - a));
    const filtered = await cliJson<Proc[]>(server, ["procs", node.name, "--filter", "reltest", "--limit", "100"]);
    expect(filtered.length).toBeGreaterThanOrEqual(2); // the supervisor and the acceptor
    expect(filtered.every((p) => `${p.name} ${p.initialCall} ${p.currentFunction}`.toLowerCase().includes("reltest"))).toBe(true);
    const all = await cliJson<Proc[]>(server, ["procs", node.name, "--limit", "1000"]);
    expect(filtered.length).toBe(all.filter((p) => `${p.pid} ${p.name} ${p.initialCall} ${p.currentFunction}`.toLowerCase().includes("reltest")).length);
  });

  it("shows the supervision tree as supervisor:which_children/1 reports it", async () => {
    type Tree = { apps: { name: string; root: TreeNode | null }[] };
    type TreeNode = { pid: string | null; id: string; kind: string; children: TreeNode[]; linked: { pid: string }[] };
    const tree = await cliJson<Tree>(server, ["tree", node.name]);
    const app = tree.apps.find((a) => a.name === "rel_test");
    expect(app?.root?.id).toBe("Elixir.RelTest.Supervisor");
    const onNode = await node.rpcJson<string[][]>(
      `[[case Id of A when is_atom(A) -> atom_to_list(A); _ -> lists:flatten(io_lib:format("~0p", [Id])) end, pid_to_list(P), atom_to_list(T)] || {Id, P, T, _} <- supervisor:which_children('Elixir.RelTest.Supervisor')]`,
    );
    expect(app?.root?.children.map((c) => [c.id, c.pid, c.kind])).toEqual(onNode.map(([id, pid, type]) => [id, pid, type]));
    // Every supervisor of the kernel tree too, one level down.
    const kernel = tree.apps.find((a) => a.name === "kernel")?.root;
    const kernelKids = await node.rpcJson<string[]>(`[pid_to_list(P) || {_, P, _, _} <- supervisor:which_children(kernel_sup), is_pid(P)]`);
    expect(
      kernel?.children
        .map((c) => c.pid)
        .filter(Boolean)
        .sort(),
    ).toEqual([...kernelKids].sort());
  });

  it("shows connection handlers (Task.async, linked, not supervised) under the acceptor", async () => {
    const { GreetingClient } = await import("../../tools/beam/tcp");
    const client = await GreetingClient.connect(listenPort);
    try {
      expect(await client.hello()).toBe("Hey there!\n");
      const acceptor = await node.rpc(`[P] = [P || {'Elixir.Task', P, worker, _} <- supervisor:which_children('Elixir.RelTest.Supervisor')], P`);
      const handlers = await node.rpcJson<string[]>(`{links, L} = process_info(list_to_pid("${acceptor}"), links), [pid_to_list(P) || P <- L, is_pid(P), P =/= whereis('Elixir.RelTest.Supervisor')]`);
      expect(handlers.length).toBeGreaterThan(0);
      await waitFor(
        "handlers under the acceptor in the tree",
        async () => {
          const t = await cliJson<{ apps: { name: string; root: { children: { pid: string; linked: { pid: string }[] }[] } | null }[] }>(server, ["tree", node.name]);
          const acc = t.apps.find((a) => a.name === "rel_test")?.root?.children.find((c) => c.pid === acceptor);
          const shown = acc?.linked.map((l) => l.pid).sort() ?? [];
          return JSON.stringify(shown) === JSON.stringify([...handlers].sort());
        },
        15_000,
        500,
      );
    } finally {
      client.close();
    }
  });

  it("gives a process's detail: stacktrace, modules on its stack, links", async () => {
    const acceptor = await node.rpc(`[P] = [P || {'Elixir.Task', P, worker, _} <- supervisor:which_children('Elixir.RelTest.Supervisor')], P`);
    const d = await cliJson<{ pid: string; stacktrace: { mfa: string }[]; stackModules: string[]; links: string[]; state: unknown }>(server, ["proc", node.name, acceptor]);
    expect(d.pid).toBe(acceptor);
    expect(d.stackModules).toContain("Elixir.TestListener");
    expect(d.stacktrace.map((f) => f.mfa).some((m) => m.startsWith("Elixir.TestListener:start/1"))).toBe(true);
    const links = await node.rpcJson<string[]>(`{links, L} = process_info(list_to_pid("${acceptor}"), links), [pid_to_list(P) || P <- L, is_pid(P)]`);
    expect([...d.links].filter((l) => l.startsWith("<")).sort()).toEqual([...links].sort());
    expect(d.state).toEqual({ error: "disabled" });
    const gone = await server.cli(["proc", node.name, "<0.9999.0>"]);
    expect(gone.code).toBe(1);
    expect(gone.stderr).toMatch(/no such process|not found|not_found/);
  });

  it("shows a killed agent connection as disconnected, and it recovers under the same name", async () => {
    const since = async () => (await cliJson<{ name: string; connectedSince: number | null }[]>(server, ["nodes"])).find((n) => n.name === node.name)?.connectedSince ?? 0;
    const before = await since();
    expect(before).toBeGreaterThan(0);
    await node.rpc(`exit(whereis(beamdeck_agent_conn), kill)`);
    // The supervisor restarts the connection at once: a new connection, same identity.
    await waitFor("a new connection", async () => (await since()) > before, 20_000, 300);
    const nodes = (await cliJson<{ name: string }[]>(server, ["nodes"])).filter((n) => n.name === node.name);
    expect(nodes).toHaveLength(1);
    // A longer outage: the agent cannot reach the server while it is down.
    await server.stop();
    await new Promise((r) => setTimeout(r, 1000));
    await server.restart();
    await waitConnected(server, node.name, true, 45_000);
    const rows = await waitFor("the process table again", async () => {
      const r = await cliJson<Proc[]>(server, ["procs", node.name, "--limit", "3"]);
      return r.length === 3 ? r : null;
    });
    expect(rows[0].pid).toMatch(/^<0\./);
  });

  it("refuses a node with a wrong token with a clear reason, without disturbing others", async () => {
    const { node: bad } = await startAgentNode(server, { token: "bdagt_aaaaaaaaaa_" + "A".repeat(43) });
    await waitFor("the refusal in the agent's log", () => /not recognised/.test(bad.logTail(200)), 20_000, 500);
    expect(server.log()).toMatch(new RegExp(`agent ${bad.name} .* refused: agent token not recognised`));
    expect((await cliJson<{ name: string }[]>(server, ["nodes"])).some((n) => n.name === bad.name)).toBe(false);
    await waitConnected(server, node.name, true);
    // The agent says it once, not on every retry.
    await new Promise((r) => setTimeout(r, 4000));
    expect((bad.logTail(500).match(/not recognised/g) ?? []).length).toBe(1);
    await bad.stop(0);
  });
});
