import crypto from "node:crypto";
import { describe, expect, it } from "vitest";
import { defaultParams, LeakWatch, MailboxWatch, matchChildTerminated, matchEventGap, matchMaxRestartIntensity, OldCodeLinger, type EventFacts } from "../../server/alerts/rules";
import { unverifiedDraft } from "../../server/alerts/upgrade-drafts";
import { Expectations } from "../../server/alerts/expectations";
import { backoffMs, sign } from "../../server/alerts/webhooks";

const base: EventFacts = {
  node: "n@h",
  kind: "supervisor_report",
  context: "child_terminated",
  supervisor: "Elixir.RelTest.Supervisor",
  reasonAtom: "killed",
  reasonText: "killed",
  offenderId: "Elixir.Task",
  offenderPid: "<0.601.0>",
  expected: false,
};

describe("event_gap rule", () => {
  const gap = (context: string | null): EventFacts => ({ ...base, kind: "event_gap", context, reasonText: "seqs 5..7" });
  it("pages on undeclared gaps, regressions and refused events, one alert per node and context", () => {
    expect(matchEventGap(gap("undeclared"))?.title).toBe("n@h: events missing from the sequence, not declared dropped by the agent");
    expect(matchEventGap(gap("regression"))?.groupKey).toBe("event_gap|n@h|regression");
    expect(matchEventGap(gap("refused"))).toMatchObject({ title: "n@h: events refused by the server (they did not match the protocol's schema)", detail: { context: "refused" } });
  });
  it("only records a gap the agent declared, or any other context", () => {
    for (const c of ["declared", "toString", "constructor", null]) expect(matchEventGap(gap(c))).toBeNull();
    expect(matchEventGap({ ...gap("refused"), kind: "crash_report" })).toBeNull();
  });
});

describe("child_terminated rule", () => {
  const p = defaultParams("child_terminated");
  it("pages on killed by default, grouped per supervisor, child and reason", () => {
    const a = matchChildTerminated(base, p);
    expect(a?.groupKey).toBe("child_terminated|n@h|Elixir.RelTest.Supervisor|Elixir.Task|killed");
    expect(matchChildTerminated({ ...base, offenderPid: "<0.700.0>" }, p)?.groupKey).toBe(a?.groupKey);
  });
  it("does not page on expected kills, other contexts, or other reasons unless asked", () => {
    expect(matchChildTerminated({ ...base, expected: true }, p)).toBeNull();
    expect(matchChildTerminated({ ...base, context: "start_error" }, p)).toBeNull();
    expect(matchChildTerminated({ ...base, reasonAtom: null, reasonText: "{badarith,[]}" }, p)).toBeNull();
    const any = { ...p, anyAbnormal: true };
    expect(matchChildTerminated({ ...base, reasonAtom: null, reasonText: "{badarith,[]}" }, any)).not.toBeNull();
    expect(matchChildTerminated({ ...base, reasonAtom: "normal", reasonText: "normal" }, any)).toBeNull();
    expect(matchChildTerminated({ ...base, reasonAtom: null, reasonText: "{shutdown,closed}" }, any)).toBeNull();
  });
});

describe("max restart intensity rule", () => {
  it("pages when a supervisor gives up", () => {
    expect(matchMaxRestartIntensity({ ...base, context: "shutdown", reasonAtom: "reached_max_restart_intensity" })?.kind).toBe("max_restart_intensity");
    expect(matchMaxRestartIntensity(base)).toBeNull();
  });
});

describe("mailbox rule", () => {
  it("fires once a process stays above the threshold for the time given, and clears", () => {
    const w = new MailboxWatch();
    const p = { threshold: 100, forSeconds: 10 };
    const big = [{ pid: "<0.5.0>", name: "q", mailbox: 500 }];
    expect(w.observe("n", big, p, 0).fire).toHaveLength(0);
    expect(w.observe("n", big, p, 9_000).fire).toHaveLength(0);
    const fired = w.observe("n", big, p, 10_000);
    expect(fired.fire).toHaveLength(1);
    expect(fired.fire[0].detail).toMatchObject({ pid: "<0.5.0>", mailbox: 500 });
    expect(w.observe("n", big, p, 20_000).fire).toHaveLength(0);
    const cleared = w.observe("n", [], p, 21_000);
    expect(cleared.cleared).toEqual(["mailbox|n|<0.5.0>"]);
    // Dipping below resets the clock.
    w.observe("n", big, p, 30_000);
    w.observe("n", [{ ...big[0], mailbox: 50 }], p, 35_000);
    expect(w.observe("n", big, p, 41_000).fire).toHaveLength(0);
  });
});

