/**
 * Where a rollout's reads and steps of a node run (issue 16): on this
 * instance when it holds the node's socket, else on the node's owner over
 * the internal route (rollout-remote.ts serves them there). An owner that
 * dies mid-call is handled as any forwarded call (gateway/owner-answers.ts):
 * once the node's new owner is known the call runs again there — a step
 * with the same command id, so it follows the command already sent and is
 * never sent twice; its outcome is recorded by whichever instance gets it.
 */
import type { z } from "zod";
import type { PrismaClient } from "../../generated/prisma/client";
import type { InstanceLeases } from "../agents/leases";
import { type ReleasesReply, releasesReply } from "../agents/replies";
import { BeamdeckError } from "../errors";
import { answerFromOwner } from "../gateway/owner-answers";
import { type Plan, plan as planSchema, type PurgeChoices } from "../upgrades/plan";
import { type StepInput, type StepReply, stepReply, type UpgradeWorkflow } from "../upgrades/workflow";
import { opType, ROLLOUT_OP_PATH, type RolloutOp } from "./rollout-remote";

/** What a rollout does to a node: read its releases and plan, send a step (with its command id, stored first). */
export interface NodeSteps {
  releases(node: string, vsn?: string): Promise<ReleasesReply>;
  plan(node: string, vsn: string, purge: PurgeChoices, prePurge: PurgeChoices): Promise<Plan>;
  run(input: StepInput & { commandId: string }): Promise<StepReply>;
}

type Answer = { ok: true; data: unknown } | { ok: false; owner: string | null; error: unknown };

function movedOn(e: unknown): boolean {
  const cause = (e as { cause?: unknown } | null)?.cause ?? e;
  return cause instanceof BeamdeckError && cause.code === "BD_NODE_ELSEWHERE";
}

export class RolloutSteps {
  constructor(
    private readonly prisma: PrismaClient,
    private readonly instanceId: string,
    private readonly leases: Pick<InstanceLeases, "ownerElsewhere">,
    private readonly upgrades: UpgradeWorkflow,
    /** Does this instance hold the node's socket now (the registry). */
    private readonly holdsHere: (node: string) => boolean,
  ) {}

  /** The steps of one rollout: sent elsewhere, they run for that rollout under its node lock. */
  of(rolloutId: string): NodeSteps {
    return {
      releases: (node, vsn) => this.send({ op: "releases", rolloutId, node, vsn }, releasesReply, () => this.upgrades.releases(node, vsn)),
      plan: (node, vsn, purge, prePurge) => this.send({ op: "plan", rolloutId, node, vsn, purge, prePurge }, planSchema, () => this.upgrades.plan(node, vsn, purge, prePurge)),
      run: (input) => {
        const { actor: _a, lockHolder: _l, ...step } = input;
        return this.send({ op: "step", rolloutId, ...step }, stepReply, () => this.upgrades.run(input));
      },
    };
  }

  /** The instance holding the node under a current lease, or null for here (where an offline node fails as it would). */
  private async ownerOf(node: string): Promise<string | null> {
    if (this.holdsHere(node)) return null;
    const row = await this.prisma.node.findUnique({ where: { name: node }, select: { instanceId: true, leaseExpiresAt: true } });
    return this.leases.ownerElsewhere(row);
  }

  private async send<T>(op: RolloutOp, schema: z.ZodType<T>, here: () => Promise<T>): Promise<T> {
    // A node that moved on between the lookup and the call (BD_NODE_ELSEWHERE from the old owner) is looked up once more.
    for (let attempt = 0; ; attempt++) {
      try {
        return await this.once(op, schema, here);
      } catch (e) {
        if (attempt > 0 || !movedOn(e)) throw e;
      }
    }
  }

  private async once<T>(op: RolloutOp, schema: z.ZodType<T>, here: () => Promise<T>): Promise<T> {
    const owner = await this.ownerOf(op.node);
    if (!owner) return here();
    const again = async (): Promise<Answer> => {
      const next = await this.ownerOf(op.node);
      if (next) return { ok: false, owner: next, error: new BeamdeckError("BD_NODE_ELSEWHERE", `node ${op.node} is connected to server instance ${next}`) };
      return here().then(
        (data) => ({ ok: true, data }),
        (error: unknown) => ({ ok: false, owner: null, error }),
      );
    };
    const data = await answerFromOwner({ prisma: this.prisma, instanceId: this.instanceId }, owner, { path: ROLLOUT_OP_PATH, type: opType(op), input: op, principal: null }, again);
    const parsed = schema.safeParse(data);
    if (!parsed.success) throw new BeamdeckError("BD_OWNER_UNREACHABLE", `the owner of ${op.node} answered the rollout's ${op.op} out of protocol (${parsed.error.issues[0]?.message})`);
    return parsed.data;
  }
}
