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
 */
import { spawnSync } from "node:child_process";
import { eunitCounts, type Result, type Step } from "./test-step";

/** run-tests.ts's bounded runner: the step's name, the command, and the time it must end by. */
type Sh = (step: string, cmd: string, args: string[], deadline: number) => Promise<{ code: number; output: string }>;

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

/** The OTP 27/29 steps, in the order they run; `sh` runs and tees a command. */
export function otpSteps(sh: Sh): Step[] {
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
  return steps;
}
