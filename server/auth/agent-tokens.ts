/**
 * Agent tokens and node-name bindings (docs/operations.md, "Security model").
 *
 * The binding holds both ways: a plain token is bound to the first node name
 * that uses it, and a node name is bound to the first token that claims it
 * (`Node.boundTokenId`); every other token is refused that name, fleet tokens
 * included. A fleet token claims only names matching the pattern it was
 * created with. Only an admin releases or rebinds a name (audited by callers).
 * Checked at the WebSocket upgrade (401/403 with a one-line reason) and
 * again while connected (revocation).
 */
import { z } from "zod";
import type { PrismaClient } from "../../generated/prisma/client";
import { BeamdeckError } from "../errors";
import { newToken, tokenId, tokenMatches } from "./secrets";

/** A fleet pattern: a node-name glob where `*` matches any run of characters. */
export const fleetPattern = z
  .string()
  .min(1)
  .max(255)
  .regex(/^[A-Za-z0-9_.*@-]+$/, "letters, digits, _ . - @ and * only (e.g. shop_*@*)")
  .refine((p) => p.replace(/\*/g, "").length > 0 || p === "*", "a pattern needs at least one literal character, or is * alone");

export const fleetGroup = z.string().min(1).max(100);

type AgentTokenRow = Awaited<ReturnType<PrismaClient["agentToken"]["findUniqueOrThrow"]>>;
/** `lastUsedAt` is a hint for admins: written at most this often per token. */
const LAST_USED_EVERY_MS = 60_000;

export function fleetPatternMatches(pattern: string, node: string): boolean {
  const re = pattern
    .split("*")
    .map((part) => part.replace(/[.+?^${}()|[\]\\-]/g, "\\$&"))
    .join(".*");
  return new RegExp(`^${re}$`).test(node);
}

export async function createAgentToken(
  prisma: PrismaClient,
  input: { label: string; fleetPattern?: string | null; fleetGroup?: string | null; createdBy?: string | null },
): Promise<{ id: string; token: string }> {
  if (input.fleetGroup && !input.fleetPattern) throw new BeamdeckError("BD_BAD_INPUT", "a fleet group needs a fleet pattern");
  let pattern: string | null = null;
  if (input.fleetPattern) {
    const p = fleetPattern.safeParse(input.fleetPattern);
    if (!p.success) throw new BeamdeckError("BD_BAD_INPUT", `fleet pattern: ${p.error.issues[0]?.message ?? "invalid"}`);
    pattern = p.data;
  }
  const t = newToken("agent");
  await prisma.agentToken.create({
    data: {
      id: t.id,
      hash: t.hash,
      label: input.label,
      fleet: pattern !== null,
      fleetPattern: pattern,
      fleetGroup: input.fleetGroup ?? null,
      createdBy: input.createdBy ?? null,
    },
  });
  return { id: t.id, token: t.token };
}

export type AgentAuth = { ok: true; tokenId: string; label: string; fleet: boolean; fleetGroup: string | null } | { ok: false; status: 401 | 403; reason: string };

/**
 * May this token open `/agent` as `node`? `liveElsewhere` answers whether a
 * socket under that name still answers keepalive (a fleet token never takes
 * over a live name; the same plain token may: that is a node restart).
 */
