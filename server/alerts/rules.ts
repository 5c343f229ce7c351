/**
 * Alert rules: defaults, editable parameters, and pure matching functions.
 * The engine (engine.ts) feeds them events and live samples; nothing here
 * touches the database, so every rule is unit-testable.
 */
import { z } from "zod";
import { reasonTag } from "../events/reason-tag";

export const RULE_KINDS = [
  "child_terminated",
  "max_restart_intensity",
  "mailbox",
  "mailbox_leak",
  "node_down",
  "old_code",
  "event_gap",
  "version_drift",
  "upgrade_unverified",
  "rollout_halted",
] as const;
export type RuleKind = (typeof RULE_KINDS)[number];

export const ruleParams = {
  child_terminated: z.object({
    /** Reasons that page, as atom text; `killed` is the one an upgrade's brutal purge gives. */
    reasons: z.array(z.string().min(1).max(100)).max(50).default(["killed"]),
    /** Page on any abnormal reason (not normal/shutdown/{shutdown,_}) too. */
    anyAbnormal: z.boolean().default(false),
  }),
  max_restart_intensity: z.object({}),
  mailbox: z.object({
    threshold: z.number().int().min(1).max(1_000_000_000).default(10_000),
    forSeconds: z.number().int().min(0).max(86_400).default(30),
  }),
  mailbox_leak: z.object({
    /** A mailbox that has not drained for this long… */
    windowSeconds: z
      .number()
      .int()
      .min(1)
      .max(7 * 86_400)
      .default(600),
    /** …and grew by at least this many messages in that time, however slowly. */
    minGrowth: z.number().int().min(1).max(1_000_000_000).default(20),
  }),
  node_down: z.object({
    forSeconds: z.number().int().min(0).max(86_400).default(60),
  }),
  event_gap: z.object({}),
  old_code: z.object({
    /** How long processes may stay on a module's old code after a load before it pages. */
    forSeconds: z
      .number()
      .int()
      .min(0)
      .max(7 * 86_400)
      .default(600),
  }),
  upgrade_unverified: z.object({}),
  rollout_halted: z.object({}),
  version_drift: z.object({
    /** How long the connected nodes of one group may run different releases before it pages. */
    forSeconds: z
      .number()
      .int()
      .min(0)
      .max(30 * 86_400)
      .default(1800),
  }),
} satisfies Record<RuleKind, z.ZodType>;

export type RuleParams = { [K in RuleKind]: z.infer<(typeof ruleParams)[K]> };

export const RULE_TITLES: Record<RuleKind, string> = {
  child_terminated: "Unexpected child_terminated",
  max_restart_intensity: "Supervisor gave up (reached_max_restart_intensity)",
  mailbox: "Mailbox above threshold",
  mailbox_leak: "Mailbox growing (leak)",
  node_down: "Node disconnected",
  event_gap: "Event sequence gap or regression (events missing or forged)",
  old_code: "Processes left on old code",
  version_drift: "Nodes of a group run different releases",
  upgrade_unverified: "An upgrade step left modules on old code, children not started, or an unreachable process dead",
  rollout_halted: "A rollout halted: a node failed its health gate or a step failed",
};

export function defaultParams<K extends RuleKind>(kind: K): RuleParams[K] {
  return ruleParams[kind].parse({}) as RuleParams[K];
}

/** What the engine knows of a stored event (see events/store.ts). */
export interface EventFacts {
  node: string;
  kind: string;
  context: string | null;
  supervisor: string | null;
  reasonAtom: string | null;
  reasonText: string | null;
  offenderId: string | null;
  offenderPid: string | null;
  expected: boolean;
}

export interface AlertDraft {
  kind: RuleKind;
  node: string;
  groupKey: string;
  title: string;
  detail: Record<string, unknown>;
}

function isNormalExit(e: EventFacts): boolean {
  const r = e.reasonAtom ?? e.reasonText ?? "";
  return r === "normal" || r === "shutdown" || r.startsWith("{shutdown,");
}

export function matchChildTerminated(e: EventFacts, p: RuleParams["child_terminated"]): AlertDraft | null {
  if (e.kind !== "supervisor_report" || e.context !== "child_terminated" || e.expected) return null;
  const reason = e.reasonAtom ?? e.reasonText ?? "";
  if (!p.reasons.includes(reason) && !(p.anyAbnormal && !isNormalExit(e))) return null;
  // Alerts reach every role and every webhook: they name the reason's tag, never its values (events/event-values.ts).
  const shown = reasonTag(reason);
  return {
    kind: "child_terminated",
    node: e.node,
    groupKey: `child_terminated|${e.node}|${e.supervisor}|${e.offenderId}|${shown}`,
    title: `${e.supervisor ?? "a supervisor"}: child ${e.offenderId ?? e.offenderPid ?? "?"} terminated (${shown})`,
    detail: { supervisor: e.supervisor, offenderId: e.offenderId, offenderPid: e.offenderPid, reason: shown },
  };
}

