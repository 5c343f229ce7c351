/**
 * The agent's upgrade half (issue 4) on real releases: the plan it
 * predicts, the commands it runs, and what actually happens, each checked
 * against the node itself over distributed Erlang (who is alive, who runs
 * old code by erlang:check_process_code/2, which release is current, what a
 * fresh TCP client is told) — never by asking the agent to grade itself.
 *
 * The agent is driven through its request entry point,
 * beamdeck_agent_upgrade:request/2, exactly as the connection's request
 * worker calls it; command outcomes are read with beamdeck_agent_upgrade:status/1
 * (the same journal entry the command_result frame carries).
 *
 * Over 400 lines because the cases run one after another on the same
 * releases (0.1.0 → 0.1.1 → 0.1.2 and back): the state one leaves is the
 * next one's start.
 */
import fs from "node:fs/promises";
import path from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startNode, stopAll, type BeamNode } from "../../tools/beam/nodes";
import { buildRelease, instantiate, REPO_ROOT } from "../../tools/beam/releases";
import { freePort, GreetingClient } from "../../tools/beam/tcp";
import { Agent, type Json } from "../support/agent-rpc";
import { withTimeout } from "../support/calls";

const OUT = path.join(REPO_ROOT, "tests", ".out", `upgrade-agent-${process.pid}`);
const SUP = "'Elixir.RelTest.Supervisor'";
const TL = "Elixir.TestListener";

afterAll(async () => {
  await stopAll();
  await fs.rm(OUT, { recursive: true, force: true });
});

/** Facts read from the node itself. */
class Facts {
  constructor(private readonly node: () => BeamNode) {}

  async acceptor(): Promise<string> {
    const children = await this.node().rpc(`[P || {_, P, _, _} <- supervisor:which_children(${SUP})]`);
    const m = /^\[(<[\d.]+>)\]$/.exec(children);
    if (!m) throw new Error(`unexpected children ${children}`);
    return m[1];
  }

  /** The Task.async connection handlers, linked to the acceptor. */
  async handlers(acceptor: string): Promise<string[]> {
    return (await this.node().rpcJson<string[]>(`{links, L} = process_info(list_to_pid("${acceptor}"), links), [P || P <- L, is_pid(P), P =/= whereis(${SUP})]`)).sort();
  }

  async alive(pid: string): Promise<boolean> {
    return (await this.node().rpc(`is_process_alive(list_to_pid("${pid}"))`)) === "true";
  }

  async onOldCode(mod = TL): Promise<string[]> {
    return this.node().rpcJson<string[]>(`lists:sort([pid_to_list(P) || P <- processes(), erlang:check_process_code(P, '${mod}')])`);
  }

  async releases(): Promise<Array<[string, string]>> {
    const r = await this.node().rpcJson<Array<[string, string, string[], string]>>("release_handler:which_releases()");
    return r.map(([, v, , s]) => [v, s]);
  }
}

function fatesOf(plan: Json, mod = TL): Record<string, { fate: string; when: string | null; why: string }> {
  const m = (plan.modules as Json[]).find((x) => x.module === mod);
  if (!m) throw new Error(`no module ${mod} in the plan`);
  return Object.fromEntries((m.processes as Json[]).map((p) => [p.pid, { fate: p.fate, when: p.when, why: p.why }]));
}

function pidsWith(plan: Json, fate: string, when?: string | null, mod = TL): string[] {
  return Object.entries(fatesOf(plan, mod))
    .filter(([, f]) => f.fate === fate && (when === undefined || f.when === when))
    .map(([p]) => p)
    .sort();
}

const died = (r: Json, key: string): string[] => (r.deaths[key] as Json[]).map((d) => d.pid as string).sort();

async function connectClients(port: number, n: number): Promise<GreetingClient[]> {
  const cs: GreetingClient[] = [];
  for (let i = 0; i < n; i++) {
    const c = await GreetingClient.connect(port);
    expect(await c.hello()).toBe("Hey there!\n");
    cs.push(c);
  }
  return cs;
}