describe("upgrade expectations", () => {
  it("classifies kills during an upgrade window as expected or a prediction miss", () => {
    const e = new Expectations();
    expect(e.classify("n", "<0.1.0>")).toBeNull();
    e.expect("n", "up1", ["<0.1.0>"], 60_000);
    expect(e.classify("n", "<0.1.0>")).toEqual({ verdict: "expected", upgradeId: "up1" });
    expect(e.classify("n", "<0.2.0>")).toEqual({ verdict: "miss", upgradeId: "up1" });
    expect(e.classify("other", "<0.1.0>")).toBeNull();
    expect(e.classify("n", "<0.1.0>", Date.now() + 120_000)).toBeNull();
  });
  it("adopts a stored expectation: the same upgrade's pids join, a later step replaces, an earlier one does not", () => {
    const e = new Expectations();
    const now = Date.now();
    e.adopt("n", { upgradeId: "up1", pids: new Set(["<0.1.0>"]), until: now + 60_000 });
    expect(e.classify("n", "<0.1.0>")).toEqual({ verdict: "expected", upgradeId: "up1" });
    e.adopt("n", { upgradeId: "up1", pids: new Set(["<0.2.0>"]), until: now + 30_000 });
    expect(e.classify("n", "<0.1.0>")).toEqual({ verdict: "expected", upgradeId: "up1" });
    expect(e.classify("n", "<0.2.0>", now + 50_000)).toEqual({ verdict: "expected", upgradeId: "up1" });
    e.adopt("n", { upgradeId: "up0", pids: new Set(["<0.3.0>"]), until: now + 10_000 });
    expect(e.classify("n", "<0.3.0>")).toEqual({ verdict: "miss", upgradeId: "up1" });
    e.adopt("n", { upgradeId: "up2", pids: new Set(["<0.3.0>"]), until: now + 90_000 });
    expect(e.classify("n", "<0.3.0>")).toEqual({ verdict: "expected", upgradeId: "up2" });
    expect(e.classify("n", "<0.1.0>")).toEqual({ verdict: "miss", upgradeId: "up2" });
  });
});

describe("webhooks", () => {
  it("sign timestamp and body with HMAC-SHA256", () => {
    expect(sign("k", "1", "{}")).toBe(`sha256=${crypto.createHmac("sha256", "k").update("1.{}").digest("hex")}`);
    expect(sign("k", "1", "{}")).toMatch(/^sha256=[0-9a-f]{64}$/);
    expect(sign("k", "1", "{}")).not.toBe(sign("k", "2", "{}"));
    expect(sign("k", "1", "{}")).not.toBe(sign("j", "1", "{}"));
  });
  it("back off exponentially", () => {
    expect([1, 2, 3, 4].map(backoffMs)).toEqual([1000, 2000, 4000, 8000]);
  });
});

