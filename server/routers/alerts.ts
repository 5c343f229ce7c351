/** Alerts (acknowledge/resolve by operators), rules and webhooks (admins). */
import crypto from "node:crypto";
import { z } from "zod";
import { appendAudit } from "../audit/log";
import { actorOf } from "../auth/principal";
import { RULE_KINDS, RULE_TITLES } from "../alerts/rules";
import { alertView, loadRules, saveRule, setAlertStatus } from "../alerts/store";
import { checkTarget, PrivateTargetError } from "../alerts/webhook-targets";
import { sealWebhookSecret, urlForAudit } from "../alerts/webhooks";
import { hasRole } from "../auth/roles";
import { fail } from "../errors";
import { getSetting, setSetting } from "../storage/settings";
import { adminProcedure, operatorProcedure, router, viewerProcedure } from "../trpc";

const alertId = z.string().min(1).max(64);

export const alertsRouter = router({
  list: viewerProcedure
    .input(
      z
        .object({ status: z.enum(["open", "acked", "resolved", "active", "all"]).default("active"), node: z.string().max(255).optional(), limit: z.number().int().min(1).max(500).default(100) })
        .optional(),
    )
    .query(async ({ ctx, input }) => {
      const status = input?.status ?? "active";
      const rows = await ctx.services.prisma.alert.findMany({
        where: {
          ...(status === "active" ? { status: { in: ["open", "acked"] } } : status === "all" ? {} : { status }),
          ...(input?.node ? { node: input.node } : {}),
        },
        orderBy: { lastAt: "desc" },
        take: input?.limit ?? 100,
      });
      const found = await ctx.services.prisma.webhookDelivery.findMany({
        where: { alertId: { in: rows.map((r) => r.id) } },
        select: { alertId: true, webhookId: true, status: true, attempts: true, lastError: true, lastStatus: true, deliveredAt: true, nextAttemptAt: true },
      });
      // Viewers see success or failure only: error texts and HTTP statuses of
      // arbitrary targets would make the alert list a port scanner (item 14).
      const detailed = hasRole(ctx.principal.role, "operator");
      const deliveries = detailed ? found : found.map((d) => ({ ...d, lastError: null, lastStatus: null }));
      return rows.map((a) => ({ ...alertView(a), deliveries: deliveries.filter((d) => d.alertId === a.id) }));
    }),

  counts: viewerProcedure.query(async ({ ctx }) => {
    const [open, acked] = await Promise.all([ctx.services.prisma.alert.count({ where: { status: "open" } }), ctx.services.prisma.alert.count({ where: { status: "acked" } })]);
    return { open, acked };
  }),

  ack: operatorProcedure.input(z.object({ id: alertId })).mutation(async ({ ctx, input }) => {
    const actor = actorOf(ctx.principal);
    const a = await setAlertStatus(ctx.services.prisma, input.id, "acked", actor);
    await appendAudit(ctx.services.prisma, { actor, action: "alert.ack", node: a.node, target: `alert:${a.id}`, outcome: "ok", data: { title: a.title } });
    ctx.services.hub.publish("alerts", { id: a.id, status: a.status });
    return alertView(a);
  }),

  resolve: operatorProcedure.input(z.object({ id: alertId })).mutation(async ({ ctx, input }) => {
    const actor = actorOf(ctx.principal);
    const a = await setAlertStatus(ctx.services.prisma, input.id, "resolved", actor);
    await appendAudit(ctx.services.prisma, { actor, action: "alert.resolve", node: a.node, target: `alert:${a.id}`, outcome: "ok", data: { title: a.title } });
    ctx.services.hub.publish("alerts", { id: a.id, status: a.status });
    return alertView(a);
  }),

  onAlerts: viewerProcedure.subscription(async function* ({ ctx, signal }) {
    for await (const p of ctx.services.hub.subscribe("alerts", signal)) yield p as { id?: string; status: string };
  }),

  rules: viewerProcedure.query(async ({ ctx }) => {
    const rules = await loadRules(ctx.services.prisma);
    return RULE_KINDS.map((k) => ({ ...rules[k], title: RULE_TITLES[k] }));
  }),

  updateRule: adminProcedure.input(z.object({ kind: z.enum(RULE_KINDS), enabled: z.boolean(), params: z.record(z.string(), z.unknown()) })).mutation(async ({ ctx, input }) => {
    const actor = actorOf(ctx.principal);
    const before = (await loadRules(ctx.services.prisma))[input.kind];
    await saveRule(ctx.services.prisma, input.kind, input.enabled, input.params, actor);
    // Every instance's engine caches the rules: each reloads (alerts/engine.ts).
    ctx.services.hub.publish("alert-rules", { kind: input.kind });
    const after = (await loadRules(ctx.services.prisma))[input.kind];
    await appendAudit(ctx.services.prisma, {
      actor,
      action: "alert_rule.update",
      target: `rule:${input.kind}`,
      outcome: "ok",
      data: { before: { enabled: before.enabled, params: before.params }, after: { enabled: after.enabled, params: after.params } },
    });
    return after;
  }),

  webhooks: adminProcedure.query(async ({ ctx }) => {
    const hooks = await ctx.services.prisma.webhook.findMany({ orderBy: { createdAt: "asc" } });
    const recent = await ctx.services.prisma.webhookDelivery.findMany({ orderBy: { createdAt: "desc" }, take: 100 });
    return hooks.map((h) => ({
      id: h.id,
      url: h.url,
      enabled: h.enabled,
      eventValues: h.eventValues,
      createdAt: h.createdAt,
      createdBy: h.createdBy,
      deliveries: recent.filter((d) => d.webhookId === h.id).slice(0, 20),
    }));
  }),

  webhookSettings: adminProcedure.query(async ({ ctx }) => ({ allowPrivateTargets: await getSetting(ctx.services.prisma, "webhooks.allowPrivateTargets") })),

  setWebhookSettings: adminProcedure.input(z.object({ allowPrivateTargets: z.boolean() })).mutation(async ({ ctx, input }) => {
    const actor = actorOf(ctx.principal);
    const before = await getSetting(ctx.services.prisma, "webhooks.allowPrivateTargets");
    await setSetting(ctx.services.prisma, "webhooks.allowPrivateTargets", input.allowPrivateTargets, actor);
    await appendAudit(ctx.services.prisma, { actor, action: "setting.update", target: "setting:webhooks.allowPrivateTargets", outcome: "ok", data: { before, after: input.allowPrivateTargets } });
    return { allowPrivateTargets: input.allowPrivateTargets };
  }),

  addWebhook: adminProcedure
    .input(
      z.object({
        url: z
          .url()
          .max(2048)
          .refine((u) => /^https?:\/\//.test(u), "http(s) URL"),
        secret: z.string().min(16).max(256).optional(),
        /** Deliver event text with its values (crash report state, reasons' data); default off (events/event-values.ts). */
        eventValues: z.boolean().default(false),
      }),
    )
    .mutation(async ({ ctx, input }) => {
      const actor = actorOf(ctx.principal);
      if (!(await getSetting(ctx.services.prisma, "webhooks.allowPrivateTargets"))) {
        try {
          await checkTarget(input.url);
        } catch (e) {
          fail("BD_BAD_INPUT", e instanceof PrivateTargetError ? e.message : `cannot resolve the webhook's host: ${(e as Error).message}`);
        }
      }
      const secret = input.secret ?? crypto.randomBytes(24).toString("base64url");
      const hook = await ctx.services.prisma.webhook.create({ data: { url: input.url, secret: sealWebhookSecret(secret), eventValues: input.eventValues, createdBy: actor } });
      // Neither the URL (a Slack URL is a credential) nor the secret enters the audit log.
      await appendAudit(ctx.services.prisma, { actor, action: "webhook.add", target: `webhook:${hook.id}`, outcome: "ok", data: { url: urlForAudit(input.url), eventValues: input.eventValues } });
      return { id: hook.id, url: hook.url, secret, eventValues: hook.eventValues };
    }),

  /** Whether the webhook receives event text with its values (audited). */
  setWebhookEventValues: adminProcedure.input(z.object({ id: z.string().max(64), eventValues: z.boolean() })).mutation(async ({ ctx, input }) => {
    const actor = actorOf(ctx.principal);
    const hook = await ctx.services.prisma.webhook.findUnique({ where: { id: input.id } });
    if (!hook) fail("BD_NOT_FOUND", `no webhook ${input.id}`);
    await ctx.services.prisma.webhook.update({ where: { id: input.id }, data: { eventValues: input.eventValues } });
    await appendAudit(ctx.services.prisma, {
      actor,
      action: "webhook.update",
      target: `webhook:${hook.id}`,
      outcome: "ok",
      data: { url: urlForAudit(hook.url), before: { eventValues: hook.eventValues }, after: { eventValues: input.eventValues } },
    });
    return { id: input.id, eventValues: input.eventValues };
  }),

  removeWebhook: adminProcedure.input(z.object({ id: z.string().max(64) })).mutation(async ({ ctx, input }) => {
    const actor = actorOf(ctx.principal);
    const hook = await ctx.services.prisma.webhook.findUnique({ where: { id: input.id } });
    if (!hook) fail("BD_NOT_FOUND", `no webhook ${input.id}`);
    await ctx.services.prisma.webhook.delete({ where: { id: input.id } });
    await appendAudit(ctx.services.prisma, { actor, action: "webhook.remove", target: `webhook:${hook.id}`, outcome: "ok", data: { url: urlForAudit(hook.url) } });
    return { id: input.id, removed: true };
  }),
});
