/** The fallback timer's duration syntax and bounds, and the status line (server/upgrades/fallback.ts). */
import { describe, expect, it } from "vitest";
import { fallbackEvent, fallbackLine, fallbackOfResult, parseFallback } from "../../server/upgrades/fallback";

const record = { vsn: "0.1.1", from: "0.1.0", deadline: Date.UTC(2026, 11, 2, 13, 30), durationMs: 1_200_000, commandId: "c-1", rollbackDigest: "a".repeat(64), maxKills: 3, acceptFindings: [] };

describe("--fallback DUR", () => {
  it("reads h, m and s, alone or together", () => {
    expect(parseFallback("20m")).toEqual({ ok: true, ms: 1_200_000 });
    expect(parseFallback("1200s")).toEqual({ ok: true, ms: 1_200_000 });
    expect(parseFallback("1h30m")).toEqual({ ok: true, ms: 5_400_000 });
    expect(parseFallback(" 5s ")).toEqual({ ok: true, ms: 5_000 });
  });
  it("refuses what is not a duration, and says how to write one", () => {
    for (const bad of ["", "20", "m", "20 m", "1.5h", "20min", "-5s", "s5"]) {
      const r = parseFallback(bad);
      expect(r.ok, bad).toBe(false);
      if (!r.ok) expect(r.message).toMatch(/like 20m, 1200s or 1h30m/);
    }
  });
  it("bounds it from 5s to 24h", () => {
    expect(parseFallback("4s")).toEqual({ ok: false, message: "the fallback must be from 5s to 24h, not 4s" });
    expect(parseFallback("25h")).toEqual({ ok: false, message: "the fallback must be from 5s to 24h, not 25h" });
    expect(parseFallback("24h")).toEqual({ ok: true, ms: 86_400_000 });
  });
});

describe("the status line", () => {
  it("while installed: where it falls back to, when, and the time left", () => {
    expect(fallbackLine("installed", record, record.deadline - 252_000)).toBe("falls back to 0.1.0 at 2026-12-02T13:30:00.000Z unless made permanent (4m 12s left)");
  });
  it("past the deadline without news from the node: due", () => {
    expect(fallbackLine("installed", record, record.deadline + 1)).toMatch(/since 2026-12-02T13:30:00.000Z unless made permanent \(due; waiting for the node to report it\)/);
  });
  it("nothing once permanent or rolled back, or without a fallback", () => {
    expect(fallbackLine("permanent", record, 0)).toBeNull();
    expect(fallbackLine("rolled_back", record, 0)).toBeNull();
    expect(fallbackLine("installed", null, 0)).toBeNull();
  });
});

describe("what the agent sends", () => {
  it("the install result's record, as stored with the command ({result, error})", () => {
    expect(fallbackOfResult({ result: { action: "install", fallback: record }, error: null })).toEqual(record);
    expect(fallbackOfResult({ result: { action: "install" }, error: null })).toBeNull();
    expect(fallbackOfResult(null)).toBeNull();
  });
  it("the event: a known outcome with its record, else refused", () => {
    const ev = { type: "event", seq: 3, kind: "fallback", context: "rolled_back", reason: { text: "fallback: …", truncated: false }, fallback: record, rollbackCommandId: "fallback-c-1" };
    expect(fallbackEvent.parse(ev)).toMatchObject({ context: "rolled_back", fallback: { from: "0.1.0" } });
    expect(fallbackEvent.safeParse({ ...ev, context: "exploded" }).success).toBe(false);
    expect(fallbackEvent.safeParse({ ...ev, fallback: { ...record, deadline: "soon" } }).success).toBe(false);
  });
});
