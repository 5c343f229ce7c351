/**
 * The gate of a step that changes a node (docs/upgrades.md, "Gates"): what
 * the operator accepts. `acceptPlan` is the digest of the plan they
 * reviewed (its exact processes and error findings), `maxKills` bounds
 * kills only, `acceptFindings` accepts error findings by id.
 *
 * The server only makes sure that a step which kills or carries error
 * findings has a gate, passes it to the agent and audits it. Whether the
 * plan recomputed right before the step stays inside the gate is checked
 * once, by the agent's runner (beamdeck_agent_gate), which refuses with
 * `plan_changed`.
 */
import { z } from "zod";
import { BeamdeckError } from "../errors";
import { errorFindingIds, killCount, type Plan } from "./plan";

export const planDigest = z.string().regex(/^[0-9a-f]{64}$/, "a plan digest (64 hex characters, printed by `upgrade plan`)");
export const findingId = z.string().min(1).max(512);

/** The gate fields of the install, makePermanent and rollback inputs. */
export const gateInput = {
  acceptPlan: planDigest.optional(),
  maxKills: z.number().int().min(0).max(10_000_000).optional(),
  acceptFindings: z.array(findingId).max(200).optional(),
};
export const gate = z.object(gateInput);
export type Gate = z.infer<typeof gate>;

export interface CheckedGate extends Gate {
  /** Which gate let the step through, for the audit log. */
  used: "plan" | "max_kills" | "findings" | "max_kills+findings" | "none_needed";
  /** The error findings of the current plan that the gate accepts. */
  acceptedFindings: string[];
}

/** Refuse a step that kills or has error findings when no gate is given for it. */
export function requireGate(action: string, p: Plan, g: Gate | undefined): CheckedGate {
  const kills = killCount(p);
  const errors = errorFindingIds(p);
  const given = g ?? {};
  const findings = given.acceptFindings ?? [];
  if (kills > 0 && !given.acceptPlan && given.maxKills === undefined) {
    throw new BeamdeckError("BD_GATE_REQUIRED", `${action} would kill ${kills} process(es): accept the plan you reviewed (--accept-plan ${p.digest}) or bound the kills (--max-kills N)`, {
      kills,
      digest: p.digest,
    });
  }
  if (errors.length > 0 && !given.acceptPlan && findings.length === 0) {
    throw new BeamdeckError(
      "BD_GATE_REQUIRED",
      `${action} has error finding(s) ${errors.join(", ")}: accept them (--accept-finding ID, repeatable) or the plan you reviewed (--accept-plan ${p.digest})`,
      { errorFindings: errors, digest: p.digest },
    );
  }
  const used: CheckedGate["used"] = given.acceptPlan
    ? "plan"
    : given.maxKills !== undefined && findings.length
      ? "max_kills+findings"
      : given.maxKills !== undefined
        ? "max_kills"
        : findings.length
          ? "findings"
          : "none_needed";
  const acceptedFindings = given.acceptPlan ? errors : errors.filter((id) => findings.includes(id));
  return { ...given, used, acceptedFindings };
}

/** The gate as the agent's command params carry it (docs/protocol.md). */
export function gateParams(g: Gate): { acceptPlan: string | null; maxKills: number | null; acceptFindings: string[] } {
  return { acceptPlan: g.acceptPlan ?? null, maxKills: g.maxKills ?? null, acceptFindings: g.acceptFindings ?? [] };
}
