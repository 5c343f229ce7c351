/**
 * Is a principal still allowed in? HTTP requests authenticate every time;
 * a WebSocket authenticates once, so open sockets are re-checked with this
 * (after a logout, a token revocation, a disabled user, an expiry).
 */
import type { PrismaClient } from "../../generated/prisma/client";
import { apiTokenStillValid } from "./api-tokens";
import type { Principal } from "./principal";

export async function stillValid(prisma: PrismaClient, p: Principal): Promise<boolean> {
  const now = new Date();
  if (p.kind === "user") {
    const s = await prisma.session.findUnique({ where: { id: p.sessionId }, include: { user: true } });
    return Boolean(s && s.expiresAt > now && !s.user.disabledAt && s.createdAt >= s.user.sessionsValidAfter && s.user.role === p.role);
  }
  // A demoted owner lowers the token's role: the socket reconnects with the new one.
  return apiTokenStillValid(prisma, p.tokenId, p.role);
}
