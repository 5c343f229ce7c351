/**
 * One HTTP server on one port: Next.js pages, tRPC over HTTP and WebSocket,
 * and the agents' `/agent` endpoint. Upgrades are routed by path.
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import type { Duplex } from "node:stream";
import { createHTTPHandler } from "@trpc/server/adapters/standalone";
import { applyWSSHandler } from "@trpc/server/adapters/ws";
import { WebSocketServer } from "ws";
import { authenticate, contextFactory } from "../context";
import { appRouter } from "../routers/_app";
import type { Services } from "../services";
import { agentEndpoint } from "./agent-endpoint";
import { auditExport } from "./audit-export";
import { metricsEndpoint } from "./metrics";

export interface WebHandler {
  handle(req: IncomingMessage, res: ServerResponse): Promise<void> | void;
  upgrade?(req: IncomingMessage, socket: Duplex, head: Buffer): void;
}

/** Paths anyone may fetch: the login page and the static assets it needs. */
function isPublicPath(pathname: string): boolean {
  return (
    pathname === "/login" ||
    pathname.startsWith("/_next/") ||
    pathname === "/favicon.ico" ||
    pathname === "/healthz"
  );
}

export function createBeamdeckServer(services: Services, web: WebHandler | null, maxFrame?: number) {
  const createContext = contextFactory(services);
  const trpcHttp = createHTTPHandler({ router: appRouter, basePath: "/api/trpc/", createContext });
  const trpcWss = new WebSocketServer({ noServer: true, maxPayload: 1024 * 1024 });
  trpcWss.on("error", () => {});
  // A socket error without a listener would take the whole process down.
  trpcWss.on("connection", (ws) => ws.on("error", () => ws.terminate()));
  const trpcWs = applyWSSHandler({ wss: trpcWss, router: appRouter, createContext, keepAlive: { enabled: true, pingMs: 30_000, pongWaitMs: 10_000 } });
  const agents = agentEndpoint(services.prisma, services.registry, maxFrame);

  const server: Server = createServer(async (req, res) => {
    const url = new URL(req.url ?? "/", "http://localhost");
    try {
      if (url.pathname.startsWith("/api/trpc/")) return trpcHttp(req, res);
      if (url.pathname === "/api/audit/export") return await auditExport(services, req, res, url);
      if (url.pathname === "/metrics") return await metricsEndpoint(services, services.metrics, req, res);
      if (url.pathname === "/healthz") {
        // For load balancers: says the process is up, and nothing else.
        res.writeHead(200, { "content-type": "application/json" });
        return res.end('{"ok":true}');
      }
      if (!web) {
        res.writeHead(404, { "content-type": "text/plain" });
        return res.end("the dashboard is not served by this instance (BEAMDECK_NO_WEB)\n");
      }
      // Pages hold no data (they fetch through tRPC), but nothing is served
      // to an anonymous visitor except the login page.
      if (!isPublicPath(url.pathname)) {
        const { principal } = await authenticate(services, req);
        if (!principal) {
          res.writeHead(302, { location: `/login?next=${encodeURIComponent(url.pathname + url.search)}` });
          return res.end();
        }
      }
      await web.handle(req, res);
    } catch (e) {
      console.error(`[beamdeck] ${req.method} ${url.pathname}: ${(e as Error).stack ?? e}`);
      if (!res.headersSent) res.writeHead(500, { "content-type": "text/plain" });
      res.end("internal error\n");
    }
  });

  server.on("upgrade", (req, socket, head) => {
    const pathname = new URL(req.url ?? "/", "http://localhost").pathname;
    if (pathname === "/agent") return void agents.handleUpgrade(req, socket, head);
    if (pathname === "/api/trpc-ws") {
      return trpcWss.handleUpgrade(req, socket, head, (ws) => trpcWss.emit("connection", ws, req));
    }
    if (web?.upgrade && pathname.startsWith("/_next/")) return web.upgrade(req, socket, head);
    socket.destroy();
  });

  return {
    server,
    /** Tell browsers to reconnect elsewhere, close agents, stop accepting. */
    async close(): Promise<void> {
      trpcWs.broadcastReconnectNotification();
      await services.registry.shutdown();
      for (const c of trpcWss.clients) c.terminate();
      trpcWss.close();
      agents.wss.close();
      await new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      });
    },
  };
}
