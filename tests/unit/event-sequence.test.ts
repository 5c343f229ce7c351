/** Sequence numbers on one socket (events/sequence.ts) and fleet patterns (auth/agent-tokens.ts). */
import { describe, expect, it } from "vitest";
import type { EventFrame } from "../../server/agents/protocol";
import { fleetPattern, fleetPatternMatches } from "../../server/auth/agent-tokens";
import { sequenceEvents } from "../../server/events/sequence";

const BOOT = "0123456789abcdef";
const ev = (seq: number, extra: Partial<EventFrame> = {}): EventFrame => ({ type: "event", seq, bootId: BOOT, at: 1, kind: "agent", ...extra });

describe("sequenceEvents", () => {
  it("acks the contiguous prefix and skips replays", () => {
    const r = sequenceEvents(2, BOOT, [ev(1), ev(2), ev(3), ev(3), ev(4)]);
    expect(r.acked).toBe(4);
    expect(r.store.map((e) => e.seq)).toEqual([3, 4]);
    expect(r.replays).toBe(3);
  });

  it("records an undeclared gap before the event that revealed it", () => {
    const r = sequenceEvents(3, BOOT, [ev(7)]);
    expect(r.acked).toBe(7);
    expect(r.store.map((e) => [e.kind, e.context, e.bootId, e.seq])).toEqual([
      ["event_gap", "undeclared", `gap:${BOOT}`, 4],
      ["agent", undefined, BOOT, 7],
    ]);
    expect(r.store[0]).toMatchObject({ from: 4, to: 6 });
  });

  it("calls a gap declared only when droppedSeqs covers all of it", () => {
    expect(sequenceEvents(3, BOOT, [ev(7, { droppedSeqs: [4, 6] })]).store[0].context).toBe("declared");
    expect(sequenceEvents(3, BOOT, [ev(7, { droppedSeqs: [1, 6] })]).store[0].context).toBe("declared");
    expect(sequenceEvents(3, BOOT, [ev(7, { droppedSeqs: [5, 6] })]).store[0].context).toBe("undeclared");
    expect(sequenceEvents(3, BOOT, [ev(7, { droppedSeqs: [4, 5] })]).store[0].context).toBe("undeclared");
  });

  it("refuses an event of another boot", () => {
    expect(() => sequenceEvents(0, BOOT, [ev(1, { bootId: "fedcba9876543210" })])).toThrow(/another|boot/);
  });
});

describe("fleet patterns", () => {
  it("match whole names, * as any run, everything else literally", () => {
    expect(fleetPatternMatches("shop_*@*", "shop_1@host")).toBe(true);
    expect(fleetPatternMatches("shop_*@*", "billing_1@host")).toBe(false);
    expect(fleetPatternMatches("shop_*@*", "xshop_1@host")).toBe(false);
    expect(fleetPatternMatches("a.b@h", "aXb@h")).toBe(false);
    expect(fleetPatternMatches("*", "anything@h")).toBe(true);
  });

  it("accept only name characters and *", () => {
    expect(fleetPattern.safeParse("shop_*@*").success).toBe(true);
    expect(fleetPattern.safeParse("shop (1)").success).toBe(false);
    expect(fleetPattern.safeParse("**").success).toBe(false);
  });
});
