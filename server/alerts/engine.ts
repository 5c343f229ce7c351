/**
 * The alert engine: evaluates the rules on the live stream (stored events,
 * live mailboxes, node connections), raises grouped alerts, and hands new
 * ones to the webhook worker.
 */
import type { PrismaClient } from "../../generated/prisma/client";
import type { AgentRegistry } from "../agents/registry";
import type { EventFrame } from "../agents/protocol";
import type { EventStore } from "../events/store";
import type { Hub } from "../live/hub";
import { Expectations } from "./expectations";
import { storedExpectation } from "./stored-expectations";
import type { OldCodeWatch } from "../upgrades/old-code-watch";
import type { Group } from "../fleet/groups";
import { ACTIVE_STATUSES } from "../fleet/rollout-options";
import {
  DriftWatch,
  LeakWatch,
  type MailboxGrowth,
  matchChildTerminated,
  matchEventGap,
  matchMaxRestartIntensity,
  MailboxWatch,
  nodeDownDraft,
  OldCodeLinger,
  type AlertDraft,
  type EventFacts,
} from "./rules";
import { rolloutHaltedDraft, unverifiedDraft, type VerificationMisses } from "./upgrade-drafts";
import { autoResolve, loadRules, raiseAlert } from "./store";
import { deliverDue, enqueueDeliveries } from "./webhooks";

type Rules = Awaited<ReturnType<typeof loadRules>>;

export function factsOf(node: string, e: EventFrame, expected: boolean): EventFacts {
  const reason = e.reason as { atom?: string; text?: string } | null | undefined;
  return {
    node,
    kind: e.kind,
    context: e.context ?? null,
    supervisor: e.supervisor ?? null,
    reasonAtom: reason?.atom ?? null,
    reasonText: reason?.text ?? null,
    offenderId: e.offender?.id ?? null,
    offenderPid: e.offender?.pid ?? null,
    expected,
  };
}

export class AlertEngine {
  readonly expectations = new Expectations();
  private rules: Rules | null = null;
  private readonly mailboxes = new MailboxWatch();
  private readonly oldCodeLinger = new OldCodeLinger();
  private readonly leaks = new LeakWatch();
  private readonly drift = new DriftWatch();
  private timers: NodeJS.Timeout[] = [];
  private delivering = false;

  constructor(
    private readonly prisma: PrismaClient,
    private readonly hub: Hub,
    private readonly registry: AgentRegistry,
    events: EventStore,
    private readonly publicUrl: () => string | null,
    private readonly oldCode: OldCodeWatch | null = null,
    /** The groups of nodes (fleet/groups.ts), for the version-drift rule. */
    private readonly groups: (() => Promise<Group[]>) | null = null,
  ) {
    events.onStored((node, stored) => this.onEvents(node, stored));
    hub.listen("nodes", (p) => {
      const { node, connected } = p as { node: string; connected: boolean };
      if (connected) void this.resolve(`node_down|${node}`);
    });
    // A rule changed through any instance (PgHub carries it to the others).
    hub.listen("alert-rules", () => this.reloadRules());
  }

  start(): void {
    this.timers.push(setInterval(() => void this.tickMailboxes(), 1000));
    this.timers.push(setInterval(() => void this.tickNodes(), 2000));
    this.timers.push(setInterval(() => void this.tickOldCode(), 2000));
    this.timers.push(setInterval(() => void this.tickDrift(), 5000));
    this.timers.push(setInterval(() => void this.deliver(), 500));
    for (const t of this.timers) t.unref();
  }

  stop(): void {
    for (const t of this.timers) clearInterval(t);
    this.timers = [];
  }

  async currentRules(): Promise<Rules> {
    this.rules ??= await loadRules(this.prisma);
    return this.rules;
  }

  /** After a rule changes (the "alert-rules" topic). */
  reloadRules(): void {
    this.rules = null;
  }

