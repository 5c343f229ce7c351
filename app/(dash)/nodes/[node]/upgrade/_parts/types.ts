/**
 * The agent's upgrade answers as the page reads them (docs/protocol.md;
 * agent/src/beamdeck_agent_{release,preview,upgrade,restarts}.erl).
 *
 * Inferred from the router where it is typed (`Upgrade`, the history). The
 * router still passes releases, plan and old code through loosely (`unknown`
 * and a partial zod schema), so their shapes are restated here until the
 * server's per-method reply schemas (issue 11 item 1, another branch) type
 * them; then each becomes `RouterOutputs["upgrades"][…]` and this file keeps
 * only the helpers at its end.
 */
import type { RouterOutputs } from "../../../../../_lib/types";
import type { Finding } from "../../../../../../server/upgrades/plan";

export type { Finding };

export type Purge = "soft" | "brutal";
export type PurgeMap = Record<string, Purge>;

export const FATES = ["killed", "blocks_install", "badfun_on_next_call", "stays_on_old_code", "may_migrate", "suspended", "unaffected"] as const;
export type Fate = (typeof FATES)[number];
export type When = "install" | "make_permanent" | null;

/** One low-level relup instruction (beamdeck_agent_release:instruction_json/1). */
export interface RelupInstruction {
  op: string;
  text: string;
  app?: string;
  appVsn?: string | null;
  module?: string;
  modules?: (string | { module: string; extra?: { text: string } })[];
  prePurge?: string;
  postPurge?: string;
  mfa?: string;
  mode?: string;
}

/** One high-level appup instruction, defaults made explicit (appup_json/1). */
export interface AppupInstruction {
  kind: string;
  text: string;
  module?: string;
  application?: string;
  prePurge?: string;
  postPurge?: string;
  change?: string;
  codeChange?: boolean;
  deps?: string[];
  defaulted?: string[];
  mfa?: string;
}

export interface Appup {
  app: string;
  from: string | null;
  to: string | null;
  change: "changed" | "added" | "removed";
  file: string | null;
  instructions: AppupInstruction[];
  error: { code: string; message: string } | null;
}

export interface ReleasePath {
  from: string;
  to: string;
  direction: "up" | "down";
  relupFile: string;
  script: RelupInstruction[] | null;
  onDisk: RelupInstruction[] | null;
  appups: Appup[];
}

export interface Releases {
  handler: boolean;
  stale: boolean;
  name: string | null;
  current: string | null;
  permanent: string | null;
  releasesDir: string;
  releases: { name: string; vsn: string; status: string; apps: string[] }[];
  packages: { file: string; package: string; vsn: string | null; size: number | null; modifiedAt: number | null; unpacked: boolean }[];
  pending: { vsn: string; state: "unpacked" | "package"; package: string | null }[];
  path: ReleasePath | null;
}

export interface PlanProcess {
  pid: string;
  name: string | null;
  fate: Fate;
  when: When;
  why: string;
  alive?: boolean;
  initialCall?: string | null;
  currentFunction?: string | null;
  stack?: string[];
  holdsFun?: boolean;
  /** Killed processes only (agent: beamdeck_agent_restarts): restarted by its supervisor, or gone for good. */
  afterKill?: AfterKill;
}

export interface AfterKill {
  outcome: "restarted" | "gone" | "unknown";
  supervisor: string | null;
  restart: "permanent" | "transient" | "temporary" | null;
  why: string;
}

export interface PlanModule {
  module: string;
  app: string | null;
  op: "load" | "remove" | "update";
  prePurge: string;
  postPurge: string;
  hasOldCode: boolean;
  suspend: boolean;
  codeChange: { mode: string; extra: { text: string } } | null;
  purgedAtInstall: boolean;
  processes: PlanProcess[];
  truncated: boolean;
  counts: Record<Fate, number>;
}

export interface LintFinding {
  module: string;
  function: string;
  arity: number;
  message: string;
  fix: string;
  line: number | null;
  language: "elixir" | "erlang";
  evidence: string | null;
  calls: string[];
  pids: string[];
  versions: ("loaded" | "target")[];
}

export interface PlanChange {
  module: string;
  field: "prePurge" | "postPurge";
  from: string;
  to: string;
}

