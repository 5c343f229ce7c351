/**
 * The JSON columns of upgrades and their commands, parsed where they are
 * read (one schema each, so the history's tRPC output is typed end to end).
 * A row written by an older server that no longer matches is read as the
 * column's empty value with a warning naming the field, not as a failure of
 * the whole history.
 */
import { z } from "zod";
import { stepResult } from "../agents/replies";
import { readColumn } from "../storage/json-column";
import { plan, purgeChoices, verification } from "./plan-schema";

const pids = z.array(z.string().max(64)).max(100_000);

/** Prediction against deaths, as the agent compared them (beamdeck_agent_deaths). */
export const comparison = z.object({ predictedAndDied: pids, predictedButAlive: pids, diedUnpredicted: pids });
export type Comparison = z.infer<typeof comparison>;

/** A step's error: the agent's own code and sentence, or the server's (never sent, refused). */
export const stepError = z.object({ code: z.string().max(128), message: z.string().max(64 * 1024) }).loose();

/** `UpgradeCommand.params`: what the step was sent with. */
export const commandParams = z.object({ vsn: z.string().max(100).nullable().optional(), purge: purgeChoices.optional(), prePurge: purgeChoices.optional() }).loose();
/** `UpgradeCommand.result`: the agent's result of the step (as its schema reads it) and the error. */
export const commandOutcome = z.object({ result: stepResult.catch(null), error: stepError.nullable().catch(null) }).nullable();
export type CommandOutcome = z.infer<typeof commandOutcome>;

/** `Upgrade.expectedKills`: per step, the pids the operator accepted to be killed. */
export const expectedKills = z.record(z.string().max(32), pids);
/** `Upgrade.actualKills`: per step, who died, the comparison and the step's verification. */
export const actualKills = z.record(z.string().max(32), z.object({ died: pids, comparison: comparison.nullable(), verification: verification.nullable().optional() }).loose());
export type ActualKills = z.infer<typeof actualKills>;

type UpgradeRow = { purge: unknown; prePurge: unknown; preview: unknown; expectedKills: unknown; actualKills: unknown };
type CommandRow = { params: unknown; result: unknown };

/** An upgrade row's JSON columns, typed. */
export function readUpgrade(u: UpgradeRow) {
  return {
    purge: readColumn("upgrade.purge", purgeChoices, u.purge, {}),
    prePurge: readColumn("upgrade.prePurge", purgeChoices, u.prePurge, {}),
    preview: readColumn("upgrade.preview", plan.nullable(), u.preview, null),
    expectedKills: readColumn("upgrade.expectedKills", expectedKills, u.expectedKills ?? {}, {}),
    actualKills: readColumn("upgrade.actualKills", actualKills, u.actualKills ?? {}, {}),
  };
}

/** A command's `params` column, typed. */
export function readParams(params: unknown) {
  return readColumn("command.params", commandParams, params, {});
}

/** A command row's JSON columns, typed. */
export function readCommand(c: CommandRow) {
  return { params: readParams(c.params), result: readColumn("command.result", commandOutcome, c.result, null) };
}

/**
 * The audit data of an upgrade step (workflow.ts writes it): the intent
 * before the step, the outcome after. Entries of every version are read, so
 * every field is optional.
 */
export const upgradeIntentData = z
  .object({
    step: z.string().max(32).optional(),
    fromVsn: z.string().max(100).nullable().optional(),
    toVsn: z.string().max(100).nullable().optional(),
    predictedKills: pids.optional(),
    acceptedOntoOldCode: z.array(z.unknown()).max(100_000).optional(),
    findingsAccepted: z
      .array(z.object({ id: z.string().max(512) }).loose())
      .max(10_000)
      .optional(),
    gate: z
      .object({ used: z.string().max(32).optional() })
      .loose()
      .nullable()
      .optional(),
  })
  .loose();
export const upgradeOutcomeData = z.object({ error: stepError.partial().nullable().optional(), predictedVsActual: comparison.partial().nullable().optional() }).loose();