async function bootRelTest(name: string): Promise<{ node: BeamNode; port: number }> {
  const rel = await buildRelease("rel_test");
  const dir = path.join(OUT, name);
  await instantiate(rel.templateDir, dir);
  const port = await freePort();
  const node = await startNode({ release: "rel_test", dir, env: { REL_TEST_PORT: String(port) } });
  return { node, port };
}

describe("rel_test 0.1.0 → 0.1.1 with the default appup (the forum's upgrade)", () => {
  let node: BeamNode;
  let port: number;
  let clients: GreetingClient[] = [];
  const agent = new Agent(() => node);
  const facts = new Facts(() => node);
  let acceptor: string;
  let handlers: string[];

  beforeAll(async () => {
    ({ node, port } = await bootRelTest("forum"));
    clients = await connectClients(port, 2);
    acceptor = await facts.acceptor();
    handlers = await facts.handlers(acceptor);
  });
  afterAll(() => {
    for (const c of clients) c.close();
  });

  it("releases: 0.1.0 running, 0.1.1 and 0.1.2 pending as packages, the relup readable", async () => {
    expect(handlers).toHaveLength(2);
    const r = await agent.request("releases");
    expect(r).toMatchObject({ handler: true, stale: false, name: "rel_test", current: "0.1.0", permanent: "0.1.0" });
    expect(r.releasesDir).toBe(path.join(node.dir, "releases"));
    expect(r.pending).toEqual([
      { vsn: "0.1.1", state: "package", package: "rel_test-0.1.1" },
      { vsn: "0.1.2", state: "package", package: "rel_test-0.1.2" },
    ]);
    const withPath = await agent.request("releases", { vsn: "0.1.1" });
    const p = withPath.path as Json;
    expect(p).toMatchObject({ from: "0.1.0", to: "0.1.1", direction: "up", source: "package" });
    expect((p.script as Json[]).map((i) => i.op)).toEqual(["load_object_code", "point_of_no_return", "load"]);
    expect(p.script[2]).toMatchObject({ module: TL, prePurge: "brutal", postPurge: "brutal" });
    // The appup of the one changed application: parsed with defaults made
    // explicit when the package carries it, else an error naming the file.
    const [appup] = p.appups as Json[];
    expect(appup).toMatchObject({ app: "rel_test", from: "0.1.0", to: "0.1.1", change: "changed" });
    if (appup.error === null) {
      expect(appup.instructions).toEqual([expect.objectContaining({ kind: "load_module", module: TL, prePurge: "brutal", postPurge: "brutal" })]);
    } else {
      expect(appup.error.code).toBe("missing_file");
      expect(appup.error.message).toContain("lib/rel_test-0.1.1/ebin/rel_test.appup");
    }
  });

  it("plan: the acceptor and every connection handler are killed at make_permanent; the lint flags start/1 and loop/1", async () => {
    const plan = await agent.request("upgrade_plan", { vsn: "0.1.1" });
    expect(plan).toMatchObject({ action: "install", step: "install", from: "0.1.0", to: "0.1.1", verdict: "would_kill", impact: "kills", restart: null, findings: [] });
    expect(plan.digest).toMatch(/^[0-9a-f]{64}$/);
    expect([...plan.killed.make_permanent].sort()).toEqual([acceptor, ...handlers].sort());
    expect(pidsWith(plan, "killed", "make_permanent")).toEqual([acceptor, ...handlers].sort());
    expect(plan.counts).toMatchObject({ killed: 3, killedAtPermanent: 3, killedAtInstall: 0, blocks_install: 0 });
    expect(fatesOf(plan)[acceptor].why).toContain(`${TL}:start/1, which loops through a local call`);
    for (const h of handlers) expect(fatesOf(plan)[h].why).toContain(`${TL}:loop/1`);

    const lint = plan.lint as Json[];
    const start = lint.find((l) => l.module === TL && l.function === "start" && l.arity === 1);
    const loop = lint.find((l) => l.module === TL && l.function === "loop" && l.arity === 1);
    expect(start).toMatchObject({ language: "elixir", fix: "__MODULE__.start(...)", pids: [acceptor] });
    expect(loop).toMatchObject({ language: "elixir", fix: "__MODULE__.loop(...)" });
    expect([...loop!.pids].sort()).toEqual(handlers);
    // The next version has the same problem: both the loaded and the target code are linted.
    expect(start!.versions).toEqual(["loaded", "target"]);
    expect(start!.message).toContain("TestListener.start/1 calls itself with a local call");
  });

  it("unpack, then install: nobody dies, and old_code is exactly who check_process_code names", async () => {
    const unpack = await agent.command("f-unpack", "unpack", { vsn: "0.1.1" });
    expect(unpack).toMatchObject({ ok: true, action: "unpack" });
    expect(await facts.releases()).toEqual([
      ["0.1.1", "unpacked"],
      ["0.1.0", "permanent"],
    ]);

    // The runner recomputes the plan before it acts: without a gate, a step that kills is refused, untouched.
    const ungated = await agent.command("f-install-ungated", "install", { vsn: "0.1.1" });
    expect(ungated).toMatchObject({ ok: false, error: { code: "plan_changed" } });
    expect(ungated.error.message).toMatch(/3 process\(es\) would be killed and no gate accepts kills/);
    expect(ungated.result.gate).toMatchObject({ kills: 3, unacceptedKillCount: 3 });
    expect(await facts.releases()).toEqual([
      ["0.1.1", "unpacked"],
      ["0.1.0", "permanent"],
    ]);
    await expect(fs.access(path.join(node.dir, "releases", "0.1.1", "relup.beamdeck-orig"))).rejects.toThrow();

    const plan = await agent.request("upgrade_plan", { vsn: "0.1.1" });
    const install = await agent.command("f-install", "install", { vsn: "0.1.1", gate: { acceptPlan: plan.digest } });
    expect(install).toMatchObject({ ok: true, error: null });
    expect(install.result).toMatchObject({ action: "install", from: "0.1.0", to: "0.1.1", check: "ok" });
    expect(install.result.deaths).toMatchObject({ died: 0, predicted: 0 });
    expect(await facts.releases()).toEqual([
      ["0.1.1", "current"],
      ["0.1.0", "permanent"],
    ]);
    for (const p of [acceptor, ...handlers]) expect(await facts.alive(p)).toBe(true);
    expect(await clients[0].hello()).toBe("Hey there!\n"); // still the old loop
    // The original relup is kept beside the one release_handler ran.
    await fs.access(path.join(node.dir, "releases", "0.1.1", "relup.beamdeck-orig"));

    const onOld = await facts.onOldCode();
    expect(onOld).toEqual([acceptor, ...handlers].sort());
    const old = await agent.request("old_code");
    const tl = (old.modules as Json[]).find((m) => m.module === TL)!;
    expect(tl).toMatchObject({ hasOldCode: true, count: onOld.length });
    expect((tl.processes as Json[]).map((p) => p.pid).sort()).toEqual(onOld);
  });

  it("a repeated command id is answered from the journal, not run again", async () => {
    const first = await agent.outcome("f-install");
    const again = await agent.request("upgrade_command", { commandId: "f-install", action: "install", vsn: "0.1.1" });
    expect(again).toMatchObject({ accepted: true, duplicate: true, status: "done", ok: true });
    expect(again.finishedAt).toBe(first.finishedAt);
    // Run again, install would fail with already_installed; it did not run.
    expect((await agent.outcome("f-install")).ok).toBe(true);
  });

  it("make_permanent: exactly the predicted processes die, and a new connection gets the new greeting", async () => {
    const plan = await agent.request("upgrade_plan", { vsn: "0.1.1" });
    expect(plan.action).toBe("make_permanent");
    expect(pidsWith(plan, "killed", "make_permanent")).toEqual([acceptor, ...handlers].sort());

    expect(plan).toMatchObject({ step: "make_permanent", verdict: "would_kill" });
    const r = await agent.command("f-permanent", "make_permanent", { vsn: "0.1.1", gate: { acceptPlan: plan.digest } });
    expect(r.ok).toBe(true);
    expect(died(r.result, "predictedAndDied")).toEqual([acceptor, ...handlers].sort());
    expect(r.result.deaths.predictedButAlive).toEqual([]);
    expect(r.result.deaths.diedUnpredicted).toEqual([]);
    for (const d of r.result.deaths.predictedAndDied as Json[]) expect(d.reason).toBe("killed");
    for (const p of [acceptor, ...handlers]) expect(await facts.alive(p)).toBe(false);
    await withTimeout(clients[0].closed, 5000, "old connection");
    expect(await facts.onOldCode()).toEqual([]);
    expect(await facts.releases()).toEqual([
      ["0.1.1", "permanent"],
      ["0.1.0", "old"],
    ]);
    const fresh = await GreetingClient.connect(port);
    expect(await fresh.hello()).toBe("Hey there, next version!\n");
    fresh.close();
  });
});

