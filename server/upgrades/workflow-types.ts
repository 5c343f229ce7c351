/**
 * The upgrade workflow's messages: what a step request carries and returns,
 * a command as the CLI follows it, and the progress lines of a node's
 * upgrade topic. The workflow itself is workflow.ts.
 */
import type { Gate } from "./gate";
import { z } from "zod";
import type { PurgeChoices } from "./plan";

export const ACTIONS = ["unpack", "install", "make_permanent", "rollback"] as const;
export type Action = (typeof ACTIONS)[number];

export interface StepInput {
  actor: string;
  node: string;
  action: Action;
  vsn?: string;
  purge?: PurgeChoices;
  prePurge?: PurgeChoices;
  /** For install, make_permanent and rollback: what the operator accepts (checked by the agent's runner). */
  gate?: Gate;
  upgradeId?: string;
  /** Made by the caller (the CLI) so it can subscribe before the step is sent; else made here. */
  commandId?: string;
  /**
   * The node-lock holder driving this step (a rollout's, node-lock.ts), which
   * must hold the lock already; without it the step takes the lock for
   * itself and gives it up when its result arrives.
   */
  lockHolder?: string;
  /** Install only: the agent rolls back by itself unless made permanent within this many ms (fallback.ts). */
  fallbackMs?: number;
}

/** What a step request returns: the command to follow; `repeated` when it is an earlier request's (see `repeatOf`). Also what an owner instance returns for a rollout's step (fleet/rollout-remote.ts). */
export const stepReply = z.object({
  commandId: z.string().max(128),
  upgradeId: z.string().max(64).nullable(),
  predicted: z.number().int().nonnegative(),
  /** The digest of the plan the step was gated on (null for a repeat or an ungated step). */
  digest: z.string().max(64).nullable(),
  repeated: z.boolean(),
});
export type StepReply = z.infer<typeof stepReply>;

/** A command as the CLI follows it: its status and, once finished, its outcome. */
export interface CommandState {
  id: string;
  node: string;
  action: string;
  vsn: string | null;
  status: string;
  error: { code?: string; message?: string } | null;
  createdAt: string;
  finishedAt: string | null;
}

export interface ProgressEvent {
  node: string;
  commandId: string;
  kind: "progress" | "result" | "sent";
  step?: string;
  message?: string;
  ok?: boolean;
  at: number;
}
