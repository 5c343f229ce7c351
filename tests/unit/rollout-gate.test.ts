import { describe, expect, it } from "vitest";
import { durationArg, statusExit } from "../../server/cli/commands/rollout-run";
import { EXIT } from "../../server/cli/errors";
import { failureOf, type GateFigures, reportSample } from "../../server/fleet/rollout-gate";
import { rolloutOptions, startInput } from "../../server/fleet/rollout-options";

const healthy: GateFigures = {
  soakedMs: 5000,
  connected: true,
  unpredictedDeaths: [],
  unexpectedReports: 0,
  reportSamples: [],
  alerts: [],
  verification: { ok: true, checked: 3, missedCount: 0 },
  checkedAt: "2026-12-02T14:00:00.000Z",
};

describe("the health gate's verdict", () => {
  it("holds for a healthy node, and names the first thing wrong otherwise", () => {
    expect(failureOf(healthy)).toBeNull();
    expect(failureOf({ ...healthy, verification: null })).toBeNull();
    expect(failureOf({ ...healthy, connected: false, unexpectedReports: 2 })).toBe("the node is no longer connected");
    expect(failureOf({ ...healthy, unpredictedDeaths: ["<0.1.0>", "<0.2.0>"] })).toBe("2 process(es) died that the plan did not predict (<0.1.0>, <0.2.0>)");
    expect(failureOf({ ...healthy, unexpectedReports: 1, reportSamples: ["supervisor_report child_terminated acceptor (killed)"] })).toBe(
      "1 crash or supervisor report(s) the plan did not predict: supervisor_report child_terminated acceptor (killed)",
    );
    expect(failureOf({ ...healthy, alerts: ["Mailbox of <0.9.0> above 10000"] })).toBe("new alert(s): Mailbox of <0.9.0> above 10000");
    expect(failureOf({ ...healthy, verification: { ok: false, checked: 4, missedCount: 1 } })).toBe("1 of 4 module(s) not on the new code after install");
  });
});

describe("rollout options", () => {
  it("default to one canary, batches of one, a minute's soak, no rollback", () => {
    expect(rolloutOptions.parse({})).toEqual({ purge: {}, prePurge: {}, canary: 1, batch: 1, soakMs: 60_000, acceptPlans: [], acceptFindings: [], autoRollback: false });
  });
  it("refuse bad input with the field named", () => {
    expect(() => startInput.parse({ group: "g", vsn: "0.1.1", canary: 0 })).toThrow(/canary/);
    expect(() => startInput.parse({ group: "g", vsn: "0.1.1", soakMs: 25 * 3_600_000 })).toThrow(/soakMs/);
    expect(() => startInput.parse({ group: "g", vsn: "../x" })).toThrow(/a release version/);
    expect(() => startInput.parse({ group: "g", vsn: "0.1.1", acceptPlans: ["abc"] })).toThrow(/plan digest/);
  });
});

describe("the CLI's rollout arguments", () => {
  it("reads durations with a unit", () => {
    expect(durationArg.parse("500ms")).toBe(500);
    expect(durationArg.parse("30s")).toBe(30_000);
    expect(durationArg.parse("5m")).toBe(300_000);
    expect(durationArg.parse("2h")).toBe(7_200_000);
    expect(durationArg.safeParse("30").success).toBe(false);
    expect(durationArg.safeParse("25h").success).toBe(false);
  });
  it("exits 8 while halted, 1 when aborted, 0 otherwise", () => {
    expect(statusExit("halted")).toBe(EXIT.rolloutHalted);
    expect(statusExit("halted")).toBe(8);
    expect(statusExit("aborted")).toBe(EXIT.error);
    expect(statusExit("done")).toBe(EXIT.ok);
    expect(statusExit("canary")).toBe(EXIT.ok);
  });
});

describe("a report as the gate names it (read by viewers: rollouts.get, the halt reason)", () => {
  it("carries the reason's tag, never its values", () => {
    const crash = { kind: "crash_report", context: null, offenderId: null, offenderPid: "<0.9.0>", reason: '{{badmatch,<<"s3cret-token">>},[{m,f,1}]}' };
    expect(reportSample(crash)).toBe("crash_report <0.9.0> ({{badmatch,...},...})");
    expect(reportSample({ ...crash, kind: "supervisor_report", context: "child_terminated", offenderId: "acceptor", reason: "killed" })).toBe("supervisor_report child_terminated acceptor (killed)");
    expect(reportSample({ ...crash, reason: '"a string with s3cret"' })).not.toContain("s3cret");
    expect(reportSample({ ...crash, reason: null })).toBe("crash_report <0.9.0>");
  });
});
