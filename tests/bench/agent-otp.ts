/**
 * The lint and preview benchmarks (agent/bench) on each OTP present: the
 * host's, then each chroot of scripts/otp-chroot.sh that is built (trixie:
 * OTP 27, sid: OTP 29), each with the agent compiled by that OTP's own
 * rebar3 and the corpus of that OTP's own beams. One table row per OTP.
 * A chroot that is not built is named as missing, not benched: building
 * one is `npm run test:otp`'s (or `otp-chroot.sh ensure`'s) job.
 */
import { spawnSync } from "node:child_process";
import { z } from "zod";

const CHROOT = "scripts/otp-chroot.sh";
const MODULES = ["beamdeck_agent_lint_bench", "beamdeck_agent_preview_bench"] as const;
// A compile and two benchmarks (1,000 beams linted twice, 100k processes) on a loaded 2-core VM.
const RUN_TIMEOUT_MS = 30 * 60_000;
const SUITES = [
  { otp: "27", suite: "trixie" },
  { otp: "29", suite: "sid" },
] as const;

const stats = z.object({ total_ms: z.number(), median_us: z.number(), p99_us: z.number(), max_us: z.number() });
/** beamdeck_agent_lint_bench's BENCH_JSON line. */
const lintJson = z.object({ otp: z.string(), modules: z.number(), stripped: stats, debug_info: stats, compared: z.number(), same_loops: z.number(), decoder_errors: z.number() });
/** beamdeck_agent_preview_bench's BENCH_JSON line. */
const previewJson = z.object({
  goalMs: z.number(),
  sizes: z.array(z.object({ label: z.number(), processes: z.number(), floorMs: z.number(), scanMs: z.number(), previewMs: z.number(), oldCodeMs: z.number() })),
});
export type LintBench = z.infer<typeof lintJson>;
export type PreviewBench = z.infer<typeof previewJson>;

export interface OtpBench {
  otp: string;
  where: string;
  lint: LintBench | null;
  preview: PreviewBench | null;
  /** Why a benchmark gave no figures (a failed compile, a crash, a timeout). */
  error: string | null;
}

/** The BENCH_JSON line a benchmark module printed, parsed; null when it printed none. */
export function benchJson(module: string, lines: string[]): unknown {
  const marker = `BENCH_JSON[${module}] `;
  const l = lines.find((x) => x.startsWith(marker)) ?? null;
  return l === null ? null : JSON.parse(l.slice(marker.length));
}

/**
 * A shell script for inside a chroot (cwd: the clone's agent/): compile the
 * agent with this OTP's rebar3 (its own _build, REBAR_BASE_DIR), the
 * benchmarks against it, and run each, tagging its BENCH_JSON line.
 */
function chrootScript(): string {
  const runs = MODULES.map((m) => `erl -noshell +P 1000000 -pa "$EBIN" -pa "$OUT" -eval '${m}:main(), halt().' | sed 's/^BENCH_JSON /BENCH_JSON[${m}] /'`);
  return [
    "set -e",
    "rebar3 compile >&2",
    'EBIN="$REBAR_BASE_DIR/default/lib/beamdeck_agent/ebin"',
    'OUT="$(mktemp -d)"',
    `erlc -o "$OUT" -pa "$EBIN" ${MODULES.map((m) => `bench/${m}.erl`).join(" ")}`,
    ...runs,
  ].join("\n");
}

function parse(otp: string, where: string, output: string, failure: string | null): OtpBench {
  const lines = output.split("\n");
  const lint = benchJson(MODULES[0], lines);
  const preview = benchJson(MODULES[1], lines);
  return { otp, where, lint: lint === null ? null : lintJson.parse(lint), preview: preview === null ? null : previewJson.parse(preview), error: failure };
}

