/**
 * The upgrade checks beyond purges (issue 13) on real releases: bd_checks
 * 1.0.0 → 1.1.0 (demo/apps/bd_checks) fails in every way the plan's
 * checks look for. Each test shows the finding before the install and the
 * real outcome after it, read from the node itself — never from the agent.
 * Over 400 lines because the tests share one pair of releases built once.
 * The sound upgrades of the demo apps (bd_counter, rel_test) get no error
 * or warning finding.
 */
import fs from "node:fs/promises";
import { mkdtempSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startNode, stopAll, type BeamNode } from "../../tools/beam/nodes";
import { buildRelease, instantiate, REPO_ROOT, type ReleaseName } from "../../tools/beam/releases";
import { startAgentNode, waitConnected } from "../support/beam-node";
import { startServer, type TestServer } from "../support/server";
import { Agent, type Json } from "../support/agent-rpc";

const OUT = path.join(REPO_ROOT, "tests", ".out", `upgrade-checks-${process.pid}`);

afterAll(async () => {
  await stopAll();
  await fs.rm(OUT, { recursive: true, force: true });
});

/** A fresh copy of `release` in its own directory (`label` tells two copies of one release apart). */
async function boot(release: ReleaseName, label: string = release): Promise<BeamNode> {
  const rel = await buildRelease(release);
  const dir = path.join(OUT, label);
  await instantiate(rel.templateDir, dir);
  return startNode({ release, dir });
}

function byId(plan: Json): Record<string, Json> {
  return Object.fromEntries((plan.findings as Json[]).map((f) => [f.id, f]));
}

