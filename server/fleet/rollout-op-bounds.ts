/**
 * What a rollout operation received over the internal route may ask of a
 * node (fleet/rollout-remote.ts): only what this rollout's engine would send
 * next, as its row says. The release, purge choices, fallback and gate come
 * from the rollout (its accepted plan digests, kill bound and findings); the
 * caller supplies only the command id the engine stored for the node's
 * current step and, for a rollback, the digest of the rollback plan (which
 * the agent checks against the plan it recomputes). Anything else is
 * refused: a leaked instance key or a captured call cannot install another
 * release, a plan the operator did not accept, or a step the node is not at.
 */
import { BeamdeckError } from "../errors";
import type { StepInput } from "../upgrades/workflow";
import type { Action } from "../upgrades/workflow-types";
import type { NodeStep } from "./rollout-options";
import type { RolloutOp } from "./rollout-remote";
import type { RolloutView } from "./rollout-store";

type StepOp = Extract<RolloutOp, { op: "step" }>;

/** The node's step while the engine waits on each action's command (rollout-node.ts, `step`). */
const STEP_OF: Record<Action, NodeStep> = { unpack: "unpacking", install: "installing", make_permanent: "permanent_sent", rollback: "rolling_back" };

function refuse(r: RolloutView, why: string): never {
  throw new BeamdeckError("BD_CONFLICT", `rollout ${r.id}: ${why}; the step was not sent`);
}

/** A plan read is for the rollout's release or, for its rollback, the release the node ran before. */
export function checkPlanVsn(r: RolloutView, node: string, vsn: string): void {
  const n = r.nodes.find((x) => x.node === node);
  if (vsn !== r.toVsn && vsn !== n?.fromVsn) refuse(r, `a plan for ${vsn} is not this rollout's (${r.toVsn})`);
}

/** The step to run for the rollout, built from its row; throws BD_CONFLICT when the operation asks for anything else. */
export function boundStep(r: RolloutView, op: StepOp): Omit<StepInput, "actor" | "lockHolder"> & { commandId: string } {
  const n = r.nodes.find((x) => x.node === op.node);
  if (!n) refuse(r, `it does not cover ${op.node}`);
  const o = r.options;
  if (n.step !== STEP_OF[op.action] || n.commandId !== op.commandId) refuse(r, `${op.node} is not waiting on this ${op.action} (its step is ${n.step})`);
  const wantVsn = op.action === "unpack" || op.action === "install" ? r.toVsn : undefined;
  if (op.vsn !== wantVsn) refuse(r, `${op.action} of ${op.vsn ?? "no release"} is not this rollout's (${wantVsn ?? "none"})`);
  const wantUpgrade = op.action === "make_permanent" || op.action === "rollback" ? (n.upgradeId ?? undefined) : undefined;
  if (op.upgradeId !== wantUpgrade) refuse(r, `upgrade ${op.upgradeId ?? "none"} is not the one this rollout installed on ${op.node}`);
  if (op.action === "rollback" && !o.autoRollback) refuse(r, "it does not roll back on its own (no --auto-rollback)");
  const acceptPlan = op.gate?.acceptPlan;
  if (op.action === "install" && acceptPlan !== undefined && !o.acceptPlans.includes(acceptPlan)) refuse(r, `plan ${acceptPlan} is not one it accepted`);
  if ((op.action === "unpack" || op.action === "make_permanent") && acceptPlan !== undefined) refuse(r, `its ${op.action} carries no plan digest`);
  const limits = { maxKills: o.maxKills, acceptFindings: o.acceptFindings.length ? o.acceptFindings : undefined };
  const gate = op.action === "unpack" ? undefined : op.action === "rollback" ? { acceptPlan } : { ...limits, acceptPlan };
  return {
    node: op.node,
    action: op.action,
    commandId: op.commandId,
    vsn: wantVsn,
    upgradeId: wantUpgrade,
    purge: o.purge,
    prePurge: o.prePurge,
    gate,
    fallbackMs: op.action === "install" ? o.fallbackMs : undefined,
  };
}