export function matchMaxRestartIntensity(e: EventFacts): AlertDraft | null {
  const reason = e.reasonAtom ?? e.reasonText ?? "";
  if (e.kind !== "supervisor_report" || e.context !== "shutdown" || reason !== "reached_max_restart_intensity") return null;
  return {
    kind: "max_restart_intensity",
    node: e.node,
    groupKey: `max_restart_intensity|${e.node}|${e.supervisor}`,
    title: `${e.supervisor ?? "a supervisor"} gave up: reached_max_restart_intensity`,
    detail: { supervisor: e.supervisor, offenderId: e.offenderId },
  };
}

/** The gap contexts that page, and how their alerts read (the one list: a context not here is only recorded). */
const GAP_TITLES: Record<string, string> = {
  undeclared: "events missing from the sequence, not declared dropped by the agent",
  regression: "event sequence regressed (events the agent never sent were stored)",
  refused: "events refused by the server (they did not match the protocol's schema)",
};

/**
 * The server records `event_gap` events itself (events/sequence.ts): an
 * undeclared gap, a regression or a refused event (agents/refusal.ts) pages;
 * a gap the agent declared (its buffer overflowed) is only recorded.
 */
export function matchEventGap(e: EventFacts): AlertDraft | null {
  const title = e.kind === "event_gap" && e.context !== null && Object.hasOwn(GAP_TITLES, e.context) ? GAP_TITLES[e.context] : null;
  if (title === null) return null;
  return {
    kind: "event_gap",
    node: e.node,
    groupKey: `event_gap|${e.node}|${e.context}`,
    title: `${e.node}: ${title}`,
    detail: { context: e.context, reason: e.reasonText },
  };
}

/**
 * Mailbox rule state: since when each process has been over the threshold.
 * `observe` returns the processes that just crossed the time limit.
 */
export class MailboxWatch {
  private overSince = new Map<string, number>();
  private fired = new Set<string>();

  observe(node: string, over: { pid: string; name: string | null; mailbox: number }[], p: RuleParams["mailbox"], now: number): { fire: AlertDraft[]; cleared: string[] } {
    const seen = new Set<string>();
    const fire: AlertDraft[] = [];
    for (const proc of over) {
      if (proc.mailbox <= p.threshold) continue;
      const key = `${node}|${proc.pid}`;
      seen.add(key);
      const since = this.overSince.get(key) ?? now;
      this.overSince.set(key, since);
      if (now - since >= p.forSeconds * 1000 && !this.fired.has(key)) {
        this.fired.add(key);
        fire.push({
          kind: "mailbox",
          node,
          groupKey: `mailbox|${node}|${proc.pid}`,
          title: `${proc.name ?? proc.pid} on ${node}: ${proc.mailbox} messages queued for over ${p.forSeconds} s`,
          detail: { pid: proc.pid, name: proc.name, mailbox: proc.mailbox, threshold: p.threshold, forSeconds: p.forSeconds },
        });
      }
    }
    const cleared: string[] = [];
    for (const key of this.overSince.keys()) {
      if (key.startsWith(`${node}|`) && !seen.has(key)) {
        this.overSince.delete(key);
        if (this.fired.delete(key)) cleared.push(`mailbox|${key}`);
      }
    }
    return { fire, cleared };
  }
}

export function nodeDownDraft(node: string, since: number, p: RuleParams["node_down"]): AlertDraft {
  return {
    kind: "node_down",
    node,
    groupKey: `node_down|${node}`,
    title: `${node} disconnected for over ${p.forSeconds} s`,
    detail: { since: new Date(since).toISOString(), forSeconds: p.forSeconds },
  };
}

/**
 * Old-code rule state: a module whose old code still runs processes for
 * longer than the rule allows pages once; it clears when none are left.
 */
export class OldCodeLinger {
  private fired = new Set<string>();

  observe(node: string, modules: { module: string; count: number; since: number; pids: string[] }[], p: RuleParams["old_code"], now: number): { fire: AlertDraft[]; cleared: string[] } {
    const fire: AlertDraft[] = [];
    const seen = new Set<string>();
    for (const m of modules) {
      const key = `old_code|${node}|${m.module}`;
      seen.add(key);
      if (now - m.since < p.forSeconds * 1000 || this.fired.has(key)) continue;
      this.fired.add(key);
      const minutes = Math.max(1, Math.round((now - m.since) / 60_000));
      fire.push({
        kind: "old_code",
        node,
        groupKey: key,
        title: `${m.count} process(es) on ${node} still on old code of ${m.module} for ${minutes} min: the next load of ${m.module} kills them (brutal purge) or is blocked (soft purge)`,
        detail: { module: m.module, count: m.count, since: new Date(m.since).toISOString(), pids: m.pids.slice(0, 100), forSeconds: p.forSeconds },
      });
    }
    const cleared: string[] = [];
    for (const key of this.fired) {
      if (key.startsWith(`old_code|${node}|`) && !seen.has(key)) {
        this.fired.delete(key);
        cleared.push(key);
      }
    }
    return { fire, cleared };
  }
}

/**
 * Mailbox-leak rule state: a process whose mailbox has not drained (never
 * came back to where it started) for `windowSeconds` and grew by at least
 * `minGrowth` pages once, however slow the growth — the forum's acceptor
 * leaking `{Ref, Result}` and `:DOWN` messages of unawaited `Task.async`
 * calls grows by two per connection. A drain (the length drops to where the
 * watch started, or to 0) starts the watch afresh and clears the alert.
 */
