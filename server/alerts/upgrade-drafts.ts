/**
 * Alerts raised by upgrade steps and rollouts rather than by matching events
 * or samples: a step whose verification missed, a rollout that halted. Pure,
 * like rules.ts; the engine raises them (engine.ts).
 */
import type { AlertDraft } from "./rules";

/** What the agent's check after a step found missing (server/upgrades/plan.ts, `verification`). */
export interface VerificationMisses {
  checked: number;
  missedCount: number;
  missed: { module: string }[];
  notStarted?: { supervisor: string; id: string }[];
  processes?: { pid: string; module: string | null; alive: boolean; reason: string | null }[];
}

/**
 * A step that succeeded but left changed modules on their old code (an
 * appup that misses them), new permanent children not started, or a
 * process the plan's `not_suspended` finding named dead, pages
 * once per node and target release: nothing else would show it until the
 * next upgrade or restart.
 */
export function unverifiedDraft(node: string, step: string, vsn: string, v: VerificationMisses): AlertDraft {
  const parts: string[] = [];
  if (v.missedCount > 0) parts.push(`${v.missedCount} of ${v.checked} module(s) not on ${vsn}'s code (${v.missed.map((m) => m.module).join(", ")})`);
  const idle = v.notStarted ?? [];
  if (idle.length > 0) parts.push(`${idle.length} permanent child(ren) not started (${idle.map((c) => `${c.supervisor}/${c.id}`).join(", ")})`);
  const dead = (v.processes ?? []).filter((p) => !p.alive);
  if (dead.length > 0) parts.push(`${dead.length} unreachable process(es) died (${dead.map((p) => `${p.pid} ${p.module ?? "?"}${p.reason ? `: ${p.reason}` : ""}`).join(", ")})`);
  return {
    kind: "upgrade_unverified",
    node,
    groupKey: `upgrade_unverified|${node}|${vsn}`,
    title: `${step} of ${vsn} on ${node} not verified: ${parts.join("; ") || "see the step's verification"}`,
    detail: { step, vsn, checked: v.checked, missedCount: v.missedCount, missed: v.missed.slice(0, 100), notStarted: idle.slice(0, 100), dead: dead.slice(0, 100) },
  };
}

/** A rollout halted (server/fleet/rollout-engine.ts): once per rollout, on the node that failed (or the group's first). */
export function rolloutHaltedDraft(r: { id: string; group: string; toVsn: string }, node: string, reason: string): AlertDraft {
  return {
    kind: "rollout_halted",
    node,
    groupKey: `rollout_halted|${r.id}`,
    title: `Rollout ${r.id} of group ${r.group} to ${r.toVsn} halted: ${reason}`,
    detail: { rolloutId: r.id, group: r.group, vsn: r.toVsn, node, reason },
  };
}
