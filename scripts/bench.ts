/**
 * Benchmarks report; they do not pass or fail. Each prints its own table;
 * the Erlang ones also print a `BENCH_JSON {...}` line that is collected into
 * a summary (tests/.out/bench.json). `npm run bench -- agent events` runs
 * only the named parts (agent, footprint, table, events, scale); `footprint` takes
 * `BEAMDECK_BENCH_SIZES` (default 10000,100000,1000000).
 */
import { spawnSync } from "node:child_process";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { ingestBench, latencyBench } from "../tests/bench/events";
import { footprintBench } from "../tests/bench/footprint";
import { scaleBench } from "../tests/bench/scale";
import { tableBench } from "../tests/bench/table";

const summary: Record<string, unknown> = {};

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
  const c = spawnSync("erlc", ["-o", out, "-pa", ebin, ...sources.map((f) => path.join("agent/bench", f))], { stdio: "inherit" });
  if (c.status !== 0) throw new Error("compiling agent/bench failed");
  for (const f of sources) {
    const mod = f.replace(/\.erl$/, "");
    console.log(`\n== ${mod} (Erlang/OTP ${spawnSync("erl", ["-noshell", "-eval", 'io:format("~s",[erlang:system_info(otp_release)]),halt().'], { encoding: "utf8" }).stdout})`);
    const r = spawnSync("erl", ["-noshell", "+P", "1000000", "-pa", ebin, "-pa", out, "-eval", `${mod}:main(), halt().`], { encoding: "utf8", maxBuffer: 64 * 1024 * 1024 });
    const lines = (r.stdout + r.stderr).split("\n");
    for (const l of lines) if (!l.startsWith("BENCH_JSON ")) console.log(l);
    const j = lines.find((l) => l.startsWith("BENCH_JSON "));
    if (j) summary[mod] = JSON.parse(j.slice("BENCH_JSON ".length));
  }
}

async function main(): Promise<void> {
  const only = process.argv.slice(2);
  const want = (name: string) => only.length === 0 || only.includes(name);
  if (want("agent")) erlangBenches();
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
  if (want("scale")) summary.scale = await scaleBench();
  fs.mkdirSync("tests/.out", { recursive: true });
  fs.writeFileSync("tests/.out/bench.json", JSON.stringify(summary, null, 2));
  console.log("\n(summary written to tests/.out/bench.json)");
}

main().catch((e) => {
  console.error(`bench: ${(e as Error).stack ?? e}`);
  process.exit(1);
});
