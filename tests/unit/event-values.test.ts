import { describe, expect, it } from "vitest";
import { type EventFrame, eventFrame } from "../../server/agents/protocol";
import { matchChildTerminated, defaultParams } from "../../server/alerts/rules";
import { hiddenText, viewWithoutValues, withoutValues } from "../../server/events/event-values";
import { reasonTag } from "../../server/events/reason-tag";
import { eventView } from "../../server/events/store";

const BOOT = "b0075eed".repeat(4);
const SECRET = "s3cr3t-value";

const crash: EventFrame = eventFrame.parse({
  type: "event",
  seq: 1,
  bootId: BOOT,
  at: 1,
  kind: "crash_report",
  context: "crash",
  pid: "<0.99.0>",
  name: null,
  initialCall: "erlang:apply/2",
  class: "error",
  reason: { text: `{badmatch,<<"${SECRET}">>}`, truncated: false },
  report: { text: `crasher: ... dictionary: [{key,<<"${SECRET}">>}]`, truncated: false },
  frames: ["bd_mod:run/1 (bd_mod.erl:12)"],
  newerAgentField: SECRET,
});

const supervisorReport: EventFrame = eventFrame.parse({
  type: "event",
  seq: 2,
  bootId: BOOT,
  at: 1,
  kind: "supervisor_report",
  context: "child_terminated",
  supervisor: "sup",
  reason: { text: `{{badmatch,<<"${SECRET}">>},[{bd_mod,run,1,[]}]}`, truncated: false },
  offender: { id: "w", pid: "<0.90.0>", mfargs: { text: `{bd_mod,start_link,[<<"${SECRET}">>]}`, truncated: false }, restartType: "permanent" },
  report: { text: `child terminated with ${SECRET}`, truncated: false },
});

describe("reasonTag", () => {
  it("keeps atoms, reduces tagged tuples to their tag, hides the rest", () => {
    expect(reasonTag("killed")).toBe("killed");
    expect(reasonTag("'EXIT'")).toBe("'EXIT'");
    expect(reasonTag("Elixir.RuntimeError")).toBe("Elixir.RuntimeError");
    expect(reasonTag(`{badmatch,<<"${SECRET}">>}`)).toBe("{badmatch,...}");
    expect(reasonTag(`{{badmatch,<<"${SECRET}">>},[{m,f,1,[]}]}`)).toBe("{{badmatch,...},...}");
    expect(reasonTag("{shutdown}")).toBe("{shutdown,...}");
    expect(reasonTag(`<<"${SECRET}">>`)).toBe("(hidden)");
    expect(reasonTag(`[{x,"${SECRET}"}]`)).toBe("(hidden)");
    expect(reasonTag(null)).toBeNull();
  });
});

describe("withoutValues", () => {
  it("keeps what crashed and where, drops every value of a crash report (unknown fields too)", () => {
    const shown = withoutValues(crash, "below the operator role") as Record<string, unknown>;
    expect(JSON.stringify(shown)).not.toContain(SECRET);
    expect(shown).toMatchObject({
      kind: "crash_report",
      pid: "<0.99.0>",
      class: "error",
      initialCall: "erlang:apply/2",
      frames: ["bd_mod:run/1 (bd_mod.erl:12)"],
      reason: { text: "{badmatch,...}", truncated: true },
      report: { text: hiddenText("below the operator role"), truncated: true },
      valuesHidden: "below the operator role",
    });
    expect(eventFrame.safeParse(shown).success).toBe(true);
  });

  it("reduces a supervisor report's reason and start arguments, keeping the child's identity", () => {
    const shown = withoutValues(supervisorReport, "x") as Record<string, unknown>;
    expect(JSON.stringify(shown)).not.toContain(SECRET);
    expect(shown).toMatchObject({ supervisor: "sup", reason: { text: "{{badmatch,...},...}" }, offender: { id: "w", pid: "<0.90.0>", restartType: "permanent", mfargs: { truncated: true } } });
  });

  it("leaves kinds without process values alone", () => {
    const alarm = eventFrame.parse({ type: "event", seq: 3, bootId: BOOT, at: 1, kind: "alarm_set", reason: { text: "disk_almost_full", truncated: false } });
    expect(withoutValues(alarm, "x")).toBe(alarm);
  });

  it("reduces a list row's reason the same way", () => {
    const view = eventView("n@h", 7n, crash);
    expect(view.reason).toContain(SECRET);
    expect(viewWithoutValues(view).reason).toBe("{badmatch,...}");
  });
});

describe("alerts carry no values", () => {
  it("names the reason's tag in a child_terminated title, detail and group", () => {
    const params = { ...defaultParams("child_terminated"), anyAbnormal: true };
    const reason = `{{badmatch,<<"${SECRET}">>},[]}`;
    const d = matchChildTerminated(
      { node: "n@h", kind: "supervisor_report", context: "child_terminated", supervisor: "sup", offenderId: "w", offenderPid: "<0.90.0>", reasonAtom: null, reasonText: reason, expected: false },
      params,
    );
    expect(d?.title).toBe("sup: child w terminated ({{badmatch,...},...})");
    expect(JSON.stringify(d)).not.toContain(SECRET);
  });
});
