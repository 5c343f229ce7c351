/**
 * Signals an operator needs every day (issue 14), on a real node.
 *
 * Old code is visible everywhere: a process left running a
 * module's old code on a real node is counted in the nodes list, marked in
 * the process table (`procs --json`) and the tree query, counted in
 * /metrics, and pages through the `old_code` alert rule — and all of it
 * clears when the process is gone. The truth comes from the node itself
 * (`erlang:check_process_code/2` over distributed Erlang).
 *
 * Mailbox leaks: a mailbox that grows slowly and never drains pages through
 * the `mailbox_leak` rule, and the alert resolves when the process is gone.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { stopAll, type BeamNode } from "../../tools/beam/nodes";
import { startAgentNode, waitConnected } from "../support/beam-node";
import { waitFor } from "../support/ports";
import { startServer, type TestServer } from "../support/server";
import { parseExposition } from "../support/prometheus-text";
import { httpClient } from "../support/trpc-clients";
import { cliJson } from "../support/calls";

let server: TestServer;
let node: BeamNode;
let looper: string;

/** A module loaded twice on the node, with a process looping by local calls in the first version. */
const LEAVE_ON_OLD_CODE = `
  Forms = [{attribute, 1, module, bd_old_mod}, {attribute, 2, export, [{loop, 0}]},
           {function, 3, loop, 0, [{clause, 3, [], [], [{'receive', 4, [{clause, 4, [{atom, 4, stop}], [], [{atom, 4, ok}]}], {integer, 4, 100}, [{call, 4, {atom, 4, loop}, []}]}]}]}],
  {ok, bd_old_mod, Bin} = compile:forms(Forms),
  {module, bd_old_mod} = code:load_binary(bd_old_mod, "bd_old_mod.erl", Bin),
  P = spawn(fun() -> group_leader(whereis(user), self()), bd_old_mod:loop() end),
  register(bd_old_looper, P),
  timer:sleep(50),
  {module, bd_old_mod} = code:load_binary(bd_old_mod, "bd_old_mod.erl", Bin),
  P`;

beforeAll(async () => {
  server = await startServer();
  ({ node } = await startAgentNode(server));
  await waitConnected(server, node.name);
  const admin = httpClient(server.url, { token: server.apiToken });
  await admin.alerts.updateRule.mutate({ kind: "old_code", enabled: true, params: { forSeconds: 3 } });
  await admin.alerts.updateRule.mutate({ kind: "mailbox_leak", enabled: true, params: { windowSeconds: 4, minGrowth: 5 } });
  looper = await node.rpcJson<string>(LEAVE_ON_OLD_CODE);
  expect(await node.rpc(`erlang:check_process_code(whereis(bd_old_looper), bd_old_mod)`)).toBe("true");
});
afterAll(async () => {
  await stopAll();
  await server?.stop();
});

const nodeRow = async () => (await cliJson<{ name: string; oldCode: number | null; release: { name: string; vsn: string } | null }[]>(server, ["nodes"])).find((n) => n.name === node.name);

