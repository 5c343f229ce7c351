import path from "node:path";

/** One step of `npm test` (scripts/run-tests.ts) and what it counts. */
export interface Result {
  passed: number;
  failed: number;
  /** What failed, short: printed again after the summary so the tail of a CI log names it. */
  failures?: string[];
}

/**
 * EUnit's failing tests with a few lines of their reason. A CI log is often
 * read only from its end, where EUnit prints just the counts.
 */
export function eunitFailures(output: string): string[] {
  const lines = output.split("\n");
  const out: string[] = [];
  lines.forEach((line, i) => {
    if (!/\*failed\*|\*timed out\*|\*\*\* .* failed \*\*\*/.test(line) || out.length >= 20) return;
    const reason: string[] = [];
    for (const next of lines.slice(i + 1, i + 40)) {
      if (next.trim() === "" || /\.\.\.(ok|\*failed\*|\*timed out\*)|^=+$/.test(next.trim())) break;
      if (!next.startsWith("in call from")) reason.push(`    ${next.trimEnd()}`);
      if (reason.length >= 8) break;
    }
    out.push([line.trim(), ...reason].join("\n"));
  });
  return out;
}

/** EUnit's summary line as counts; a run that printed none is one failure. */
export function eunitCounts(code: number, output: string): Result {
  const failures = eunitFailures(output);
  const all = /All (\d+) tests passed/.exec(output);
  if (all) return { passed: Number(all[1]), failed: code === 0 ? 0 : 1, failures };
  const m = /Failed: (\d+)\.\s+Skipped: (\d+)\.\s+Passed: (\d+)\./.exec(output);
  if (m) return { passed: Number(m[3]), failed: Number(m[1]) + Number(m[2]), failures };
  return { passed: 0, failed: 1, failures };
}

export interface Step {
  name: string;
  /** This step's own deadline in minutes (the run's remaining time caps it). */
  deadlineMin: number;
  run(deadline: number): Promise<Result>;
}

/**
 * Seconds a file took on a 2-core VM (CI, 2026-12-02), to balance the parts;
 * a file not named here counts as 40. Only the balance depends on it.
 */
const WEIGHT_S: Record<string, number> = {
  "upgrade-checks": 310,
  "upgrade-fallback": 310,
  "upgrade-server": 300,
  rollouts: 300,
  "upgrade-agent": 150,
  million: 120,
  "stripped-release": 120,
  "rollout-scale-out": 130,
  "failover-expectations": 120,
  "scale-out-shared": 60,
  "scale-out": 100,
  "daily-signals": 90,
  "daily-detail": 60,
  flood: 60,
  "live-node": 60,
};

/** The files below `dir` in `n` parts of about equal weight (heaviest first, each to the lightest part). */
export function splitFiles(files: string[], n: number): string[][] {
  const weight = (f: string) => WEIGHT_S[path.basename(f).replace(/\.test\.ts$/, "")] ?? 40;
  const parts = Array.from({ length: n }, () => ({ files: [] as string[], total: 0 }));
  for (const f of [...files].sort((x, y) => weight(y) - weight(x) || x.localeCompare(y))) {
    const lightest = parts.reduce((a, b) => (b.total < a.total ? b : a));
    lightest.files.push(f);
    lightest.total += weight(f);
  }
  return parts.map((p) => p.files.sort()).filter((p) => p.length > 0);
}