/** One watched mailbox as the leak rule sees it: growing since `since` from `from` to `now`, at `perMinute`. */
export interface MailboxGrowth {
  since: number;
  from: number;
  now: number;
  perMinute: number;
  /** The rule fired for it (and has not resolved). */
  fired: boolean;
}

export class LeakWatch {
  private readonly watch = new Map<string, { since: number; start: number; last: number; fired: boolean }>();

  /** The watch on one process (slope and age), or null when it is not watched (empty mailbox, not in the top 1000, rule off). */
  growth(node: string, pid: string, now: number): MailboxGrowth | null {
    const w = this.watch.get(`${node}|${pid}`);
    if (!w) return null;
    const minutes = Math.max(now - w.since, 1) / 60_000;
    return { since: w.since, from: w.start, now: w.last, perMinute: (w.last - w.start) / minutes, fired: w.fired };
  }

  observe(node: string, procs: { pid: string; name: string | null; mailbox: number }[], p: RuleParams["mailbox_leak"], now: number): { fire: AlertDraft[]; cleared: string[] } {
    const fire: AlertDraft[] = [];
    const cleared: string[] = [];
    const seen = new Set<string>();
    for (const proc of procs) {
      const key = `${node}|${proc.pid}`;
      seen.add(key);
      const w = this.watch.get(key);
      // Back down to where the watch started (or below) after growing: it drains.
      const drained = w !== undefined && (proc.mailbox < w.start || (proc.mailbox === w.start && w.last > w.start));
      if (!w || drained) {
        if (w?.fired) cleared.push(`mailbox_leak|${key}`);
        this.watch.set(key, { since: now, start: proc.mailbox, last: proc.mailbox, fired: false });
        continue;
      }
      w.last = proc.mailbox;
      const growth = proc.mailbox - w.start;
      if (!w.fired && now - w.since >= p.windowSeconds * 1000 && growth >= p.minGrowth) {
        w.fired = true;
        const minutes = (now - w.since) / 60_000;
        fire.push({
          kind: "mailbox_leak",
          node,
          groupKey: `mailbox_leak|${key}`,
          title: `${proc.name ?? proc.pid} on ${node}: mailbox grew from ${w.start} to ${proc.mailbox} in ${minutes.toFixed(1)} min without draining (${(growth / minutes).toFixed(1)}/min) — a leak?`,
          detail: {
            pid: proc.pid,
            name: proc.name,
            from: w.start,
            to: proc.mailbox,
            since: new Date(w.since).toISOString(),
            perMinute: growth / minutes,
            windowSeconds: p.windowSeconds,
            minGrowth: p.minGrowth,
          },
        });
      }
    }
    // Gone from the watched set (drained to 0, or exited): clear.
    for (const [key, w] of this.watch) {
      if (!key.startsWith(`${node}|`) || seen.has(key)) continue;
      this.watch.delete(key);
      if (w.fired) cleared.push(`mailbox_leak|${key}`);
    }
    return { fire, cleared };
  }
}

/**
 * Version-drift rule state: the connected nodes of a group running more than
 * one release for longer than the rule allows page once per drift; it
 * clears when they run one release again (or the group is gone).
 */
export class DriftWatch {
  private readonly since = new Map<string, number>();
  private readonly fired = new Set<string>();

  observe(
    groups: { name: string; drift: boolean; versions: string[]; nodes: { name: string; connected: boolean; release: { name: string; vsn: string } | null }[] }[],
    p: RuleParams["version_drift"],
    now: number,
  ): { fire: AlertDraft[]; cleared: string[] } {
    const fire: AlertDraft[] = [];
    const drifting = new Set<string>();
    for (const g of groups) {
      if (!g.drift) continue;
      const key = `version_drift|${g.name}`;
      drifting.add(key);
      const since = this.since.get(key) ?? now;
      this.since.set(key, since);
      if (now - since < p.forSeconds * 1000 || this.fired.has(key)) continue;
      this.fired.add(key);
      const live = g.nodes.filter((n) => n.connected);
      const minutes = Math.max(1, Math.round((now - since) / 60_000));
      fire.push({
        kind: "version_drift",
        // An alert belongs to a node: the group's first connected one (the detail lists them all).
        node: live[0]?.name ?? g.nodes[0]?.name ?? g.name,
        groupKey: key,
        title: `Group ${g.name} runs ${g.versions.length} releases for ${minutes} min: ${g.versions.join(", ")}`,
        detail: {
          group: g.name,
          versions: g.versions,
          nodes: live.slice(0, 100).map((n) => ({ node: n.name, release: n.release })),
          since: new Date(since).toISOString(),
          forSeconds: p.forSeconds,
        },
      });
    }
    const cleared: string[] = [];
    for (const key of [...this.since.keys()]) {
      if (drifting.has(key)) continue;
      this.since.delete(key);
      if (this.fired.delete(key)) cleared.push(key);
    }
    return { fire, cleared };
  }
}
