/**
 * Rollout state in the database: the one place rollouts and their nodes are
 * read and written. Changes of status are conditional updates (from the
 * statuses they may leave), so an operator's halt and the engine's next
 * step cannot both win; the driving instance claims the row the same way.
 */
import type { Prisma, PrismaClient } from "../../generated/prisma/client";
import { jsonSafe } from "../audit/log";
import { BeamdeckError } from "../errors";
import { DB_NOW, dbNowPlus } from "../storage/db-clock";
import { type NodeStep, type RolloutOptions, rolloutOptions, type RolloutStatus } from "./rollout-options";

export const MAX_LISTED_ROLLOUTS = 100;

export async function createRollout(prisma: PrismaClient, r: { id: string; group: string; toVsn: string; nodes: string[]; options: RolloutOptions; createdBy: string }): Promise<void> {
  await prisma.rollout.create({
    data: {
      id: r.id,
      group: r.group,
      toVsn: r.toVsn,
      status: "pending",
      phase: "unpacking",
      options: jsonSafe(r.options) as object,
      createdBy: r.createdBy,
      nodes: { create: r.nodes.map((node, position) => ({ node, position })) },
    },
  });
}

/** One rollout with its nodes in order, as the router and the CLI show it. */
export async function readRollout(prisma: PrismaClient, id: string) {
  const r = await prisma.rollout.findUnique({ where: { id }, include: { nodes: { orderBy: { position: "asc" } } } });
  if (!r) return null;
  return {
    id: r.id,
    group: r.group,
    toVsn: r.toVsn,
    status: r.status as RolloutStatus,
    phase: r.phase as RolloutStatus,
    options: rolloutOptions.parse(r.options),
    haltReason: r.haltReason,
    createdBy: r.createdBy,
    createdAt: r.createdAt.toISOString(),
    updatedAt: r.updatedAt.toISOString(),
    nodes: r.nodes.map((n) => ({
      node: n.node,
      position: n.position,
      step: n.step as NodeStep,
      commandId: n.commandId,
      upgradeId: n.upgradeId,
      fromVsn: n.fromVsn,
      predicted: n.predicted as Record<string, string[]> | null,
      actual: n.actual as Record<string, unknown> | null,
      gate: n.gate as Record<string, unknown> | null,
      error: n.error,
      soakStartedAt: n.soakStartedAt?.toISOString() ?? null,
      updatedAt: n.updatedAt.toISOString(),
    })),
  };
}
export type RolloutView = NonNullable<Awaited<ReturnType<typeof readRollout>>>;
export type RolloutNodeView = RolloutView["nodes"][number];

export async function mustReadRollout(prisma: PrismaClient, id: string): Promise<RolloutView> {
  const r = await readRollout(prisma, id);
  if (!r) throw new BeamdeckError("BD_NOT_FOUND", `no rollout ${id} (see: beamdeck rollout list)`);
  return r;
}

export async function listRollouts(prisma: PrismaClient, limit: number) {
  const rows = await prisma.rollout.findMany({ orderBy: { createdAt: "desc" }, take: Math.min(limit, MAX_LISTED_ROLLOUTS), include: { nodes: { select: { step: true } } } });
  return rows.map((r) => ({
    id: r.id,
    group: r.group,
    toVsn: r.toVsn,
    status: r.status as RolloutStatus,
    haltReason: r.haltReason,
    createdBy: r.createdBy,
    createdAt: r.createdAt.toISOString(),
    nodes: r.nodes.length,
    permanent: r.nodes.filter((n) => n.step === "permanent").length,
  }));
}

/** Move the rollout to `to` only from one of `from`; false when it was elsewhere (someone else moved it). */
export async function moveRollout(prisma: PrismaClient, id: string, from: RolloutStatus[], to: RolloutStatus, extra: Prisma.RolloutUpdateManyMutationInput = {}): Promise<boolean> {
  const { count } = await prisma.rollout.updateMany({ where: { id, status: { in: from } }, data: { status: to, ...extra } });
  return count === 1;
}

export async function setNode(prisma: PrismaClient, id: string, node: string, data: Prisma.RolloutNodeUpdateInput): Promise<void> {
  await prisma.rolloutNode.update({ where: { rolloutId_node: { rolloutId: id, node } }, data });
}

/**
 * Claim the right to drive a rollout for `ttlMs`: free, expired, or already
 * ours. One conditional UPDATE, so two instances never both drive it.
 */
export async function claimRollout(prisma: PrismaClient, id: string, instanceId: string, ttlMs: number): Promise<boolean> {
  // Expiry by the database's clock: instances whose clocks are apart still agree whose claim has lapsed.
  const count = await prisma.$executeRawUnsafe(
    `UPDATE "Rollout" SET "ownerId" = $2, "ownerExpiresAt" = ${dbNowPlus("$3")}
     WHERE "id" = $1 AND ("ownerId" IS NULL OR "ownerId" = $2 OR "ownerExpiresAt" < ${DB_NOW})`,
    id,
    instanceId,
    Math.round(ttlMs),
  );
  return count === 1;
}

export async function disownRollout(prisma: PrismaClient, id: string, instanceId: string): Promise<void> {
  await prisma.rollout.updateMany({ where: { id, ownerId: instanceId }, data: { ownerId: null, ownerExpiresAt: null } });
}

/** Rollouts some engine should be driving. */
export async function activeRolloutIds(prisma: PrismaClient, statuses: RolloutStatus[]): Promise<string[]> {
  const rows = await prisma.rollout.findMany({ where: { status: { in: statuses } }, select: { id: true }, orderBy: { createdAt: "asc" }, take: MAX_LISTED_ROLLOUTS });
  return rows.map((r) => r.id);
}