export interface Plan {
  action: "install" | "make_permanent" | "rollback";
  /** The step this plan is for, decided by the agent. */
  step: "install" | "make_permanent" | "rollback";
  /** What the gate accepts: the digest of this plan's exact kills and error findings. */
  digest: string;
  findings: Finding[];
  /** Every pid each step kills (the listing below is capped). */
  killed: { install: string[]; make_permanent: string[] };
  vsn: string;
  from: string;
  to: string;
  direction: "up" | "down";
  name: string;
  relupFile: string;
  choices: { purge: PurgeMap; prePurge: PurgeMap };
  relup: { original: RelupInstruction[] | null; rewritten: RelupInstruction[] | null; instructions: number; changes: PlanChange[] };
  restart: string | null;
  nodeFate: { fate: "node_restarts"; when: "install"; why: string } | null;
  modules: PlanModule[];
  applications: { app: string; action: string; processes: PlanProcess[] }[];
  counts: Record<Fate, number> & { processes: number; killedAtInstall: number; killedAtPermanent: number };
  /** The gate's verdict (the CLI's exit code follows it). */
  verdict: "blocked" | "error_findings" | "would_kill" | "safe";
  /** The finer impact shown on the page. */
  impact: "safe" | "at_risk" | "kills" | "blocked" | "restarts";
  lint: LintFinding[];
  lintErrors: { module: string; version: string; error: string }[];
  truncated: boolean;
  scan: { processes: number; matched: number; elapsedUs: number; partial: boolean };
  at: number;
}

export interface OldCodeProcess {
  pid: string;
  name: string | null;
  initialCall: string | null;
  currentFunction: string | null;
}

export interface OldCode {
  at: number;
  total: number;
  processes: number;
  elapsedUs: number;
  modules: { module: string; hasOldCode: boolean; count: number; truncated: boolean; processes: OldCodeProcess[] }[];
}

/** A process the agent watched around a step (beamdeck_agent_upgrade deaths/2). */
export interface DeathRow {
  pid: string;
  name: string | null;
  initialCall: string | null;
  reason: string | null;
}

export interface Comparison {
  predictedAndDied: string[];
  predictedButAlive: string[];
  diedUnpredicted: string[];
}

export type Upgrade = RouterOutputs["upgrades"]["history"][number];
export type UpgradeCommand = Upgrade["commands"][number];
export type Step = "install" | "make_permanent" | "rollback";

/** What a command row's `result` column holds: the agent's result and error. */
export function commandOutcome(c: UpgradeCommand): { result: Record<string, unknown> | null; error: { code: string; message: string } | null } {
  const r = (c.result ?? null) as { result?: Record<string, unknown> | null; error?: { code: string; message: string } | null } | null;
  return { result: r?.result ?? null, error: r?.error ?? null };
}

/** The processes a plan kills, once per pid: the agent's complete lists (the listed processes stop at 400). */
export function plannedKills(plan: Plan): { install: string[]; makePermanent: string[] } {
  if (plan.killed) {
    const install = new Set(plan.killed.install);
    return { install: [...install], makePermanent: plan.killed.make_permanent.filter((p) => !install.has(p)) };
  }
  const seen = new Map<string, When>();
  for (const m of plan.modules) {
    for (const p of m.processes) {
      if (p.fate !== "killed" || seen.has(p.pid)) continue;
      seen.set(p.pid, p.when ?? "make_permanent");
    }
  }
  const all = [...seen.entries()];
  return { install: all.filter(([, w]) => w === "install").map(([p]) => p), makePermanent: all.filter(([, w]) => w !== "install").map(([p]) => p) };
}

/** Purge settings as the original relup writes them, per module. */
export function relupDefaults(script: RelupInstruction[] | null | undefined): Map<string, { pre: Purge; post: Purge }> {
  const out = new Map<string, { pre: Purge; post: Purge }>();
  for (const i of script ?? []) {
    if ((i.op === "load" || i.op === "remove") && i.module) out.set(i.module, { pre: i.prePurge === "soft" ? "soft" : "brutal", post: i.postPurge === "soft" ? "soft" : "brutal" });
  }
  return out;
}
