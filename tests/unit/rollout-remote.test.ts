import { describe, expect, it } from "vitest";
import { ownerElsewhere } from "../../server/agents/leases";
import { opType, rolloutOp } from "../../server/fleet/rollout-remote";

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
