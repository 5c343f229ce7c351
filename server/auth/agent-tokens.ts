/**
 * Agent tokens. A plain token is bound to the first node that uses it; a
 * fleet token may serve many nodes. Checked at the WebSocket upgrade
 * (401/403 with a one-line reason) and again while connected (revocation).
 */
import type { PrismaClient } from "../../generated/prisma/client";
import { BeamdeckError } from "../errors";
import { newToken, tokenId, tokenMatches } from "./secrets";

export async function createAgentToken(
  prisma: PrismaClient,
  input: { label: string; fleet?: boolean; createdBy?: string | null },
): Promise<{ id: string; token: string }> {
  const t = newToken("agent");
  await prisma.agentToken.create({
    data: { id: t.id, hash: t.hash, label: input.label, fleet: input.fleet ?? false, createdBy: input.createdBy ?? null },
  });
  return { id: t.id, token: t.token };
}

export type AgentAuth = { ok: true; tokenId: string; label: string } | { ok: false; status: 401 | 403; reason: string };

export async function checkAgentToken(prisma: PrismaClient, token: string | null, node: string | null): Promise<AgentAuth> {
  if (!token) return { ok: false, status: 401, reason: "missing agent token (Authorization: Bearer <token>)" };
  const id = tokenId("agent", token);
  const row = id ? await prisma.agentToken.findUnique({ where: { id } }) : null;
  if (!row || !tokenMatches(token, row.hash)) return { ok: false, status: 401, reason: "agent token not recognised" };
  if (row.revokedAt) return { ok: false, status: 401, reason: `agent token ${row.id} was revoked` };
  if (!node) return { ok: false, status: 401, reason: "missing X-Beamdeck-Node header" };
  if (!row.fleet) {
    if (row.boundNode && row.boundNode !== node) {
      return { ok: false, status: 403, reason: `agent token ${row.id} is bound to node ${row.boundNode}, not ${node}` };
    }
    if (!row.boundNode) {
      // Bind atomically: of two nodes racing with one new token, one wins.
      const { count } = await prisma.agentToken.updateMany({ where: { id: row.id, boundNode: null }, data: { boundNode: node } });
      if (count === 0) {
        const again = await prisma.agentToken.findUnique({ where: { id: row.id } });
        if (again?.boundNode !== node) {
          return { ok: false, status: 403, reason: `agent token ${row.id} is bound to node ${again?.boundNode}, not ${node}` };
        }
      }
    }
  }
  await prisma.agentToken.update({ where: { id: row.id }, data: { lastUsedAt: new Date() } });
  return { ok: true, tokenId: row.id, label: row.label };
}

/** Still valid for this node? Used to re-check connected agents. */
export async function agentTokenStillValid(prisma: PrismaClient, id: string): Promise<boolean> {
  const row = await prisma.agentToken.findUnique({ where: { id }, select: { revokedAt: true } });
  return Boolean(row && !row.revokedAt);
}

export async function listAgentTokens(prisma: PrismaClient) {
  const rows = await prisma.agentToken.findMany({ orderBy: { createdAt: "asc" } });
  return rows.map((r) => ({
    id: r.id,
    label: r.label,
    fleet: r.fleet,
    boundNode: r.boundNode,
    createdAt: r.createdAt,
    createdBy: r.createdBy,
    lastUsedAt: r.lastUsedAt,
    revokedAt: r.revokedAt,
  }));
}

export async function revokeAgentToken(prisma: PrismaClient, id: string): Promise<void> {
  const { count } = await prisma.agentToken.updateMany({ where: { id, revokedAt: null }, data: { revokedAt: new Date() } });
  if (count === 0) {
    const exists = await prisma.agentToken.findUnique({ where: { id } });
    throw new BeamdeckError(exists ? "BD_CONFLICT" : "BD_NOT_FOUND", exists ? `agent token ${id} is already revoked` : `no agent token ${id}`);
  }
}
