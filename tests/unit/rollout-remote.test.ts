import { describe, expect, it } from "vitest";
import { ownerElsewhere } from "../../server/agents/leases";
import { boundStep, checkPlanVsn } from "../../server/fleet/rollout-op-bounds";
import { type NodeStep, rolloutOptions } from "../../server/fleet/rollout-options";
import { opType, type RolloutOp, rolloutOp } from "../../server/fleet/rollout-remote";
import type { RolloutView } from "../../server/fleet/rollout-store";

describe("where a rollout's work on a node runs", () => {
  const now = 1_000_000;
  it("elsewhere only under another instance's current lease", () => {
    expect(ownerElsewhere({ instanceId: "b", leaseExpiresAt: new Date(now + 1) }, "a", now)).toBe("b");
    expect(ownerElsewhere({ instanceId: "b", leaseExpiresAt: new Date(now) }, "a", now)).toBeNull();
    expect(ownerElsewhere({ instanceId: "b", leaseExpiresAt: null }, "a", now)).toBeNull();
    expect(ownerElsewhere({ instanceId: "a", leaseExpiresAt: new Date(now + 1) }, "a", now)).toBeNull();
    expect(ownerElsewhere({ instanceId: null, leaseExpiresAt: new Date(now + 1) }, "a", now)).toBeNull();
    expect(ownerElsewhere(null, "a", now)).toBeNull();
  });

  it("a step always carries its command id, so a repeat on a new owner follows it; reads may run again", () => {
    const step = { op: "step", rolloutId: "r-0123456789ab", node: "n@h", action: "install", vsn: "0.1.1" };
    expect(rolloutOp.safeParse(step).success).toBe(false);
    const ok = rolloutOp.parse({ ...step, commandId: "c-00000000-0000-4000-8000-000000000000" });
    expect(opType(ok)).toBe("mutation");
    expect(opType(rolloutOp.parse({ op: "releases", rolloutId: "r-0123456789ab", node: "n@h" }))).toBe("query");
    // The actor and lock holder are never taken from the caller: unknown keys are dropped.
    expect(rolloutOp.parse({ ...step, commandId: "c-00000000-0000-4000-8000-000000000000", actor: "user:mallory", lockHolder: "step:x" })).not.toHaveProperty("actor");
    expect(rolloutOp.safeParse({ op: "step", rolloutId: "x", node: "n@h", action: "install", commandId: "c-00000000-0000-4000-8000-000000000000" }).success).toBe(false);
  });
});

describe("what a rollout operation may ask of the node it is sent to", () => {
  const COMMAND = "c-00000000-0000-4000-8000-000000000000";
  const accepted = "a".repeat(64);
  const rollout = (step: NodeStep, upgradeId: string | null = null): RolloutView =>
    ({
      id: "r-0123456789ab",
      toVsn: "0.2.0",
      status: "canary",
      options: rolloutOptions.parse({ acceptPlans: [accepted], maxKills: 3, acceptFindings: ["f1"], fallbackMs: 600_000, purge: { m: "brutal" } }),
      nodes: [{ node: "n@h", step, commandId: COMMAND, upgradeId, fromVsn: "0.1.0" }],
    }) as unknown as RolloutView;
  const stepOp = (over: Record<string, unknown>) => rolloutOp.parse({ op: "step", rolloutId: "r-0123456789ab", node: "n@h", commandId: COMMAND, ...over }) as Extract<RolloutOp, { op: "step" }>;

  it("the release, purge, fallback and gate limits are the rollout's, whatever the caller sent", () => {
    const s = boundStep(rollout("installing"), stepOp({ action: "install", vsn: "0.2.0", gate: { acceptPlan: accepted, maxKills: 1_000_000 }, fallbackMs: 5000, purge: {} }));
    expect(s).toMatchObject({ action: "install", vsn: "0.2.0", purge: { m: "brutal" }, fallbackMs: 600_000, gate: { acceptPlan: accepted, maxKills: 3, acceptFindings: ["f1"] } });
    const p = boundStep(rollout("permanent_sent", "u-1"), stepOp({ action: "make_permanent", upgradeId: "u-1", gate: { maxKills: 9 } }));
    expect(p).toMatchObject({ upgradeId: "u-1", gate: { maxKills: 3 }, fallbackMs: undefined, vsn: undefined });
  });

  it("anything else is refused", () => {
    expect(() => boundStep(rollout("installing"), stepOp({ action: "install", vsn: "9.9.9" }))).toThrow(/install of 9\.9\.9 is not this rollout's/);
    expect(() => boundStep(rollout("installing"), stepOp({ action: "install", vsn: "0.2.0", gate: { acceptPlan: "b".repeat(64) } }))).toThrow(/not one it accepted/);
    expect(() => boundStep(rollout("soaking"), stepOp({ action: "install", vsn: "0.2.0" }))).toThrow(/not waiting on this install/);
    expect(() => boundStep(rollout("permanent_sent", "u-1"), stepOp({ action: "make_permanent", upgradeId: "u-2" }))).toThrow(/upgrade u-2 is not the one/);
    expect(() => boundStep(rollout("rolling_back", "u-1"), stepOp({ action: "rollback", upgradeId: "u-1" }))).toThrow(/no --auto-rollback/);
    expect(() => checkPlanVsn(rollout("installing"), "n@h", "9.9.9")).toThrow(/a plan for 9\.9\.9/);
    expect(() => checkPlanVsn(rollout("installing"), "n@h", "0.1.0")).not.toThrow();
  });
});
