/**
 * Benchmarks report; they do not pass or fail. Each prints its own table;
 * the Erlang ones also print a `BENCH_JSON {...}` line that is collected into
 * a summary (tests/.out/bench.json). `npm run bench -- agent events` runs
 * only the named parts (agent, footprint, table, events, cli, scale, handshake); `agent` also runs
 * the lint and preview benchmarks inside each OTP chroot present, with that
 * OTP's own compile of the agent, one table row per OTP
 * (tests/bench/agent-otp.ts); `footprint` takes
 * `BEAMDECK_BENCH_SIZES` (default 10000,100000,1000000).
 */
import { spawnSync } from "node:child_process";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { agentOtpBench } from "../tests/bench/agent-otp";
import { cliBench, printCliTable } from "../tests/bench/cli";
import { ingestBench, latencyBench } from "../tests/bench/events";
import { footprintBench } from "../tests/bench/footprint";
import { handshakeBench } from "../tests/bench/handshake";
import { scaleBench } from "../tests/bench/scale";
import { tableBench } from "../tests/bench/table";

const summary: Record<string, unknown> = {};
// Each Erlang benchmark run (the lint corpus, 100k or 1M processes) on a loaded 2-core VM.
const ERL_TIMEOUT_MS = 30 * 60_000;

function printTable(title: string, row: Record<string, number | string>): void {
  console.log(`\n== ${title}`);
  const keys = Object.keys(row);
  const w = Math.max(...keys.map((k) => k.length));
  for (const k of keys) console.log(`  ${k.padEnd(w)}  ${row[k]}`);
}

function erlangBenches(): void {
  const ebin = path.resolve("agent/_build/default/lib/beamdeck_agent/ebin");
  const out = fs.mkdtempSync(path.join(os.tmpdir(), "beamdeck-bench-"));
  const sources = fs.readdirSync("agent/bench").filter((f) => f.endsWith(".erl"));
  const c = spawnSync("erlc", ["-o", out, "-pa", ebin, ...sources.map((f) => path.join("agent/bench", f))], { stdio: "inherit", timeout: 120_000 });
  if (c.status !== 0) throw new Error("compiling agent/bench failed");
  for (const f of sources) {
    const mod = f.replace(/\.erl$/, "");
    console.log(`\n== ${mod} (Erlang/OTP ${spawnSync("erl", ["-noshell", "-eval", 'io:format("~s",[erlang:system_info(otp_release)]),halt().'], { encoding: "utf8", timeout: 60_000 }).stdout})`);
    const r = spawnSync("erl", ["-noshell", "+P", "1000000", "-pa", ebin, "-pa", out, "-eval", `${mod}:main(), halt().`], {
      encoding: "utf8",
      maxBuffer: 64 * 1024 * 1024,
      timeout: ERL_TIMEOUT_MS,
      killSignal: "SIGKILL",
    });
    if (r.error) console.log(`${mod}: ${r.error.message}`);
    const lines = (r.stdout + r.stderr).split("\n");
    for (const l of lines) if (!l.startsWith("BENCH_JSON ")) console.log(l);
    const j = lines.find((l) => l.startsWith("BENCH_JSON "));
    if (j) summary[mod] = JSON.parse(j.slice("BENCH_JSON ".length));
  }
}

async function main(): Promise<void> {
  const only = process.argv.slice(2);
  const want = (name: string) => only.length === 0 || only.includes(name);
  if (want("agent")) {
    erlangBenches();
    // The lint and preview benchmarks again on each newer OTP present (the chroots).
    summary.agentOtp = agentOtpBench({ lint: summary.beamdeck_agent_lint_bench, preview: summary.beamdeck_agent_preview_bench });
  }
  if (want("footprint")) summary.footprint = await footprintBench();
  if (want("table")) {
    const r = tableBench();
    summary.table = r;
    printTable("process table reads at 100k processes (server, ms; baseline = full sort per request)", r);
  }
  if (want("events")) {
    const lat = await latencyBench();
    summary.latency = lat;
    printTable("report-to-subscriber latency, ms (real node → server → tRPC WebSocket; goal p99 < 250)", lat);
    const ing = await ingestBench();
    summary.ingest = ing;
    printTable("event ingest, one server on the embedded database (baseline = bare single-row inserts)", ing);
  }
  if (want("cli")) {
    const rows = await cliBench();
    summary.cli = rows;
    printCliTable(rows);
  }
  if (want("scale")) summary.scale = await scaleBench();
  if (want("handshake")) summary.handshake = await handshakeBench();
  fs.mkdirSync("tests/.out", { recursive: true });
  fs.writeFileSync("tests/.out/bench.json", JSON.stringify(summary, null, 2));
  console.log("\n(summary written to tests/.out/bench.json)");
}

main().catch((e) => {
  console.error(`bench: ${(e as Error).stack ?? e}`);
  process.exit(1);
});
