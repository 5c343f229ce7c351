import { describe, expect, it } from "vitest";
import { MAX_REVIEWED_NODES, reviewLimitProblem } from "../../app/(dash)/rollouts/StartRollout";

describe("the Rollouts page's review of a group", () => {
  it("reviews a group whole or not at all: beyond its bound it says so instead of planning only some nodes", () => {
    expect(reviewLimitProblem("shop", MAX_REVIEWED_NODES)).toBeNull();
    expect(reviewLimitProblem("shop", MAX_REVIEWED_NODES + 1)).toBe(
      `shop has ${MAX_REVIEWED_NODES + 1} nodes; this page reviews at most ${MAX_REVIEWED_NODES}: use beamdeck rollout plan and rollout start --accept-plan`,
    );
  });
});