export async function checkAgentToken(
  prisma: PrismaClient,
  token: string | null,
  node: string | null,
  liveElsewhere: (node: string, tokenId: string) => Promise<boolean> = async () => false,
): Promise<AgentAuth> {
  if (!token) return { ok: false, status: 401, reason: "missing agent token (Authorization: Bearer <token>)" };
  const id = tokenId("agent", token);
  // The token and the name's binding in one round trip (the handshake runs under the agent's 15 s timeout).
  const [row] = id
    ? await prisma.$queryRawUnsafe<(AgentTokenRow & { nodeBoundTo: string | null })[]>(
        `SELECT t.*, (SELECT n."boundTokenId" FROM "Node" n WHERE n."name" = $2) AS "nodeBoundTo" FROM "AgentToken" t WHERE t."id" = $1`,
        id,
        node,
      )
    : [];
  if (!row || !tokenMatches(token, row.hash)) return { ok: false, status: 401, reason: "agent token not recognised" };
  if (row.revokedAt) return { ok: false, status: 401, reason: `agent token ${row.id} was revoked` };
  if (!node) return { ok: false, status: 401, reason: "missing X-Beamdeck-Node header" };

  const boundTo = row.nodeBoundTo;
  if (boundTo && boundTo !== row.id) return { ok: false, status: 403, reason: `node ${node} is bound to another agent token (${boundTo})` };

  if (row.fleet) {
    if (!row.fleetPattern || !fleetPatternMatches(row.fleetPattern, node)) {
      return { ok: false, status: 403, reason: `fleet token ${row.id} may only claim names matching ${row.fleetPattern ?? "(none)"}, not ${node}` };
    }
    if (await liveElsewhere(node, row.id)) {
      return { ok: false, status: 403, reason: `node ${node} is connected and answering; a fleet token does not take over a live name` };
    }
  } else {
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
  if (!boundTo) {
    const claimed = await claimNodeName(prisma, node, row.id);
    if (claimed !== row.id) return { ok: false, status: 403, reason: `node ${node} is bound to another agent token (${claimed})` };
  }
  // Off the handshake's path, and at most once a minute per token (a fleet reconnecting at once writes it once).
  if (!row.lastUsedAt || Date.now() - row.lastUsedAt.getTime() > LAST_USED_EVERY_MS) {
    void prisma.agentToken
      .update({ where: { id: row.id }, data: { lastUsedAt: new Date() } })
      .catch((e) => console.warn(`[beamdeck] agent token ${row.id}: last use not recorded: ${(e as Error).message}`));
  }
  return { ok: true, tokenId: row.id, label: row.label, fleet: row.fleet, fleetGroup: row.fleetGroup };
}

/** Bind an unbound name to a token; returns the token the name is bound to afterwards (race-safe: one statement). */
async function claimNodeName(prisma: PrismaClient, node: string, id: string): Promise<string | null> {
  const [row] = await prisma.$queryRawUnsafe<{ boundTokenId: string | null }[]>(
    `INSERT INTO "Node" ("name", "boundTokenId") VALUES ($1, $2)
     ON CONFLICT ("name") DO UPDATE SET "boundTokenId" = COALESCE("Node"."boundTokenId", EXCLUDED."boundTokenId")
     RETURNING "boundTokenId"`,
    node,
    id,
  );
  return row?.boundTokenId ?? null;
}

/** Admin: release a node name (the next token to use it claims it) or rebind it to a token. */
export async function setNodeBinding(prisma: PrismaClient, node: string, tokenIdOrNull: string | null): Promise<{ previous: string | null }> {
  const row = await prisma.node.findUnique({ where: { name: node }, select: { boundTokenId: true } });
  if (!row) throw new BeamdeckError("BD_NOT_FOUND", `no node ${node}`);
  if (tokenIdOrNull) {
    const t = await prisma.agentToken.findUnique({ where: { id: tokenIdOrNull } });
    if (!t) throw new BeamdeckError("BD_NOT_FOUND", `no agent token ${tokenIdOrNull}`);
    if (t.revokedAt) throw new BeamdeckError("BD_CONFLICT", `agent token ${tokenIdOrNull} is revoked`);
    if (t.fleet && t.fleetPattern && !fleetPatternMatches(t.fleetPattern, node)) {
      throw new BeamdeckError("BD_CONFLICT", `fleet token ${t.id} covers ${t.fleetPattern}, not ${node}`);
    }
    if (!t.fleet && t.boundNode && t.boundNode !== node) {
      throw new BeamdeckError("BD_CONFLICT", `agent token ${t.id} is bound to node ${t.boundNode}`);
    }
    if (!t.fleet) await prisma.agentToken.update({ where: { id: t.id }, data: { boundNode: node } });
  }
  await prisma.node.update({ where: { name: node }, data: { boundTokenId: tokenIdOrNull } });
  return { previous: row.boundTokenId };
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
    fleetPattern: r.fleetPattern,
    fleetGroup: r.fleetGroup,
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
