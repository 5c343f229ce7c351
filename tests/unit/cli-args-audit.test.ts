/** The CLI's argument schemas (server/cli/args.ts) and audit columns (server/cli/audit-details.ts). */
import { describe, expect, it } from "vitest";
import { check, countArg, timeArg } from "../../server/cli/args";
import { auditDetails, outcomeText } from "../../server/cli/audit-details";

const fails = (fn: () => unknown) => {
  try {
    fn();
  } catch (e) {
    return (e as Error).message.replace(/ \(see: beamdeck help\)$/, "");
  }
  throw new Error("did not fail");
};

describe("argument schemas", () => {
  it("counts: whole numbers in range, else what is wrong and what is expected", () => {
    expect(check(countArg(1, 1000), "50", "--limit")).toBe(50);
    expect(fails(() => check(countArg(1, 1000), "abc", "--limit"))).toBe('--limit: not a whole number; expected a whole number from 1 to 1000 (got "abc")');
    expect(fails(() => check(countArg(1, 1000), "0", "--limit"))).toBe('--limit: expected a whole number from 1 to 1000 (got "0")');
    expect(fails(() => check(countArg(1, 1000), "2.5", "--limit"))).toMatch(/not a whole number/);
  });

  it("times: ISO, or a duration back from now", () => {
    const now = Date.parse("2026-12-02T12:00:00Z");
    expect(
      check(
        timeArg(() => now),
        "2h",
        "--since",
      ),
    ).toBe("2026-12-02T10:00:00.000Z");
    expect(
      check(
        timeArg(() => now),
        "7d",
        "--since",
      ),
    ).toBe("2026-11-25T12:00:00.000Z");
    expect(
      check(
        timeArg(() => now),
        "2026-12-01",
        "--since",
      ),
    ).toBe("2026-12-01T00:00:00.000Z");
    expect(
      check(
        timeArg(() => now),
        "2026-12-01T09:30:00+01:00",
        "--since",
      ),
    ).toBe("2026-12-01T08:30:00.000Z");
    expect(
      fails(() =>
        check(
          timeArg(() => now),
          "yesterday",
          "--since",
        ),
      ),
    ).toContain('--since: not a time; expected an ISO 8601 date or time (2026-12-01, 2026-12-01T09:30:00Z) or a time back from now (30m, 2h, 7d) (got "yesterday")');
  });
});

describe("audit columns", () => {
  const intent = {
    id: "12",
    action: "upgrade.install",
    intentId: null,
    outcome: null,
    data: { step: "install", fromVsn: "0.1.0", toVsn: "0.1.1", predictedKills: ["<0.1.0>"], acceptedOntoOldCode: [{}, {}], findingsAccepted: [{ id: "nif_module:crypto" }], gate: { used: "plan" } },
  };
  const answer = { id: "13", action: "upgrade.install", intentId: "12", outcome: "ok", data: { predictedVsActual: { predictedAndDied: ["<0.1.0>"], predictedButAlive: [], diedUnpredicted: [] } } };

  it("an upgrade intent reads as step, kills, old code, findings, gate; its outcome as died vs predicted", () => {
    expect(auditDetails(intent)).toBe("install 0.1.0→0.1.1; kills 1; 2 left on old code; findings accepted: nif_module:crypto; gate plan");
    expect(auditDetails(answer)).toBe("died 1 (predicted 1)");
    const answers = new Map([["12", answer]]);
    expect(outcomeText(intent, answers)).toBe("intent → ok #13");
    expect(outcomeText(answer, answers)).toBe("ok (intent #12)");
    expect(outcomeText({ ...intent, pendingOutcome: true }, new Map())).toBe("NO OUTCOME");
  });

  it("other entries: their scalar fields, capped", () => {
    expect(auditDetails({ id: "1", action: "token.create", intentId: null, outcome: "ok", data: { role: "viewer", label: "ci", nested: { x: 1 } } })).toBe("role=viewer label=ci");
    expect(auditDetails({ id: "1", action: "x", intentId: null, outcome: "ok", data: { t: "y".repeat(300) } }).length).toBe(120);
  });
});
