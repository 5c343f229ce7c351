/**
 * Runs every test runner in turn and sums their results into the one line
 * CI reads: "N passed, N failed". Any failure makes the exit code non-zero.
 * `npm test -- unit agent` runs only the named steps.
 *
 * Nothing hangs (issue 18): the whole run has a deadline well under CI's 90
 * minutes (BEAMDECK_TEST_DEADLINE_MIN, default 45) and each step its own
 * share of it. A step past its deadline is reported — which step, which test
 * file and test (tests/support/progress-reporter.ts), which child processes
 * with their pid and command line — then its process tree is killed and it
 * counts as a failure.
 */
import { spawn } from "node:child_process";
import fs from "node:fs";
import path from "node:path";
import { otpSteps } from "./otp-steps";
import { eunitCounts, type Result, splitFiles, type Step } from "./test-step";

const OUT = path.resolve("tests/.out");
fs.mkdirSync(OUT, { recursive: true });
const PROGRESS = path.join(OUT, "vitest-current.json");

const MINUTE = 60_000;
// CI ends a run at 90 min; a hung step must leave time to report it.
const RUN_DEADLINE_MS = Number(process.env.BEAMDECK_TEST_DEADLINE_MIN ?? 60) * MINUTE;

/** Every process below `root` (from /proc), with its command line. */
function descendants(root: number): { pid: number; cmd: string }[] {
  const parent = new Map<number, number[]>();
  for (const d of fs.readdirSync("/proc")) {
    if (!/^\d+$/.test(d)) continue;
    try {
      const stat = fs.readFileSync(`/proc/${d}/stat`, "utf8");
      const ppid = Number(stat.slice(stat.lastIndexOf(")") + 2).split(" ")[1]);
      parent.set(ppid, [...(parent.get(ppid) ?? []), Number(d)]);
    } catch {
      /* gone meanwhile */
    }
  }
  const out: { pid: number; cmd: string }[] = [];
  const walk = (p: number) => {
    for (const c of parent.get(p) ?? []) {
      let cmd = "?";
      try {
        cmd = fs.readFileSync(`/proc/${c}/cmdline`, "utf8").split("\0").join(" ").trim().slice(0, 300);
      } catch {
        /* gone meanwhile */
      }
      out.push({ pid: c, cmd });
      walk(c);
    }
  };
  walk(root);
  return out;
}

function killTree(root: number): void {
  const all = [root, ...descendants(root).map((d) => d.pid)];
  // Parents first: a BEAM that sees its erl_child_setup die writes a crash dump.
  for (const pid of all) {
    try {
      process.kill(pid, "SIGKILL");
    } catch {
      /* already gone */
    }
  }
}

/** What a step past its deadline was waiting on, for the log. */
function reportHang(step: string, root: number, ms: number, progress = PROGRESS): void {
  const lines = [`\n!!!!! ${step}: no end after ${Math.round(ms / 1000)} s (deadline); ending it`];
  try {
    const p = JSON.parse(fs.readFileSync(progress, "utf8")) as { file: string | null; test: string | null; since: string };
    lines.push(`  waiting on test file ${p.file ?? "?"}${p.test ? `, test "${p.test}"` : ""} (since ${p.since})`);
  } catch {
    /* not a vitest step, or no test started */
  }
  lines.push("  child processes still running:");
  for (const d of descendants(root)) lines.push(`    ${d.pid}  ${d.cmd}`);
  console.log(lines.join("\n"));
}

/**
 * Run a command, its output teed (or only kept, `quiet`, for a step that runs
 * beside others and prints its output when it ends); past `deadline` (epoch
 * ms) report it, kill its process tree, and resolve with timedOut.
 */
