import { describe, expect, it } from "vitest";
import { deathsOf, predictedKillCount } from "../../server/fleet/rollout-figures";

describe("a rollout node's figures from its stored upgrade", () => {
  it("counts predicted kills over every step", () => {
    expect(predictedKillCount({ install: ["<0.1.0>", "<0.2.0>"], make_permanent: ["<0.3.0>"] })).toBe(3);
    expect(predictedKillCount(null)).toBe(0);
  });

  it("counts deaths and the unpredicted ones over every step", () => {
    const actual = { install: { died: ["<0.1.0>"], comparison: { diedUnpredicted: [] } }, make_permanent: { died: ["<0.4.0>", "<0.5.0>"], comparison: { diedUnpredicted: ["<0.5.0>"] } } };
    expect(deathsOf(actual)).toEqual({ died: 3, unpredicted: 1 });
  });

  it("counts a malformed stored value as nothing instead of throwing", () => {
    expect(deathsOf("garbage")).toEqual({ died: 0, unpredicted: 0 });
    expect(predictedKillCount([1, 2, 3])).toBe(0);
  });
});
