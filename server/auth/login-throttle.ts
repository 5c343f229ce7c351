/**
 * Login throttling (decisions.md, "Lock-out"): before a password is checked
 * a slot is reserved, atomically, under a row lock, so the counts hold
 * whatever the transport (one batch, parallel requests, WebSocket):
 *
 * - per (account, address): at most 5 password checks per 15-minute window
 *   (a successful login empties it);
 * - per account: after 5 failures in a row, each further check must wait a
 *   delay that doubles (1 s, 2 s, 4 s … 5 min), whichever address it comes
 *   from, except an address that has logged in to this account before;
 * - per address: at most 30 failed checks a minute, whatever the accounts.
 *
 * Every counter is keyed by the username as typed, so an unknown user gets
 * exactly the answers a real one gets. Nothing is a hard lock: an attacker
 * can delay an account by minutes at most, and not from an address that
 * has used it.
 */
import type { PrismaClient } from "../../generated/prisma/client";
import { BeamdeckError } from "../errors";

export const THROTTLE = {
  pair: { checks: 5, windowMs: 15 * 60_000 },
  account: { freeFailures: 5, firstDelayMs: 1000, maxDelayMs: 5 * 60_000 },
  address: { checks: 30, windowMs: 60_000 },
  /** An address that logged in to the account this recently skips the account's delay. */
  knownAddressMs: 30 * 24 * 3600_000,
  /** Rows untouched this long are deleted. */
  keepMs: 24 * 3600_000,
} as const;

type Tx = Parameters<Parameters<PrismaClient["$transaction"]>[0]>[0];
interface Row {
  key: string;
  count: number;
  windowStart: Date;
  nextAllowedAt: Date | null;
}

// JSON keeps (username, address) unambiguous whatever the username holds.
const pairKey = (username: string, ip: string) => `pair:${JSON.stringify([username, ip])}`;
const pairPrefix = (username: string) => `pair:${JSON.stringify([username]).slice(0, -1)},`;
const accountKey = (username: string) => `acct:${username}`;
const addressKey = (ip: string) => `addr:${ip}`;

/** The delay after the n-th failure in a row (0 while n is within the free ones). */
export function accountDelayMs(failures: number): number {
  const over = failures - THROTTLE.account.freeFailures;
  if (over < 0) return 0;
  return Math.min(THROTTLE.account.maxDelayMs, THROTTLE.account.firstDelayMs * 2 ** Math.min(over, 20));
}

/** A windowed counter as it stands at `now` (a window that has ended starts again at 0). */
function windowed(row: Row, windowMs: number, now: Date): { count: number; windowStart: Date } {
  return row.windowStart.getTime() + windowMs <= now.getTime() ? { count: 0, windowStart: now } : { count: row.count, windowStart: row.windowStart };
}

async function lockRows(tx: Tx, keys: string[]): Promise<Map<string, Row>> {
  // One lock order for every caller, so two logins never deadlock.
  for (const key of [...keys].sort()) {
    await tx.$executeRaw`INSERT INTO "LoginThrottle" ("key") VALUES (${key}) ON CONFLICT ("key") DO NOTHING`;
    await tx.$queryRaw`SELECT "key" FROM "LoginThrottle" WHERE "key" = ${key} FOR UPDATE`;
  }
  const rows = await tx.loginThrottle.findMany({ where: { key: { in: keys } } });
  return new Map(rows.map((r) => [r.key, r]));
}

/**
 * Reserve one password check for `username` from `ip`, or throw the refusal
 * (BD_RATE_LIMITED for the address, BD_ACCOUNT_LOCKED for the account).
 * The check is counted as a failure until `loginSucceeded` says otherwise.
 */
