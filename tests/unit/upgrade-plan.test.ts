import { describe, expect, it } from "vitest";
import { BeamdeckError } from "../../server/errors";
import { requireGate } from "../../server/upgrades/gate";
import { errorFindingIds, killCount, plan, predictedKills, verificationOf } from "../../server/upgrades/plan";
import { predictionComparison } from "../../server/upgrades/deaths";

const proc = (pid: string, fate: string, when: string | null) => ({ pid, name: null, fate, when, why: fate, alive: true, initialCall: null, currentFunction: null, stack: [], holdsFun: false });
const zero = { killed: 0, blocks_install: 0, badfun_on_next_call: 0, stays_on_old_code: 0, may_migrate: 0, suspended: 0, unaffected: 0 };
const noKills = { ...zero, processes: 0, killedAtInstall: 0, killedAtPermanent: 0 };
/** A plan as beamdeck_agent_plan sends it (every field it always sends). */
const base = plan.parse({
  digest: "a".repeat(64),
  step: "install",
  action: "install",
  vsn: "0.1.1",
  from: "0.1.0",
  to: "0.1.1",
  direction: "up",
  name: "rel_test",
  relupFile: "releases/0.1.1/relup",
  verdict: "would_kill",
  impact: "kills",
  findings: [],
  killed: { install: [], make_permanent: [] },
  choices: { purge: {}, prePurge: {} },
  relup: { original: [], rewritten: [], instructions: 0, changes: [] },
  restart: null,
  nodeFate: null,
  modules: [
    {
      module: "Elixir.TestListener",
      app: "rel_test",
      op: "load",
      prePurge: "brutal",
      postPurge: "brutal",
      hasOldCode: false,
      suspend: false,
      codeChange: null,
      purgedAtInstall: false,
      processes: [proc("<0.1.0>", "killed", "make_permanent"), proc("<0.2.0>", "may_migrate", null), proc("<0.3.0>", "killed", "install")],
      truncated: false,
      counts: { ...zero, killed: 2, may_migrate: 1 },
    },
  ],
  applications: [],
  lint: [],
  lintErrors: [],
  counts: { ...zero, killed: 2, may_migrate: 1, processes: 3, killedAtInstall: 1, killedAtPermanent: 1 },
  truncated: false,
  scan: { processes: 3, matched: 3, elapsedUs: 10, partial: false },
  at: 0,
});

describe("upgrade plans on the server", () => {
  it("predicts kills per step from the listed processes", () => {
    expect(
      predictedKills(base)
        .map((k) => k.pid)
        .sort(),
    ).toEqual(["<0.1.0>", "<0.3.0>"]);
    expect(predictedKills(base, "install").map((k) => k.pid)).toEqual(["<0.3.0>"]);
    expect(killCount(base)).toBe(2);
  });

  it("uses the agent's complete pid lists and counts beyond the listing cap", () => {
    const many = Array.from({ length: 1000 }, (_, i) => `<0.${i + 100}.0>`);
    const big = { ...base, killed: { install: ["<0.3.0>"], make_permanent: ["<0.1.0>", ...many] }, counts: { ...base.counts, killedAtInstall: 1, killedAtPermanent: 1001 } };
    expect(predictedKills(big)).toHaveLength(1002);
    expect(predictedKills(big, "make_permanent")).toHaveLength(1001);
    // The listed entry keeps its detail.
    expect(predictedKills(big).find((k) => k.pid === "<0.1.0>")?.module).toBe("Elixir.TestListener");
    expect(killCount(big)).toBe(1002);
  });

  it("takes prediction against deaths from the agent's comparison (the one place it is made)", () => {
    const death = (pid: string) => ({ pid, name: null, initialCall: null, reason: "killed" });
    const result = { deaths: { predictedAndDied: [death("<0.3.0>")], predictedButAlive: [death("<0.1.0>")], diedUnpredicted: [death("<0.9.0>")] } };
    expect(predictionComparison(result as Parameters<typeof predictionComparison>[0])).toEqual({
      predictedAndDied: ["<0.3.0>"],
      predictedButAlive: ["<0.1.0>"],
      diedUnpredicted: ["<0.9.0>"],
    });
    expect(predictionComparison(null)).toBeNull();
  });

  it("refuses a plan without its digest, step or verdict (one schema for the agent's plan)", () => {
    expect(plan.safeParse({ modules: [], lint: [] }).success).toBe(false);
    expect(plan.safeParse({ ...base, digest: "not-a-digest" }).success).toBe(false);
    expect(plan.safeParse({ ...base, verdict: "kills" }).success).toBe(false);
    expect(plan.safeParse({ ...base, findings: [{ id: "x:y", check: "x", severity: "fatal", module: null, pids: [], count: 0, message: "", fix: "" }] }).success).toBe(false);
  });

  it("asks for a gate when a step kills or has error findings, and says which flag", () => {
    const gateError = (f: () => unknown) => {
      try {
        f();
      } catch (e) {
        return e instanceof BeamdeckError ? `${e.code} ${e.message}` : String(e);
      }
      return null;
    };
    expect(gateError(() => requireGate("install", base, undefined))).toMatch(/^BD_GATE_REQUIRED install would kill 2 process\(es\): .*--accept-plan a{64}.*--max-kills N/);
    expect(requireGate("install", base, { maxKills: 0 }).used).toBe("max_kills"); // the bound itself is the runner's check
    expect(requireGate("install", base, { acceptPlan: "b".repeat(64) }).used).toBe("plan");
    const restart = plan.parse({
      ...base,
      modules: [],
      counts: noKills,
      verdict: "error_findings",
      findings: [{ id: "emulator_restart:-:restart_new_emulator", check: "emulator_restart", severity: "error", module: null, pids: [], count: 0, message: "restarts", fix: "" }],
    });
    expect(errorFindingIds(restart)).toEqual(["emulator_restart:-:restart_new_emulator"]);
    // --max-kills bounds kills only: it does not accept an error finding.
    expect(gateError(() => requireGate("install", restart, { maxKills: 5 }))).toMatch(/^BD_GATE_REQUIRED .*--accept-finding ID/);
    expect(requireGate("install", restart, { acceptFindings: ["emulator_restart:-:restart_new_emulator"] })).toMatchObject({
      used: "findings",
      acceptedFindings: ["emulator_restart:-:restart_new_emulator"],
    });
    expect(requireGate("install", restart, { acceptPlan: "c".repeat(64) }).acceptedFindings).toEqual(["emulator_restart:-:restart_new_emulator"]);
    expect(requireGate("install", plan.parse({ ...base, modules: [], verdict: "safe", counts: noKills }), undefined).used).toBe("none_needed");
  });
});

describe("verificationOf: the optional verification of a step's result", () => {
  const v = { ok: false, checked: 7, missed: [{ module: "m", app: "a", expected: "00ff", loaded: "ff00" }], missedCount: 1, notStarted: [{ supervisor: "s", id: "c" }] };

  it("parses what the agent sends", () => {
    expect(verificationOf({ deaths: {}, verification: v })).toEqual(v);
  });

  it("is null when absent (an older agent) or malformed, never a guess", () => {
    expect(verificationOf({ deaths: {} })).toBeNull();
    expect(verificationOf(null)).toBeNull();
    expect(verificationOf({ verification: { ok: "yes" } })).toBeNull();
    expect(verificationOf({ verification: { ...v, missed: Array.from({ length: 101 }, () => v.missed[0]) } })).toBeNull();
  });
});
