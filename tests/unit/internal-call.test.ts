import { describe, expect, it } from "vitest";
import { forwardable, MAX_SKEW_MS, SeenNonces } from "../../server/gateway/internal-call";

describe("calls between instances", () => {
  it("a nonce counts once within twice the freshness window, and again after it", () => {
    const seen = new SeenNonces();
    const t0 = 1_000_000;
    expect(seen.first("a".repeat(16), t0)).toBe(true);
    expect(seen.first("a".repeat(16), t0 + MAX_SKEW_MS)).toBe(false);
    expect(seen.first("b".repeat(16), t0 + 1)).toBe(true);
    // Past 2 × MAX_SKEW_MS the call itself is stale (refused before this check): its nonce may be forgotten.
    expect(seen.first("a".repeat(16), t0 + 2 * MAX_SKEW_MS + 2)).toBe(true);
  });

  it("is bounded: full of fresh nonces it refuses rather than forgets", () => {
    const seen = new SeenNonces(3);
    const t = 5_000;
    expect(["n1", "n2", "n3"].map((n) => seen.first(n.padEnd(16, "x"), t))).toEqual([true, true, true]);
    expect(seen.first("n4".padEnd(16, "x"), t)).toBe(false);
  });

  it("forwards only the node-scoped routers", () => {
    expect(forwardable("procs.window")).toBe(true);
    expect(forwardable("upgrades.install")).toBe(true);
    expect(forwardable("users.add")).toBe(false);
    expect(forwardable("tokens.apiCreate")).toBe(false);
  });
});
