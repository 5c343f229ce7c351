/**
 * A rollout node's predicted and actual deaths, counted the same way for the
 * page and the CLI from what the node's upgrade stored (`expectedKills`,
 * `actualKills`: per step, a list of pids; per step, what died and what the
 * plan had not predicted). Stored JSON is parsed, not trusted: a malformed
 * value counts as nothing.
 */
import { z } from "zod";

const predictedByStep = z.record(z.string(), z.unknown());
const actualByStep = z.record(
  z.string(),
  z
    .object({
      died: z.array(z.unknown()).optional(),
      comparison: z
        .object({ diedUnpredicted: z.array(z.unknown()).optional() })
        .loose()
        .nullable()
        .optional(),
    })
    .loose()
    .nullable(),
);

/** Processes the plan predicted would die, over every step. */
export function predictedKillCount(predicted: unknown): number {
  const p = predictedByStep.safeParse(predicted ?? {});
  return p.success ? Object.values(p.data).reduce<number>((s, v) => s + (Array.isArray(v) ? v.length : 0), 0) : 0;
}

/** Processes that died at the node's steps, and how many of them the plan had not predicted. */
export function deathsOf(actual: unknown): { died: number; unpredicted: number } {
  const a = actualByStep.safeParse(actual ?? {});
  if (!a.success) return { died: 0, unpredicted: 0 };
  let died = 0;
  let unpredicted = 0;
  for (const v of Object.values(a.data)) {
    died += v?.died?.length ?? 0;
    unpredicted += v?.comparison?.diedUnpredicted?.length ?? 0;
  }
  return { died, unpredicted };
}