  private async onEvents(node: string, stored: { id: bigint; frame: EventFrame }[]): Promise<void> {
    const rules = await this.currentRules();
    // One raise per alert group per batch: a flood of identical reports is
    // one alert with a count, not thousands of transactions.
    const groups = new Map<string, { draft: AlertDraft; eventId: bigint; times: number }>();
    const expected: { id: bigint; upgradeId: string; verdict: "expected" | "miss" }[] = [];
    const isKill = (frame: EventFrame) => frame.kind === "supervisor_report" && frame.context === "child_terminated";
    // The step may have been sent by another instance (a failover): the database says what it predicted.
    if (stored.some((s) => isKill(s.frame))) {
      const e = await storedExpectation(this.prisma, node).catch((err) => {
        console.error(`[beamdeck] ${node}: stored expected kills: ${(err as Error).message}`);
        return null;
      });
      if (e) this.expectations.adopt(node, e);
    }
    for (const { id, frame } of stored) {
      const verdict = isKill(frame) ? this.expectations.classify(node, frame.offender?.pid ?? null, frame.at) : null;
      if (verdict) expected.push({ id, ...verdict });
      const facts = factsOf(node, frame, verdict?.verdict === "expected");
      const drafts: AlertDraft[] = [];
      if (rules.child_terminated.enabled) {
        const d = matchChildTerminated(facts, rules.child_terminated.params);
        if (d && verdict?.verdict === "miss") {
          d.title = `${d.title}: not predicted by upgrade ${verdict.upgradeId}`;
          d.groupKey = `${d.groupKey}|miss`;
          d.detail = { ...d.detail, predictionMiss: true, upgradeId: verdict.upgradeId };
        }
        if (d) drafts.push(d);
      }
      if (rules.max_restart_intensity.enabled) {
        const d = matchMaxRestartIntensity(facts);
        if (d) drafts.push(d);
      }
      if (rules.event_gap.enabled) {
        const d = matchEventGap(facts);
        if (d) drafts.push(d);
      }
      for (const d of drafts) {
        const g = groups.get(d.groupKey);
        if (g) g.times += 1;
        else groups.set(d.groupKey, { draft: d, eventId: id, times: 1 });
      }
    }
    for (const v of ["expected", "miss"] as const) {
      const ids = expected.filter((e) => e.verdict === v);
      for (const upgradeId of new Set(ids.map((e) => e.upgradeId))) {
        await this.prisma.event.updateMany({ where: { id: { in: ids.filter((e) => e.upgradeId === upgradeId).map((e) => e.id) } }, data: { expected: v === "expected", upgradeId } });
      }
    }
    for (const g of groups.values()) await this.raise(g.draft, g.eventId, g.times);
  }

  private async raise(draft: AlertDraft, eventId: bigint | null, times = 1): Promise<void> {
    const { alert, created } = await raiseAlert(this.prisma, draft, eventId, times);
    this.hub.publish("alerts", { id: alert.id, created, status: alert.status });
    if (created) {
      await enqueueDeliveries(this.prisma, alert, this.publicUrl());
      void this.deliver();
    }
  }

  private async resolve(groupKey: string): Promise<void> {
    const n = await autoResolve(this.prisma, groupKey).catch(() => 0);
    if (n > 0) this.hub.publish("alerts", { groupKey, status: "resolved" });
  }

  /** How the leak rule sees one process's mailbox now (slope and age), or null. */
  mailboxGrowth(node: string, pid: string): MailboxGrowth | null {
    return this.leaks.growth(node, pid, Date.now());
  }

  private async tickMailboxes(): Promise<void> {
    const rules = await this.currentRules().catch(() => null);
    const rule = rules?.mailbox;
    const leak = rules?.mailbox_leak;
    const now = Date.now();
    for (const live of this.registry.liveNodes()) {
      if (!live.connected) continue;
      const outcomes = [];
      if (rule?.enabled) {
        const over = live.processes.top("mailbox", 200).filter((p) => p.mailbox > rule.params.threshold);
        outcomes.push(this.mailboxes.observe(live.name, over, rule.params, now));
      }
      // The 1000 fullest mailboxes are watched for growth (bounded work per tick).
      if (leak?.enabled)
        outcomes.push(
          this.leaks.observe(
            live.name,
            live.processes.top("mailbox", 1000).filter((p) => p.mailbox > 0),
            leak.params,
            now,
          ),
        );
      for (const { fire, cleared } of outcomes) {
        for (const d of fire) await this.raise(d, null).catch((e) => console.error(`[beamdeck] alert: ${(e as Error).message}`));
        for (const key of cleared) await this.resolve(key);
      }
    }
  }

