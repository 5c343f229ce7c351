/**
 * Real OTP releases of the demo apps, built by demo/builder/beamdeck_relbuild.erl
 * and cached under .cache/releases/NAME-HASH/ (see demo/README.md).
 *
 * @module
 */
import { execFile } from "node:child_process";
import fs from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { onOtp, testOtp, type OtpTarget } from "./otp";

export const REPO_ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..", "..");
const BUILDER = path.join(REPO_ROOT, "demo", "builder", "beamdeck_relbuild.erl");
const BUILD_TIMEOUT_MS = 300_000;

/** The demo releases and their versions, oldest (the base) first. */
export const RELEASES = {
  rel_test: ["0.1.0", "0.1.1", "0.1.2"],
  bd_counter: ["1.0.0", "1.1.0"],
  bd_checks: ["1.0.0", "1.1.0"],
  bd_loops: ["1.0.0", "1.1.0"],
} as const;

export type ReleaseName = keyof typeof RELEASES;

export interface Release {
  name: ReleaseName;
  /** Hash of every input; the cache key. */
  hash: string;
  kind: "elixir" | "erlang";
  /** .cache/releases/NAME-HASH */
  dir: string;
  /** Compiled libs, .rel, boot scripts, relups and release packages. */
  buildDir: string;
  /** A pristine target system at baseVersion, upgrade packages pending in releases/. Copy it; never run it in place. */
  templateDir: string;
  baseVersion: string;
  versions: string[];
  upgrades: Array<{ from: string; to: string }>;
  /** Release package names, as release_handler:unpack_release/1 takes them ("rel_test-0.1.1"). */
  packages: string[];
  erts: string;
  otp: string;
  elixir: string | null;
  /** Whether beamdeck_agent is in the release. */
  agent: boolean;
  /** Compiled without debug_info, as plain `erlc` does (BuildOptions.strip). */
  stripped: boolean;
  /** Found in the cache rather than built by this call. */
  cached: boolean;
  /** Wall time of the builder call (0 when memoised in this process). */
  buildMs: number;
}

export interface BuildOptions {
  /** Put beamdeck_agent (all of agent/src) in the release; default true. */
  agent?: boolean;
  /** Default: REPO_ROOT/.cache/releases (host), .cache/releases-otp27 and so on (a chroot's OTP). */
  cacheDir?: string;
  /** Compile the app and the agent without debug_info (Erlang releases only); default false. */
  strip?: boolean;
  /** The OTP that builds the release (its erlc, elixirc and systools); default testOtp(). */
  otp?: OtpTarget;
}

const memo = new Map<string, Promise<Release>>();

/**
 * Builds `name` with the builder (or finds it in the cache) and returns
 * where it is. Memoised per process; the builder answers from its cache in
 * well under a second when nothing changed.
 */
export function buildRelease(name: ReleaseName, opts: BuildOptions = {}): Promise<Release> {
  const agent = opts.agent ?? true;
  const strip = opts.strip ?? false;
  const otp = opts.otp ?? testOtp();
  // One cache dir per OTP: the builder prunes older builds of a name from
  // its cache dir, which must not throw away another OTP's.
  const cacheDir = opts.cacheDir ?? path.join(REPO_ROOT, ".cache", otp.suite === null ? "releases" : `releases-${otp.label}`);
  const key = `${name}|${agent}|${strip}|${cacheDir}|${otp.label}`;
  let p = memo.get(key);
  if (!p) {
    p = runBuilder(name, agent, strip, cacheDir, otp).catch((err: unknown) => {
      memo.delete(key);
      throw err;
    });
    memo.set(key, p);
  }
  return p;
}

async function runBuilder(name: ReleaseName, agent: boolean, strip: boolean, cacheDir: string, otp: OtpTarget): Promise<Release> {
  const spec = [
    "#{",
    `  name => ${erlString(name)},`,
    `  app_dir => ${erlString(path.join(REPO_ROOT, "demo", "apps", name))},`,
    `  versions => [${RELEASES[name].map(erlString).join(", ")}],`,
    `  agent_dir => ${agent ? erlString(path.join(REPO_ROOT, "agent")) : "none"},`,
    `  cache_dir => ${erlString(cacheDir)},`,
    `  strip => ${strip}`,
    "}.",
    "",
  ].join("\n");
  await fs.mkdir(cacheDir, { recursive: true });
  const specDir = await fs.mkdtemp(path.join(os.tmpdir(), "beamdeck-relbuild-"));
  const specFile = path.join(specDir, `${name}.spec`);
  await fs.writeFile(specFile, spec);
  const t0 = Date.now();
  try {
    // The builder runs on the target OTP, so the agent and the apps are
    // compiled by that OTP's own compiler (OTP 25 beams need not load on 29).
    const builder = onOtp(otp, "escript", [BUILDER, specFile]);
    const stdout = await new Promise<string>((resolve, reject) => {
      execFile(
        builder.cmd,
        builder.args,
        { timeout: BUILD_TIMEOUT_MS, maxBuffer: 16 * 1024 * 1024 },
        (err, out, errOut) => {
          if (err) {
            const why = errOut.trim() || err.message;
            reject(new Error(`building release ${name} on OTP ${otp.otp} failed:\n${why}`));
          } else resolve(out);
        },
      );
    });
    const last = stdout.trim().split("\n").pop() ?? "";
    const manifest = JSON.parse(last) as Omit<Release, "buildMs">;
    return { ...manifest, buildMs: Date.now() - t0 };
  } finally {
    await fs.rm(specDir, { recursive: true, force: true });
  }
}

/** An Erlang string literal. */
function erlString(s: string): string {
  return `"${s.replace(/\\/g, "\\\\").replace(/"/g, '\\"')}"`;
}

/**
 * Copies a release's template into `destDir` (which must not exist or be
 * empty), giving a target system of its own to run and upgrade. The
 * template is relocatable: bin/erl finds its root from where it is, and
 * releases/RELEASES names libraries relative to the root.
 */
export async function instantiate(templateDir: string, destDir: string): Promise<void> {
  const entries = await fs.readdir(destDir).catch(() => [] as string[]);
  if (entries.length > 0) throw new Error(`instantiate: ${destDir} is not empty`);
  await fs.mkdir(path.dirname(destDir), { recursive: true });
  await fs.cp(templateDir, destDir, { recursive: true, preserveTimestamps: true });
}

/** The version the target in `dir` boots (releases/start_erl.data: "ERTS_VSN REL_VSN"). */
export async function bootVersion(dir: string): Promise<string> {
  const data = await fs.readFile(path.join(dir, "releases", "start_erl.data"), "utf8");
  const vsn = data.trim().split(/\s+/)[1];
  if (!vsn) throw new Error(`${dir}/releases/start_erl.data: no release version`);
  return vsn;
}