describe("bd_checks: an unsafe upgrade, found before and seen after", () => {
  let node: BeamNode;
  const agent = new Agent(() => node);

  beforeAll(async () => {
    node = await boot("bd_checks");
    expect((await agent.command("c-unpack", "unpack", { vsn: "1.1.0" })).ok).toBe(true);
  }, 300_000);

  it("plan: each failure is a finding with its severity, pids and fix", async () => {
    // A state the new code_change cannot sum (an atom among the numbers).
    await node.rpc("bd_checks_state:add(1), bd_checks_state:add(foo)");
    await node.rpc("bd_checks_lone:bump()");
    const statePid = await node.rpc("whereis(bd_checks_state)");
    const lonePid = await node.rpc("whereis(bd_checks_lone)");
    const supPid = await node.rpc("whereis(bd_checks_sup)");

    const plan = await agent.request("upgrade_plan", { vsn: "1.1.0" });
    const f = byId(plan);
    expect(plan.verdict).toBe("error_findings");

    expect(f["appup_missing_module:bd_checks_missing"]).toMatchObject({ severity: "error", module: "bd_checks_missing" });
    expect(f["appup_missing_module:bd_checks_missing"].fix).toContain("{load_module, bd_checks_missing}");

    const crash = f["code_change_crash:bd_checks_state:error:badarith"];
    expect(crash).toMatchObject({ severity: "error", pids: [statePid], count: 1 });
    // get_state is off by default: class, error atom and frames, no values.
    expect(crash.message).toContain("error:badarith");
    expect(crash.message).toMatch(/bd_checks_state:/);
    expect(crash.message).not.toContain("foo");

    expect(f["not_suspended:bd_checks_lone"]).toMatchObject({ severity: "error", pids: [lonePid] });

    const sup = f["supervisor_children_changed:bd_checks_sup"];
    expect(sup).toMatchObject({ severity: "warning", pids: [supPid] });
    expect(sup.message).toContain("adds bd_checks_extra");
    expect(sup.fix).toContain("{apply, {supervisor, restart_child, [bd_checks_sup, bd_checks_extra]}}");

    expect(f["fun_in_ets:bd_checks_funs"].severity).toBe("warning");
    expect(f["fun_in_ets:bd_checks_funs"].message).toMatch(/bd_checks_funs.*scanned \d+ of \d+ objects/);
    expect(f["fun_in_persistent_term:bd_checks_funs"].severity).toBe("warning");
    expect(f["sys_config_changed:-"].message).toContain("bd_checks.greeting");

    // Nothing else: the sound parts of the upgrade raise nothing.
    expect(Object.keys(f).sort()).toEqual(
      [
        "appup_missing_module:bd_checks_missing",
        "code_change_crash:bd_checks_state:error:badarith",
        "fun_in_ets:bd_checks_funs",
        "fun_in_persistent_term:bd_checks_funs",
        "not_suspended:bd_checks_lone",
        "supervisor_children_changed:bd_checks_sup",
        "sys_config_changed:-",
      ].sort(),
    );
  }, 120_000);

  it("the rehearsal runs on the real state: with numbers only, code_change passes", async () => {
    await node.rpc("bd_checks_state:reset(), bd_checks_state:add(2), bd_checks_state:add(3)");
    const plan = await agent.request("upgrade_plan", { vsn: "1.1.0" });
    const ids = (plan.findings as Json[]).map((f) => f.id);
    expect(ids.filter((id) => id.startsWith("code_change_crash:"))).toEqual([]);
    expect(ids).toContain("not_suspended:bd_checks_lone");
  }, 120_000);

  it("install: refused until each error finding is accepted; then the predicted failures happen", async () => {
    const plan = await agent.request("upgrade_plan", { vsn: "1.1.0" });
    const errors = (plan.findings as Json[])
      .filter((f) => f.severity === "error")
      .map((f) => f.id)
      .sort();
    expect(errors).toEqual(["appup_missing_module:bd_checks_missing", "not_suspended:bd_checks_lone"]);

    const refused = await agent.command("c-install-refused", "install", { vsn: "1.1.0", gate: { maxKills: 0 } });
    expect(refused).toMatchObject({ ok: false, error: { code: "plan_changed" } });
    expect([...refused.result.gate.unacceptedFindings].sort()).toEqual(errors);
    expect(await node.rpc("bd_checks_missing:vsn()")).toBe(`"1.0.0"`);

    const r = await agent.command("c-install", "install", { vsn: "1.1.0", gate: { maxKills: 0, acceptFindings: errors } });
    expect(r.ok).toBe(true);

    // appup_missing_module: the changed module still runs its old code, and verification says so.
    expect(await node.rpc("bd_checks_missing:vsn()")).toBe(`"1.0.0"`);
    expect(r.result.verification).toMatchObject({ ok: false, missedCount: 1, missed: [{ module: "bd_checks_missing", app: "bd_checks" }] });
    expect(r.result.verification.checked).toBeGreaterThanOrEqual(6);

    // code_change ran on the supervised server: its state has the new total.
    expect(await node.rpc("bd_checks_state:total()")).toBe("5");

    // supervisor_children_changed: the supervisor took the new child spec but never started the child.
    expect(await node.rpc("whereis(bd_checks_extra)")).toBe("undefined");
    expect(await node.rpc("[{Id, P} || {Id, P, _, _} <- supervisor:which_children(bd_checks_sup), Id =:= bd_checks_extra]")).toBe("[{bd_checks_extra,undefined}]");
    expect(r.result.verification.notStarted).toEqual([{ supervisor: "bd_checks_sup", id: "bd_checks_extra" }]);

    // not_suspended: the unsupervised server kept its integer state and dies on its next call. Right
    // after install it is still alive, and the verification says so.
    const lone = await node.rpc("whereis(bd_checks_lone)");
    expect(r.result.verification.processes).toEqual([{ pid: lone, module: "bd_checks_lone", alive: true, reason: null }]);
    expect(await node.rpc("try bd_checks_lone:bump() of V -> {ok, V} catch exit:_ -> crashed end")).toBe("crashed");
    expect(await node.rpc(`is_process_alive(list_to_pid("${lone}"))`)).toBe("false");
  }, 180_000);

  it("make_permanent's plan: the module the install left on old code is an error finding; refused until accepted", async () => {
    const plan = await agent.request("upgrade_plan", { vsn: "1.1.0" });
    expect(plan.step).toBe("make_permanent");
    const errors = (plan.findings as Json[]).filter((f) => f.severity === "error");
    expect(errors.map((f) => f.id)).toEqual(["appup_missing_module:bd_checks_missing"]);
    expect(errors[0].message).toContain("make_permanent would keep it that way");
    expect(plan.verdict).toBe("error_findings");
    const refused = await agent.command("c-permanent-refused", "make_permanent", { vsn: "1.1.0", gate: { maxKills: 1000 } });
    expect(refused).toMatchObject({ ok: false, error: { code: "plan_changed" } });
    expect(refused.result.gate.unacceptedFindings).toEqual(["appup_missing_module:bd_checks_missing"]);
    const rels = await node.rpcJson<Array<[string, string, string[], string]>>("release_handler:which_releases()");
    expect(rels.find(([, v]) => v === "1.1.0")?.[3]).toBe("current");
  }, 120_000);

  // release_handler soft-purges a loaded module's old code at once when no process runs it (funs do not
  // count), else at make_permanent (brutal post-purge): by then the stored funs are dead either way.
  it("after make_permanent the old code is purged: the fun in ETS and in persistent_term raises badfun", async () => {
    const plan = await agent.request("upgrade_plan", { vsn: "1.1.0" });
    expect(plan.step).toBe("make_permanent");
    const r = await agent.command("c-permanent", "make_permanent", { vsn: "1.1.0", gate: { acceptPlan: plan.digest } });
    expect(r.ok).toBe(true);
    expect(r.result.verification).toMatchObject({ ok: false, missed: [{ module: "bd_checks_missing" }] });
    // The unsupervised server the install's plan named died between the steps; the agent watched it since the install.
    expect(r.result.verification.processes).toMatchObject([{ module: "bd_checks_lone", alive: false, reason: expect.stringContaining("function_clause") }]);
    expect(await node.rpc("try bd_checks_store:apply_stored(1) catch error:{badfun, _} -> badfun end")).toBe("badfun");
    expect(await node.rpc("try (persistent_term:get({bd_checks, adder}))(1) catch error:{badfun, _} -> badfun end")).toBe("badfun");
  }, 120_000);
});