describe("soft post-purge, then a third version: killed (brutal pre-purge) or blocked (soft)", () => {
  let node: BeamNode;
  let port: number;
  let clients: GreetingClient[] = [];
  const agent = new Agent(() => node);
  const facts = new Facts(() => node);
  let stuck: string[];
  const soft = { purge: { TestListener: "soft" } };

  beforeAll(async () => {
    ({ node, port } = await bootRelTest("soft"));
    clients = await connectClients(port, 2);
    const acceptor = await facts.acceptor();
    stuck = [acceptor, ...(await facts.handlers(acceptor))].sort();
  });
  afterAll(() => {
    for (const c of clients) c.close();
  });

  it("plan with soft post-purge: they stay on old code, nobody is killed", async () => {
    expect((await agent.command("s-unpack", "unpack", { vsn: "0.1.1" })).ok).toBe(true);
    const plan = await agent.request("upgrade_plan", { vsn: "0.1.1", ...soft });
    expect(plan).toMatchObject({ verdict: "safe", impact: "at_risk" });
    expect(plan.counts).toMatchObject({ killed: 0, stays_on_old_code: 3 });
    expect(pidsWith(plan, "stays_on_old_code", null)).toEqual(stuck);
    expect(plan.relup.changes).toEqual([{ module: TL, field: "postPurge", from: "brutal", to: "soft" }]);
    expect(plan.relup.rewritten[2]).toMatchObject({ module: TL, prePurge: "brutal", postPurge: "soft" });
  });

  it("install + make_permanent with soft: nothing dies, the open connection still answers", async () => {
    const install = await agent.command("s-install", "install", { vsn: "0.1.1", ...soft });
    expect(install.ok).toBe(true);
    expect(install.result.relup.changes).toHaveLength(1);
    const relup = await fs.readFile(path.join(node.dir, "releases", "0.1.1", "relup"), "utf8");
    expect(relup.replace(/\s+/g, "")).toContain(`{load,{'${TL}',brutal_purge,soft_purge}}`);
    // Before make_permanent: the plan shows the purge settings as installed.
    const plan = await agent.request("upgrade_plan", { vsn: "0.1.1" });
    expect(plan).toMatchObject({ action: "make_permanent", step: "make_permanent", verdict: "safe", impact: "at_risk" });
    expect(plan.choices).toEqual({ purge: { [TL]: "soft" }, prePurge: {} });
    // The relup before (kept original) and after (on disk, as installed).
    const { path: installed } = await agent.request("releases", { vsn: "0.1.1" });
    expect(installed).toMatchObject({ from: "0.1.0", to: "0.1.1", rewrittenOnDisk: true, source: "dir" });
    expect(installed.script[2]).toMatchObject({ postPurge: "brutal" });
    expect(installed.onDisk[2]).toMatchObject({ postPurge: "soft" });
    expect(pidsWith(plan, "stays_on_old_code", null)).toEqual(stuck);
    const perm = await agent.command("s-permanent", "make_permanent", { vsn: "0.1.1" });
    expect(perm.ok).toBe(true);
    expect(perm.result.deaths).toMatchObject({ died: 0, predicted: 0 });
    for (const p of stuck) expect(await facts.alive(p)).toBe(true);
    expect(await clients[0].hello()).toBe("Hey there!\n");
    expect(await facts.onOldCode()).toEqual(stuck);
    const old = await agent.request("old_code");
    const tl = (old.modules as Json[]).find((m) => m.module === TL)!;
    expect((tl.processes as Json[]).map((p) => p.pid).sort()).toEqual(stuck);
  });

  it("0.1.1 → 0.1.2: the plan shows them killed at install (brutal pre-purge) or blocking it (soft)", async () => {
    expect((await agent.command("s-unpack2", "unpack", { vsn: "0.1.2" })).ok).toBe(true);
    const brutal = await agent.request("upgrade_plan", { vsn: "0.1.2" });
    expect(brutal.verdict).toBe("would_kill");
    expect(pidsWith(brutal, "killed", "install")).toEqual(stuck);
    expect(brutal.counts.killedAtInstall).toBe(stuck.length);
    const blocked = await agent.request("upgrade_plan", { vsn: "0.1.2", prePurge: { TestListener: "soft" } });
    expect(blocked.verdict).toBe("blocked");
    expect(pidsWith(blocked, "blocks_install", "install")).toEqual(stuck);
    expect(fatesOf(blocked)[stuck[0]].why).toContain("old_processes");
  });

  it("soft pre-purge: install returns old_processes and changes nothing", async () => {
    const r = await agent.command("s-blocked", "install", { vsn: "0.1.2", prePurge: { TestListener: "soft" } });
    expect(r.ok).toBe(false);
    expect(r.error.code).toBe("old_processes");
    expect(await facts.releases()).toEqual([
      ["0.1.2", "unpacked"],
      ["0.1.1", "permanent"],
      ["0.1.0", "old"],
    ]);
    for (const p of stuck) expect(await facts.alive(p)).toBe(true);
    expect(await clients[1].hello()).toBe("Hey there!\n");
    // The relup was put back as it was.
    const relup = await fs.readFile(path.join(node.dir, "releases", "0.1.2", "relup"), "utf8");
    const orig = await fs.readFile(path.join(node.dir, "releases", "0.1.2", "relup.beamdeck-orig"), "utf8");
    expect(relup).toBe(orig);
  });

  it("brutal pre-purge: install kills exactly them, as predicted", async () => {
    // --max-kills bounds kills: one fewer is refused, exactly as many goes through.
    const tooFew = await agent.command("s-kill-bounded", "install", { vsn: "0.1.2", gate: { maxKills: stuck.length - 1 } });
    expect(tooFew).toMatchObject({ ok: false, error: { code: "plan_changed" } });
    expect(tooFew.error.message).toContain(`more than the accepted maximum of ${stuck.length - 1}`);
    for (const p of stuck) expect(await facts.alive(p)).toBe(true);
    const r = await agent.command("s-kill", "install", { vsn: "0.1.2", gate: { maxKills: stuck.length } });
    expect(r.ok).toBe(true);
    expect(died(r.result, "predictedAndDied")).toEqual(stuck);
    expect(r.result.deaths.predictedButAlive).toEqual([]);
    expect(r.result.deaths.diedUnpredicted).toEqual([]);
    for (const p of stuck) expect(await facts.alive(p)).toBe(false);
    await withTimeout(clients[1].closed, 5000, "old connection");
    // The supervisor restarts the acceptor while the new version loads; it
    // may come up on 0.1.1 (now old code). Whatever the node says, old_code
    // says the same, and none of the killed processes is there.
    const onOld = await facts.onOldCode();
    expect(onOld.filter((p) => stuck.includes(p))).toEqual([]);
    const old = await agent.request("old_code");
    const tl = (old.modules as Json[]).find((m) => m.module === TL)!;
    expect((tl.processes as Json[]).map((p) => p.pid).sort()).toEqual(onOld);
  });

  it("rollback after install: back to the permanent release through the downgrade script", async () => {
    const plan = await agent.request("upgrade_plan", { vsn: "0.1.1" });
    expect(plan).toMatchObject({ action: "rollback", direction: "down", from: "0.1.2", to: "0.1.1" });
    const predicted = pidsWith(plan, "killed", "install");
    expect(plan.step).toBe("rollback");
    const r = await agent.command("s-rollback", "rollback", { gate: { acceptPlan: plan.digest } });
    expect(r.ok).toBe(true);
    expect(r.result).toMatchObject({ action: "rollback", from: "0.1.2", to: "0.1.1", direction: "down" });
    expect(died(r.result, "predictedAndDied")).toEqual(predicted);
    expect(r.result.deaths.diedUnpredicted).toEqual([]);
    expect(await facts.releases()).toEqual([
      ["0.1.2", "old"],
      ["0.1.1", "permanent"],
      ["0.1.0", "old"],
    ]);
    // Rolling back again is refused: the running release is the permanent one.
    const again = await agent.command("s-rollback-2", "rollback");
    expect(again).toMatchObject({ ok: false, error: { code: "bad_request" } });
  });
});

