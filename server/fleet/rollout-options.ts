/**
 * What a rollout is asked to do: one schema for the start input (tRPC, the
 * CLI and the stored `Rollout.options` all infer from it), and the states a
 * rollout and its nodes go through.
 */
import { z } from "zod";
import { SOAK_MAX_MS } from "../../app/_lib/duration";
import { fallbackMsInput } from "../upgrades/fallback";
import { findingId, planDigest } from "../upgrades/gate";
import { purgeChoices } from "../upgrades/plan";

export const groupName = z.string().min(1).max(100);
export const rolloutVsn = z
  .string()
  .min(1)
  .max(100)
  .regex(/^[\w.+-]+$/, "a release version like 0.1.1");
export const rolloutId = z.string().regex(/^r-[0-9a-f]{12}$/, "a rollout id like r-0123456789ab (printed by rollout start)");

export const rolloutOptions = z.object({
  purge: purgeChoices.default({}),
  prePurge: purgeChoices.default({}),
  /** Nodes upgraded first, one pipeline each, before any other node is installed. */
  canary: z.number().int().min(1).max(100).default(1),
  /** Nodes upgraded at once after the canary. */
  batch: z.number().int().min(1).max(100).default(1),
  /** How long each node runs its new code under the health gate before make_permanent. */
  soakMs: z.number().int().min(0).max(SOAK_MAX_MS).default(60_000),
  /** The gates of every step (docs/upgrades.md, "Gates"): install plans' digests as `rollout plan` printed them (one per node), a kill bound, accepted findings. */
  acceptPlans: z.array(planDigest).max(1000).default([]),
  maxKills: z.number().int().min(0).max(10_000_000).optional(),
  acceptFindings: z.array(findingId).max(200).default([]),
  /** A node failing its gate before make_permanent is rolled back. */
  autoRollback: z.boolean().default(false),
  /**
   * The agent-side fallback timer (upgrade install --fallback): sent with
   * each node's install; a node not made permanent within this time (its
   * soak included) is rolled back by its agent, server or no server.
   */
  fallbackMs: fallbackMsInput.optional(),
});
export type RolloutOptions = z.infer<typeof rolloutOptions>;

export const startInput = rolloutOptions
  .extend({ group: groupName, vsn: rolloutVsn })
  // A fallback shorter than the soak would roll every node back before its gate could pass.
  .refine((o) => o.fallbackMs === undefined || o.fallbackMs > o.soakMs, { message: "the fallback must be longer than the soak", path: ["fallbackMs"] });
export type StartInput = z.input<typeof startInput>;

export const ROLLOUT_STATUSES = ["pending", "unpacking", "canary", "batches", "done", "halted", "aborted"] as const;
export type RolloutStatus = (typeof ROLLOUT_STATUSES)[number];
/** Statuses an engine drives. */
export const ACTIVE_STATUSES: RolloutStatus[] = ["pending", "unpacking", "canary", "batches"];
export const FINAL_STATUSES: RolloutStatus[] = ["done", "aborted"];

export const NODE_STEPS = ["pending", "unpacking", "unpacked", "installing", "soaking", "permanent_sent", "permanent", "gate_failed", "rolling_back", "rolled_back", "failed"] as const;
export type NodeStep = (typeof NODE_STEPS)[number];
