/**
 * A rollout's work on a node another instance holds (issue 16): the engine
 * driving the rollout sends the node's reads and steps to the node's owner
 * over the internal route (gateway/internal-endpoint.ts, one signed call,
 * bounded by FORWARD_TIMEOUT_MS). The owner runs each one here, for the
 * rollout and under its node lock: the actor is the rollout's starter as
 * recorded in its row and the lock holder is the rollout, never what the
 * caller says, and only while the rollout is active and covers the node;
 * the step itself is the one the rollout's row says comes next
 * (rollout-op-bounds.ts), never the release or gate the caller names.
 * These operations are not tRPC procedures: no browser, CLI or token can
 * reach them, only an instance with the shared key.
 */
import { z } from "zod";
import { BeamdeckError } from "../errors";
import { connectedNode, nodeName } from "../routers/node-input";
import type { Services } from "../services";
import { gate } from "../upgrades/gate";
import { fallbackMsInput } from "../upgrades/fallback";
import { nodeLockHolder, rolloutHolder } from "../upgrades/node-lock";
import { purgeChoices } from "../upgrades/plan";
import { ACTIONS } from "../upgrades/workflow-types";
import { ACTIVE_STATUSES, rolloutId } from "./rollout-options";
import { boundStep, checkPlanVsn } from "./rollout-op-bounds";
import { readRollout } from "./rollout-store";

/** The internal call's path for these operations (never a tRPC procedure's). */
export const ROLLOUT_OP_PATH = "rolloutEngine.op";

const vsn = z.string().min(1).max(100);
const base = { rolloutId, node: nodeName };

/** One operation of a rollout on a node held by the instance it is sent to. */
export const rolloutOp = z.discriminatedUnion("op", [
  z.object({ op: z.literal("releases"), ...base, vsn: vsn.optional() }),
  z.object({ op: z.literal("plan"), ...base, vsn, purge: purgeChoices, prePurge: purgeChoices }),
  z.object({
    op: z.literal("step"),
    ...base,
    action: z.enum(ACTIONS),
    // Always made by the engine and stored on the rollout's node first: a repeat follows the command, never sends another.
    commandId: z.string().regex(/^c-[0-9a-f-]{36}$/),
    vsn: vsn.optional(),
    upgradeId: z.string().max(64).optional(),
    purge: purgeChoices.optional(),
    prePurge: purgeChoices.optional(),
    gate: gate.optional(),
    fallbackMs: fallbackMsInput.optional(),
  }),
]);
export type RolloutOp = z.infer<typeof rolloutOp>;

/** Queries may run again on a new owner; a step only with its command id (which it always has). */
export function opType(op: RolloutOp): "query" | "mutation" {
  return op.op === "step" ? "mutation" : "query";
}

/** Run one operation here, on the owner (BD_NODE_ELSEWHERE when the node moved on meanwhile). */
export async function serveRolloutOp(services: Services, raw: unknown): Promise<unknown> {
  const parsed = rolloutOp.safeParse(raw);
  if (!parsed.success) throw new BeamdeckError("BD_BAD_INPUT", `bad rollout operation: ${parsed.error.issues[0]?.path.join(".")}: ${parsed.error.issues[0]?.message}`);
  const op = parsed.data;
  const r = await readRollout(services.prisma, op.rolloutId);
  if (!r) throw new BeamdeckError("BD_NOT_FOUND", `no rollout ${op.rolloutId}`);
  if (!ACTIVE_STATUSES.includes(r.status)) throw new BeamdeckError("BD_CONFLICT", `rollout ${r.id} is ${r.status}; its nodes are not touched`);
  if (!r.nodes.some((n) => n.node === op.node)) throw new BeamdeckError("BD_CONFLICT", `rollout ${r.id} does not cover ${op.node}`);
  // Before the node is touched: only what this rollout's engine would send next (rollout-op-bounds.ts).
  if (op.op !== "step") {
    if (op.vsn !== undefined) checkPlanVsn(r, op.node, op.vsn);
    await connectedNode({ services }, op.node);
    return op.op === "releases" ? services.upgrades.releases(op.node, op.vsn) : services.upgrades.plan(op.node, op.vsn, op.purge, op.prePurge);
  }
  const step = boundStep(r, op);
  await connectedNode({ services }, op.node);
  const holder = rolloutHolder(r.id);
  const held = await nodeLockHolder(services.prisma, op.node);
  if (held !== holder) throw new BeamdeckError("BD_CONFLICT", `rollout ${r.id} does not hold the upgrade lock of ${op.node} (${held ?? "nobody"} does); the step was not sent`);
  return services.upgrades.run({ ...step, actor: r.createdBy, lockHolder: holder });
}