/** The benchmarks on one chroot's OTP; null when that chroot is not built. */
function onChroot(otp: string, suite: string): OtpBench | null {
  if (spawnSync("bash", [CHROOT, "present", suite], { stdio: "ignore", timeout: 10_000 }).status !== 0) return null;
  console.log(`\n== lint and preview benchmarks on OTP ${otp} (${suite} chroot; compiling the agent there)`);
  const r = spawnSync("bash", [CHROOT, "run", suite, "sh", "-c", chrootScript()], { encoding: "utf8", timeout: RUN_TIMEOUT_MS, maxBuffer: 64 * 1024 * 1024, killSignal: "SIGKILL" });
  const out = `${r.stdout ?? ""}`;
  for (const l of out.split("\n")) if (!l.startsWith("BENCH_JSON[")) console.log(l);
  const failure = r.error ? `${r.error.message}` : r.status !== 0 ? `exit ${r.status}: ${(r.stderr ?? "").trim().split("\n").slice(-5).join(" | ")}` : null;
  return parse(otp, `${suite} chroot`, out, failure);
}

/** One row per OTP: the host's results (already run by bench.ts), then each chroot present. */
export function agentOtpBench(host: { lint: unknown; preview: unknown }): OtpBench[] {
  const hostOtp = spawnSync("erl", ["-noshell", "-eval", 'io:format("~s",[erlang:system_info(otp_release)]),halt().'], { encoding: "utf8", timeout: 60_000 }).stdout;
  const rows: OtpBench[] = [
    {
      otp: hostOtp,
      where: "host",
      lint: host.lint === undefined ? null : lintJson.parse(host.lint),
      preview: host.preview === undefined ? null : previewJson.parse(host.preview),
      error: null,
    },
  ];
  const missing: string[] = [];
  for (const { otp, suite } of SUITES) {
    const row = onChroot(otp, suite);
    if (row === null) missing.push(`OTP ${otp} (no ${suite} chroot: bash ${CHROOT} ensure ${suite})`);
    else rows.push(row);
  }
  printRows(rows);
  if (missing.length > 0) console.log(`  not benched: ${missing.join("; ")}`);
  return rows;
}

const at = (p: PreviewBench | null, n: number) => p?.sizes.find((s) => s.label === n) ?? null;

/** The per-OTP table (a row per OTP; `-` where a benchmark gave nothing). */
export function tableRows(rows: OtpBench[]): string[][] {
  const f = (x: number | undefined) => (x === undefined ? "-" : x.toFixed(1));
  const head = [
    "OTP",
    "where",
    "beams",
    "lint stripped ms",
    "debug_info ms",
    "per module median/p99 us (stripped)",
    "median/p99 us (debug_info)",
    "same loops",
    "preview 100k ms",
    "scan 100k ms",
    "floor 100k ms",
  ];
  const body = rows.map((r) => {
    const p = at(r.preview, 100_000);
    const l = r.lint;
    return [
      r.otp,
      r.error ? `${r.where} (${r.error})` : r.where,
      l ? String(l.modules) : "-",
      f(l?.stripped.total_ms),
      f(l?.debug_info.total_ms),
      l ? `${l.stripped.median_us}/${l.stripped.p99_us}` : "-",
      l ? `${l.debug_info.median_us}/${l.debug_info.p99_us}` : "-",
      l ? `${l.same_loops}/${l.compared}` : "-",
      f(p?.previewMs),
      f(p?.scanMs),
      f(p?.floorMs),
    ];
  });
  return [head, ...body];
}

function printRows(rows: OtpBench[]): void {
  const t = tableRows(rows);
  const w = t[0].map((_, i) => Math.max(...t.map((r) => r[i].length)));
  // A chroot's minimal OTP has fewer than 1,000 beams: then all of them (the `beams` column).
  console.log("\n== loop lint (the 1,000 largest beams of each OTP, stripped vs debug_info) and preview at 100k processes, per OTP");
  for (const r of t) console.log(`  ${r.map((c, i) => c.padEnd(w[i])).join("  ")}`);
}