describe("processes left on old code", () => {
  it("are counted in the nodes list, with the node's release", async () => {
    const row = await waitFor("old code counted", async () => ((await nodeRow())?.oldCode ?? 0) >= 1 && (await nodeRow()), 30_000, 500);
    expect(row && row.oldCode).toBe(1);
    const rel = await node.rpcJson<[string, string]>(`[{N, V, _, _} | _] = [R || R = {_, _, _, permanent} <- release_handler:which_releases()], [list_to_binary(N), list_to_binary(V)]`);
    expect(row && row.release).toEqual({ name: rel[0], vsn: rel[1] });
  });

  it("are marked in the process table and the tree query, with the module", async () => {
    const rows = await cliJson<{ pid: string; oldCode: boolean; oldCodeModules: string[] }[]>(server, ["procs", node.name, "--filter", "bd_old_looper"]);
    expect(rows.find((r) => r.pid === looper)).toMatchObject({ oldCode: true, oldCodeModules: ["bd_old_mod"] });
    const others = await cliJson<{ pid: string; oldCode: boolean }[]>(server, ["procs", node.name, "--limit", "1000"]);
    expect(others.filter((r) => r.oldCode).map((r) => r.pid)).toEqual([looper]);
    const tree = await httpClient(server.url, { token: server.apiToken }).procs.tree.query({ node: node.name });
    expect(tree.oldCode[looper]).toEqual(["bd_old_mod"]);
    const text = await server.cli(["procs", node.name, "--filter", "bd_old_looper"]);
    expect(text.stdout).toContain(`${looper} [old code: bd_old_mod]`);
  });

  it("page through the old_code rule after the threshold, and show in /metrics", async () => {
    const api = httpClient(server.url, { token: server.apiToken });
    const alert = await waitFor("the old_code alert", async () => (await api.alerts.list.query({ status: "open" })).find((a) => a.kind === "old_code" && a.node === node.name) ?? null, 30_000, 500);
    expect(alert.title).toMatch(/1 process\(es\) .* still on old code of bd_old_mod/);
    expect((alert.detail as { pids: string[] }).pids).toEqual([looper]);
    const m = parseExposition(await (await fetch(`${server.url}/metrics`, { headers: { authorization: `Bearer ${server.apiToken}` }, signal: AbortSignal.timeout(20_000) })).text());
    expect(m.value("beamdeck_node_old_code_processes", { node: node.name, module: "bd_old_mod" })).toBe(1);
    expect(m.value("beamdeck_node_old_code_processes", { node: node.name, module: "" })).toBe(1);
    expect(m.value("beamdeck_alerts", { node: node.name, kind: "old_code", status: "open" })).toBe(1);
  });

  it("clear when the process is gone: count 0, no mark, the alert resolved", async () => {
    await node.rpc("bd_old_looper ! stop, ok");
    const row = await waitFor("old code cleared", async () => ((await nodeRow())?.oldCode === 0 ? nodeRow() : null), 30_000, 500);
    expect(row?.oldCode).toBe(0);
    const api = httpClient(server.url, { token: server.apiToken });
    await waitFor("the alert resolved", async () => !(await api.alerts.list.query({ status: "open" })).some((a) => a.kind === "old_code"), 20_000, 500);
    const resolved = (await api.alerts.list.query({ status: "resolved" })).filter((a) => a.kind === "old_code");
    expect(resolved).toHaveLength(1);
  });
});

describe("a mailbox leak", () => {
  it("pages when a mailbox keeps growing without draining, and resolves when the process is gone", async () => {
    // Three messages a second that nobody receives: the process only waits for `stop`.
    const leaker = await node.rpcJson<string>(
      "P = spawn(fun() -> group_leader(whereis(user), self()), receive stop -> ok end end), register(bd_leaker, P), {ok, _} = timer:send_interval(300, P, {make_ref(), result}), P",
    );
    const api = httpClient(server.url, { token: server.apiToken });
    const alert = await waitFor(
      "the mailbox_leak alert",
      async () => (await api.alerts.list.query({ status: "open" })).find((a) => a.kind === "mailbox_leak" && a.node === node.name) ?? null,
      30_000,
      500,
    );
    const detail = alert.detail as { pid: string; from: number; to: number; perMinute: number };
    expect(detail.pid).toBe(leaker);
    expect(detail.to - detail.from).toBeGreaterThanOrEqual(5);
    expect(detail.perMinute).toBeGreaterThan(0);
    expect(alert.title).toMatch(/bd_leaker on .*: mailbox grew from \d+ to \d+ .* without draining/);
    // The node agrees the mailbox grew.
    expect(Number(await node.rpc("element(2, process_info(whereis(bd_leaker), message_queue_len))"))).toBeGreaterThanOrEqual(detail.to);
    await node.rpc("bd_leaker ! stop, ok");
    await waitFor("the leak alert resolved", async () => !(await api.alerts.list.query({ status: "open" })).some((a) => a.kind === "mailbox_leak"), 20_000, 500);
  });
});