export async function reserveLoginCheck(prisma: PrismaClient, username: string, ip: string | null, now = new Date()): Promise<void> {
  const addr = ip ?? "unknown";
  const known = ip ? Boolean(await prisma.loginAttempt.findFirst({ where: { username, ip, ok: true, at: { gt: new Date(now.getTime() - THROTTLE.knownAddressMs) } }, select: { id: true } })) : false;
  const refusal = await prisma.$transaction(async (tx: Tx) => {
    const rows = await lockRows(tx, [pairKey(username, addr), accountKey(username), addressKey(addr)]);
    const pairRow = rows.get(pairKey(username, addr));
    const acctRow = rows.get(accountKey(username));
    const addrRow = rows.get(addressKey(addr));
    if (!pairRow || !acctRow || !addrRow) throw new Error("login throttle rows missing after insert");

    const address = windowed(addrRow, THROTTLE.address.windowMs, now);
    if (address.count >= THROTTLE.address.checks) {
      const until = new Date(address.windowStart.getTime() + THROTTLE.address.windowMs);
      return new BeamdeckError("BD_RATE_LIMITED", `too many logins from this address; try again after ${until.toISOString()}`, { retryAt: until.toISOString() });
    }
    const pair = windowed(pairRow, THROTTLE.pair.windowMs, now);
    if (pair.count >= THROTTLE.pair.checks) {
      const until = new Date(pair.windowStart.getTime() + THROTTLE.pair.windowMs);
      return new BeamdeckError("BD_ACCOUNT_LOCKED", `too many failed logins for this account from this address; try again after ${until.toISOString()}`, {
        retryAt: until.toISOString(),
      });
    }
    if (!known && acctRow.nextAllowedAt && acctRow.nextAllowedAt > now) {
      return new BeamdeckError("BD_ACCOUNT_LOCKED", `repeated failed logins for this account; next attempt allowed after ${acctRow.nextAllowedAt.toISOString()}`, {
        retryAt: acctRow.nextAllowedAt.toISOString(),
      });
    }

    const failures = acctRow.count + 1;
    const delay = accountDelayMs(failures);
    await tx.loginThrottle.update({ where: { key: addrRow.key }, data: { count: address.count + 1, windowStart: address.windowStart, updatedAt: now } });
    await tx.loginThrottle.update({ where: { key: pairRow.key }, data: { count: pair.count + 1, windowStart: pair.windowStart, updatedAt: now } });
    await tx.loginThrottle.update({ where: { key: acctRow.key }, data: { count: failures, nextAllowedAt: delay ? new Date(now.getTime() + delay) : null, updatedAt: now } });
    return null;
  });
  if (refusal) throw refusal;
}

/**
 * The password was right: the account's and this (account, address)'s
 * counters start again, and the address gets its slot back (only failures
 * use up an address's 30 a minute, so an office behind one NAT can log in).
 */
export async function loginSucceeded(prisma: PrismaClient, username: string, ip: string | null): Promise<void> {
  await prisma.loginThrottle.deleteMany({ where: { key: { in: [pairKey(username, ip ?? "unknown"), accountKey(username)] } } });
  await prisma.loginThrottle.updateMany({ where: { key: addressKey(ip ?? "unknown"), count: { gt: 0 } }, data: { count: { decrement: 1 } } });
}

/** An admin reset the password or re-enabled the user: no delay left on the account. */
export async function clearAccountThrottle(prisma: PrismaClient, username: string): Promise<void> {
  await prisma.loginThrottle.deleteMany({ where: { OR: [{ key: accountKey(username) }, { key: { startsWith: pairPrefix(username) } }] } });
}

/** When the account's next password check is allowed, if it is delayed now. */
export async function accountDelayedUntil(prisma: PrismaClient, username: string, now = new Date()): Promise<Date | null> {
  const row = await prisma.loginThrottle.findUnique({ where: { key: accountKey(username) } });
  return row?.nextAllowedAt && row.nextAllowedAt > now ? row.nextAllowedAt : null;
}

let lastPrune = 0;
/** Drop counters nobody has touched for a day (at most once a minute per process). */
export async function pruneLoginThrottle(prisma: PrismaClient, now = new Date()): Promise<void> {
  if (now.getTime() - lastPrune < 60_000) return;
  lastPrune = now.getTime();
  await prisma.loginThrottle.deleteMany({ where: { updatedAt: { lt: new Date(now.getTime() - THROTTLE.keepMs) } } });
}