describe("bd_checks: the code_change crash the rehearsal predicts really happens", () => {
  let node: BeamNode;
  const agent = new Agent(() => node);

  beforeAll(async () => {
    node = await boot("bd_checks", "bd_checks-crash");
    expect((await agent.command("x-unpack", "unpack", { vsn: "1.1.0" })).ok).toBe(true);
  }, 300_000);

  it("accepted anyway, install crashes after point_of_no_return and the node restarts from 1.0.0", async () => {
    await node.rpc("bd_checks_state:add(1), bd_checks_state:add(foo)");
    const plan = await agent.request("upgrade_plan", { vsn: "1.1.0" });
    const errors = (plan.findings as Json[]).filter((f) => f.severity === "error").map((f) => f.id);
    expect(errors).toContain("code_change_crash:bd_checks_state:error:badarith");
    const bootBefore = await node.rpc("beamdeck_agent_config:boot_id()");

    await agent.request("upgrade_command", { commandId: "x-install", action: "install", vsn: "1.1.0", gate: { maxKills: 0, acceptFindings: errors } });
    // The node restarts before or after it records the outcome: wait for the new boot, then read the journal.
    const deadline = Date.now() + 120_000;
    let bootAfter = bootBefore;
    while (bootAfter === bootBefore && Date.now() < deadline) {
      await sleep(500);
      bootAfter = await node.rpc("beamdeck_agent_config:boot_id()").catch(() => bootBefore);
    }
    expect(bootAfter).not.toBe(bootBefore);
    const r = await agent.outcome("x-install", 90_000);
    expect(r.ok).toBe(false);
    const rels = await node.rpcJson<Array<[string, string, string[], string]>>("release_handler:which_releases()");
    expect(rels.map(([, v, , st]) => [v, st])).toEqual([
      ["1.1.0", "unpacked"],
      ["1.0.0", "permanent"],
    ]);
    expect(await node.rpc("bd_checks_missing:vsn()")).toBe(`"1.0.0"`);
  }, 240_000);
});

describe("sound upgrades: no error or warning finding", () => {
  for (const [release, to] of [
    ["bd_counter", "1.1.0"],
    ["rel_test", "0.1.1"],
  ] as const) {
    it(`${release} → ${to}`, async () => {
      const node = await boot(release);
      const agent = new Agent(() => node);
      try {
        if (release === "bd_counter") await node.rpc("[bd_counter_server:bump() || _ <- lists:seq(1, 3)]");
        expect((await agent.command(`${release}-unpack`, "unpack", { vsn: to })).ok).toBe(true);
        const plan = await agent.request("upgrade_plan", { vsn: to });
        const loud = (plan.findings as Json[]).filter((f) => f.severity !== "info");
        expect(loud).toEqual([]);
        expect((plan.findings as Json[]).length).toBe(0);
        // Installed, it verifies: every changed module on its new code, every child running, nothing left to find.
        const r = await agent.command(`${release}-install`, "install", { vsn: to, gate: { acceptPlan: plan.digest } });
        expect(r.ok).toBe(true);
        expect(r.result.verification).toMatchObject({ ok: true, missedCount: 0, notStarted: [], processes: [] });
        expect(r.result.verification.checked).toBeGreaterThan(0);
        const perm = await agent.request("upgrade_plan", { vsn: to });
        expect(perm.step).toBe("make_permanent");
        expect(perm.findings).toEqual([]);
      } finally {
        await node.stop();
      }
    }, 300_000);
  }
});

