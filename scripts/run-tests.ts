/**
 * Runs every test runner in turn and sums their results into the one line
 * CI reads: "N passed, N failed". Any failure makes the exit code non-zero.
 * `npm test -- unit agent` runs only the named steps.
 */
import { spawn } from "node:child_process";
import fs from "node:fs";
import path from "node:path";
import { otpSteps } from "./otp-steps";

interface Result {
  passed: number;
  failed: number;
}
interface Step {
  name: string;
  run(): Promise<Result>;
}

const OUT = path.resolve("tests/.out");
fs.mkdirSync(OUT, { recursive: true });

function sh(cmd: string, args: string[], opts: { cwd?: string; env?: NodeJS.ProcessEnv } = {}): Promise<{ code: number; output: string }> {
  return new Promise((resolve) => {
    const child = spawn(cmd, args, { cwd: opts.cwd, env: { ...process.env, ...opts.env }, stdio: ["ignore", "pipe", "pipe"] });
    let output = "";
    const tee = (chunk: Buffer) => {
      output += chunk.toString();
      process.stdout.write(chunk);
    };
    child.stdout.on("data", tee);
    child.stderr.on("data", tee);
    child.on("close", (code) => resolve({ code: code ?? 1, output }));
  });
}

/** A check that is one test: it passes when its command exits 0. */
function check(name: string, cmd: string, args: string[], cwd?: string): Step {
  return { name, run: async () => ((await sh(cmd, args, { cwd })).code === 0 ? { passed: 1, failed: 0 } : { passed: 0, failed: 1 }) };
}

function vitest(name: string, dir: string): Step {
  return {
    name,
    async run() {
      const report = path.join(OUT, `vitest-${name}.json`);
      fs.rmSync(report, { force: true });
      const { code } = await sh("npx", ["--no-install", "vitest", "run", dir, "--reporter=default", "--reporter=json", `--outputFile=${report}`]);
      if (!fs.existsSync(report)) return { passed: 0, failed: 1 };
      const r = JSON.parse(fs.readFileSync(report, "utf8")) as { numPassedTests: number; numFailedTests: number; numTotalTestSuites: number; testResults: { status: string }[] };
      // A suite that failed to load has no tests but must still count as a failure.
      const brokenFiles = r.testResults.filter((t) => t.status === "failed").length;
      const failed = r.numFailedTests || (code !== 0 ? Math.max(1, brokenFiles) : 0);
      return { passed: r.numPassedTests, failed };
    },
  };
}

function eunit(): Step {
  return {
    name: "agent-eunit",
    async run() {
      const { code, output } = await sh("rebar3", ["eunit"], { cwd: "agent" });
      const all = /All (\d+) tests passed/.exec(output);
      if (all) return { passed: Number(all[1]), failed: code === 0 ? 0 : 1 };
      const m = /Failed: (\d+)\.\s+Skipped: (\d+)\.\s+Passed: (\d+)\./.exec(output);
      if (m) return { passed: Number(m[3]), failed: Number(m[1]) + Number(m[2]) };
      return { passed: 0, failed: 1 };
    },
  };
}

const STEPS: Step[] = [
  check("typecheck", "npx", ["--no-install", "tsc", "--noEmit", "-p", "tsconfig.json"]),
  check("agent-xref", "rebar3", ["xref"], "agent"),
  check("agent-dialyzer", "rebar3", ["dialyzer"], "agent"),
  eunit(),
  // The agent on OTP 27 and 29, in Debian chroots (scripts/otp-steps.ts).
  ...otpSteps(sh),
  vitest("unit", "tests/unit"),
  vitest("integration", "tests/integration"),
  vitest("e2e", "tests/e2e"),
];

async function main(): Promise<void> {
  const only = process.argv.slice(2);
  const steps = only.length ? STEPS.filter((s) => only.some((o) => s.name.includes(o))) : STEPS;
  const results: [string, Result, number][] = [];
  for (const step of steps) {
    console.log(`\n===== ${step.name} =====`);
    const t0 = Date.now();
    const r = await step.run();
    results.push([step.name, r, Date.now() - t0]);
  }
  console.log("\n===== summary =====");
  for (const [name, r, ms] of results) console.log(`${name.padEnd(14)} ${String(r.passed).padStart(4)} passed ${String(r.failed).padStart(3)} failed  ${(ms / 1000).toFixed(1)}s`);
  const passed = results.reduce((n, [, r]) => n + r.passed, 0);
  const failed = results.reduce((n, [, r]) => n + r.failed, 0);
  console.log(`${passed} passed, ${failed} failed`);
  process.exitCode = failed > 0 ? 1 : 0;
}

void main();
