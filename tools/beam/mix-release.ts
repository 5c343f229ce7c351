/**
 * The Elixir `mix release` of demo/mix/bd_mix (mix's defaults, beams
 * stripped, the agent a path dependency) with its hot upgrade, built by
 * demo/builder/beamdeck_mixrel.erl on an OTP chroot that ships Elixir
 * (trixie: OTP 27, Elixir 1.18) and cached under .cache/mix-releases-LABEL/.
 *
 * @module
 */
import { execFile } from "node:child_process";
import fs from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { onOtp, type OtpTarget } from "./otp";
import { REPO_ROOT } from "./releases";

const BUILDER = path.join(REPO_ROOT, "demo", "builder", "beamdeck_mixrel.erl");
// Two `mix release` runs (each compiling the agent) on a loaded 2-core VM.
const BUILD_TIMEOUT_MS = 900_000;

export const MIX_RELEASE = { name: "bd_mix", versions: ["1.0.0", "1.1.0"] } as const;

export interface MixRelease {
  name: string;
  hash: string;
  dir: string;
  /** A pristine target system at baseVersion, the upgrade package in releases/. Copy it (instantiate()). */
  templateDir: string;
  baseVersion: string;
  versions: string[];
  packages: string[];
  otp: string;
  erts: string;
  elixir: string;
  cached: boolean;
}

/** Mix boot scripts name their libraries through $RELEASE_LIB; a node started from `dir` needs these emulator flags. */
export function mixBootArgs(dir: string): string[] {
  return ["-boot_var", "RELEASE_LIB", path.join(dir, "lib")];
}

/** Builds (or finds in the cache) bd_mix on `otp`, which must be a chroot with Elixir. */
export async function buildMixRelease(otp: OtpTarget): Promise<MixRelease> {
  if (otp.suite === null) throw new Error("the mix release is built in an OTP chroot (Elixir 1.18 on trixie), not on the host");
  const spec = [
    "#{",
    `  name => ${JSON.stringify(MIX_RELEASE.name)},`,
    `  project_dir => ${JSON.stringify(path.join(REPO_ROOT, "demo", "mix", MIX_RELEASE.name))},`,
    `  versions => [${MIX_RELEASE.versions.map((v) => JSON.stringify(v)).join(", ")}],`,
    `  agent_dir => ${JSON.stringify(path.join(REPO_ROOT, "agent"))},`,
    `  cache_dir => ${JSON.stringify(path.join(REPO_ROOT, ".cache", `mix-releases-${otp.label}`))}`,
    "}.",
    "",
  ].join("\n");
  const specDir = await fs.mkdtemp(path.join(os.tmpdir(), "beamdeck-mixrel-"));
  const specFile = path.join(specDir, "bd_mix.spec");
  await fs.writeFile(specFile, spec);
  try {
    const builder = onOtp(otp, "escript", [BUILDER, specFile]);
    const stdout = await new Promise<string>((resolve, reject) => {
      execFile(builder.cmd, builder.args, { timeout: BUILD_TIMEOUT_MS, maxBuffer: 16 * 1024 * 1024 }, (err, out, errOut) => {
        if (err) reject(new Error(`building the mix release on OTP ${otp.otp} failed:\n${errOut.trim() || err.message}`));
        else resolve(out);
      });
    });
    return JSON.parse(stdout.trim().split("\n").pop() ?? "") as MixRelease;
  } finally {
    await fs.rm(specDir, { recursive: true, force: true });
  }
}
