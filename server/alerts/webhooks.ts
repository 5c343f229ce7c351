/**
 * Outgoing webhooks: a JSON body with a Slack-compatible `text`, signed with
 * HMAC-SHA256, delivered with retries and exponential backoff. Deliveries
 * live in the database, so a restart loses none and any instance may send.
 *
 * The signing secret is kept sealed (AES-GCM under the secret key) because
 * it must be read back to sign; the URL (a Slack URL is itself a credential)
 * enters the audit log only as its origin and a fingerprint.
 *
 * The body carries the alert's event (`event`): without its values
 * (events/event-values.ts) unless the webhook's `eventValues` is on.
 */
import crypto from "node:crypto";
import type { PrismaClient } from "../../generated/prisma/client";
import { eventFrame, type EventFrame } from "../agents/protocol";
import { withoutValues } from "../events/event-values";
import { readColumn } from "../storage/json-column";
import { jsonSafe } from "../audit/log";
import { DB_NOW, dbNowPlus } from "../storage/db-clock";
import { getSetting } from "../storage/settings";
import { activeSecretKey, isSealed, seal, unseal } from "../storage/secret-key";
import type { AlertRow } from "./store";
import { postJson } from "./webhook-targets";

export { urlForAudit } from "../audit/redact";

export const SIGNATURE_HEADER = "x-beamdeck-signature";
export const TIMESTAMP_HEADER = "x-beamdeck-timestamp";
/** The delivery's id, the same on every attempt: a receiver drops a repeat it already handled. */
export const DELIVERY_HEADER = "x-beamdeck-delivery";
export const MAX_ATTEMPTS = 6;
// Overridable so tests can watch a whole retry sequence without waiting a minute.
const BASE_DELAY_MS = Number(process.env.BEAMDECK_WEBHOOK_BASE_DELAY_MS ?? 1000);
const TIMEOUT_MS = 5000;
/** How long a claimed attempt is the claimer's: its timeout and a second. */
const CLAIM_MS = TIMEOUT_MS + 1000;

/** `sha256=<hex>` of `<timestamp>.<body>`: the timestamp guards against replays. */
export function sign(secret: string, timestamp: string, body: string): string {
  return `sha256=${crypto.createHmac("sha256", secret).update(`${timestamp}.${body}`).digest("hex")}`;
}

/** A webhook secret as stored: sealed, so a database dump does not give it away. */
export function sealWebhookSecret(secret: string): string {
  return seal(activeSecretKey(), "webhook-secret", secret);
}

/** The secret to sign with; rows from before sealing hold it in clear. */
export function webhookSecret(stored: string): string {
  return isSealed(stored) ? unseal(activeSecretKey(), "webhook-secret", stored) : stored;
}

/** Seal secrets stored in clear by older versions; returns how many. */
export async function sealPlaintextSecrets(prisma: PrismaClient): Promise<number> {
  const hooks = await prisma.webhook.findMany({ select: { id: true, secret: true }, take: 10_000 });
  let n = 0;
  for (const h of hooks.filter((h) => !isSealed(h.secret))) {
    const { count } = await prisma.webhook.updateMany({ where: { id: h.id, secret: h.secret }, data: { secret: sealWebhookSecret(h.secret) } });
    n += count;
  }
  return n;
}

/**
 * Slack's control sequences (`<!channel>`, `<https://…|label>`, `<@U…>`) are
 * made of <, > and &: escaped, agent-supplied text shows as written.
 */
export function slackEscape(text: string): string {
  return text.replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;");
}

/** Why a webhook's event text has no values (the hidden text says it). */
export const WEBHOOK_HIDDEN = "for this webhook (its eventValues setting is off)";

export function alertPayload(alert: AlertRow, publicUrl: string | null, event: EventFrame | null = null) {
  const link = publicUrl ? `${publicUrl.replace(/\/$/, "")}/alerts?id=${alert.id}` : null;
  return {
    text: `[beamdeck] ${slackEscape(alert.title)} (node ${slackEscape(alert.node)})${link ? ` ${link}` : ""}`,
    alert: {
      id: alert.id,
      kind: alert.kind,
      node: alert.node,
      title: alert.title,
      status: alert.status,
      count: alert.count,
      firstAt: alert.firstAt.toISOString(),
      lastAt: alert.lastAt.toISOString(),
      detail: alert.detail,
    },
    event,
    link,
  };
}

/** The event that raised the alert, as stored (null: none, or a row that no longer reads). */
async function alertEvent(prisma: PrismaClient, alert: AlertRow): Promise<EventFrame | null> {
  if (alert.eventId === null) return null;
  const row = await prisma.event.findUnique({ where: { id: alert.eventId }, select: { data: true } });
  return row ? readColumn(`event ${alert.eventId}`, eventFrame.nullable(), row.data, null) : null;
}

