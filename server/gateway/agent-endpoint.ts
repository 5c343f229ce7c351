/**
 * The `/agent` WebSocket endpoint: the agent token is checked at the HTTP
 * upgrade (401/403 with a one-line reason, before any WebSocket exists), then
 * the socket becomes an AgentSession.
 */
import type { IncomingMessage } from "node:http";
import type { Duplex } from "node:stream";
import { WebSocketServer } from "ws";
import type { PrismaClient } from "../../generated/prisma/client";
import { checkAgentToken } from "../auth/agent-tokens";
import type { AgentRegistry } from "../agents/registry";
import { AgentSession } from "../agents/session";

export const DEFAULT_MAX_FRAME = 1024 * 1024;

function refuse(socket: Duplex, status: 400 | 401 | 403 | 503, reason: string): void {
  const text = { 400: "Bad Request", 401: "Unauthorized", 403: "Forbidden", 503: "Service Unavailable" }[status];
  const body = `${reason}\n`;
  socket.end(`HTTP/1.1 ${status} ${text}\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: ${Buffer.byteLength(body)}\r\nConnection: close\r\n\r\n${body}`);
}

export function agentEndpoint(prisma: PrismaClient, registry: AgentRegistry, maxFrame = DEFAULT_MAX_FRAME) {
  // ws's own limit is only a backstop (it closes with 1009); the protocol cap
  // is checked per message in AgentSession so that the close says 4400 and why.
  const wss = new WebSocketServer({ noServer: true, maxPayload: maxFrame * 4, perMessageDeflate: false });
  wss.on("error", () => {});

  return {
    wss,
    async handleUpgrade(req: IncomingMessage, socket: Duplex, head: Buffer): Promise<void> {
      socket.on("error", () => socket.destroy());
      const auth = req.headers.authorization;
      const token = auth?.startsWith("Bearer ") ? auth.slice(7).trim() : null;
      const nodeHeader = req.headers["x-beamdeck-node"];
      const node = (Array.isArray(nodeHeader) ? nodeHeader[0] : nodeHeader)?.trim() || null;
      if (node && node.length > 255) return refuse(socket, 400, "X-Beamdeck-Node is too long");
      let verdict: Awaited<ReturnType<typeof checkAgentToken>>;
      try {
        verdict = await checkAgentToken(prisma, token, node, (name) => registry.answersKeepalive(name));
      } catch (e) {
        return refuse(socket, 503, `cannot check the agent token now: ${(e as Error).message.split("\n")[0]}`);
      }
      if (!verdict.ok) {
        console.warn(`[beamdeck] agent ${node ?? "?"} from ${req.socket.remoteAddress} refused: ${verdict.reason}`);
        return refuse(socket, verdict.status, verdict.reason);
      }
      const { tokenId, fleetGroup } = verdict;
      wss.handleUpgrade(req, socket, head, (ws) => {
        const session = new AgentSession(ws, node as string, tokenId, req.socket.remoteAddress, registry, maxFrame);
        session.fleetGroup = fleetGroup;
      });
    },
  };
}
