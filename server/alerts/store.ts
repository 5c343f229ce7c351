/**
 * Alerts in the database: raise (grouping repeats), acknowledge, resolve,
 * and the rule settings. Grouping holds across server instances: raising
 * takes a transaction lock on the group key.
 */
import { z } from "zod";
import { SERIALISED_TX } from "../storage/serialised-tx";
import type { PrismaClient } from "../../generated/prisma/client";
import { jsonSafe } from "../audit/log";
import { BeamdeckError } from "../errors";
import { readColumn } from "../storage/json-column";
import { defaultParams, RULE_KINDS, ruleParams, type AlertDraft, type RuleKind, type RuleParams } from "./rules";

export type AlertRow = Awaited<ReturnType<PrismaClient["alert"]["findMany"]>>[number];

/** `Alert.detail`: the rule's facts of the first occurrence (free-form per rule), and of the latest repeat under `last`. */
export const alertDetail = z.object({ last: z.record(z.string().max(256), z.unknown()).optional() }).catchall(z.unknown());

/** An alert as the API returns it: its detail parsed, no BigInt on the wire. */
export function alertView(a: AlertRow) {
  return { ...a, detail: readColumn(`alert ${a.id} detail`, alertDetail, a.detail ?? {}, {}), eventId: a.eventId?.toString() ?? null };
}

export interface RuleSetting<K extends RuleKind = RuleKind> {
  kind: K;
  enabled: boolean;
  params: RuleParams[K];
  defaults: RuleParams[K];
  updatedAt: Date | null;
  updatedBy: string | null;
}

export async function loadRules(prisma: PrismaClient): Promise<{ [K in RuleKind]: RuleSetting<K> }> {
  const rows = await prisma.alertRule.findMany();
  const out = {} as { [K in RuleKind]: RuleSetting<K> };
  for (const kind of RULE_KINDS) {
    const row = rows.find((r) => r.kind === kind);
    const parsed = ruleParams[kind].safeParse(row?.params ?? {});
    (out as Record<RuleKind, RuleSetting>)[kind] = {
      kind,
      enabled: row?.enabled ?? true,
      params: parsed.success ? parsed.data : defaultParams(kind),
      defaults: defaultParams(kind),
      updatedAt: row?.updatedAt ?? null,
      updatedBy: row?.updatedBy ?? null,
    } as RuleSetting;
  }
  return out;
}

export async function saveRule(prisma: PrismaClient, kind: RuleKind, enabled: boolean, params: unknown, by: string) {
  const parsed = ruleParams[kind].safeParse(params);
  if (!parsed.success) throw new BeamdeckError("BD_BAD_INPUT", `${kind}: ${parsed.error.issues[0]?.path.join(".")} ${parsed.error.issues[0]?.message}`);
  const data = { enabled, params: parsed.data as object, updatedBy: by };
  return prisma.alertRule.upsert({ where: { kind }, create: { kind, ...data }, update: data });
}

/** Create an alert, or count a repeat into the open one of its group. */
export async function raiseAlert(prisma: PrismaClient, draft: AlertDraft, eventId: bigint | null, times = 1): Promise<{ alert: AlertRow; created: boolean }> {
  return prisma.$transaction(async (tx) => {
    await tx.$executeRawUnsafe(`SELECT pg_advisory_xact_lock(hashtext($1))`, draft.groupKey);
    const open = await tx.alert.findFirst({ where: { groupKey: draft.groupKey, status: { in: ["open", "acked"] } } });
    if (open) {
      const alert = await tx.alert.update({
        where: { id: open.id },
        data: { count: { increment: times }, lastAt: new Date(), detail: jsonSafe({ ...readColumn(`alert ${open.id} detail`, alertDetail, open.detail ?? {}, {}), last: draft.detail }) as object },
      });
      return { alert, created: false };
    }
    const alert = await tx.alert.create({
      data: { kind: draft.kind, node: draft.node, groupKey: draft.groupKey, status: "open", title: draft.title, count: times, detail: jsonSafe(draft.detail) as object, eventId },
    });
    return { alert, created: true };
  }, SERIALISED_TX);
}

export async function setAlertStatus(prisma: PrismaClient, id: string, status: "acked" | "resolved", by: string): Promise<AlertRow> {
  const alert = await prisma.alert.findUnique({ where: { id } });
  if (!alert) throw new BeamdeckError("BD_NOT_FOUND", `no alert ${id}`);
  if (alert.status === "resolved") throw new BeamdeckError("BD_CONFLICT", `alert ${id} is already resolved`);
  if (status === "acked" && alert.status === "acked") throw new BeamdeckError("BD_CONFLICT", `alert ${id} is already acknowledged by ${alert.ackedBy}`);
  const now = new Date();
  return prisma.alert.update({
    where: { id },
    data: status === "acked" ? { status, ackedBy: by, ackedAt: now } : { status, resolvedBy: by, resolvedAt: now },
  });
}

/** Resolve open alerts of a group automatically (the condition cleared). */
export async function autoResolve(prisma: PrismaClient, groupKey: string): Promise<number> {
  const { count } = await prisma.alert.updateMany({
    where: { groupKey, status: { in: ["open", "acked"] } },
    data: { status: "resolved", resolvedBy: "auto", resolvedAt: new Date() },
  });
  return count;
}
