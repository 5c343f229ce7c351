/**
 * The per-node upgrade lock: who may change a node's release now. One row
 * per node (`NodeUpgradeLock`), held by a rollout (`rollout:<id>`) or by one
 * manual step (`step:<commandId>`) until `expiresAt`, renewed while held and
 * released at the end. So no node is driven by two rollouts, by a rollout
 * and a manual step, or twice after a server restart.
 *
 * Every change is one conditional statement (INSERT … ON CONFLICT … WHERE,
 * UPDATE/DELETE … WHERE holder), never read-then-write: several instances
 * on one PostgreSQL cannot both take it.
 */
import type { PrismaClient } from "../../generated/prisma/client";
import { BeamdeckError } from "../errors";
import { DB_NOW, dbNowPlus as dbIn } from "../storage/db-clock";

// Expiry by the database's clock (storage/db-clock.ts), not this instance's.
export const rolloutHolder = (rolloutId: string) => `rollout:${rolloutId}`;
export const stepHolder = (commandId: string) => `step:${commandId}`;

/**
 * Take the lock for `holder`, or extend it if `holder` already has it. A
 * lock held by someone else is taken only once expired. Returns whether
 * `holder` holds it now.
 */
export async function acquireNodeLock(prisma: PrismaClient, node: string, holder: string, ttlMs: number): Promise<boolean> {
  const rows = await prisma.$queryRawUnsafe<{ holder: string }[]>(
    `INSERT INTO "NodeUpgradeLock" ("node", "holder", "expiresAt", "acquiredAt")
     VALUES ($1, $2, ${dbIn("$3")}, ${DB_NOW})
     ON CONFLICT ("node") DO UPDATE SET "holder" = EXCLUDED."holder", "expiresAt" = EXCLUDED."expiresAt",
       "acquiredAt" = CASE WHEN "NodeUpgradeLock"."holder" = EXCLUDED."holder" THEN "NodeUpgradeLock"."acquiredAt" ELSE EXCLUDED."acquiredAt" END
     WHERE "NodeUpgradeLock"."holder" = EXCLUDED."holder" OR "NodeUpgradeLock"."expiresAt" < ${DB_NOW}
     RETURNING "holder"`,
    node,
    holder,
    Math.round(ttlMs),
  );
  return rows.length === 1 && rows[0].holder === holder;
}

/** Take the lock or say who holds it (BD_CONFLICT). */
export async function requireNodeLock(prisma: PrismaClient, node: string, holder: string, ttlMs: number): Promise<void> {
  if (await acquireNodeLock(prisma, node, holder, ttlMs)) return;
  const held = await nodeLockHolder(prisma, node);
  throw new BeamdeckError("BD_CONFLICT", `${node} is being upgraded by ${describeHolder(held ?? "someone")}; one upgrade of a node at a time`);
}

/** Extend the lock if `holder` still has it (false: lost, e.g. it expired and someone else took it). */
export async function renewNodeLock(prisma: PrismaClient, node: string, holder: string, ttlMs: number): Promise<boolean> {
  const n = await prisma.$executeRawUnsafe(`UPDATE "NodeUpgradeLock" SET "expiresAt" = ${dbIn("$3")} WHERE "node" = $1 AND "holder" = $2`, node, holder, Math.round(ttlMs));
  return n === 1;
}

/** Give the lock up; only the holder can. */
export async function releaseNodeLock(prisma: PrismaClient, node: string, holder: string): Promise<void> {
  await prisma.nodeUpgradeLock.deleteMany({ where: { node, holder } });
}

/** The current, unexpired holder, or null. */
export async function nodeLockHolder(prisma: PrismaClient, node: string): Promise<string | null> {
  // Expired on the database's clock, as acquire and renew judge it.
  const rows = await prisma.$queryRawUnsafe<{ holder: string }[]>(`SELECT "holder" FROM "NodeUpgradeLock" WHERE "node" = $1 AND "expiresAt" > ${DB_NOW}`, node);
  return rows[0]?.holder ?? null;
}

export function describeHolder(holder: string): string {
  if (holder.startsWith("rollout:")) return `rollout ${holder.slice("rollout:".length)}`;
  if (holder.startsWith("step:")) return `the manual step ${holder.slice("step:".length)}`;
  return holder;
}
