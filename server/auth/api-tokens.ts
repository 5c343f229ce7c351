/** API tokens for the CLI and pipelines: a role, an optional expiry, revocable. */
import type { PrismaClient } from "../../generated/prisma/client";
import { BeamdeckError } from "../errors";
import type { Principal } from "./principal";
import { asRole, type Role } from "./roles";
import { newToken, tokenId, tokenMatches } from "./secrets";

export async function createApiToken(
  prisma: PrismaClient,
  input: { label: string; role: Role; expiresAt?: Date | null; userId?: string | null; createdBy?: string | null },
): Promise<{ id: string; token: string }> {
  const t = newToken("api");
  await prisma.apiToken.create({
    data: {
      id: t.id,
      hash: t.hash,
      label: input.label,
      role: input.role,
      expiresAt: input.expiresAt ?? null,
      userId: input.userId ?? null,
      createdBy: input.createdBy ?? null,
    },
  });
  return { id: t.id, token: t.token };
}

const lastTouched = new Map<string, number>();

/** Resolve a bearer token; throws with the precise reason when it is not usable. */
export async function apiTokenPrincipal(prisma: PrismaClient, token: string): Promise<Principal> {
  const id = tokenId("api", token);
  const row = id ? await prisma.apiToken.findUnique({ where: { id }, include: { user: true } }) : null;
  if (!row || !tokenMatches(token, row.hash)) throw new BeamdeckError("BD_TOKEN_INVALID");
  if (row.revokedAt) throw new BeamdeckError("BD_TOKEN_REVOKED", `API token ${row.id} was revoked at ${row.revokedAt.toISOString()}`);
  const now = Date.now();
  if (row.expiresAt && row.expiresAt.getTime() <= now) {
    throw new BeamdeckError("BD_TOKEN_EXPIRED", `API token ${row.id} expired at ${row.expiresAt.toISOString()}`);
  }
  if (row.user?.disabledAt) throw new BeamdeckError("BD_TOKEN_REVOKED", `API token ${row.id} belongs to a disabled user`);
  if ((lastTouched.get(row.id) ?? 0) < now - 60_000) {
    lastTouched.set(row.id, now);
    await prisma.apiToken.update({ where: { id: row.id }, data: { lastUsedAt: new Date(now) } }).catch(() => {});
  }
  return { kind: "token", tokenId: row.id, label: row.label, role: asRole(row.role), userId: row.userId, username: row.user?.username ?? null };
}

export async function listApiTokens(prisma: PrismaClient) {
  const rows = await prisma.apiToken.findMany({ orderBy: { createdAt: "asc" } });
  return rows.map((r) => ({
    id: r.id,
    label: r.label,
    role: r.role,
    createdAt: r.createdAt,
    createdBy: r.createdBy,
    expiresAt: r.expiresAt,
    lastUsedAt: r.lastUsedAt,
    revokedAt: r.revokedAt,
  }));
}

export async function revokeApiToken(prisma: PrismaClient, id: string): Promise<void> {
  const { count } = await prisma.apiToken.updateMany({ where: { id, revokedAt: null }, data: { revokedAt: new Date() } });
  if (count === 0) {
    const exists = await prisma.apiToken.findUnique({ where: { id } });
    throw new BeamdeckError(exists ? "BD_CONFLICT" : "BD_NOT_FOUND", exists ? `API token ${id} is already revoked` : `no API token ${id}`);
  }
}