  private async tickOldCode(): Promise<void> {
    const rules = await this.currentRules().catch(() => null);
    const rule = rules?.old_code;
    if (!rule?.enabled || !this.oldCode) return;
    const now = Date.now();
    for (const live of this.registry.liveNodes()) {
      const snap = live.connected ? this.oldCode.snapshot(live.name) : null;
      if (!snap) continue;
      const { fire, cleared } = this.oldCodeLinger.observe(live.name, snap.modules, rule.params, now);
      for (const d of fire) await this.raise(d, null).catch((e) => console.error(`[beamdeck] alert: ${(e as Error).message}`));
      for (const key of cleared) await this.resolve(key);
    }
  }

  /** An upgrade step's own check found modules on old code or children not started (rule `upgrade_unverified`). */
  async upgradeUnverified(node: string, step: string, vsn: string, v: VerificationMisses): Promise<void> {
    const rules = await this.currentRules().catch(() => null);
    if (!rules?.upgrade_unverified?.enabled) return;
    await this.raise(unverifiedDraft(node, step, vsn, v), null).catch((e) => console.error(`[beamdeck] alert: ${(e as Error).message}`));
  }

  /** A rollout halted (rule `rollout_halted`): the page and this alert say why. */
  async rolloutHalted(r: { id: string; group: string; toVsn: string }, node: string, reason: string): Promise<void> {
    const rules = await this.currentRules().catch(() => null);
    if (!rules?.rollout_halted?.enabled) return;
    await this.raise(rolloutHaltedDraft(r, node, reason), null).catch((e) => console.error(`[beamdeck] alert: ${(e as Error).message}`));
  }

  private async tickDrift(): Promise<void> {
    const rules = await this.currentRules().catch(() => null);
    const rule = rules?.version_drift;
    if (!rule?.enabled || !this.groups) return;
    try {
      // A running rollout drifts its group on purpose; a halted one is a half-done fleet and counts.
      const rolling = new Set((await this.prisma.rollout.findMany({ where: { status: { in: ACTIVE_STATUSES } }, select: { group: true }, take: 1000 })).map((r) => r.group));
      const groups = (await this.groups()).map((g) => (rolling.has(g.name) ? { ...g, drift: false } : g));
      const { fire, cleared } = this.drift.observe(groups, rule.params, Date.now());
      for (const d of fire) await this.raise(d, null);
      for (const key of cleared) await this.resolve(key);
    } catch (e) {
      console.error(`[beamdeck] alert: ${(e as Error).message}`);
    }
  }

  private async tickNodes(): Promise<void> {
    const rules = await this.currentRules().catch(() => null);
    const rule = rules?.node_down;
    if (!rule?.enabled) return;
    // lastSeenAt is written on the database's clock (leases.ts): compare on it, whatever this instance's clock says.
    const now = this.registry.leases.dbNow();
    const cutoff = new Date(now - rule.params.forSeconds * 1000);
    const down = await this.prisma.node.findMany({ where: { connectedAt: null, lastSeenAt: { lte: cutoff, gte: new Date(now - 7 * 86400_000) } }, take: 1000 });
    for (const n of down) {
      const open = await this.prisma.alert.findFirst({ where: { groupKey: `node_down|${n.name}`, status: { in: ["open", "acked"] } }, select: { id: true } });
      // Only the first crossing pages; a node that stays down is one alert.
      const firedForThisOutage = await this.prisma.alert.findFirst({ where: { groupKey: `node_down|${n.name}`, firstAt: { gte: n.lastSeenAt } }, select: { id: true } });
      if (!open && !firedForThisOutage) await this.raise(nodeDownDraft(n.name, n.lastSeenAt.getTime(), rule.params), null);
    }
  }

  private async deliver(): Promise<void> {
    if (this.delivering) return;
    this.delivering = true;
    try {
      for (let attempted = await deliverDue(this.prisma); attempted > 0; attempted = await deliverDue(this.prisma)) {
        // Delivery status is shown per alert: tell the pages it changed.
        this.hub.publish("alerts", { deliveries: attempted });
      }
    } catch (e) {
      console.error(`[beamdeck] webhook delivery: ${(e as Error).message}`);
    } finally {
      this.delivering = false;
    }
  }
}