function sh(
  step: string,
  cmd: string,
  args: string[],
  deadline: number,
  opts: { cwd?: string; env?: NodeJS.ProcessEnv; quiet?: boolean; progress?: string } = {},
): Promise<{ code: number; output: string; timedOut: boolean }> {
  return new Promise((resolve) => {
    const t0 = Date.now();
    const child = spawn(cmd, args, { cwd: opts.cwd, env: { ...process.env, ...opts.env }, stdio: ["ignore", "pipe", "pipe"] });
    let output = "";
    let timedOut = false;
    const tee = (chunk: Buffer) => {
      output += chunk.toString();
      if (!opts.quiet) process.stdout.write(chunk);
    };
    child.stdout.on("data", tee);
    child.stderr.on("data", tee);
    const timer = setTimeout(
      () => {
        timedOut = true;
        if (child.pid !== undefined) {
          reportHang(step, child.pid, Date.now() - t0, opts.progress);
          killTree(child.pid);
        }
      },
      Math.max(0, deadline - Date.now()),
    );
    child.on("close", (code) => {
      clearTimeout(timer);
      resolve({ code: code ?? 1, output, timedOut });
    });
  });
}

/** A check that is one test: it passes when its command exits 0. */
function check(name: string, deadlineMin: number, cmd: string, args: string[], cwd?: string): Step {
  return { name, deadlineMin, run: async (deadline) => ((await sh(name, cmd, args, deadline, { cwd })).code === 0 ? { passed: 1, failed: 0 } : { passed: 0, failed: 1 }) };
}

interface VitestReport {
  numPassedTests: number;
  numFailedTests: number;
  testResults: { name: string; status: string; message?: string; assertionResults: { fullName: string; status: string; failureMessages: string[] }[] }[];
}

/** Failed tests (file, name, first lines of the reason), and files that failed to load. */
function vitestFailures(r: VitestReport): string[] {
  const out: string[] = [];
  for (const file of r.testResults) {
    const rel = path.relative(process.cwd(), file.name);
    const failedTests = file.assertionResults.filter((a) => a.status === "failed");
    for (const a of failedTests) out.push(`${rel} > ${a.fullName}\n    ${(a.failureMessages[0] ?? "").split("\n").slice(0, 6).join("\n    ")}`);
    if (file.status === "failed" && failedTests.length === 0) out.push(`${rel}: ${(file.message ?? "failed to run").split("\n").slice(0, 6).join("\n    ")}`);
  }
  return out.slice(0, 30);
}

/**
 * A vitest run over `paths` counted from its JSON report. `env` and `args`
 * (e.g. BEAMDECK_TEST_OTP, a -t name pattern) serve the OTP matrix steps;
 * `shard` ([k, n]) names the k-th of n parts (its `paths`) and runs it
 * quietly, so that `sharded` can run the parts side by side.
 */
function vitest(name: string, paths: string | string[], deadlineMin: number, opts: { env?: Record<string, string>; args?: string[]; shard?: [number, number] } = {}): Step {
  const part = opts.shard ? `${name}-${opts.shard[0]}of${opts.shard[1]}` : name;
  return {
    name: part,
    deadlineMin,
    async run(deadline) {
      const report = path.join(OUT, `vitest-${part}.json`);
      const progress = opts.shard ? path.join(OUT, `vitest-current-${part}.json`) : PROGRESS;
      fs.rmSync(report, { force: true });
      fs.rmSync(progress, { force: true });
      const { code, timedOut, output } = await sh(
        part,
        "npx",
        [
          "--no-install",
          "vitest",
          "run",
          ...[paths].flat(),
          ...(opts.args ?? []),
          "--reporter=default",
          "--reporter=json",
          "--reporter=./tests/support/progress-reporter.ts",
          `--outputFile=${report}`,
        ],
        deadline,
        { env: { ...process.env, ...opts.env, BEAMDECK_TEST_PROGRESS_FILE: progress }, quiet: Boolean(opts.shard), progress },
      );
      if (opts.shard) console.log(`\n----- ${part} (its output, now that it ended) -----\n${output}`);
      if (timedOut) return { passed: 0, failed: 1 }; // its report was never written: the hang is the failure
      if (!fs.existsSync(report)) return { passed: 0, failed: 1 };
      const r = JSON.parse(fs.readFileSync(report, "utf8")) as VitestReport;
      // A suite that failed to load has no tests but must still count as a failure.
      const brokenFiles = r.testResults.filter((t) => t.status === "failed").length;
      const failed = r.numFailedTests || (code !== 0 ? Math.max(1, brokenFiles) : 0);
      return { passed: r.numPassedTests, failed, failures: vitestFailures(r) };
    },
  };
}

