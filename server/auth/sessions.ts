/**
 * Login sessions (httpOnly, SameSite=Lax cookies), login rate limiting and
 * lock-out. A session dies when it expires, when its user logs out
 * everywhere (sessionsValidAfter) or when the user is disabled.
 */
import type { PrismaClient } from "../../generated/prisma/client";
import { BeamdeckError } from "../errors";
import { dummyHash, verifyPassword } from "./passwords";
import type { Principal } from "./principal";
import { asRole } from "./roles";
import { newSessionSecret, sha256 } from "./secrets";

export const SESSION_COOKIE = "beamdeck_session";
export const SESSION_TTL_MS = 12 * 3600_000;
export const LOCKOUT = { failures: 5, minutes: 15 };
export const IP_LIMIT = { attempts: 30, windowMs: 60_000 };

export interface LoginInput {
  username: string;
  password: string;
  ip?: string | null;
  userAgent?: string | null;
}

export async function login(prisma: PrismaClient, input: LoginInput): Promise<{ cookie: string; principal: Principal; expiresAt: Date }> {
  const now = new Date();
  if (input.ip) {
    const recent = await prisma.loginAttempt.count({
      where: { ip: input.ip, ok: false, at: { gt: new Date(now.getTime() - IP_LIMIT.windowMs) } },
    });
    if (recent >= IP_LIMIT.attempts) {
      throw new BeamdeckError("BD_RATE_LIMITED", "too many failed logins from this address; wait a minute and try again");
    }
  }
  const user = await prisma.user.findUnique({ where: { username: input.username } });
  if (user?.lockedUntil && user.lockedUntil > now) {
    await prisma.loginAttempt.create({ data: { username: input.username, ip: input.ip ?? null, ok: false } });
    throw new BeamdeckError(
      "BD_ACCOUNT_LOCKED",
      `account locked after ${LOCKOUT.failures} failed logins until ${user.lockedUntil.toISOString()}; ask an admin or wait`,
      { lockedUntil: user.lockedUntil.toISOString() },
    );
  }
  const ok = user && !user.disabledAt ? await verifyPassword(user.passwordHash, input.password) : (await verifyPassword(await dummyHash(), input.password), false);
  await prisma.loginAttempt.create({ data: { username: input.username, ip: input.ip ?? null, ok: Boolean(ok) } });
  if (!user || !ok) {
    if (user) {
      const failures = user.failedLogins + 1;
      const lock = failures >= LOCKOUT.failures ? new Date(now.getTime() + LOCKOUT.minutes * 60_000) : null;
      await prisma.user.update({
        where: { id: user.id },
        data: { failedLogins: lock ? 0 : failures, lockedUntil: lock },
      });
      if (lock) {
        throw new BeamdeckError("BD_ACCOUNT_LOCKED", `wrong password; account now locked for ${LOCKOUT.minutes} minutes after ${LOCKOUT.failures} failed logins`, {
          lockedUntil: lock.toISOString(),
        });
      }
    }
    throw new BeamdeckError("BD_BAD_CREDENTIALS");
  }
  await prisma.user.update({ where: { id: user.id }, data: { failedLogins: 0, lockedUntil: null } });
  const { cookie, id } = newSessionSecret();
  const expiresAt = new Date(now.getTime() + SESSION_TTL_MS);
  await prisma.session.create({
    data: { id, userId: user.id, expiresAt, ip: input.ip ?? null, userAgent: input.userAgent?.slice(0, 255) ?? null },
  });
  return {
    cookie,
    expiresAt,
    principal: { kind: "user", userId: user.id, username: user.username, role: asRole(user.role), sessionId: id },
  };
}

const TOUCH_EVERY_MS = 60_000;

export async function sessionPrincipal(prisma: PrismaClient, cookie: string): Promise<Principal | null> {
  if (!/^[A-Za-z0-9_-]{43}$/.test(cookie)) return null;
  const id = sha256(cookie);
  const s = await prisma.session.findUnique({ where: { id }, include: { user: true } });
  const now = new Date();
  if (!s || s.expiresAt <= now || s.user.disabledAt || s.createdAt < s.user.sessionsValidAfter) return null;
  if (now.getTime() - s.lastUsedAt.getTime() > TOUCH_EVERY_MS) {
    await prisma.session.update({ where: { id }, data: { lastUsedAt: now } }).catch(() => {});
  }
  return { kind: "user", userId: s.userId, username: s.user.username, role: asRole(s.user.role), sessionId: id };
}

export async function logout(prisma: PrismaClient, sessionId: string): Promise<void> {
  await prisma.session.deleteMany({ where: { id: sessionId } });
}

/** End every session of the user, on every server instance (checked per request). */
export async function logoutEverywhere(prisma: PrismaClient, userId: string): Promise<number> {
  await prisma.user.update({ where: { id: userId }, data: { sessionsValidAfter: new Date() } });
  const { count } = await prisma.session.deleteMany({ where: { userId } });
  return count;
}

export function sessionCookieHeader(cookie: string, expiresAt: Date, secure: boolean): string {
  return [
    `${SESSION_COOKIE}=${cookie}`,
    "Path=/",
    "HttpOnly",
    "SameSite=Lax",
    `Expires=${expiresAt.toUTCString()}`,
    secure ? "Secure" : "",
  ]
    .filter(Boolean)
    .join("; ");
}

export function clearSessionCookieHeader(): string {
  return `${SESSION_COOKIE}=; Path=/; HttpOnly; SameSite=Lax; Max-Age=0`;
}

export function readCookie(header: string | undefined, name: string): string | null {
  if (!header) return null;
  for (const part of header.split(";")) {
    const [k, ...v] = part.trim().split("=");
    if (k === name) return decodeURIComponent(v.join("="));
  }
  return null;
}
