/**
 * The health gate of one node during its soak (issue 15): no unpredicted
 * kill, no crash report or supervisor report beyond what the plan
 * predicted, no new mailbox or leak alert, still connected, every changed
 * module on its new code (when the agent verifies). Read from the database
 * (events, alerts, the upgrade's recorded outcome) and the node's connection
 * (the registry here, else its lease), so a restarted instance judges it
 * the same way.
 */
import type { PrismaClient } from "../../generated/prisma/client";
import { reasonTag } from "../events/reason-tag";
import { verification as verificationSchema } from "../upgrades/plan";

/** Reports the alert engine has not classified yet (expected or not) are left for the next look. */
const CLASSIFY_GRACE_MS = 1000;
const REPORT_KINDS = ["crash_report", "supervisor_report"];
const ALERT_KINDS = ["mailbox", "mailbox_leak"];
const MAX_NAMED = 20;

export interface GateFigures {
  soakedMs: number;
  connected: boolean;
  /** Pids that died at install without being predicted (the agent's comparison). */
  unpredictedDeaths: string[];
  /** Crash and supervisor reports since the soak began that no plan predicted. */
  unexpectedReports: number;
  reportSamples: string[];
  /** Mailbox and leak alerts of this node raised since the soak began. */
  alerts: string[];
  /** Modules the agent found not on the new code after install (null: not verified). */
  verification: { ok: boolean; checked: number; missedCount: number } | null;
  checkedAt: string;
}

export interface GateVerdict {
  figures: GateFigures;
  /** Why the gate fails, or null while it holds. */
  failure: string | null;
}

interface InstallRecord {
  died?: string[];
  comparison?: { diedUnpredicted?: string[] } | null;
  verification?: unknown;
}

/** `reportsSince`: reports and alerts from then on count (a soak taken over after a restart or a failover: when the first one began). */
export async function checkHealth(
  prisma: PrismaClient,
  isConnected: (node: string) => Promise<boolean>,
  node: string,
  upgradeId: string | null,
  soakStartedAt: Date,
  reportsSince: Date = soakStartedAt,
): Promise<GateVerdict> {
  const now = Date.now();
  const [connected, upgrade, reports, alerts] = await Promise.all([
    isConnected(node),
    upgradeId ? prisma.upgrade.findUnique({ where: { id: upgradeId }, select: { actualKills: true } }) : null,
    prisma.event.findMany({
      where: { node, kind: { in: REPORT_KINDS }, expected: false, receivedAt: { gte: reportsSince, lt: new Date(now - CLASSIFY_GRACE_MS) } },
      select: { kind: true, context: true, offenderId: true, offenderPid: true, reason: true },
      orderBy: { id: "asc" },
      take: 1000,
    }),
    prisma.alert.findMany({ where: { node, kind: { in: ALERT_KINDS }, firstAt: { gte: reportsSince } }, select: { title: true }, take: MAX_NAMED }),
  ]);
  const install = ((upgrade?.actualKills ?? {}) as { install?: InstallRecord }).install ?? {};
  const unpredictedDeaths = install.comparison?.diedUnpredicted ?? [];
  const v = verificationSchema.safeParse(install.verification);
  const verification = v.success ? { ok: v.data.ok, checked: v.data.checked, missedCount: v.data.missedCount } : null;
  const figures: GateFigures = {
    soakedMs: Math.max(0, now - soakStartedAt.getTime()),
    connected,
    unpredictedDeaths: unpredictedDeaths.slice(0, MAX_NAMED),
    unexpectedReports: reports.length,
    reportSamples: reports.slice(0, 5).map(reportSample),
    alerts: alerts.map((a) => a.title),
    verification,
    checkedAt: new Date(now).toISOString(),
  };
  return { figures, failure: failureOf(figures) };
}

/**
 * One report as the gate names it. The figures and the halt reason are read
 * by viewers (rollouts.get, the CLI), so the reason is its tag only, as in
 * alert titles (events/event-values.ts): a crash reason's data is a value.
 */
export function reportSample(e: { kind: string; context: string | null; offenderId: string | null; offenderPid: string | null; reason: string | null }): string {
  const tag = reasonTag(e.reason);
  return `${e.kind}${e.context ? ` ${e.context}` : ""} ${e.offenderId ?? e.offenderPid ?? ""}${tag ? ` (${tag.slice(0, 80)})` : ""}`.trim();
}

/** The first reason the gate fails, in the order an operator would look. */
export function failureOf(f: GateFigures): string | null {
  if (!f.connected) return "the node is no longer connected";
  if (f.unpredictedDeaths.length > 0) return `${f.unpredictedDeaths.length} process(es) died that the plan did not predict (${f.unpredictedDeaths.slice(0, 5).join(", ")})`;
  if (f.unexpectedReports > 0) return `${f.unexpectedReports} crash or supervisor report(s) the plan did not predict: ${f.reportSamples.join("; ")}`;
  if (f.alerts.length > 0) return `new alert(s): ${f.alerts.join("; ")}`;
  if (f.verification && !f.verification.ok) return `${f.verification.missedCount} of ${f.verification.checked} module(s) not on the new code after install`;
  return null;
}
