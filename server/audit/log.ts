/**
 * The append-only audit log.
 *
 * Appends are serialised by a transaction-scoped advisory lock, so the chain
 * stays linear even with several server instances on one PostgreSQL. Intent
 * is written before an action and its outcome after (`recordIntent` /
 * `recordOutcome`): a crash in between leaves an intent with no outcome.
 */
import { SERIALISED_TX } from "../storage/serialised-tx";
import type { PrismaClient } from "../../generated/prisma/client";
import { entryHash, GENESIS_HASH, type AuditContent } from "./chain";
import { checkHead, headCount, writeHead } from "./head";

const AUDIT_LOCK_KEY = 7_431_337_002;

export interface AuditInput {
  actor: string;
  action: string;
  node?: string | null;
  target?: string | null;
  intentId?: bigint | null;
  outcome?: "ok" | "error" | "denied" | null;
  data?: Record<string, unknown>;
}

export interface AuditRow extends AuditContent {
  id: bigint;
  prevHash: string;
  hash: string;
}

type Tx = Parameters<Parameters<PrismaClient["$transaction"]>[0]>[0];

/** JSON for a Prisma Json column: plain data, no undefined, no BigInt. */
export function jsonSafe(value: unknown): unknown {
  return JSON.parse(JSON.stringify(value ?? {}, (_k, v) => (typeof v === "bigint" ? v.toString() : v)));
}

export async function appendAudit(prisma: PrismaClient, input: AuditInput): Promise<AuditRow> {
  return prisma.$transaction(async (tx: Tx) => {
    await tx.$executeRawUnsafe(`SELECT pg_advisory_xact_lock(${AUDIT_LOCK_KEY})`);
    const last = await tx.auditEntry.findFirst({ orderBy: { id: "desc" }, select: { hash: true } });
    const prevHash = last?.hash ?? GENESIS_HASH;
    const content: AuditContent = {
      // Millisecond precision: what the database stores is what was hashed.
      at: new Date(Math.floor(Date.now())),
      actor: input.actor,
      action: input.action,
      node: input.node ?? null,
      target: input.target ?? null,
      intentId: input.intentId ?? null,
      outcome: input.outcome ?? null,
      data: jsonSafe(input.data),
    };
    const hash = entryHash(prevHash, content);
    const row = await tx.auditEntry.create({
      data: { ...content, data: content.data as object, prevHash, hash },
    });
    await writeHead(tx, { lastId: row.id, count: (await headCount(tx)) + 1n, hash });
    return { ...content, id: row.id, prevHash, hash };
  }, SERIALISED_TX);
}

export async function recordIntent(prisma: PrismaClient, input: Omit<AuditInput, "outcome" | "intentId">): Promise<bigint> {
  const row = await appendAudit(prisma, { ...input, outcome: null });
  return row.id;
}

export async function recordOutcome(prisma: PrismaClient, intentId: bigint, input: Omit<AuditInput, "intentId">): Promise<AuditRow> {
  return appendAudit(prisma, { ...input, intentId });
}

export interface ChainStatus {
  ok: boolean;
  checked: number;
  firstBad: { id: string; reason: string } | null;
  head: string;
}

/**
 * Walk the chain in id order; name the first entry that does not verify,
 * then check that the log ends where the signed head says (deleted newest
 * entries and truncation are named there).
 */
export async function verifyAuditChain(prisma: PrismaClient, batch = 1000): Promise<ChainStatus> {
  let prevHash = GENESIS_HASH;
  let checked = 0;
  let cursor: bigint | null = null;
  for (;;) {
    const rows: Awaited<ReturnType<typeof prisma.auditEntry.findMany>> = await prisma.auditEntry.findMany({
      where: cursor === null ? {} : { id: { gt: cursor } },
      orderBy: { id: "asc" },
      take: batch,
    });
    if (rows.length === 0) break;
    for (const r of rows) {
      if (r.prevHash !== prevHash) {
        return { ok: false, checked, firstBad: { id: r.id.toString(), reason: "previous-hash link broken (an entry before it was removed or changed)" }, head: prevHash };
      }
      const expected = entryHash(prevHash, {
        at: r.at,
        actor: r.actor,
        action: r.action,
        node: r.node,
        target: r.target,
        intentId: r.intentId,
        outcome: r.outcome,
        data: r.data,
      });
      if (expected !== r.hash) {
        return { ok: false, checked, firstBad: { id: r.id.toString(), reason: "content does not match its hash (the entry was modified)" }, head: prevHash };
      }
      prevHash = r.hash;
      checked += 1;
    }
    cursor = rows[rows.length - 1].id;
  }
  const headProblem = await checkHead(prisma, { lastId: cursor ?? 0n, count: BigInt(checked), hash: prevHash });
  if (headProblem) return { ok: false, checked, firstBad: headProblem, head: prevHash };
  return { ok: true, checked, firstBad: null, head: prevHash };
}