describe("mailbox leak rule", () => {
  const p = { windowSeconds: 60, minGrowth: 10 };
  const at = (mailbox: number) => [{ pid: "<0.9.0>", name: "acceptor", mailbox }];

  it("pages on slow growth that never drains, once, with the slope", () => {
    const w = new LeakWatch();
    // Two messages a minute, like the forum's acceptor with one client a minute.
    for (let s = 0; s <= 300; s += 10) {
      const { fire } = w.observe("n", at(1 + Math.floor(s / 30)), p, s * 1000);
      if (s < 300) expect(fire).toHaveLength(0);
      else {
        expect(fire).toHaveLength(1);
        expect(fire[0]).toMatchObject({ kind: "mailbox_leak", groupKey: "mailbox_leak|n|<0.9.0>" });
        expect(fire[0].detail).toMatchObject({ from: 1, to: 11, perMinute: 2 });
      }
    }
    expect(w.observe("n", at(12), p, 310_000).fire).toHaveLength(0);
    // Drained: cleared, and the watch starts afresh.
    expect(w.observe("n", at(0), p, 320_000).cleared).toEqual(["mailbox_leak|n|<0.9.0>"]);
  });

  it("does not page on a busy mailbox that drains, or on growth below the minimum", () => {
    const w = new LeakWatch();
    for (let s = 0; s <= 600; s += 10) expect(w.observe("n", at(s % 40 === 0 ? 2 : 30), p, s * 1000).fire).toHaveLength(0);
    const slow = new LeakWatch();
    for (let s = 0; s <= 600; s += 10) expect(slow.observe("n", at(5 + Math.floor(s / 100)), p, s * 1000).fire).toHaveLength(0);
  });

  it("clears a fired leak when the process is gone", () => {
    const w = new LeakWatch();
    w.observe("n", at(1), p, 0);
    expect(w.observe("n", at(50), p, 61_000).fire).toHaveLength(1);
    expect(w.observe("n", [], p, 62_000).cleared).toEqual(["mailbox_leak|n|<0.9.0>"]);
  });
});

describe("old code rule", () => {
  it("pages once a module keeps processes on its old code past the limit, and clears when none are left", () => {
    const w = new OldCodeLinger();
    const p = { forSeconds: 600 };
    const mods = [{ module: "Elixir.TestListener", count: 5, since: 0, pids: ["<0.1.0>"] }];
    expect(w.observe("n", mods, p, 599_000).fire).toHaveLength(0);
    const { fire } = w.observe("n", mods, p, 600_000);
    expect(fire).toHaveLength(1);
    expect(fire[0].title).toMatch(/^5 process\(es\) on n still on old code of Elixir.TestListener for 10 min/);
    expect(w.observe("n", mods, p, 700_000).fire).toHaveLength(0);
    expect(w.observe("n", [], p, 710_000).cleared).toEqual(["old_code|n|Elixir.TestListener"]);
  });
});

describe("upgrade_unverified", () => {
  it("names the modules left on old code and the children not started, once per node and release", () => {
    const d = unverifiedDraft("n@h", "install", "1.1.0", {
      checked: 7,
      missedCount: 1,
      missed: [{ module: "bd_checks_missing" }],
      notStarted: [{ supervisor: "bd_checks_sup", id: "bd_checks_extra" }],
    });
    expect(d).toMatchObject({ kind: "upgrade_unverified", node: "n@h", groupKey: "upgrade_unverified|n@h|1.1.0" });
    expect(d.title).toBe("install of 1.1.0 on n@h not verified: 1 of 7 module(s) not on 1.1.0's code (bd_checks_missing); 1 permanent child(ren) not started (bd_checks_sup/bd_checks_extra)");
    const modulesOnly = unverifiedDraft("n@h", "make_permanent", "1.1.0", { checked: 7, missedCount: 2, missed: [{ module: "a" }, { module: "b" }] });
    expect(modulesOnly.title).toBe("make_permanent of 1.1.0 on n@h not verified: 2 of 7 module(s) not on 1.1.0's code (a, b)");
  });

  it("names the unreachable processes that died (with the reason when seen), not those alive", () => {
    const d = unverifiedDraft("n@h", "make_permanent", "1.1.0", {
      checked: 7,
      missedCount: 0,
      missed: [],
      processes: [
        { pid: "<0.90.0>", module: "bd_checks_lone", alive: false, reason: "{function_clause,...}" },
        { pid: "<0.91.0>", module: null, alive: false, reason: null },
        { pid: "<0.92.0>", module: "bd_checks_lone", alive: true, reason: null },
      ],
    });
    expect(d.title).toBe("make_permanent of 1.1.0 on n@h not verified: 2 unreachable process(es) died (<0.90.0> bd_checks_lone: {function_clause,...}, <0.91.0> ?)");
    expect((d.detail as { dead: unknown[] }).dead).toHaveLength(2);
  });
});
