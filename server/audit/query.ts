/** Reading the audit log: filters, pages, and the shape the API returns. */
import type { PrismaClient } from "../../generated/prisma/client";
import { z } from "zod";
import { redactAuditData } from "./redact";

export const auditFilter = z.object({
  actor: z.string().max(200).optional(),
  node: z.string().max(255).optional(),
  action: z.string().max(100).optional(),
  target: z.string().max(255).optional(),
  from: z.iso.datetime().optional(),
  to: z.iso.datetime().optional(),
});
export type AuditFilter = z.infer<typeof auditFilter>;

export function auditWhere(f: AuditFilter) {
  return {
    ...(f.actor ? { actor: { contains: f.actor } } : {}),
    ...(f.node ? { node: f.node } : {}),
    ...(f.action ? { action: { startsWith: f.action } } : {}),
    ...(f.target ? { target: f.target } : {}),
    ...(f.from || f.to ? { at: { ...(f.from ? { gte: new Date(f.from) } : {}), ...(f.to ? { lte: new Date(f.to) } : {}) } } : {}),
  };
}

export interface AuditView {
  id: string;
  at: string;
  actor: string;
  action: string;
  node: string | null;
  target: string | null;
  intentId: string | null;
  outcome: string | null;
  data: unknown;
  hash: string;
  prevHash: string;
}

type Row = Awaited<ReturnType<PrismaClient["auditEntry"]["findMany"]>>[number];

export function viewOf(r: Row): AuditView {
  return {
    id: r.id.toString(),
    at: r.at.toISOString(),
    actor: r.actor,
    action: r.action,
    node: r.node,
    target: r.target,
    intentId: r.intentId?.toString() ?? null,
    outcome: r.outcome,
    data: redactAuditData(r.action, r.data),
    hash: r.hash,
    prevHash: r.prevHash,
  };
}

/** Newest first, keyset-paged by id. */
export async function listAudit(prisma: PrismaClient, f: AuditFilter, limit: number, before?: string) {
  const rows = await prisma.auditEntry.findMany({
    where: { ...auditWhere(f), ...(before ? { id: { lt: BigInt(before) } } : {}) },
    orderBy: { id: "desc" },
    take: limit + 1,
  });
  const page = rows.slice(0, limit).map(viewOf);
  // Intents still waiting for an outcome are marked, so a crash in between is visible.
  const intentIds = page.filter((e) => e.outcome === null && e.intentId === null && isIntentAction(e.action)).map((e) => BigInt(e.id));
  const answered = intentIds.length
    ? new Set((await prisma.auditEntry.findMany({ where: { intentId: { in: intentIds } }, select: { intentId: true } })).map((r) => r.intentId?.toString()))
    : new Set<string | undefined>();
  return {
    entries: page.map((e) => ({ ...e, pendingOutcome: intentIds.some((i) => i.toString() === e.id) && !answered.has(e.id) })),
    nextBefore: rows.length > limit ? page[page.length - 1].id : null,
  };
}

/** Actions written as intent + outcome pairs. */
export function isIntentAction(action: string): boolean {
  return action.startsWith("upgrade.");
}

const CSV_COLUMNS = ["id", "at", "actor", "action", "node", "target", "intentId", "outcome", "data", "hash", "prevHash"] as const;

/**
 * One CSV cell. A cell a spreadsheet would read as a formula (starting with
 * = + - @, or a tab or carriage return before one) gets a leading `'` so it
 * stays text (OWASP's advice for CSV injection): audit rows carry text
 * chosen by callers (usernames, labels, reasons).
 */
export function csvCell(v: unknown): string {
  const raw = v === null || v === undefined ? "" : typeof v === "string" ? v : JSON.stringify(v);
  const s = /^[=+\-@\t\r]/.test(raw) ? `'${raw}` : raw;
  return /[",\n\r\t]/.test(s) ? `"${s.replace(/"/g, '""')}"` : s;
}

export function toCsv(entries: (Omit<AuditView, "data"> & { data?: unknown })[]): string {
  return [CSV_COLUMNS.join(","), ...entries.map((e) => CSV_COLUMNS.map((c) => csvCell((e as Record<string, unknown>)[c])).join(","))].join("\n") + "\n";
}
