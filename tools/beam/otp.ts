/**
 * Which Erlang/OTP the harness builds releases with and runs nodes on: the
 * host's (bookworm, OTP 25) or a newer one inside a Debian chroot of
 * scripts/otp-chroot.sh (trixie: OTP 27 / Elixir 1.18, sid: OTP 29).
 *
 * Chosen once per process by BEAMDECK_TEST_OTP (unset, "25" or "host": the
 * host; "27" or "29": that chroot), so any test file built on
 * tools/beam (releases.ts, nodes.ts, probe.ts) runs unchanged on every OTP:
 * `BEAMDECK_TEST_OTP=29 npx vitest run tests/integration/upgrade-agent.test.ts`.
 *
 * @module
 */
import { spawnSync } from "node:child_process";
import path from "node:path";
import { fileURLToPath } from "node:url";

const CHROOT_SCRIPT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..", "..", "scripts", "otp-chroot.sh");

export interface OtpTarget {
  /** The OTP major release the target runs. */
  readonly otp: 25 | 27 | 29;
  /** The chroot's Debian suite; null for the host. */
  readonly suite: "trixie" | "sid" | null;
  /** A short label for cache dirs and messages: "host", "otp27", "otp29". */
  readonly label: string;
}

export const HOST_OTP: OtpTarget = { otp: 25, suite: null, label: "host" };
const CHROOTS: Record<string, OtpTarget> = {
  "27": { otp: 27, suite: "trixie", label: "otp27" },
  "29": { otp: 29, suite: "sid", label: "otp29" },
};

/** The target named by BEAMDECK_TEST_OTP; an unknown value is an error, never a silent host run. */
export function testOtp(env: Record<string, string | undefined> = process.env): OtpTarget {
  const v = (env.BEAMDECK_TEST_OTP ?? "").trim();
  if (v === "" || v === "25" || v === "host") return HOST_OTP;
  const t = CHROOTS[v];
  if (!t) throw new Error(`BEAMDECK_TEST_OTP=${v}: expected 25 (or host), 27 or 29`);
  return t;
}

/** Whether the chroot of `t` is built and complete (the host always is). */
export function otpPresent(t: OtpTarget): boolean {
  if (t.suite === null) return true;
  return spawnSync("bash", [CHROOT_SCRIPT, "present", t.suite], { stdio: "ignore", timeout: 10_000 }).status === 0;
}

/**
 * `cmd args` as a command line that runs on `t`: unchanged on the host,
 * else through `otp-chroot.sh exec SUITE`, which keeps the cwd, the
 * environment and the paths of this clone and the temp dir, and execs down
 * to `cmd` so the pid (and its signals) stay `cmd`'s.
 */
export function onOtp(t: OtpTarget, cmd: string, args: readonly string[]): { cmd: string; args: string[] } {
  if (t.suite === null) return { cmd, args: [...args] };
  if (!otpPresent(t)) throw new Error(`no ${t.suite} chroot for OTP ${t.otp}; build it with: bash scripts/otp-chroot.sh ensure ${t.suite} (or npm run test:otp)`);
  return { cmd: "bash", args: [CHROOT_SCRIPT, "exec", t.suite, cmd, ...args] };
}