/**
 * The integration files, in `n` parts run side by side: the suite waits on
 * BEAM nodes and servers starting far more than it computes, and one part
 * after another no longer fits CI's 30 minutes. BEAMDECK_TEST_SHARDS=1 runs
 * them one file at a time as before (to tell a flake of load from a bug).
 */
function sharded(name: string, dir: string, deadlineMin: number): Step {
  const n = Math.max(1, Math.min(4, Number(process.env.BEAMDECK_TEST_SHARDS ?? 2) || 1));
  if (n === 1) return vitest(name, dir, deadlineMin);
  return {
    name,
    deadlineMin,
    async run(deadline) {
      const files = fs
        .readdirSync(dir)
        .filter((f) => f.endsWith(".test.ts"))
        .map((f) => path.join(dir, f));
      const parts = splitFiles(files, n).map((fs_, i, all) => vitest(name, fs_, deadlineMin, { shard: [i + 1, all.length] }));
      const results = await Promise.all(parts.map((p) => p.run(deadline)));
      return {
        passed: results.reduce((a, r) => a + r.passed, 0),
        failed: results.reduce((a, r) => a + r.failed, 0),
        failures: results.flatMap((r) => r.failures ?? []),
      };
    },
  };
}

function eunit(): Step {
  return {
    name: "agent-eunit",
    deadlineMin: 15,
    async run(deadline) {
      const { code, output } = await sh("agent-eunit", "rebar3", ["eunit"], deadline, { cwd: "agent" });
      return eunitCounts(code, output);
    },
  };
}

const STEPS: Step[] = [
  // First and fast (a few seconds): Biome's recommended rules and the React hooks rules (biome.json).
  check("lint", 5, "npx", ["--no-install", "biome", "check", "--diagnostic-level=error", "app", "server", "tests", "scripts"]),
  check("typecheck", 10, "npx", ["--no-install", "tsc", "--noEmit", "-p", "tsconfig.json"]),
  check("agent-xref", 10, "rebar3", ["xref"], "agent"),
  check("agent-dialyzer", 20, "rebar3", ["dialyzer"], "agent"),
  eunit(),
  vitest("unit", "tests/unit", 10),
  sharded("integration", "tests/integration", 45),
  vitest("e2e", "tests/e2e", 25),
  // The agent on OTP 27 and 29, in Debian chroots (scripts/otp-steps.ts).
  ...otpSteps(sh, vitest),
];

async function main(): Promise<void> {
  const only = process.argv.slice(2);
  // A name given exactly runs that step; otherwise every step whose name contains it.
  const picks = (o: string) => (STEPS.some((s) => s.name === o) ? (s: Step) => s.name === o : (s: Step) => s.name.includes(o));
  const steps = only.length ? STEPS.filter((s) => only.some((o) => picks(o)(s))) : STEPS;
  const results: [string, Result, number][] = [];
  const runDeadline = Date.now() + RUN_DEADLINE_MS;
  for (const step of steps) {
    console.log(`\n===== ${step.name} =====`);
    const t0 = Date.now();
    if (t0 >= runDeadline) {
      console.log(`!!!!! ${step.name}: not run, the whole run's deadline (${RUN_DEADLINE_MS / MINUTE} min, BEAMDECK_TEST_DEADLINE_MIN) has passed`);
      results.push([step.name, { passed: 0, failed: 1 }, 0]);
      continue;
    }
    const r = await step.run(Math.min(runDeadline, t0 + step.deadlineMin * MINUTE));
    results.push([step.name, r, Date.now() - t0]);
  }
  console.log("\n===== summary =====");
  for (const [name, r, ms] of results) console.log(`${name.padEnd(14)} ${String(r.passed).padStart(4)} passed ${String(r.failed).padStart(3)} failed  ${(ms / 1000).toFixed(1)}s`);
  const passed = results.reduce((n, [, r]) => n + r.passed, 0);
  const failed = results.reduce((n, [, r]) => n + r.failed, 0);
  const failures = results.flatMap(([name, r]) => (r.failures ?? []).map((f) => `[${name}] ${f}`));
  if (failures.length) console.log(`\n===== what failed =====\n${failures.join("\n")}`);
  console.log(`${passed} passed, ${failed} failed`);
  process.exitCode = failed > 0 ? 1 : 0;
}

void main();
