import fs from "node:fs";
import path from "node:path";
import { describe, expect, it } from "vitest";
import { eunitCounts, eunitFailures, splitFiles } from "../../scripts/test-step";

// Real EUnit output (OTP 25) of a module with one passing, one failing and one timed-out test.
const output = fs.readFileSync(path.join(__dirname, "fixtures/eunit-failures.txt"), "utf8");

describe("EUnit output as counts and failures", () => {
  it("names each failing test with its reason, without the eunit call chain", () => {
    const failures = eunitFailures(output);
    expect(failures).toHaveLength(2);
    expect(failures[0]).toMatch(/^fl_tests: bad_test\.\.\.\*failed\*/);
    expect(failures[0]).toContain("in function fl_tests:bad_test/0");
    expect(failures[0]).toContain("**error:{assertEqual");
    expect(failures[0]).not.toContain("in call from");
    expect(failures[1]).toMatch(/slow_test_.*\*timed out\*/);
  });

  it("counts the summary line and carries the failures", () => {
    const r = eunitCounts(1, output);
    expect(r).toMatchObject({ passed: 1, failed: 1 });
    expect(r.failures).toHaveLength(2);
  });

  it("counts a run that printed no summary as one failure", () => {
    expect(eunitCounts(1, "===> Compiling\nsyntax error")).toMatchObject({ passed: 0, failed: 1 });
  });

  it("has no failures for a green run", () => {
    expect(eunitCounts(0, "  All 12 tests passed.\n")).toEqual({ passed: 12, failed: 0, failures: [] });
  });
});

describe("integration files in parts run side by side", () => {
  it("puts every file in exactly one part and balances the heavy ones", () => {
    const files = ["upgrade-checks", "upgrade-fallback", "upgrade-server", "upgrade-agent", "million", "cli", "gateway", "storage"].map((n) => `tests/integration/${n}.test.ts`);
    const parts = splitFiles(files, 2);
    expect(parts).toHaveLength(2);
    expect(parts.flat().sort()).toEqual([...files].sort());
    // The three heaviest (≈300 s each) must not all land in one part.
    const heavy = (p: string[]) => p.filter((f) => /upgrade-(checks|fallback|server)/.test(f)).length;
    expect(parts.map(heavy).sort()).toEqual([1, 2]);
  });

  it("never makes an empty part", () => {
    expect(splitFiles(["tests/integration/cli.test.ts"], 3)).toEqual([["tests/integration/cli.test.ts"]]);
  });
});
