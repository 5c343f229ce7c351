/** Shared inputs and lookups for per-node procedures. */
import type { Context } from "../context";
import { fail } from "../errors";
import type { LiveNode } from "../agents/live-node";

export { nodeName, pidText } from "../agents/names";

/**
 * The live state of a node held by this instance, or a precise error. A node
 * another instance holds under a current lease is BD_NODE_ELSEWHERE naming
 * the owner (trpc.ts forwards the call there); this state, if any, is older.
 */
export async function liveNode(ctx: Pick<Context, "services">, node: string): Promise<LiveNode> {
  const live = ctx.services.registry.live(node);
  if (live?.connected) return live;
  const row = await ctx.services.prisma.node.findUnique({ where: { name: node }, select: { instanceId: true, leaseExpiresAt: true, lastSeenAt: true } });
  if (!row) {
    if (live) return live;
    fail("BD_NODE_UNKNOWN", `no node named ${node} has ever connected`);
  }
  const owner = ctx.services.registry.leases.ownerElsewhere(row);
  if (owner) fail("BD_NODE_ELSEWHERE", `node ${node} is connected to server instance ${owner}`, { owner });
  if (live) return live;
  return fail("BD_NODE_OFFLINE", `node ${node} is not connected (last seen ${row.lastSeenAt.toISOString()})`);
}

/** Like liveNode, but the agent must be connected now (for requests). */
export async function connectedNode(ctx: Pick<Context, "services">, node: string): Promise<LiveNode> {
  const live = await liveNode(ctx, node);
  if (!live.connected) fail("BD_NODE_OFFLINE", `node ${node} is disconnected since ${new Date(live.disconnectedAt ?? 0).toISOString()}`);
  return live;
}
