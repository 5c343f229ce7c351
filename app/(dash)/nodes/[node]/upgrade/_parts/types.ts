/**
 * The agent's upgrade answers as the page reads them, inferred from the
 * router (whose outputs are the server's reply schemas: server/agents/
 * replies.ts, relup-schema.ts, server/upgrades/plan-schema.ts, stored.ts),
 * and the few helpers the panels share.
 */
import type { RouterOutputs } from "../../../../../_lib/types";
import type { RelupInstruction } from "../../../../../../server/agents/relup-schema";
import type { Purge } from "../../../../../../server/upgrades/plan-schema";

export type { Finding, Fate, Purge, PurgeChoices as PurgeMap, When, Step, AfterKill, LintFinding, PlanProcess } from "../../../../../../server/upgrades/plan-schema";
export { FATES, STEPS } from "../../../../../../server/upgrades/plan-schema";
export type { AppupInstruction, RelupChange as PlanChange, RelupInstruction, Appup } from "../../../../../../server/agents/relup-schema";
export type { Comparison } from "../../../../../../server/upgrades/stored";
export type { Death as DeathRow } from "../../../../../../server/agents/replies";

type Upgrades = RouterOutputs["upgrades"];
export type Releases = Upgrades["releases"];
export type Plan = Upgrades["plan"];
export type OldCode = Upgrades["oldCode"];
export type Upgrade = Upgrades["history"][number];
export type UpgradeCommand = Upgrade["commands"][number];

/** What a command row's `result` column holds: the agent's result and error. */
export function commandOutcome(c: UpgradeCommand): NonNullable<UpgradeCommand["result"]> {
  return c.result ?? { result: null, error: null };
}

/** The processes a plan kills, once per pid: the agent's complete lists (the listed processes stop at 400). */
export function plannedKills(plan: Plan): { install: string[]; makePermanent: string[] } {
  const install = new Set(plan.killed.install);
  return { install: [...install], makePermanent: plan.killed.make_permanent.filter((p) => !install.has(p)) };
}

/** Purge settings as the original relup writes them, per module. */
export function relupDefaults(script: RelupInstruction[] | null | undefined): Map<string, { pre: Purge; post: Purge }> {
  const out = new Map<string, { pre: Purge; post: Purge }>();
  for (const i of script ?? []) {
    if ((i.op === "load" || i.op === "remove") && i.module) out.set(i.module, { pre: i.prePurge === "soft" ? "soft" : "brutal", post: i.postPurge === "soft" ? "soft" : "brutal" });
  }
  return out;
}
