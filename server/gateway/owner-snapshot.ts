/**
 * The first item of a node subscription (`nodes.onNode`) on an instance that
 * does not hold the node's socket: the owner's summary, asked once over the
 * internal route. Later changes come through the Hub; the caller subscribes
 * before asking, so none is missed, and drops the ones the snapshot already
 * contains (`staleAfter`), so none is shown twice or backwards.
 */
import type { LiveNode } from "../agents/live-node";
import type { Context } from "../context";
import { BeamdeckError } from "../errors";
import { liveNode } from "../routers/node-input";
import { forwardToOwner } from "./forward-call";

export type NodeSummary = ReturnType<LiveNode["summary"]>;

function ownerNamed(e: unknown): string | null {
  const cause = e instanceof BeamdeckError ? e : (e as { cause?: unknown } | null)?.cause;
  const owner = cause instanceof BeamdeckError && cause.code === "BD_NODE_ELSEWHERE" ? cause.data?.owner : undefined;
  return typeof owner === "string" ? owner : null;
}

/** The node's summary from whoever holds it (here or its owner), or null: unknown, or the owner did not answer (changes still follow). */
export async function nodeSnapshot(ctx: Context, node: string): Promise<NodeSummary | null> {
  try {
    return (await liveNode(ctx, node)).summary();
  } catch (e) {
    const owner = ownerNamed(e);
    if (owner === null || !ctx.principal) return null;
    try {
      // `nodes.summary` returns exactly LiveNode.summary() (plain JSON: numbers, strings, null).
      return (await forwardToOwner(ctx.services, owner, { path: "nodes.summary", type: "query", input: { node }, principal: ctx.principal })) as NodeSummary;
    } catch (err) {
      console.warn(`[beamdeck] first summary of ${node} from instance ${owner} failed (live changes follow): ${(err as Error).message}`);
      return null;
    }
  }
}

/** A change published before the snapshot was read: same connection, nothing newer in it. */
export function staleAfter(snapshot: NodeSummary, change: NodeSummary): boolean {
  return change.connectedAt === snapshot.connectedAt && change.connected === snapshot.connected && change.lastFrameAt <= snapshot.lastFrameAt && change.version <= snapshot.version;
}
