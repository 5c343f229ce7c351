/**
 * Event benchmarks, one run, one machine:
 * - report-to-subscriber latency: a real node's supervisor reports, from the
 *   logger's timestamp on the node to arrival at a tRPC WebSocket subscriber
 *   (the browser's transport), p50/p99 over ≥ 200 events;
 * - ingest throughput of one server (events/s stored and acknowledged),
 *   next to the bare database insert rate measured in the same run.
 */
import { stopAll } from "../../tools/beam/nodes";
import { startAgentNode, waitConnected } from "../support/beam-node";
import { connectRaw, isRefusal } from "../support/raw-agent";
import { startServer } from "../support/server";
import { wsClient } from "../support/trpc-clients";
import { openDatabase } from "../../server/storage/db";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";

function pct(xs: number[], p: number): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor((p / 100) * s.length))];
}

export async function latencyBench(count = 250): Promise<Record<string, number>> {
  const server = await startServer();
  try {
    const { node } = await startAgentNode(server);
    await waitConnected(server, node.name);
    const { trpc, close } = wsClient(server.url, { token: server.apiToken });
    const lat: number[] = [];
    await new Promise<void>((resolve, reject) => {
      const sub = trpc.events.onEvents.subscribe(
        { node: node.name },
        {
          onData: (evs) => {
            const now = Date.now();
            for (const e of evs) if (e.kind === "crash_report" && (e.reason ?? "").includes("bd_latency")) lat.push(now - e.at);
            if (lat.length >= count) {
              sub.unsubscribe();
              resolve();
            }
          },
          onError: reject,
        },
      );
      // Paced: one report every 20 ms, as a busy node might produce them.
      setTimeout(() => void node.rpc(`spawn(fun() -> [begin proc_lib:spawn(fun() -> exit({bd_latency, I}) end), timer:sleep(20) end || I <- lists:seq(1, ${count})] end), ok`), 500);
      setTimeout(() => reject(new Error(`only ${lat.length} events arrived`)), 60_000);
    });
    close();
    return { events: lat.length, p50: pct(lat, 50), p90: pct(lat, 90), p99: pct(lat, 99), max: Math.max(...lat) };
  } finally {
    await stopAll();
    await server.stop();
  }
}

export async function ingestBench(total = 20_000, batch = 200): Promise<Record<string, number>> {
  // Baseline: the same rows inserted straight into the same kind of database.
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "beamdeck-bench-db-"));
  const db = await openDatabase("bench", { BEAMDECK_DATA_DIR: dir });
  const t0 = performance.now();
  for (let i = 0; i < total / 10; i += 1) {
    await db.prisma.event.create({ data: { node: "base@h", bootId: "x", seq: i + 1, at: new Date(), kind: "crash_report", data: { i } } });
  }
  const baseRate = total / 10 / ((performance.now() - t0) / 1000);
  await db.close();

  const server = await startServer();
  try {
    const token = await server.agentToken("bench", true);
    const agent = await connectRaw(server.agentUrl, token, "ingest@bench");
    if (isRefusal(agent)) throw new Error(agent.body);
    // Events count only for the boot the hello announced (a socket cannot write another boot's seqs).
    const boot = "1ce5be7c".repeat(4);
    await agent.hello({ bootId: boot });
    const start = performance.now();
    let acked = 0;
    agent.ws.on("message", (d) => {
      const f = JSON.parse(d.toString()) as { type: string; eventSeq?: number };
      if (f.type === "ack") acked = Math.max(acked, f.eventSeq ?? 0);
    });
    for (let seq = 1; seq <= total; seq += 1) {
      agent.send({
        type: "event",
        seq,
        bootId: boot,
        at: Date.now(),
        kind: "supervisor_report",
        context: "child_terminated",
        supervisor: "bench_sup",
        reason: { text: "killed", truncated: false, atom: "killed" },
        offender: { id: "w", pid: `<0.${seq}.0>` },
      });
      if (seq % batch === 0) await new Promise((r) => setImmediate(r));
    }
    while (acked < total) {
      await new Promise((r) => setTimeout(r, 20));
      if (performance.now() - start > 300_000) throw new Error(`only ${acked} of ${total} acknowledged`);
    }
    const secs = (performance.now() - start) / 1000;
    agent.close();
    return {
      events: total,
      seconds: Number(secs.toFixed(2)),
      perSecond: Math.round(total / secs),
      baselineInsertsPerSecond: Math.round(baseRate),
      ratioVsBaseline: Number((total / secs / baseRate).toFixed(2)),
    };
  } finally {
    await server.stop();
  }
}
