/**
 * Test steps that compile and test the agent on newer OTP releases, inside
 * the Debian chroots of scripts/otp-chroot.sh (trixie: OTP 27, sid: OTP 29;
 * the host runs bookworm's OTP 25).
 *
 * - `CI=true` (or `BEAMDECK_OTP_MATRIX=1`, set by `npm run test:otp`): the
 *   chroots are built first (a setup step), so the steps always run.
 * - Otherwise a step runs when its chroot is already there; when it is not,
 *   it prints one line saying so and counts as neither passed nor failed.
 * - Dialyzer on 27/29 runs only in the whole matrix (`npm run test:otp`):
 *   its first run builds a PLT per OTP, minutes on a small VM.
 * - The upgrade-workflow integration tests run on 27 and 29 with
 *   BEAMDECK_TEST_OTP (tools/beam/otp.ts builds the releases and runs the
 *   nodes inside the chroot). `npm test` (and so CI) runs the named subset
 *   below; the whole matrix runs every case, upgrade-server's and the
 *   Elixir 1.18 mix release (tests/otp/) too. The README's "Tested
 *   versions" says which runs where, and why.
 */
import { spawnSync } from "node:child_process";
import fs from "node:fs";
import { eunitCounts, type Result, type Step } from "./test-step";

/** run-tests.ts's bounded runner: the step's name, the command, and the time it must end by. */
type Sh = (step: string, cmd: string, args: string[], deadline: number) => Promise<{ code: number; output: string }>;
/** run-tests.ts's vitest step: name, test paths, deadline, env and extra vitest args. */
type Vitest = (name: string, paths: string[], deadlineMin: number, opts: { env?: Record<string, string>; args?: string[] }) => Step;

/**
 * The upgrade-workflow files that run on every OTP. `ci` is the vitest -t
 * pattern `npm test` runs of it (null: the whole file); the matrix always
 * runs the whole file. A file not (yet) in this clone is left out.
 */
const UPGRADE_WORKFLOW: { name: string; file: string; ci: string | null; deadlineMin: number; matrixOnly?: boolean }[] = [
  // The forum's Elixir app, plan vs what happened process by process (~1 min per OTP).
  { name: "upgrade-agent", file: "tests/integration/upgrade-agent.test.ts", ci: "rel_test 0.1.0 → 0.1.1 with the default appup", deadlineMin: 20 },
  // The stripped Erlang release without the compiler app (issue 12's done-when cases).
  { name: "stripped-release", file: "tests/integration/stripped-release.test.ts", ci: null, deadlineMin: 20 },
  // The same upgrades through CLI → server → agent: a server per test, 25 min
  // per OTP on a 2-core VM under a load of 30.
  { name: "upgrade-server", file: "tests/integration/upgrade-server.test.ts", ci: null, deadlineMin: 45, matrixOnly: true },
];

const CHROOT = "scripts/otp-chroot.sh";
const SUITES = [
  { otp: 27, suite: "trixie" },
  { otp: 29, suite: "sid" },
] as const;

const build = process.env.CI === "true" || process.env.BEAMDECK_OTP_MATRIX === "1";
const matrix = process.env.BEAMDECK_OTP_MATRIX === "1";

function present(suite: string): boolean {
  return spawnSync("bash", [CHROOT, "present", suite], { stdio: "ignore" }).status === 0;
}

function inChroot(sh: Sh, name: string, deadlineMin: number, otp: number, suite: string, args: string[], count: (code: number, output: string) => Result): Step {
  return {
    name,
    deadlineMin,
    async run(deadline) {
      if (!present(suite)) {
        // Not a pass: nothing ran. CI builds the chroots first, so this only
        // happens locally.
        console.log(`${name}: skipped, no OTP ${otp} chroot (build it and run the OTP matrix with: npm run test:otp)`);
        return { passed: 0, failed: build ? 1 : 0 };
      }
      const { code, output } = await sh(name, "bash", [CHROOT, "run", suite, ...args], deadline);
      return count(code, output);
    },
  };
}

const oneCheck = (code: number): Result => (code === 0 ? { passed: 1, failed: 0 } : { passed: 0, failed: 1 });

/** A vitest step on a chroot's OTP; no chroot is a skip (as inChroot), a run of no tests (a stale -t pattern) a failure. */
function vitestOnOtp(vitest: Vitest, name: string, deadlineMin: number, otp: number, suite: string, paths: string[], args: string[]): Step {
  const step = vitest(name, paths, deadlineMin, { env: { BEAMDECK_TEST_OTP: String(otp) }, args });
  return {
    name,
    deadlineMin,
    async run(deadline) {
      if (!present(suite)) {
        console.log(`${name}: skipped, no OTP ${otp} chroot (build it and run the OTP matrix with: npm run test:otp)`);
        return { passed: 0, failed: build ? 1 : 0 };
      }
      const r = await step.run(deadline);
      if (r.passed + r.failed === 0) {
        console.log(`${name}: no test ran (${paths.join(" ")} ${args.join(" ")})`);
        return { passed: 0, failed: 1 };
      }
      return r;
    },
  };
}

/** The OTP 27/29 steps, in the order they run; `sh` runs and tees a command, `vitest` makes a vitest step. */
export function otpSteps(sh: Sh, vitest: Vitest): Step[] {
  const steps: Step[] = [];
  if (build) {
    steps.push({
      name: "agent-otp-setup",
      deadlineMin: 20,
      async run(deadline) {
        let failed = 0;
        for (const { suite } of SUITES) if ((await sh("agent-otp-setup", "bash", [CHROOT, "ensure", suite], deadline)).code !== 0) failed++;
        return { passed: SUITES.length - failed, failed };
      },
    });
  }
  for (const { otp, suite } of SUITES) {
    steps.push(inChroot(sh, `agent-eunit-otp${otp}`, 15, otp, suite, ["rebar3", "eunit"], eunitCounts));
    steps.push(inChroot(sh, `agent-xref-otp${otp}`, 10, otp, suite, ["rebar3", "xref"], oneCheck));
    if (matrix) steps.push(inChroot(sh, `agent-dialyzer-otp${otp}`, 30, otp, suite, ["rebar3", "dialyzer"], oneCheck));
  }
  for (const { otp, suite } of SUITES) {
    for (const w of UPGRADE_WORKFLOW) {
      if (!fs.existsSync(w.file) || (w.matrixOnly && !matrix)) continue;
      const args = !matrix && w.ci !== null ? ["-t", w.ci] : [];
      steps.push(vitestOnOtp(vitest, `${w.name}-otp${otp}`, w.deadlineMin, otp, suite, [w.file], args));
    }
  }
  // The Elixir 1.18 mix release on trixie's OTP 27: two `mix release` builds
  // (each compiling the agent) take minutes on a 2-core VM, so matrix only.
  if (matrix) steps.push(vitestOnOtp(vitest, "mix-release-otp27", 25, 27, "trixie", ["tests/otp"], []));
  return steps;
}
