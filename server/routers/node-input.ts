/** Shared inputs and lookups for per-node procedures. */
import { z } from "zod";
import type { Context } from "../context";
import { fail } from "../errors";
import type { LiveNode } from "../agents/live-node";

export { nodeName, pidText } from "../agents/names";

/** The live state of a node held by this instance, or a precise error. */
export async function liveNode(ctx: Context, node: string): Promise<LiveNode> {
  const live = ctx.services.registry.live(node);
  if (live) return live;
  const row = await ctx.services.prisma.node.findUnique({ where: { name: node } });
  if (!row) fail("BD_NODE_UNKNOWN", `no node named ${node} has ever connected`);
  if (row.instanceId && row.instanceId !== ctx.services.instanceId) fail("BD_NODE_ELSEWHERE", `node ${node} is connected to server instance ${row.instanceId}`);
  return fail("BD_NODE_OFFLINE", `node ${node} is not connected (last seen ${row.lastSeenAt.toISOString()})`);
}

/** Like liveNode, but the agent must be connected now (for requests). */
export async function connectedNode(ctx: Context, node: string): Promise<LiveNode> {
  const live = await liveNode(ctx, node);
  if (!live.connected) fail("BD_NODE_OFFLINE", `node ${node} is disconnected since ${new Date(live.disconnectedAt ?? 0).toISOString()}`);
  return live;
}
