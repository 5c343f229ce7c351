/**
 * The shapes of the agent's upgrade answers (releases, plan, old code,
 * command results), checked with zod where the server relies on a field,
 * passed through loosely elsewhere so the dashboard can show everything.
 */
import { z } from "zod";

export const PURGE = z.enum(["soft", "brutal"]);
export const purgeChoices = z.record(z.string().min(1).max(255), PURGE);
export type PurgeChoices = z.infer<typeof purgeChoices>;

/** A process's fate in a plan (beamdeck_agent_preview's fate()), worst first: the order the dashboard lists them in. */
export const FATES = ["killed", "blocks_install", "badfun_on_next_call", "stays_on_old_code", "may_migrate", "suspended", "unaffected"] as const;
export type Fate = (typeof FATES)[number];

export const planProcess = z
  .object({
    pid: z.string(),
    name: z.string().nullable().optional(),
    fate: z.enum(FATES),
    when: z.enum(["install", "make_permanent"]).nullable().optional(),
    why: z.string().optional(),
  })
  .loose();

export const planModule = z
  .object({
    module: z.string(),
    prePurge: z.string().nullable().optional(),
    postPurge: z.string().nullable().optional(),
    processes: z.array(planProcess).default([]),
  })
  .loose();

export const lintFinding = z.object({ module: z.string(), function: z.string(), arity: z.number().int(), message: z.string() }).loose();

/** Severity follows from the check (decided once, in the agent: beamdeck_agent_findings). */
export const SEVERITIES = ["error", "warning", "info"] as const;

/** One finding of a plan (docs/protocol.md, "Findings"); `id` is stable: `check:module[:detail]`. */
export const finding = z
  .object({
    id: z.string().min(1).max(512),
    check: z.string().min(1).max(64),
    severity: z.enum(SEVERITIES),
    module: z.string().nullable(),
    pids: z.array(z.string()).max(100),
    count: z.number().int().min(0),
    message: z.string(),
    fix: z.string(),
  })
  .loose();
export type Finding = z.infer<typeof finding>;

/** The agent's verdict, worst first: what the CLI's exit code and the gates follow. */
export const VERDICTS = ["blocked", "error_findings", "would_kill", "safe"] as const;
export const STEPS = ["install", "make_permanent", "rollback"] as const;
export type Step = (typeof STEPS)[number];

export const plan = z
  .object({
    /** Which step this plan is for, decided by the agent from the release statuses. */
    step: z.enum(STEPS),
    from: z.string(),
    to: z.string(),
    verdict: z.enum(VERDICTS),
    findings: z.array(finding).default([]),
    /** sha256 hex over node, boot id, step, purge settings, killed pids per step, blockers, error finding ids. */
    digest: z.string({ error: 'missing: the agent predates plan digests and gates (no "gates" capability); update the agent' }).regex(/^[0-9a-f]{64}$/),
    /** Every pid each step kills (beyond the listing cap of `modules`). */
    killed: z.object({ install: z.array(z.string()), make_permanent: z.array(z.string()) }),
    modules: z.array(planModule).default([]),
    lint: z.array(lintFinding).default([]),
    /** Complete counts (the listing of `modules` stops at 400 processes). */
    counts: z
      .object({ killedAtInstall: z.number().int().min(0), killedAtPermanent: z.number().int().min(0) })
      .loose()
      .optional(),
  })
  .loose();
export type Plan = z.infer<typeof plan>;

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
  const all = p.killed;
  if (all) {
    for (const w of ["install", "make_permanent"] as const) {
      if (when && w !== when) continue;
      for (const pid of all[w] ?? []) if (!out.has(pid)) out.set(pid, { pid, name: null, module: "", when: w });
    }
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

/** How many processes the plan kills in all: its counts when given (complete), else the listed ones. */
export function killCount(p: Plan): number {
  const c = p.counts;
  if (c) return c.killedAtInstall + c.killedAtPermanent;
  return predictedKills(p).length;
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

/**
 * What the agent verified after install and after make_permanent (optional
 * field `verification` of the command result, capability `verification`):
 * every loaded module of the changed applications on its target md5, new
 * permanent children running, and the processes the plan's `not_suspended`
 * findings named still alive.
 */
export const verification = z
  .object({
    ok: z.boolean(),
    checked: z.number().int().min(0),
    missed: z.array(z.object({ module: z.string(), app: z.string(), expected: z.string().nullable(), loaded: z.string().nullable() }).loose()).max(100),
    missedCount: z.number().int().min(0),
    /** Permanent children of the changed applications' supervisors without a process (new child specs nobody started). */
    notStarted: z
      .array(z.object({ supervisor: z.string(), id: z.string() }).loose())
      .max(100)
      .optional(),
    /** The processes `not_suspended` findings named: alive, or dead (a miss) with the exit reason the agent saw, if it saw it. */
    processes: z
      .array(z.object({ pid: z.string(), module: z.string().nullable(), alive: z.boolean(), reason: z.string().nullable() }).loose())
      .max(100)
      .optional(),
  })
  .loose();
export type Verification = z.infer<typeof verification>;

/** The verification a command result carries; null when absent (an older agent, or a step that verifies nothing) or malformed. */
export function verificationOf(result: unknown): Verification | null {
  const v = (result as { verification?: unknown } | null)?.verification;
  if (v === undefined || v === null) return null;
  const parsed = verification.safeParse(v);
  return parsed.success ? parsed.data : null;
}
