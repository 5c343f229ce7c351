/**
 * Revoking an agent token or rebinding a node name takes effect on the
 * instance that holds the socket, whichever instance the admin used: the
 * change goes through the Hub (on PostgreSQL, PgHub carries it to every
 * instance) and each instance applies it to the sockets it holds. Applying
 * twice is harmless: a closed socket is not closed again.
 */
import { z } from "zod";
import type { Hub } from "../live/hub";
import { nodeName } from "./names";
import type { AgentRegistry } from "./registry";

const tokenId = z.string().min(1).max(64);

export const accessChangeSchema = z.discriminatedUnion("kind", [
  z.object({ kind: z.literal("revoked"), tokenId }),
  // tokenId null: the name was released; a socket under it stays until it reconnects.
  z.object({ kind: z.literal("rebound"), node: nodeName, tokenId: tokenId.nullable() }),
]);
export type AccessChange = z.infer<typeof accessChangeSchema>;

export function announceAccessChange(hub: Hub, change: AccessChange): void {
  hub.publish("agent-access", change);
}

/** Close this instance's sockets that an announced change no longer admits. Returns the stop function. */
export function applyAccessChanges(hub: Hub, registry: Pick<AgentRegistry, "disconnectToken" | "bindingChanged">): () => void {
  return hub.listen("agent-access", (payload) => {
    const parsed = accessChangeSchema.safeParse(payload);
    if (!parsed.success) {
      console.warn(`[beamdeck] ignored a malformed agent access change: ${parsed.error.issues[0]?.message}`);
      return;
    }
    const c = parsed.data;
    if (c.kind === "revoked") registry.disconnectToken(c.tokenId, "agent token revoked");
    else registry.bindingChanged(c.node, c.tokenId);
  });
}
