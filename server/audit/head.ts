/**
 * The audit chain's head, anchored outside the rows (issue 10, item 10).
 *
 * The hash chain alone proves that each row follows the one before it; it
 * cannot tell that the newest rows, or all of them, were deleted. The head
 * row records the newest entry's id and hash and the number of entries, with
 * an HMAC under the secret key (which is not in the database), so deleting
 * rows and rewriting the head to match needs the key as well.
 */
import type { PrismaClient } from "../../generated/prisma/client";
import { activeSecretKey, keyedMac } from "../storage/secret-key";
import { GENESIS_HASH } from "./chain";

/** The migration that created the head: applying it anchors the existing log once. */
export const AUDIT_HEAD_MIGRATION = "20261202052000_s_rest_audit_head_settings";
const HEAD_ID = 1;

type Tx = Parameters<Parameters<PrismaClient["$transaction"]>[0]>[0];

export interface HeadState {
  lastId: bigint;
  count: bigint;
  hash: string;
}

export function headMac(h: HeadState): string {
  return keyedMac(activeSecretKey(), "audit-head", `audit-head:v1:${h.lastId}:${h.count}:${h.hash}`);
}

/** Inside an append's transaction (the audit lock held): the count so far. */
export async function headCount(tx: Tx | PrismaClient): Promise<bigint> {
  const head = await tx.auditHead.findUnique({ where: { id: HEAD_ID } });
  return head?.count ?? 0n;
}

export async function writeHead(tx: Tx | PrismaClient, h: HeadState): Promise<void> {
  const data = { lastId: h.lastId, count: h.count, hash: h.hash, mac: headMac(h) };
  await tx.auditHead.upsert({ where: { id: HEAD_ID }, create: { id: HEAD_ID, ...data }, update: data });
}

/** Anchor the log as it stands (used once, when the head table is created). */
export async function anchorAuditHead(prisma: PrismaClient): Promise<HeadState> {
  const [count, last] = await Promise.all([prisma.auditEntry.count(), prisma.auditEntry.findFirst({ orderBy: { id: "desc" }, select: { id: true, hash: true } })]);
  const h: HeadState = { lastId: last?.id ?? 0n, count: BigInt(count), hash: last?.hash ?? GENESIS_HASH };
  await writeHead(prisma, h);
  return h;
}

/**
 * Compare what the walk found (the newest surviving row and how many rows
 * verified) with the signed head. Returns null when they agree, else the
 * problem in words and the entry it concerns.
 */
export async function checkHead(prisma: PrismaClient, walked: HeadState): Promise<{ id: string; reason: string } | null> {
  const head = await prisma.auditHead.findUnique({ where: { id: HEAD_ID } });
  if (!head) {
    return walked.count === 0n ? null : { id: walked.lastId.toString(), reason: "the signed head record is missing (it was deleted): truncation or tail deletion cannot be ruled out" };
  }
  if (head.mac !== headMac(head)) {
    return { id: head.lastId.toString(), reason: "the head record's signature does not match (it was edited, or the secret key changed)" };
  }
  if (walked.count < head.count || walked.lastId < head.lastId) {
    const missing = head.count - walked.count;
    if (walked.count === 0n) return { id: head.lastId.toString(), reason: `the log was truncated: the signed head names ${head.count} entries up to #${head.lastId}, none remain` };
    return {
      id: head.lastId.toString(),
      reason: `the newest ${missing} entr${missing === 1n ? "y was" : "ies were"} deleted: the signed head names #${head.lastId} (${head.count} entries), the log ends at #${walked.lastId} (${walked.count})`,
    };
  }
  if (walked.count !== head.count || walked.lastId !== head.lastId || walked.hash !== head.hash) {
    return {
      id: walked.lastId.toString(),
      reason: `the log does not end where the signed head says (#${head.lastId}, ${head.count} entries; found #${walked.lastId}, ${walked.count} entries): entries were added or replaced outside beamdeck`,
    };
  }
  return null;
}
