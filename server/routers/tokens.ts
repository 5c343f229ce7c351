/** API tokens and agent tokens (admin). Tokens are shown once, at creation. */
import { z } from "zod";
import { announceAccessChange } from "../agents/access-changes";
import { appendAudit } from "../audit/log";
import { createAgentToken, fleetGroup, fleetPattern, listAgentTokens, revokeAgentToken, setNodeBinding } from "../auth/agent-tokens";
import { createApiToken, listApiTokens, revokeApiToken } from "../auth/api-tokens";
import { actorOf } from "../auth/principal";
import { roleSchema } from "../auth/roles";
import { adminProcedure, router } from "../trpc";
import { nodeName } from "./node-input";

const label = z.string().min(1).max(100);
const tokenIdInput = z.string().regex(/^[a-z2-9]{10}$/, "a token id (10 characters, as listed)");

export const tokensRouter = router({
  apiList: adminProcedure.query(({ ctx }) => listApiTokens(ctx.services.prisma)),

  apiCreate: adminProcedure.input(z.object({ label, role: roleSchema, expiresAt: z.iso.datetime().optional() })).mutation(async ({ ctx, input }) => {
    const actor = actorOf(ctx.principal);
    const expiresAt = input.expiresAt ? new Date(input.expiresAt) : null;
    const created = await createApiToken(ctx.services.prisma, {
      label: input.label,
      role: input.role,
      expiresAt,
      userId: ctx.principal.kind === "user" ? ctx.principal.userId : ctx.principal.userId,
      createdBy: actor,
    });
    await appendAudit(ctx.services.prisma, {
      actor,
      action: "token.create",
      target: `api:${created.id}`,
      outcome: "ok",
      data: { label: input.label, role: input.role, expiresAt: expiresAt?.toISOString() ?? null },
    });
    return { id: created.id, token: created.token, role: input.role, expiresAt: expiresAt?.toISOString() ?? null };
  }),

  apiRevoke: adminProcedure.input(z.object({ id: tokenIdInput })).mutation(async ({ ctx, input }) => {
    await revokeApiToken(ctx.services.prisma, input.id);
    void ctx.services.wsSessions.sweep();
    await appendAudit(ctx.services.prisma, { actor: actorOf(ctx.principal), action: "token.revoke", target: `api:${input.id}`, outcome: "ok" });
    return { id: input.id, revoked: true };
  }),

  agentList: adminProcedure.query(({ ctx }) => listAgentTokens(ctx.services.prisma)),

  agentCreate: adminProcedure.input(z.object({ label, fleetPattern: fleetPattern.optional(), fleetGroup: fleetGroup.optional() })).mutation(async ({ ctx, input }) => {
    const actor = actorOf(ctx.principal);
    const created = await createAgentToken(ctx.services.prisma, { ...input, createdBy: actor });
    const fleet = input.fleetPattern !== undefined;
    await appendAudit(ctx.services.prisma, {
      actor,
      action: "agent_token.create",
      target: `agent:${created.id}`,
      outcome: "ok",
      data: { label: input.label, fleet, fleetPattern: input.fleetPattern ?? null, fleetGroup: input.fleetGroup ?? null },
    });
    return { id: created.id, token: created.token, fleet, fleetPattern: input.fleetPattern ?? null, fleetGroup: input.fleetGroup ?? null };
  }),

  /** Bind a node name to an agent token (a socket under another token goes), or release it (`tokenId: null`). */
  nodeBind: adminProcedure.input(z.object({ node: nodeName, tokenId: tokenIdInput.nullable() })).mutation(async ({ ctx, input }) => {
    const { previous } = await setNodeBinding(ctx.services.prisma, input.node, input.tokenId);
    // The socket may be held by another instance: each one closes what it holds.
    announceAccessChange(ctx.services.hub, { kind: "rebound", node: input.node, tokenId: input.tokenId });
    await appendAudit(ctx.services.prisma, {
      actor: actorOf(ctx.principal),
      action: input.tokenId ? "node.bind" : "node.release",
      target: `node:${input.node}`,
      outcome: "ok",
      data: { previous, tokenId: input.tokenId },
    });
    return { node: input.node, boundTokenId: input.tokenId, previous };
  }),

  agentRevoke: adminProcedure.input(z.object({ id: tokenIdInput })).mutation(async ({ ctx, input }) => {
    // Sockets under the token held by other instances (under a current lease): a connected name is bound to the token
    // its socket used (agent-tokens.ts); read before the revocation, as they close when the change reaches their instance.
    const elsewhere = await ctx.services.prisma.node.count({
      where: { boundTokenId: input.id, connectedAt: { not: null }, ...ctx.services.registry.leases.heldElsewhereWhere() },
    });
    await revokeAgentToken(ctx.services.prisma, input.id);
    const here = ctx.services.registry.disconnectToken(input.id, "agent token revoked");
    announceAccessChange(ctx.services.hub, { kind: "revoked", tokenId: input.id });
    const disconnected = here + elsewhere;
    await appendAudit(ctx.services.prisma, {
      actor: actorOf(ctx.principal),
      action: "agent_token.revoke",
      target: `agent:${input.id}`,
      outcome: "ok",
      data: { disconnected, here },
    });
    // `disconnected`: across instances; `here`: those the handling instance held.
    return { id: input.id, revoked: true, disconnected, here };
  }),
});
