/**
 * What the server keeps of a fallback timer (issue 15): a `fallback` event
 * from the agent leaves the upgrade rolled back when the timer rolled it
 * back (or the node restarted into the permanent release) and is audited as
 * the agent's; the history shows each install's fallback and what became of
 * it. The schemas and the status line are fallback.ts.
 */
import { z } from "zod";
import type { PrismaClient } from "../../generated/prisma/client";
import { appendAudit } from "../audit/log";
import { type FallbackEvent, fallbackEvent, fallbackLine, fallbackOfResult, fallbackRecord, fallbackRefusal } from "./fallback";

/** Apply the `fallback` events among freshly stored ones (EventStore.onStored); returns the progress lines to publish. */
export async function recordFallbacks(prisma: PrismaClient, node: string, stored: { frame: { kind: string } }[]) {
  const out = [];
  for (const { frame } of stored) {
    if (frame.kind !== "fallback") continue;
    const parsed = fallbackEvent.safeParse(frame);
    if (parsed.success) {
      const progress = await recordFallback(prisma, node, parsed.data);
      if (progress) out.push(progress);
    } else console.warn(`[beamdeck] ${node}: a fallback event does not match the protocol (${parsed.error.issues[0]?.path.join(".")}: ${parsed.error.issues[0]?.message})`);
  }
  return out;
}

/** Apply one fallback event; returns the progress line to publish on the node's upgrade topic. */
async function recordFallback(prisma: PrismaClient, node: string, e: FallbackEvent) {
  const install = await prisma.upgradeCommand.findUnique({ where: { id: e.fallback.commandId }, include: { upgrade: true } });
  // An agent token speaks for its node only: the event must name an install this server sent to that node with a fallback
  // for that release, and count once (the agent sends one outcome per install; a replay would rewrite history).
  const refused = fallbackRefusal(node, e, install);
  if (refused) {
    console.warn(`[beamdeck] ${node}: a fallback event for command ${e.fallback.commandId} ignored: ${refused}`);
    return null;
  }
  const seen = await prisma.auditEntry.findFirst({ where: { action: "upgrade.fallback", node, data: { path: ["fallback", "commandId"], equals: e.fallback.commandId } }, select: { id: true } });
  if (seen) {
    console.warn(`[beamdeck] ${node}: a second fallback event for command ${e.fallback.commandId} ignored (its outcome is recorded)`);
    return null;
  }
  const upgrade = install?.upgrade ?? null;
  if (upgrade && (e.context === "rolled_back" || e.context === "node_restarted")) {
    // Conditional: an operator's make_permanent that lands meanwhile is not overwritten.
    await prisma.upgrade.updateMany({ where: { id: upgrade.id, status: "installed" }, data: { status: "rolled_back" } });
  }
  await appendAudit(prisma, {
    actor: "agent",
    action: "upgrade.fallback",
    node,
    target: upgrade ? `upgrade:${upgrade.id}` : `release:${e.fallback.vsn}`,
    outcome: e.context === "failed" ? "error" : "ok",
    data: { outcome: e.context, message: e.reason.text, fallback: e.fallback, rollbackCommandId: e.rollbackCommandId },
  });
  return { node, commandId: e.rollbackCommandId ?? e.fallback.commandId, kind: "result" as const, step: "fallback", ok: e.context !== "failed", message: e.reason.text, at: Date.now() };
}

/** What became of an install's fallback, as recordFallback audited it (the event's own fields). */
const recordedOutcome = z.object({ outcome: fallbackEvent.shape.context, message: fallbackEvent.shape.reason.shape.text, fallback: fallbackRecord.pick({ commandId: true }) });
export type FallbackOutcome = Omit<z.infer<typeof recordedOutcome>, "fallback">;

/**
 * The node's recorded fallback outcomes, by the install command they belong
 * to: the audit entries recordFallback wrote (one per install, the first
 * event that passed its checks), never the raw `fallback` events. Those a
 * node can send again, or forge for commands it never had, until the first
 * real one falls out of any window read here (a replay would rewrite history).
 */
export async function fallbackOutcomes(prisma: PrismaClient, node: string): Promise<Map<string, FallbackOutcome>> {
  const rows = await prisma.auditEntry.findMany({ where: { node, action: "upgrade.fallback" }, orderBy: { id: "desc" }, take: 1000, select: { data: true } });
  const out = new Map<string, FallbackOutcome>();
  for (const r of rows.reverse()) {
    const d = recordedOutcome.safeParse(r.data);
    if (d.success && !out.has(d.data.fallback.commandId)) out.set(d.data.fallback.commandId, { outcome: d.data.outcome, message: d.data.message });
  }
  return out;
}

/** An upgrade's fallback: the agent's record from its install result, what became of it, and the status line while it is pending. */
export function fallbackOf(status: string, commands: { id: string; action: string; result: unknown }[], outcomes: Map<string, FallbackOutcome>, now: number) {
  const install = commands.find((c) => c.action === "install");
  const record = install ? fallbackOfResult(install.result) : null;
  if (!install || !record) return null;
  const done = outcomes.get(install.id) ?? null;
  return { ...record, outcome: done?.outcome ?? null, message: done?.message ?? null, line: done ? null : fallbackLine(status, record, now) };
}

/**
 * The node's installed release whose fallback timer is still pending (not
 * made permanent, rolled back or reported by the agent), with its status
 * line; null when there is none. While one is pending the node is spoken
 * for: its timer will roll it back, so no other install or rollout may take
 * it (attack finding 7) — only make_permanent or rollback of that upgrade.
 */
export async function pendingFallback(prisma: PrismaClient, node: string, now = Date.now()): Promise<{ upgradeId: string; toVsn: string; line: string } | null> {
  const installed = await prisma.upgrade.findMany({
    where: { node, status: "installed" },
    orderBy: { createdAt: "desc" },
    take: 10,
    select: { id: true, toVsn: true, status: true, commands: { where: { action: "install" }, select: { id: true, action: true, result: true }, take: 5 } },
  });
  if (installed.length === 0) return null;
  const outcomes = await fallbackOutcomes(prisma, node);
  for (const u of installed) {
    const line = fallbackOf(u.status, u.commands, outcomes, now)?.line;
    if (line) return { upgradeId: u.id, toVsn: u.toVsn, line };
  }
  return null;
}

/** The refusal naming a pending fallback: what the operator must do first. */
export function pendingFallbackMessage(node: string, p: { upgradeId: string; toVsn: string; line: string }): string {
  return `${node} has a pending fallback timer: ${p.toVsn} (upgrade ${p.upgradeId}) ${p.line}; make it permanent or roll it back first`;
}