describe("bd_counter: {update, M, {advanced, []}} is suspended, never killed", () => {
  let node: BeamNode;
  const agent = new Agent(() => node);
  const facts = new Facts(() => node);

  beforeAll(async () => {
    const rel = await buildRelease("bd_counter");
    const dir = path.join(OUT, "bd_counter");
    await instantiate(rel.templateDir, dir);
    node = await startNode({ release: "bd_counter", dir });
  });

  it("plan: the server is suspended and migrated through code_change/3; install transforms its state", async () => {
    await node.rpc("[bd_counter_server:bump() || _ <- lists:seq(1, 3)]");
    const pid = await node.rpc("whereis(bd_counter_server)");
    expect((await agent.command("b-unpack", "unpack", { vsn: "1.1.0" })).ok).toBe(true);
    const plan = await agent.request("upgrade_plan", { vsn: "1.1.0" });
    expect(plan.verdict).toBe("safe");
    expect(plan.counts).toMatchObject({ killed: 0, suspended: 1 });
    const [m] = plan.modules as Json[];
    expect(m).toMatchObject({ module: "bd_counter_server", op: "update", suspend: true, codeChange: { mode: "up" } });
    expect(fatesOf(plan, "bd_counter_server")[pid]).toMatchObject({ fate: "suspended", when: "install" });
    expect(fatesOf(plan, "bd_counter_server")[pid].why).toContain("calls code_change/3");

    // Soft post-purge: nobody stays on the old code of a suspended server anyway.
    const r = await agent.command("b-install", "install", { vsn: "1.1.0", purge: { bd_counter_server: "soft" } });
    expect(r.ok).toBe(true);
    expect(r.result.choices).toEqual({ purge: { bd_counter_server: "soft" }, prePurge: {} });
    expect(r.result.deaths.died).toBe(0);
    expect(await node.rpc("whereis(bd_counter_server)")).toBe(pid);
    const state = await node.rpcJson<{ count: number; since: number }>("sys:get_state(bd_counter_server)");
    expect(state.count).toBe(3);
    expect(await node.rpc("bd_counter_server:vsn()")).toBe(`"1.1.0"`);
  });

  it("rollback: code_change down, same process, the integer state back", async () => {
    const pid = await node.rpc("whereis(bd_counter_server)");
    // Without purge params, the rollback reuses the install's choices; the plan says so.
    const plan = await agent.request("upgrade_plan", { vsn: "1.0.0" });
    expect(plan).toMatchObject({ action: "rollback", direction: "down", verdict: "safe" });
    expect(plan.choices).toEqual({ purge: { bd_counter_server: "soft" }, prePurge: {} });
    expect(plan.modules[0]).toMatchObject({ module: "bd_counter_server", op: "update", postPurge: "soft", codeChange: { mode: "down" } });
    const r = await agent.command("b-rollback", "rollback");
    expect(r.ok).toBe(true);
    expect(r.result.choices).toEqual(plan.choices);
    expect(r.result.deaths.died).toBe(0);
    expect(await facts.releases()).toEqual([
      ["1.1.0", "old"],
      ["1.0.0", "permanent"],
    ]);
    expect(await node.rpc("whereis(bd_counter_server)")).toBe(pid);
    expect(await node.rpc("sys:get_state(bd_counter_server)")).toBe("3");
    expect(await node.rpc("bd_counter_server:vsn()")).toBe(`"1.0.0"`);
  });

  it("a bad relup is an error that names the file", async () => {
    const relup = path.join(node.dir, "releases", "1.1.0", "relup");
    await fs.writeFile(relup, '{"1.1.0", [{"1.0.0", [], [point_of_no_return]}] oops.\n');
    await fs.rm(`${relup}.beamdeck-orig`, { force: true });
    const e = await agent.requestError("upgrade_plan", { vsn: "1.1.0" });
    expect(e.code).toBe("bad_relup");
    expect(e.message).toContain(relup);
    const r = await agent.command("b-bad", "install", { vsn: "1.1.0" });
    expect(r).toMatchObject({ ok: false, error: { code: "bad_relup" } });
    expect(r.error.message).toContain(relup);
  });

  it("the journal survives a node restart: a repeated id is still not run again", async () => {
    const before = await agent.outcome("b-install");
    await node.stop();
    node = await startNode({ release: "bd_counter", dir: node.dir });
    const again = await agent.request("upgrade_command", { commandId: "b-install", action: "install", vsn: "1.1.0" });
    expect(again).toMatchObject({ duplicate: true, status: "done", ok: true, finishedAt: before.finishedAt });
    // RELEASES keeps no "old" status: after a restart release_handler
    // reads 1.1.0 as unpacked. Nothing was installed by the repeated id.
    expect(await facts.releases()).toEqual([
      ["1.1.0", "unpacked"],
      ["1.0.0", "permanent"],
    ]);
    expect(await node.rpc("bd_counter_server:vsn()")).toBe(`"1.0.0"`);
  });
});

