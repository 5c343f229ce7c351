/**
 * The agent's `upgrade_plan` reply (beamdeck_agent_plan's plan_json): the
 * one schema every other plan shape is inferred from (tRPC's output, the
 * page's, the CLI's). Every field the agent always sends is required; each
 * object stays `.loose()` so a newer agent's optional fields pass through.
 */
import { z } from "zod";
import { relupChange, relupScript } from "../agents/relup-schema";
import { printed } from "../agents/protocol";

const text = z.string().max(64 * 1024);
const n = z.number().int().min(0);
const pids = z.array(z.string().max(64));

export const PURGE = z.enum(["soft", "brutal"]);
export type Purge = z.infer<typeof PURGE>;
export const purgeChoices = z.record(z.string().min(1).max(255), PURGE);
export type PurgeChoices = z.infer<typeof purgeChoices>;

/** A process's fate in a plan (beamdeck_agent_preview's fate()), worst first: the order the dashboard lists them in. */
export const FATES = ["killed", "blocks_install", "badfun_on_next_call", "stays_on_old_code", "may_migrate", "suspended", "unaffected"] as const;
export type Fate = (typeof FATES)[number];
export const WHENS = ["install", "make_permanent"] as const;
export type When = (typeof WHENS)[number] | null;

/** A killed process after the kill (beamdeck_agent_restarts): restarted by its supervisor, or gone for good. */
export const afterKill = z
  .object({
    outcome: z.enum(["restarted", "gone", "unknown"]),
    supervisor: text.nullable(),
    restart: z.enum(["permanent", "transient", "temporary"]).nullable(),
    why: text,
  })
  .loose();
export type AfterKill = z.infer<typeof afterKill>;

/** One process as a plan lists it (beamdeck_agent_preview's process_json/1). */
const processFields = {
  pid: z.string().max(64),
  name: text.nullable(),
  when: z.enum(WHENS).nullable(),
  why: text,
  alive: z.boolean(),
  initialCall: text.nullable(),
  currentFunction: text.nullable(),
  stack: z.array(text).max(10_000),
  holdsFun: z.boolean(),
  /** Killed processes only. */
  afterKill: afterKill.optional(),
};
export const planProcess = z.object({ ...processFields, fate: z.enum(FATES) }).loose();
export type PlanProcess = z.infer<typeof planProcess>;

const fateCounts = z.record(z.enum(FATES), n);

export const planModule = z
  .object({
    module: text,
    app: text.nullable(),
    op: z.enum(["load", "remove", "update"]),
    prePurge: text,
    postPurge: text,
    hasOldCode: z.boolean(),
    suspend: z.boolean(),
    codeChange: z.object({ mode: text, extra: printed }).loose().nullable(),
    purgedAtInstall: z.boolean(),
    processes: z.array(planProcess).max(100_000),
    truncated: z.boolean(),
    counts: fateCounts,
  })
  .loose();
export type PlanModule = z.infer<typeof planModule>;

/** A loop or fun the lint found in a changed module (beamdeck_agent_lint's finding_json, plus the pids in it). */
export const lintFinding = z
  .object({
    module: text,
    function: text,
    arity: z.number().int(),
    message: text,
    fix: text,
    line: z.number().int().nullable(),
    language: z.enum(["elixir", "erlang"]),
    evidence: text.nullable(),
    calls: z.array(text).max(10_000),
    pids: pids.max(100_000),
    versions: z.array(z.enum(["loaded", "target"])).max(2),
  })
  .loose();
export type LintFinding = z.infer<typeof lintFinding>;

/** Severity follows from the check (decided once, in the agent: beamdeck_agent_findings). */
export const SEVERITIES = ["error", "warning", "info"] as const;

