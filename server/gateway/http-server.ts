/**
 * One HTTP server on one port: Next.js pages, tRPC over HTTP and WebSocket,
 * and the agents' `/agent` endpoint. Upgrades are routed by path.
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import type { Duplex } from "node:stream";
import { createHTTPHandler } from "@trpc/server/adapters/standalone";
import { applyWSSHandler } from "@trpc/server/adapters/ws";
import { type WebSocket, WebSocketServer } from "ws";
import { authenticate, contextFactory } from "../context";
import { appRouter } from "../routers/_app";
import type { Services } from "../services";
import { agentEndpoint } from "./agent-endpoint";
import { auditExport } from "./audit-export";
import { INTERNAL_CALL_PATH } from "./internal-call";
import { internalEndpoint } from "./internal-endpoint";
import { metricsEndpoint } from "./metrics";
import { MAX_BATCH_CALLS, MAX_BODY_BYTES, MAX_WS_MESSAGE_CALLS } from "./limits";
import { crossSiteReason, hasBearer, isSafeMethod } from "./same-origin";

export interface WebHandler {
  handle(req: IncomingMessage, res: ServerResponse): Promise<void> | void;
  upgrade?(req: IncomingMessage, socket: Duplex, head: Buffer): void;
}

/** Paths anyone may fetch: the login page and the static assets it needs. */
function isPublicPath(pathname: string): boolean {
  return pathname === "/login" || pathname.startsWith("/_next/") || pathname === "/favicon.ico" || pathname === "/healthz";
}

/**
 * Refusals made before any handler reads the body: an announced body over
 * the limit (413), a body where only pages are served (405), a
 * state-changing request from another origin that is not bearer-authenticated
 * (403). tRPC enforces the body limit itself while streaming, for bodies
 * that do not announce their length.
 */
function refuseRequest(req: IncomingMessage, publicUrl: string | null): { status: number; message: string } | null {
  const length = Number(req.headers["content-length"] ?? 0);
  if (length > MAX_BODY_BYTES) return { status: 413, message: `request body over ${MAX_BODY_BYTES} bytes` };
  if (isSafeMethod(req.method) || hasBearer(req)) return null;
  const crossSite = crossSiteReason(req, publicUrl);
  if (crossSite) return { status: 403, message: crossSite };
  const pathname = new URL(req.url ?? "/", "http://localhost").pathname;
  if (!pathname.startsWith("/api/trpc/")) return { status: 405, message: `${req.method} is not served here` };
  return null;
}

/**
 * A short plain-text answer. An unread body is drained into nothing (never
 * buffered) so the client reads the answer instead of a reset; a client
 * still sending after 10 s is cut off.
 */
function reply(req: IncomingMessage, res: ServerResponse, status: number, message: string): void {
  const unread = !req.complete && (req.headers["content-length"] !== undefined || req.headers["transfer-encoding"] !== undefined);
  res.writeHead(status, { "content-type": "text/plain" });
  res.end(`${message}\n`);
  if (unread) {
    // Closing at once would reset the connection under a client still sending, and lose this answer.
    req.resume();
    const cap = setTimeout(() => req.socket.destroy(), 10_000);
    cap.unref();
    req.once("end", () => clearTimeout(cap));
  }
}

function refuseUpgrade(socket: Duplex, status: number, message: string): void {
  socket.end(`HTTP/1.1 ${status} ${status === 403 ? "Forbidden" : "Error"}\r\ncontent-type: text/plain\r\nconnection: close\r\n\r\n${message}\n`);
}

/**
 * tRPC's WebSocket adapter runs every call of an array message at once and
 * has no `maxBatchSize`: a message with more than MAX_WS_MESSAGE_CALLS calls
 * closes the socket (1008) before the adapter sees it.
 */
function capWsBatches(ws: WebSocket): void {
  const emit = ws.emit.bind(ws) as (event: string | symbol, ...args: unknown[]) => boolean;
  ws.emit = ((event: string | symbol, ...args: unknown[]) => {
    if (event === "message" && tooManyCalls(args[0])) {
      ws.close(1008, `more than ${MAX_WS_MESSAGE_CALLS} calls in one message`);
      return false;
    }
    return emit(event, ...args);
  }) as WebSocket["emit"];
}

function tooManyCalls(data: unknown): boolean {
  const text = Buffer.isBuffer(data) ? data.toString("utf8") : typeof data === "string" ? data : "";
  if (!text.trimStart().startsWith("[")) return false;
  try {
    const parsed: unknown = JSON.parse(text);
    return Array.isArray(parsed) && parsed.length > MAX_WS_MESSAGE_CALLS;
  } catch {
    return false;
  }
}

/** `internalHere`: false when the internal route has a listener of its own (internal-listener.ts): this port then refuses it. */
export function createBeamdeckServer(services: Services, web: WebHandler | null, maxFrame?: number, internalHere = true) {
  const createContext = contextFactory(services);
  const trpcHttp = createHTTPHandler({ router: appRouter, basePath: "/api/trpc/", createContext, maxBodySize: MAX_BODY_BYTES, maxBatchSize: MAX_BATCH_CALLS });
  const trpcWss = new WebSocketServer({ noServer: true, maxPayload: 1024 * 1024 });
  trpcWss.on("error", () => {});
  // A socket error without a listener would take the whole process down.
  trpcWss.on("connection", (ws) => {
    ws.on("error", () => ws.terminate());
    capWsBatches(ws);
  });
  const trpcWs = applyWSSHandler({ wss: trpcWss, router: appRouter, createContext, keepAlive: { enabled: true, pingMs: 30_000, pongWaitMs: 10_000 } });
  const agents = agentEndpoint(services.prisma, services.registry, maxFrame);
  const internal = internalEndpoint(services, appRouter);

  const server: Server = createServer(async (req, res) => {
    const url = new URL(req.url ?? "/", "http://localhost");
    try {
      // Instance to instance: authenticated by its own MAC, not by cookie or origin.
      if (url.pathname === INTERNAL_CALL_PATH) {
        if (!internalHere) return reply(req, res, 404, "the internal route is not served on this port (BEAMDECK_INTERNAL_PORT)");
        return await internal(req, res);
      }
      const refusal = refuseRequest(req, services.publicUrl);
      if (refusal) return reply(req, res, refusal.status, refusal.message);
      if (url.pathname.startsWith("/api/trpc/")) return trpcHttp(req, res);
      if (url.pathname === "/api/audit/export") return await auditExport(services, req, res, url);
      if (url.pathname === "/metrics") return await metricsEndpoint(services, services.metrics, req, res);
      if (url.pathname === "/healthz") {
        // For load balancers: says the process is up, and nothing else; no database call, so a slow database does not fail it.
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
      // The browser sends the session cookie with any same-site upgrade, whatever page opened it.
      const crossSite = crossSiteReason(req, services.publicUrl);
      if (crossSite) return refuseUpgrade(socket, 403, crossSite);
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