describe("the CLI: upgrade plan exits 5 on error findings; install needs each accepted and prints the verification", () => {
  let server: TestServer;
  let node: BeamNode;
  const errors = ["appup_missing_module:bd_checks_missing", "not_suspended:bd_checks_lone"];

  beforeAll(async () => {
    server = await startServer({ dataDir: mkdtempSync(path.join(os.tmpdir(), "beamdeck-checks-")) });
    ({ node } = await startAgentNode(server, { release: "bd_checks" }));
    await waitConnected(server, node.name, true, 60_000);
    const r = await server.cli(["upgrade", "unpack", node.name, "1.1.0"], {}, { timeoutMs: 120_000 });
    expect(r.code, r.stderr).toBe(0);
  }, 400_000);
  afterAll(async () => {
    await node?.stop();
    await server?.stop();
  });

  it("plan: text and --json carry the findings; exit 5", async () => {
    const text = await server.cli(["upgrade", "plan", node.name, "1.1.0"], {}, { timeoutMs: 120_000 });
    expect(text.code, text.stderr).toBe(5);
    for (const id of errors) expect(text.stdout).toContain(`error: ${id}: `);
    expect(text.stdout).toContain("warning: supervisor_children_changed:bd_checks_sup: ");
    const j = await server.cli(["upgrade", "plan", node.name, "1.1.0", "--json"], {}, { timeoutMs: 120_000 });
    expect(j.code, j.stderr).toBe(5);
    const plan = JSON.parse(j.stdout) as Json;
    expect(
      (plan.findings as Json[])
        .filter((f) => f.severity === "error")
        .map((f) => f.id)
        .sort(),
    ).toEqual(errors);
  }, 240_000);

  it("install: without the findings accepted it is refused (exit 2); with them it runs, prints NOT VERIFIED, and the audit records it", async () => {
    const bare = await server.cli(["upgrade", "install", node.name, "1.1.0", "--yes"], {}, { timeoutMs: 120_000 });
    expect(bare.code, bare.stderr).toBe(2);
    expect(bare.stderr).toContain("--accept-finding");
    expect(await node.rpc("bd_checks_missing:vsn()")).toBe(`"1.0.0"`);

    const args = ["upgrade", "install", node.name, "1.1.0", "--yes", "--max-kills", "0", ...errors.flatMap((id) => ["--accept-finding", id])];
    const r = await server.cli(args, {}, { timeoutMs: 240_000 });
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/NOT VERIFIED: +1 of \d+ module\(s\) do not run the target release's code: bd_checks_missing/);
    expect(r.stdout).toMatch(/NOT VERIFIED: +1 permanent child\(ren\) not started: bd_checks_sup\/bd_checks_extra/);
    expect(await node.rpc("bd_checks_missing:vsn()")).toBe(`"1.0.0"`);

    const audit = await server.cli(["audit", "--json", "--action", "upgrade.install"]);
    expect(audit.code, audit.stderr).toBe(0);
    const rows = JSON.parse(audit.stdout) as { outcome: string | null; data: Json | null }[];
    const outcome = rows.find((e) => e.outcome === "ok" && e.data?.verification);
    expect(outcome?.data?.verification).toMatchObject({ ok: false, missedCount: 1, missed: [{ module: "bd_checks_missing" }] });

    // The misses page (rule upgrade_unverified, on by default).
    const alerts = await server.cli(["alerts", "--json"]);
    expect(alerts.code, alerts.stderr).toBe(0);
    const open = (JSON.parse(alerts.stdout) as { kind: string; node: string; title: string }[]).filter((a) => a.kind === "upgrade_unverified");
    expect(open).toHaveLength(1);
    expect(open[0].node).toBe(node.name);
    expect(open[0].title).toMatch(
      /^install of 1\.1\.0 on .* not verified: 1 of \d+ module\(s\) not on 1\.1\.0's code \(bd_checks_missing\); 1 permanent child\(ren\) not started \(bd_checks_sup\/bd_checks_extra\)$/,
    );

    // Each kind of miss is one event, with what it names.
    const misses = await unverifiedEvents((f) => f.length >= 2);
    expect(misses.filter((c) => c.startsWith("install of 1.1.0: ")).sort()).toEqual([
      expect.stringMatching(/^install of 1\.1\.0: 1 module\(s\) not on the release's code: bd_checks_missing$/),
      expect.stringMatching(/^install of 1\.1\.0: 1 permanent child\(ren\) not started: bd_checks_sup\/bd_checks_extra$/),
    ]);
    // The unsupervised server the plan named is alive right after install: no miss for it yet.
    const status = await statusJson();
    expect(status[0].actualKills?.install?.verification?.processes).toEqual([{ pid: await node.rpc("whereis(bd_checks_lone)"), module: "bd_checks_lone", alive: true, reason: null }]);
  }, 300_000);

  it("permanent: its own error finding needs accepting (exit 2 without, 7 when the agent's runner refuses); the dead unreachable process is a miss: printed, in status --json, an event", async () => {
    const lone = await node.rpc("whereis(bd_checks_lone)");
    expect(await node.rpc("try bd_checks_lone:bump() of V -> {ok, V} catch exit:_ -> crashed end")).toBe("crashed");

    const plan = await server.cli(["upgrade", "plan", node.name, "1.1.0", "--json"], {}, { timeoutMs: 120_000 });
    expect(plan.code, plan.stderr).toBe(5);
    const p = JSON.parse(plan.stdout) as Json;
    expect(p.step).toBe("make_permanent");
    const permErrors = (p.findings as Json[]).filter((f) => f.severity === "error").map((f) => f.id);
    expect(permErrors).toEqual(["appup_missing_module:bd_checks_missing"]);

    const bare = await server.cli(["upgrade", "permanent", node.name, "1.1.0", "--yes", "--max-kills", "100"], {}, { timeoutMs: 120_000 });
    expect(bare.code, bare.stderr).toBe(2);
    expect(bare.stderr).toContain("--accept-finding");
    // The server lets any named finding through; the agent's runner checks it is the right one.
    const wrong = await server.cli(["upgrade", "permanent", node.name, "1.1.0", "--yes", "--max-kills", "100", "--accept-finding", "appup_missing_module:other"], {}, { timeoutMs: 120_000 });
    expect(wrong.code, wrong.stderr).toBe(7);
    const rels = await node.rpcJson<Array<[string, string, string[], string]>>("release_handler:which_releases()");
    expect(rels.find(([, v]) => v === "1.1.0")?.[3]).toBe("current");

    const r = await server.cli(["upgrade", "permanent", node.name, "1.1.0", "--yes", "--max-kills", "100", "--accept-finding", permErrors[0]], {}, { timeoutMs: 240_000 });
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toContain(`NOT VERIFIED:       1 process(es) the upgrade could not reach died: ${lone} (bd_checks_lone, {function_clause,`);

    const audit = await server.cli(["audit", "--json", "--action", "upgrade.make_permanent"]);
    expect(audit.code, audit.stderr).toBe(0);
    const intent = (JSON.parse(audit.stdout) as { data: { gate?: { acceptFindings?: string[] } } | null }[]).find((e) => e.data?.gate?.acceptFindings?.length);
    expect(intent?.data?.gate?.acceptFindings).toEqual(permErrors);

    const status = await statusJson();
    expect(status[0].actualKills?.make_permanent?.verification).toMatchObject({
      ok: false,
      processes: [{ pid: lone, module: "bd_checks_lone", alive: false, reason: expect.stringContaining("function_clause") }],
    });
    const text = await server.cli(["upgrade", "status", node.name]);
    expect(text.stdout).toMatch(/install:missed make_permanent:missed/);
    expect(await unverifiedEvents((f) => f.some((c) => c.startsWith("make_permanent")))).toContainEqual(
      `make_permanent of 1.1.0: 1 process(es) the upgrade could not reach died: ${lone} (bd_checks_lone)`,
    );
  }, 400_000);

  async function statusJson(): Promise<{ actualKills: Record<string, { verification?: Json }> | null }[]> {
    const r = await server.cli(["upgrade", "status", node.name, "--json"]);
    expect(r.code, r.stderr).toBe(0);
    return JSON.parse(r.stdout);
  }

  /** The contexts of the node's upgrade_unverified events (the agent sends them; polled: they come as events, not with the result). */
  async function unverifiedEvents(until: (found: string[]) => boolean): Promise<string[]> {
    let found: string[] = [];
    const deadline = Date.now() + 20_000;
    while (Date.now() < deadline) {
      const r = await server.cli(["events", node.name, "--json"]);
      expect(r.code, r.stderr).toBe(0);
      found = (JSON.parse(r.stdout) as { kind: string; context: string | null }[]).filter((e) => e.kind === "upgrade_unverified").map((e) => e.context ?? "");
      if (until(found)) break;
      await sleep(500);
    }
    return found;
  }
});

describe("the CLI: rollback is gated by its own error findings too", () => {
  let server: TestServer;
  let node: BeamNode;

  beforeAll(async () => {
    server = await startServer({ dataDir: mkdtempSync(path.join(os.tmpdir(), "beamdeck-checks-rb-")) });
    ({ node } = await startAgentNode(server, { release: "bd_checks" }));
    await waitConnected(server, node.name, true, 60_000);
    const unpack = await server.cli(["upgrade", "unpack", node.name, "1.1.0"], {}, { timeoutMs: 120_000 });
    expect(unpack.code, unpack.stderr).toBe(0);
    const plan = JSON.parse((await server.cli(["upgrade", "plan", node.name, "1.1.0", "--json"], {}, { timeoutMs: 120_000 })).stdout) as Json;
    const accept = (plan.findings as Json[]).filter((f) => f.severity === "error").flatMap((f) => ["--accept-finding", f.id]);
    const r = await server.cli(["upgrade", "install", node.name, "1.1.0", "--yes", "--max-kills", "0", ...accept], {}, { timeoutMs: 240_000 });
    expect(r.code, r.stderr).toBe(0);
  }, 500_000);
  afterAll(async () => {
    await node?.stop();
    await server?.stop();
  });

  it("rollback: refused without its error findings (exit 2), refused by the agent for the wrong one (exit 7), run with each accepted and audited", async () => {
    // The down script updates bd_checks_lone too, and no supervisor reaches it: the rollback plan says so.
    const plan = await server.cli(["upgrade", "plan", node.name, "1.0.0", "--json"], {}, { timeoutMs: 120_000 });
    expect(plan.code, plan.stderr).toBe(5);
    const p = JSON.parse(plan.stdout) as Json;
    expect(p.step).toBe("rollback");
    const errors = (p.findings as Json[])
      .filter((f) => f.severity === "error")
      .map((f) => f.id)
      .sort();
    expect(errors).toContain("not_suspended:bd_checks_lone");
    const current = async () => (await node.rpcJson<Array<[string, string, string[], string]>>("release_handler:which_releases()")).map(([, v, , st]) => [v, st]);

    const bare = await server.cli(["upgrade", "rollback", node.name, "--yes", "--max-kills", "100"], {}, { timeoutMs: 120_000 });
    expect(bare.code, bare.stderr).toBe(2);
    expect(bare.stderr).toContain("--accept-finding");
    const wrong = await server.cli(["upgrade", "rollback", node.name, "--yes", "--max-kills", "100", "--accept-finding", "not_suspended:other"], {}, { timeoutMs: 120_000 });
    expect(wrong.code, wrong.stderr).toBe(7);
    expect(await current()).toContainEqual(["1.1.0", "current"]);

    const lone = await node.rpc("whereis(bd_checks_lone)");
    const args = ["upgrade", "rollback", node.name, "--yes", "--max-kills", "100", ...errors.flatMap((id) => ["--accept-finding", id])];
    const r = await server.cli(args, {}, { timeoutMs: 240_000 });
    expect(r.code, r.stderr).toBe(0);
    expect(await current()).toContainEqual(["1.0.0", "permanent"]);
    expect(await node.rpc("bd_checks_missing:vsn()")).toBe(`"1.0.0"`);

    const audit = await server.cli(["audit", "--json", "--action", "upgrade.rollback"]);
    expect(audit.code, audit.stderr).toBe(0);
    const intent = (JSON.parse(audit.stdout) as { data: { gate?: { acceptFindings?: string[] } } | null }[]).find((e) => e.data?.gate?.acceptFindings?.length);
    expect([...(intent?.data?.gate?.acceptFindings ?? [])].sort()).toEqual(errors);
    // The rollback verified the process its plan named: alive (it kept the integer state the old code wants).
    const status = JSON.parse((await server.cli(["upgrade", "status", node.name, "--json"])).stdout) as { actualKills: Record<string, { verification?: Json }> | null }[];
    expect(status[0].actualKills?.rollback?.verification?.processes).toContainEqual({ pid: lone, module: "bd_checks_lone", alive: true, reason: null });
    expect(await node.rpc("bd_checks_lone:bump()")).toBe("1");
  }, 400_000);
});