describe("a failed install restarts the node; the agent reports the step's outcome after the restart", () => {
  let node: BeamNode;
  const agent = new Agent(() => node);
  const facts = new Facts(() => node);

  beforeAll(async () => {
    ({ node } = await bootRelTest("restart"));
  });

  it("install_release crashes after point_of_no_return: the node restarts, the outcome says so", async () => {
    expect((await agent.command("r-unpack", "unpack", { vsn: "0.1.1" })).ok).toBe(true);
    // A relup step that fails after the point of no return: release_handler
    // answers {error, _} and restarts the node (error_action restart).
    const relup = path.join(node.dir, "releases", "0.1.1", "relup");
    const text = await fs.readFile(relup, "utf8");
    const broken = text.replace(
      /\{load,\{'Elixir\.TestListener',brutal_purge,brutal_purge\}\}\]\}\]/,
      "{load,{'Elixir.TestListener',brutal_purge,brutal_purge}},{apply,{erlang,error,[beamdeck_injected_failure]}}]}]",
    );
    expect(broken).not.toBe(text);
    await fs.writeFile(relup, broken);
    const bootBefore = await node.rpc("beamdeck_agent_config:boot_id()");

    await agent.request("upgrade_command", { commandId: "r-install", action: "install", vsn: "0.1.1", gate: { maxKills: 1000 } });
    const r = await agent.outcome("r-install", 90_000);
    expect(r.ok).toBe(false);
    expect(["install_failed", "interrupted"]).toContain(r.error.code);
    // The node did restart (a new agent boot) and runs the permanent release.
    const deadline = Date.now() + 60_000;
    let bootAfter = bootBefore;
    while (bootAfter === bootBefore && Date.now() < deadline) {
      await sleep(300);
      bootAfter = await node.rpc("beamdeck_agent_config:boot_id()").catch(() => bootBefore);
    }
    expect(bootAfter).not.toBe(bootBefore);
    expect(await facts.releases()).toEqual([
      ["0.1.1", "unpacked"],
      ["0.1.0", "permanent"],
    ]);
    // The outcome is in the journal after the restart too.
    expect((await agent.outcome("r-install")).ok).toBe(false);
  });
});
