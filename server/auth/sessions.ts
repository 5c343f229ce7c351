/**
 * Login sessions (httpOnly, SameSite=Lax cookies, Secure over TLS). Login
 * throttling is in login-throttle.ts. A session dies when it expires, when its user logs out
 * everywhere (sessionsValidAfter) or when the user is disabled.
 */
import type { PrismaClient } from "../../generated/prisma/client";
import { BeamdeckError } from "../errors";
import { loginSucceeded, pruneLoginThrottle, reserveLoginCheck } from "./login-throttle";
import { dummyHash, verifyPassword } from "./passwords";
import type { Principal } from "./principal";
import { asRole } from "./roles";
import { newSessionSecret, sha256 } from "./secrets";

export const SESSION_COOKIE = "beamdeck_session";
export const SESSION_TTL_MS = 12 * 3600_000;
export interface LoginInput {
  username: string;
  password: string;
  ip?: string | null;
  userAgent?: string | null;
}

/**
 * Check a password and open a session. The throttle reserves the check
 * first (login-throttle.ts); an unknown or disabled user costs the same
 * argon2 work and gets the same answer as a wrong password.
 */
export async function login(prisma: PrismaClient, input: LoginInput): Promise<{ cookie: string; principal: Principal; expiresAt: Date }> {
  const now = new Date();
  const ip = input.ip ?? null;
  void pruneLoginThrottle(prisma, now).catch(() => {});
  try {
    await reserveLoginCheck(prisma, input.username, ip, now);
  } catch (e) {
    await prisma.loginAttempt.create({ data: { username: input.username, ip, ok: false } });
    throw e;
  }
  const user = await prisma.user.findUnique({ where: { username: input.username } });
  const ok = user && !user.disabledAt ? await verifyPassword(user.passwordHash, input.password) : (await verifyPassword(await dummyHash(), input.password), false);
  await prisma.loginAttempt.create({ data: { username: input.username, ip, ok: Boolean(ok) } });
  if (!user || !ok) throw new BeamdeckError("BD_BAD_CREDENTIALS");
  await loginSucceeded(prisma, input.username, ip);
  const { cookie, id } = newSessionSecret();
  const expiresAt = new Date(now.getTime() + SESSION_TTL_MS);
  await prisma.session.create({
    data: { id, userId: user.id, expiresAt, ip, userAgent: input.userAgent?.slice(0, 255) ?? null },
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
  return [`${SESSION_COOKIE}=${cookie}`, "Path=/", "HttpOnly", "SameSite=Lax", `Expires=${expiresAt.toUTCString()}`, secure ? "Secure" : ""].filter(Boolean).join("; ");
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
