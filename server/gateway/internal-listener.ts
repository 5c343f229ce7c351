/**
 * The internal route on a listener of its own (`BEAMDECK_INTERNAL_PORT`,
 * `BEAMDECK_INTERNAL_HOST`), so that it need not be reachable through the
 * public port or a load balancer. It serves `/internal/call` and `/healthz`
 * (the other instances probe liveness at the advertised URL) and nothing
 * else; the public port then refuses `/internal/call`. Unset: the public
 * port serves it, as before.
 */
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import os from "node:os";
import { BeamdeckError } from "../errors";
import { appRouter } from "../routers/_app";
import type { Services } from "../services";
import type { Env } from "../storage/database-url";
import { INTERNAL_CALL_PATH } from "./internal-call";
import { internalEndpoint } from "./internal-endpoint";

export interface InternalListenerOptions {
  port: number;
  host: string;
}

/** The separate listener asked for, or null (the public port serves the route). Bad values are refused, naming them. */
export function internalListenerOptions(env: Env, publicHost: string): InternalListenerOptions | null {
  const raw = env.BEAMDECK_INTERNAL_PORT;
  if (raw === undefined || raw === "") {
    if (env.BEAMDECK_INTERNAL_HOST) throw new BeamdeckError("BD_BAD_INPUT", "BEAMDECK_INTERNAL_HOST is set without BEAMDECK_INTERNAL_PORT");
    return null;
  }
  const port = Number(raw);
  if (!/^\d+$/.test(raw) || port < 1 || port > 65_535) throw new BeamdeckError("BD_BAD_INPUT", `BEAMDECK_INTERNAL_PORT must be a port number (1-65535), not ${JSON.stringify(raw.slice(0, 40))}`);
  return { port, host: env.BEAMDECK_INTERNAL_HOST || publicHost };
}

/** Where the others reach a listener on `host`: this host's name when it listens on every address. */
export function listenerUrl(host: string, port: number): string {
  const h = host === "0.0.0.0" || host === "::" ? os.hostname() : host.includes(":") ? `[${host}]` : host;
  return `http://${h}:${port}`;
}

export async function startInternalListener(services: Services, o: InternalListenerOptions): Promise<{ url: string; close(): Promise<void> }> {
  const internal = internalEndpoint(services, appRouter);
  const server: Server = createServer(async (req, res) => {
    const pathname = new URL(req.url ?? "/", "http://localhost").pathname;
    try {
      if (pathname === INTERNAL_CALL_PATH) return await internal(req, res);
      if (pathname === "/healthz") {
        res.writeHead(200, { "content-type": "application/json" });
        return res.end('{"ok":true}');
      }
      res.writeHead(404, { "content-type": "text/plain" });
      res.end("only the internal route is served on this port\n");
    } catch (e) {
      console.error(`[beamdeck] internal ${req.method} ${pathname}: ${(e as Error).message}`);
      if (!res.headersSent) res.writeHead(500, { "content-type": "text/plain" });
      res.end("internal error\n");
    }
  });
  // No WebSocket here: an upgrade request gets its socket closed.
  server.on("upgrade", (_req, socket) => socket.destroy());
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(o.port, o.host, () => resolve());
  });
  const port = (server.address() as AddressInfo).port;
  return {
    url: listenerUrl(o.host, port),
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}
