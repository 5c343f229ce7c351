/**
 * What the server reads out of a plan (kills per step, what stays on old
 * code, the findings a gate accepts) and out of a step's verification. The
 * schemas themselves are in plan-schema.ts, re-exported here.
 */
import { type Plan, type Verification, verification } from "./plan-schema";

export * from "./plan-schema";

export interface PredictedKill {
  pid: string;
  name: string | null;
  module: string;
  when: string;
}

/** The processes a plan says will be killed, once per pid. */
export function predictedKills(p: Plan, when?: "install" | "make_permanent"): PredictedKill[] {
  const out = new Map<string, PredictedKill>();
  // The agent lists a few hundred processes in detail but every killed pid in `killed`.
  for (const w of ["install", "make_permanent"] as const) {
    if (when && w !== when) continue;
    for (const pid of p.killed[w]) if (!out.has(pid)) out.set(pid, { pid, name: null, module: "", when: w });
  }
  for (const m of p.modules) {
    for (const proc of m.processes) {
      if (proc.fate !== "killed") continue;
      const w = proc.when ?? "make_permanent";
      if (when && w !== when) continue;
      out.set(proc.pid, { pid: proc.pid, name: proc.name ?? null, module: m.module, when: w });
    }
  }
  return [...out.values()];
}

/** How many processes the plan kills in all: its complete counts (the listing stops at 400). */
export function killCount(p: Plan): number {
  return p.counts.killedAtInstall + p.counts.killedAtPermanent;
}

/** At most this many processes left on old code are written into an audit intent. */
const MAX_AUDITED_OLD_CODE = 1000;

/** The processes a plan leaves running old code (soft purge): what the operator accepts onto old code. */
export function onOldCode(p: Plan): { pid: string; name: string | null; module: string }[] {
  const out: { pid: string; name: string | null; module: string }[] = [];
  for (const m of p.modules) {
    for (const proc of m.processes) {
      if (proc.fate === "stays_on_old_code" && out.length < MAX_AUDITED_OLD_CODE) out.push({ pid: proc.pid, name: proc.name ?? null, module: m.module });
    }
  }
  return out;
}

/** Every finding the operator saw and went ahead with (ids and severities; the text is in the plan). */
export function findingsAccepted(p: Plan): { id: string; severity: string }[] {
  return p.findings.map((f) => ({ id: f.id, severity: f.severity }));
}

/** The ids of the plan's error findings: what a gate has to accept besides kills. */
export function errorFindingIds(p: Plan): string[] {
  return p.findings.filter((f) => f.severity === "error").map((f) => f.id);
}

/** The verification a command result carries; null when absent (an older agent, or a step that verifies nothing) or malformed. */
export function verificationOf(result: unknown): Verification | null {
  const v = (result as { verification?: unknown } | null)?.verification;
  if (v === undefined || v === null) return null;
  const parsed = verification.safeParse(v);
  return parsed.success ? parsed.data : null;
}
