/**
 * Issue 12 on a production-style release: bd_loops built with plain
 * `erlc` options (no debug_info) and without the compiler application,
 * upgraded for real by release_handler. The agent's lint reads the loops
 * from the beam itself; its plan must match what happens, process by
 * process, checked on the node (is_process_alive, check_process_code),
 * never by asking the agent to grade itself.
 *
 * Runs on whatever OTP `escript`/`erl` on PATH is (the builder compiles
 * with it): OTP 25 on the host, 27/29 inside the chroots.
 */
import fs from "node:fs/promises";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startNode, stopAll, type BeamNode } from "../../tools/beam/nodes";
import { buildRelease, instantiate, REPO_ROOT, type Release } from "../../tools/beam/releases";
import { Agent, type Json } from "../support/agent-rpc";

const OUT = path.join(REPO_ROOT, "tests", ".out", `stripped-release-${process.pid}`);
const MOD = "bd_loops_worker";

afterAll(async () => {
  await stopAll();
  await fs.rm(OUT, { recursive: true, force: true });
});

function fates(plan: Json): Record<string, { fate: string; when: string | null; why: string }> {
  const m = (plan.modules as Json[]).find((x) => x.module === MOD);
  if (!m) throw new Error(`no module ${MOD} in the plan`);
  return Object.fromEntries((m.processes as Json[]).map((p) => [p.pid, { fate: p.fate, when: p.when, why: p.why }]));
}

const pidsOf = (r: Json, key: string): string[] => (r.deaths[key] as Json[]).map((d) => d.pid as string).sort();

