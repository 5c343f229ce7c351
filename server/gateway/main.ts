/** `beamdeck server`: run one instance until SIGTERM/SIGINT. */
import type { Env } from "../storage/database-url";
import { startServer } from "./start";

export async function runServer(env: Env = process.env): Promise<void> {
  const port = Number(env.PORT ?? 4000);
  if (!Number.isInteger(port) || port < 0 || port > 65535) throw new Error(`PORT must be a port number, not "${env.PORT}"`);
  const host = env.HOST ?? "0.0.0.0";
  const server = await startServer({ port, host, web: env.BEAMDECK_NO_WEB !== "1", maxFrame: env.BEAMDECK_MAX_FRAME ? Number(env.BEAMDECK_MAX_FRAME) : undefined });
  console.log(`[beamdeck] listening on ${server.url} (agents: ws://${new URL(server.url).host}/agent)`);
  let stopping = false;
  const stop = async (signal: string) => {
    if (stopping) return;
    stopping = true;
    console.log(`[beamdeck] ${signal}: shutting down`);
    const force = setTimeout(() => process.exit(1), 10_000);
    force.unref();
    await server.close();
    process.exit(0);
  };
  process.on("SIGTERM", () => void stop("SIGTERM"));
  process.on("SIGINT", () => void stop("SIGINT"));
}

if (import.meta.url === `file://${process.argv[1]}`) {
  runServer().catch((e) => {
    console.error(`beamdeck: ${(e as Error).message}`);
    process.exit(1);
  });
}
