/** API tokens for the CLI and pipelines: a role, an optional expiry, revocable. */
import type { PrismaClient } from "../../generated/prisma/client";
import { BeamdeckError } from "../errors";
import type { Principal } from "./principal";
import { asRole, lowerRole, type Role } from "./roles";
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

type TokenRow = NonNullable<Awaited<ReturnType<typeof loadToken>>>;

function loadToken(prisma: PrismaClient, id: string) {
  return prisma.apiToken.findUnique({ where: { id }, include: { user: true } });
}

/**
 * What a stored token may do now, or why it may not (issue 10, item 12): a
 * token never outranks its owner's current role, dies with its owner's
 * disabling, and with "log out everywhere" or a password reset (tokens made
 * before that instant, as sessions are). Tokens with no owner keep their role.
 */
export function tokenStanding(row: TokenRow, now = Date.now()): { ok: true; role: Role } | { ok: false; error: BeamdeckError } {
  if (row.revokedAt) return { ok: false, error: new BeamdeckError("BD_TOKEN_REVOKED", `API token ${row.id} was revoked at ${row.revokedAt.toISOString()}`) };
  if (row.expiresAt && row.expiresAt.getTime() <= now) {
    return { ok: false, error: new BeamdeckError("BD_TOKEN_EXPIRED", `API token ${row.id} expired at ${row.expiresAt.toISOString()}`) };
  }
  const own = asRole(row.role);
  if (!row.user) return { ok: true, role: own };
  if (row.user.disabledAt) return { ok: false, error: new BeamdeckError("BD_TOKEN_REVOKED", `API token ${row.id} belongs to a disabled user (${row.user.username})`) };
  if (row.createdAt < row.user.sessionsValidAfter) {
    return {
      ok: false,
      error: new BeamdeckError(
        "BD_TOKEN_REVOKED",
        `API token ${row.id} was ended when ${row.user.username} logged out everywhere or had the password reset (${row.user.sessionsValidAfter.toISOString()}); create a new token`,
      ),
    };
  }
  return { ok: true, role: lowerRole(own, asRole(row.user.role)) };
}

/** Resolve a bearer token; throws with the precise reason when it is not usable. */
export async function apiTokenPrincipal(prisma: PrismaClient, token: string): Promise<Principal> {
  const id = tokenId("api", token);
  const row = id ? await loadToken(prisma, id) : null;
  if (!row || !tokenMatches(token, row.hash)) throw new BeamdeckError("BD_TOKEN_INVALID");
  const now = Date.now();
  const standing = tokenStanding(row, now);
  if (!standing.ok) throw standing.error;
  if ((lastTouched.get(row.id) ?? 0) < now - 60_000) {
    lastTouched.set(row.id, now);
    await prisma.apiToken.update({ where: { id: row.id }, data: { lastUsedAt: new Date(now) } }).catch(() => {});
  }
  return { kind: "token", tokenId: row.id, label: row.label, role: standing.role, userId: row.userId, username: row.user?.username ?? null };
}

/** Is the token still usable with the role it was accepted with? (open sockets) */
export async function apiTokenStillValid(prisma: PrismaClient, id: string, role: Role): Promise<boolean> {
  const row = await loadToken(prisma, id);
  if (!row) return false;
  const standing = tokenStanding(row);
  return standing.ok && standing.role === role;
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