describe("stripped Erlang release without the compiler application (bd_loops 1.0.0 → 1.1.0)", () => {
  let rel: Release;
  let node: BeamNode;
  const agent = new Agent(() => node);
  const pids: Record<"ext" | "local" | "pinned", string> = { ext: "", local: "", pinned: "" };

  const whereis = (kind: string) => node.rpc(`pid_to_list(whereis(bd_loops_${kind}))`).then((s) => s.replace(/"/g, ""));
  const alive = async (pid: string) => (await node.rpc(`is_process_alive(list_to_pid("${pid}"))`)) === "true";
  const onOldCode = async (pid: string) => (await node.rpc(`erlang:check_process_code(list_to_pid("${pid}"), ${MOD})`)) === "true";
  /** A round trip to a worker: the version of the code that answered. */
  const ping = (pid: string) => node.rpc(`P = list_to_pid("${pid}"), P ! {ping, self()}, receive {pong, V, _} -> V after 5000 -> timeout end`);

  beforeAll(async () => {
    rel = await buildRelease("bd_loops", { strip: true });
    const dir = path.join(OUT, "node");
    await instantiate(rel.templateDir, dir);
    node = await startNode({ release: "bd_loops", dir });
    for (const k of ["ext", "local", "pinned"] as const) pids[k] = await whereis(k);
  });

  it("the release is stripped and has no compiler: no debug_info, no compile, no beam_disasm", async () => {
    expect(rel.stripped).toBe(true);
    const apps = await node.rpcJson<string[]>("[atom_to_binary(A, utf8) || {A, _, _} <- application:which_applications()]");
    expect(apps).toContain("bd_loops");
    expect(apps).not.toContain("compiler");
    expect(await node.rpc("code:which(compile)")).toBe("non_existing");
    expect(await node.rpc("code:which(beam_disasm)")).toBe("non_existing");
    expect(await node.rpc("code:lib_dir(compiler)")).toBe("{error,bad_name}");
    // The beam carries no abstract code (plain erlc records only its options).
    expect(await node.rpc(`{ok, {_, [{debug_info, {debug_info_v1, erl_abstract_code, {Ast, _}}}]}} = beam_lib:chunks(code:which(${MOD}), [debug_info]), Ast`)).toBe("none");
  });

  it("install plan: ?MODULE:loop may migrate, the local loop and the pinned frame are killed at make_permanent, the lint names both", async () => {
    const plan = await agent.request("upgrade_plan", { vsn: "1.1.0" });
    expect(plan).toMatchObject({ action: "install", from: "1.0.0", to: "1.1.0", verdict: "would_kill", lintErrors: [] });
    expect(plan.findings.filter((f: Json) => f.check === "lint_unavailable")).toEqual([]);
    const f = fates(plan);
    expect(f[pids.ext]).toMatchObject({ fate: "may_migrate", when: "make_permanent" });
    expect(f[pids.local]).toMatchObject({ fate: "killed", when: "make_permanent" });
    expect(f[pids.local].why).toContain(`${MOD}:local_loop/1, which loops through a local call`);
    expect(f[pids.pinned]).toMatchObject({ fate: "killed", when: "make_permanent" });
    expect(f[pids.pinned].why).toContain(`${MOD}:run/0`);
    expect([...plan.killed.make_permanent].sort()).toEqual([pids.local, pids.pinned].sort());
    // The lint names the loop function and the pinning one, from the beam
    // (lines from its Line chunk); ext_loop/1 and serve/0 move on by themselves.
    const lint = (plan.lint as Json[]).filter((l) => l.module === MOD);
    expect(lint.map((l) => `${l.function}/${l.arity}`).sort()).toEqual(["local_loop/1", "run/0"]);
    const loop = lint.find((l) => l.function === "local_loop") as Json;
    expect(loop).toMatchObject({ language: "erlang", fix: "?MODULE:local_loop(...)", evidence: "receive", pids: [pids.local] });
    expect(loop.line).toBeGreaterThan(0);
    expect(loop.versions).toEqual(["loaded", "target"]);
    const pin = lint.find((l) => l.function === "run") as Json;
    expect(pin).toMatchObject({ language: "erlang", evidence: "waits on serve/0", calls: ["serve/0"], fix: "a tail call to serve/0", pids: [pids.pinned] });
    expect(pin.message).toContain(`${MOD}:run/0 calls ${MOD}:serve/0 in a non-tail call`);
    expect(pin.line).toBeGreaterThan(0);
    expect(pin.versions).toEqual(["loaded", "target"]);
  });

  it("install, then each worker gets a message: ext moves to the new code, local and pinned stay on the old", async () => {
    const unpack = await agent.command("s-unpack", "unpack", { vsn: "1.1.0" });
    expect(unpack).toMatchObject({ ok: true, action: "unpack" });
    const plan = await agent.request("upgrade_plan", { vsn: "1.1.0" });
    const install = await agent.command("s-install", "install", { vsn: "1.1.0", gate: { acceptPlan: plan.digest } });
    expect(install).toMatchObject({ ok: true, error: null });
    expect(install.result.deaths).toMatchObject({ died: 0 });
    for (const k of ["ext", "local", "pinned"] as const) expect(await onOldCode(pids[k])).toBe(true);
    // The first message is answered by the code each one runs, then they recurse.
    expect(await ping(pids.ext)).toBe("1");
    expect(await ping(pids.ext)).toBe("2");
    expect(await ping(pids.local)).toBe("1");
    expect(await ping(pids.local)).toBe("1");
    expect(await ping(pids.pinned)).toBe("1");
    expect(await ping(pids.pinned)).toBe("2"); // serve/0 moved on ...
    expect(await onOldCode(pids.ext)).toBe(false);
    expect(await onOldCode(pids.local)).toBe(true);
    expect(await onOldCode(pids.pinned)).toBe(true); // ... run/0's frame did not
  });

  it("make_permanent: the plan names exactly the processes that die", async () => {
    const plan = await agent.request("upgrade_plan", { vsn: "1.1.0" });
    expect(plan).toMatchObject({ action: "make_permanent", verdict: "would_kill" });
    const f = fates(plan);
    expect(Object.keys(f).sort()).toEqual([pids.local, pids.pinned].sort());
    expect([...plan.killed.make_permanent].sort()).toEqual([pids.local, pids.pinned].sort());
    const r = await agent.command("s-permanent", "make_permanent", { vsn: "1.1.0", gate: { acceptPlan: plan.digest } });
    expect(r).toMatchObject({ ok: true, error: null });
    expect(pidsOf(r.result, "predictedAndDied")).toEqual([pids.local, pids.pinned].sort());
    expect(r.result.deaths.diedUnpredicted).toEqual([]);
    expect(r.result.deaths.predictedButAlive).toEqual([]);
    expect(await alive(pids.local)).toBe(false);
    expect(await alive(pids.pinned)).toBe(false);
    expect(await alive(pids.ext)).toBe(true);
    expect(await ping(pids.ext)).toBe("2");
    // The supervisor restarted the killed workers on the new code.
    const restarted = await whereis("local");
    expect(restarted).not.toBe(pids.local);
    expect(await ping(restarted)).toBe("2");
  });
});
