/**
 * Agent handshake bench (issue 16): how long an agent waits for `welcome`
 * when many dial one instance at once and each database round trip costs
 * something (a busy or distant PostgreSQL). A real `beamdeck server` on a real
 * PostgreSQL reached through a local TCP proxy that delays every chunk by
 * `BEAMDECK_BENCH_DB_DELAY_MS` (default 10) each way; synthetic agents
 * (tools/loadgen) dial at once, `BEAMDECK_BENCH_HANDSHAKE_AGENTS` (default
 * 120) of them, 200 processes each, four rounds: the first binds the names,
 * the others are agents coming back. Time from dial to `welcome`, per round.
 */
import fs from "node:fs";
import net from "node:net";
import os from "node:os";
import path from "node:path";
import { SyntheticAgent } from "../../tools/loadgen/agent";
import { startPostgres } from "../support/postgres";
import { startServer } from "../support/server";

const ROUNDS = 4;
/** The agent's own handshake timeout: an agent not welcomed within it gives up. */
const WELCOME_BOUND_MS = 15_000;

export interface HandshakeRound {
  round: number;
  agents: number;
  welcomed: number;
  failed: number;
  p50: number;
  p90: number;
  p99: number;
  max: number;
}

/** A TCP proxy to 127.0.0.1:`port` that delays every chunk by `delayMs` (in order: equal timeouts fire in order). */
async function slowProxy(port: number, delayMs: number): Promise<net.Server> {
  const proxy = net.createServer((client) => {
    const upstream = net.connect(port, "127.0.0.1");
    const pipe = (from: net.Socket, to: net.Socket) => from.on("data", (d) => setTimeout(() => to.write(d), delayMs));
    pipe(client, upstream);
    pipe(upstream, client);
    const end = () => {
      client.destroy();
      upstream.destroy();
    };
    for (const s of [client, upstream]) {
      s.on("close", end);
      s.on("error", end);
    }
  });
  await new Promise<void>((r) => proxy.listen(0, "127.0.0.1", () => r()));
  return proxy;
}

export async function handshakeBench(): Promise<HandshakeRound[]> {
  const n = Math.max(1, Math.min(1000, Number(process.env.BEAMDECK_BENCH_HANDSHAKE_AGENTS ?? 120)));
  const delayMs = Math.max(0, Math.min(1000, Number(process.env.BEAMDECK_BENCH_DB_DELAY_MS ?? 10)));
  const pg = await startPostgres();
  const direct = new URL(await pg.createDatabase(`handshake_${Date.now()}`));
  const proxy = await slowProxy(Number(direct.port), delayMs);
  const viaProxy = new URL(direct);
  viaProxy.port = String((proxy.address() as net.AddressInfo).port);
  const server = await startServer({ databaseUrl: viaProxy.toString(), dataDir: fs.mkdtempSync(path.join(os.tmpdir(), "beamdeck-handshake-")) });
  const rounds: HandshakeRound[] = [];
  try {
    const token = await server.agentToken("handshake bench", "hs_*");
    for (let round = 1; round <= ROUNDS; round++) {
      const agents = Array.from({ length: n }, (_, i) => new SyntheticAgent({ url: server.agentUrl, token, node: `hs_${i}@bench`, processCount: 200, intervalMs: 0 }));
      const times: number[] = [];
      let failed = 0;
      await Promise.all(
        agents.map(async (a) => {
          const t0 = Date.now();
          try {
            await a.connect();
            times.push(a.welcomedAt - t0);
          } catch {
            failed += 1;
          }
        }),
      );
      times.sort((x, y) => x - y);
      const q = (p: number) => times[Math.min(times.length - 1, Math.floor(p * times.length))] ?? -1;
      rounds.push({ round, agents: n, welcomed: times.filter((t) => t <= WELCOME_BOUND_MS).length, failed, p50: q(0.5), p90: q(0.9), p99: q(0.99), max: times.at(-1) ?? -1 });
      await Promise.all(agents.map((a) => a.disconnect()));
      // Let the instance mark them disconnected before they come back.
      await new Promise((r) => setTimeout(r, 3000));
    }
  } finally {
    await server.stop();
    proxy.close();
    await pg.stop();
  }
  console.log(`\n== agent handshake: ${n} agents dial one instance at once, database +${delayMs} ms each way (ms from dial to welcome; round 1 binds the names)`);
  console.log("  round  welcomed  failed    p50    p90    p99    max");
  for (const r of rounds)
    console.log(`  ${String(r.round).padStart(5)}  ${String(r.welcomed).padStart(8)}  ${String(r.failed).padStart(6)}  ${[r.p50, r.p90, r.p99, r.max].map((v) => String(v).padStart(5)).join("  ")}`);
  return rounds;
}