/** One finding of a plan (docs/protocol.md, "Findings"); `id` is stable: `check:module[:detail]`. */
export const finding = z
  .object({
    id: z.string().min(1).max(512),
    check: z.string().min(1).max(64),
    severity: z.enum(SEVERITIES),
    module: text.nullable(),
    pids: pids.max(100),
    count: n,
    message: text,
    fix: text,
  })
  .loose();
export type Finding = z.infer<typeof finding>;

/** The agent's verdict, worst first: what the CLI's exit code and the gates follow. */
export const VERDICTS = ["blocked", "error_findings", "would_kill", "safe"] as const;
/** The finer impact the page shows. */
export const IMPACTS = ["safe", "at_risk", "kills", "blocked", "restarts"] as const;
export const STEPS = ["install", "make_permanent", "rollback"] as const;
export type Step = (typeof STEPS)[number];

export const plan = z
  .object({
    /** First, so a plan from an agent without gates is named by what it lacks (zod reports in this order). */
    digest: z.string({ error: 'missing: the agent predates plan digests and gates (no "gates" capability); update the agent' }).regex(/^[0-9a-f]{64}$/),
    /** Which step this plan is for, decided by the agent from the release statuses. */
    step: z.enum(STEPS),
    action: z.enum(STEPS),
    vsn: text,
    from: text,
    to: text,
    direction: z.enum(["up", "down"]),
    name: text,
    relupFile: text,
    verdict: z.enum(VERDICTS),
    impact: z.enum(IMPACTS),
    findings: z.array(finding).max(10_000),
    /** Every pid each step kills (beyond the listing cap of `modules`). */
    killed: z.object({ install: pids.max(100_000), make_permanent: pids.max(100_000) }),
    choices: z.object({ purge: purgeChoices, prePurge: purgeChoices }),
    /** The relup as written and as the choices rewrite it (null: longer than one frame carries). */
    relup: z.object({ original: relupScript.nullable(), rewritten: relupScript.nullable(), instructions: n, changes: z.array(relupChange).max(100_000) }).loose(),
    restart: text.nullable(),
    nodeFate: z
      .object({ fate: z.literal("node_restarts"), when: z.literal("install"), why: text })
      .loose()
      .nullable(),
    modules: z.array(planModule).max(100_000),
    /** Applications stopped during install, with their processes (fate `stopped`). */
    applications: z.array(z.object({ app: text, action: text, processes: z.array(z.object({ ...processFields, fate: text }).loose()).max(100_000) }).loose()).max(10_000),
    lint: z.array(lintFinding).max(100_000),
    lintErrors: z.array(z.object({ module: text, version: text, error: text }).loose()).max(100_000),
    /** Complete counts (the listing of `modules` stops at 400 processes): per fate, and killed per step. */
    counts: fateCounts.and(z.object({ processes: n, killedAtInstall: n, killedAtPermanent: n })),
    truncated: z.boolean(),
    scan: z.object({ processes: n, matched: n, elapsedUs: n, partial: z.boolean() }).loose(),
    at: z.number().int(),
  })
  .loose();
export type Plan = z.infer<typeof plan>;

/**
 * What the agent verified after install and after make_permanent (optional
 * field `verification` of the command result, capability `verification`):
 * every loaded module of the changed applications on its target md5.
 */
export const verification = z
  .object({
    ok: z.boolean(),
    checked: n,
    missed: z.array(z.object({ module: text, app: text, expected: text.nullable(), loaded: text.nullable() }).loose()).max(100),
    missedCount: n,
    /** Permanent children of the changed applications' supervisors without a process (new child specs nobody started). */
    notStarted: z
      .array(z.object({ supervisor: text, id: text }).loose())
      .max(100)
      .optional(),
    /** The processes `not_suspended` findings named: alive, or dead (a miss) with the exit reason the agent saw, if it saw it. */
    processes: z
      .array(z.object({ pid: text, module: text.nullable(), alive: z.boolean(), reason: text.nullable() }).loose())
      .max(100)
      .optional(),
  })
  .loose();
export type Verification = z.infer<typeof verification>;