export async function enqueueDeliveries(prisma: PrismaClient, alert: AlertRow, publicUrl: string | null): Promise<number> {
  const hooks = await prisma.webhook.findMany({ where: { enabled: true } });
  if (hooks.length === 0) return 0;
  const event = await alertEvent(prisma, alert);
  const shown = (values: boolean) => (event === null || values ? event : withoutValues(event, WEBHOOK_HIDDEN));
  await prisma.webhookDelivery.createMany({
    data: hooks.map((h) => ({ webhookId: h.id, alertId: alert.id, status: "pending", payload: jsonSafe(alertPayload(alert, publicUrl, shown(h.eventValues))) as object })),
  });
  return hooks.length;
}

export function backoffMs(attempt: number): number {
  return BASE_DELAY_MS * 2 ** Math.max(0, attempt - 1);
}

/**
 * Send what is due; returns how many were attempted. Safe to run on several
 * instances: "due" and the claim's expiry are read on the database's clock
 * (instances whose clocks are apart agree), and a claim is one conditional
 * UPDATE, so only one instance sends an attempt. An instance killed while
 * its POST is in flight leaves the outcome unknown: the claim runs out and
 * another instance sends it again with the same `x-beamdeck-delivery` id,
 * so the receiver can drop the repeat.
 */
export async function deliverDue(prisma: PrismaClient): Promise<number> {
  const dueIds = await prisma.$queryRawUnsafe<{ id: string }[]>(`SELECT "id" FROM "WebhookDelivery" WHERE "status" = 'pending' AND "nextAttemptAt" <= ${DB_NOW} ORDER BY "nextAttemptAt" LIMIT 20`);
  if (dueIds.length === 0) return 0;
  const due = await prisma.webhookDelivery.findMany({ where: { id: { in: dueIds.map((d) => d.id) } }, include: { webhook: true }, orderBy: { nextAttemptAt: "asc" } });
  let attempted = 0;
  const allowPrivate = due.length > 0 && (await getSetting(prisma, "webhooks.allowPrivateTargets"));
  for (const d of due) {
    // Claim it: only the instance whose update matched sends; the claim outlives one attempt's timeout.
    const claimed = await prisma.$executeRawUnsafe(
      `UPDATE "WebhookDelivery" SET "attempts" = "attempts" + 1, "nextAttemptAt" = ${dbNowPlus("$3")}
       WHERE "id" = $1 AND "status" = 'pending' AND "attempts" = $2 AND "nextAttemptAt" <= ${DB_NOW}`,
      d.id,
      d.attempts,
      CLAIM_MS,
    );
    if (claimed === 0) continue;
    attempted += 1;
    const attempt = d.attempts + 1;
    const body = JSON.stringify(d.payload);
    const ts = String(Math.floor(Date.now() / 1000));
    let status: number | null = null;
    let error: string | null = null;
    try {
      const headers = {
        "content-type": "application/json",
        [DELIVERY_HEADER]: d.id,
        [SIGNATURE_HEADER]: sign(webhookSecret(d.webhook.secret), ts, body),
        [TIMESTAMP_HEADER]: ts,
        "user-agent": "beamdeck-webhook/1",
      };
      const res = await postJson(d.webhook.url, headers, body, { timeoutMs: TIMEOUT_MS, allowPrivate });
      status = res.status;
      if (status < 200 || status > 299) error = `HTTP ${status}`;
    } catch (e) {
      error = (e as Error).name === "TimeoutError" ? `no answer within ${TIMEOUT_MS} ms` : ((e as NodeJS.ErrnoException).code ?? (e as Error).message);
    }
    // Recorded only while this attempt is the latest: an attempt that outlived its claim (another instance sent it
    // again meanwhile) must not overwrite that one's outcome.
    const mine = { id: d.id, status: "pending", attempts: attempt };
    if (!error) {
      await prisma.webhookDelivery.updateMany({ where: mine, data: { status: "delivered", deliveredAt: new Date(), lastStatus: status, lastError: null } });
    } else if (attempt >= MAX_ATTEMPTS) {
      await prisma.webhookDelivery.updateMany({ where: mine, data: { status: "failed", lastStatus: status, lastError: `${error} (gave up after ${attempt} attempts)` } });
    } else {
      await prisma.$executeRawUnsafe(
        `UPDATE "WebhookDelivery" SET "lastStatus" = $2, "lastError" = $3, "nextAttemptAt" = ${dbNowPlus("$4")} WHERE "id" = $1 AND "status" = 'pending' AND "attempts" = $5`,
        d.id,
        status,
        error,
        backoffMs(attempt),
        attempt,
      );
    }
  }
  return attempted;
}
