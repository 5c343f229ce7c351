import { describe, expect, it } from "vitest";
import { comparePrediction, killCount, plan, predictedKills } from "../../server/upgrades/plan";

const base = plan.parse({
  modules: [
    {
      module: "Elixir.TestListener",
      prePurge: "brutal",
      postPurge: "brutal",
      processes: [
        { pid: "<0.1.0>", name: null, fate: "killed", when: "make_permanent", why: "loops" },
        { pid: "<0.2.0>", name: null, fate: "may_migrate", when: null, why: "external call" },
        { pid: "<0.3.0>", name: null, fate: "killed", when: "install", why: "old code" },
      ],
    },
  ],
  lint: [],
});

describe("upgrade plans on the server", () => {
  it("predicts kills per step from the listed processes", () => {
    expect(predictedKills(base).map((k) => k.pid).sort()).toEqual(["<0.1.0>", "<0.3.0>"]);
    expect(predictedKills(base, "install").map((k) => k.pid)).toEqual(["<0.3.0>"]);
    expect(killCount(base)).toBe(2);
  });

  it("uses the agent's complete pid lists and counts beyond the listing cap", () => {
    const many = Array.from({ length: 1000 }, (_, i) => `<0.${i + 100}.0>`);
    const big = { ...base, killed: { install: ["<0.3.0>"], make_permanent: ["<0.1.0>", ...many] }, counts: { killedAtInstall: 1, killedAtPermanent: 1001 } };
    expect(predictedKills(big)).toHaveLength(1002);
    expect(predictedKills(big, "make_permanent")).toHaveLength(1001);
    // The listed entry keeps its detail.
    expect(predictedKills(big).find((k) => k.pid === "<0.1.0>")?.module).toBe("Elixir.TestListener");
    expect(killCount(big)).toBe(1002);
  });

  it("compares prediction with what died", () => {
    expect(comparePrediction(["<0.1.0>", "<0.3.0>"], ["<0.3.0>", "<0.9.0>"])).toEqual({
      predictedAndDied: ["<0.3.0>"],
      predictedButAlive: ["<0.1.0>"],
      diedUnpredicted: ["<0.9.0>"],
    });
  });
});
