/** Login, logout, who am I. */
import { z } from "zod";
import { appendAudit } from "../audit/log";
import { actorOf } from "../auth/principal";
import { ROLE_CAN } from "../auth/roles";
import { clearSessionCookieHeader, login, logout, logoutEverywhere, sessionCookieHeader } from "../auth/sessions";
import { BeamdeckError, toTrpcError } from "../errors";
import { publicProcedure, router, viewerProcedure } from "../trpc";

export const authRouter = router({
  login: publicProcedure.input(z.object({ username: z.string().min(1).max(64), password: z.string().min(1).max(1024) })).mutation(async ({ ctx, input }) => {
    const prisma = ctx.services.prisma;
    try {
      const s = await login(prisma, { ...input, ip: ctx.ip, userAgent: ctx.userAgent });
      await appendAudit(prisma, { actor: `user:${input.username}`, action: "auth.login", outcome: "ok", data: { ip: ctx.ip } });
      ctx.setHeader?.("Set-Cookie", sessionCookieHeader(s.cookie, s.expiresAt, ctx.secure));
      return { username: input.username, role: s.principal.role, expiresAt: s.expiresAt.toISOString() };
    } catch (e) {
      if (e instanceof BeamdeckError) {
        await appendAudit(prisma, {
          actor: `user:${input.username}`,
          action: "auth.login",
          outcome: "denied",
          data: { ip: ctx.ip, reason: e.code },
        });
        throw toTrpcError(e);
      }
      throw e;
    }
  }),

  logout: viewerProcedure.mutation(async ({ ctx }) => {
    if (ctx.principal.kind === "user") await logout(ctx.services.prisma, ctx.principal.sessionId);
    void ctx.services.wsSessions.sweep();
    ctx.setHeader?.("Set-Cookie", clearSessionCookieHeader());
    await appendAudit(ctx.services.prisma, { actor: actorOf(ctx.principal), action: "auth.logout", outcome: "ok" });
    return { ok: true };
  }),

  logoutEverywhere: viewerProcedure.mutation(async ({ ctx }) => {
    const p = ctx.principal;
    const userId = p.kind === "user" ? p.userId : p.userId;
    if (!userId) throw toTrpcError(new BeamdeckError("BD_BAD_INPUT", "this API token belongs to no user"));
    const ended = await logoutEverywhere(ctx.services.prisma, userId);
    void ctx.services.wsSessions.sweep();
    ctx.setHeader?.("Set-Cookie", clearSessionCookieHeader());
    await appendAudit(ctx.services.prisma, { actor: actorOf(p), action: "auth.logout_everywhere", outcome: "ok", data: { sessionsEnded: ended } });
    return { sessionsEnded: ended };
  }),

  me: viewerProcedure.query(({ ctx }) => {
    const p = ctx.principal;
    return {
      kind: p.kind,
      name: p.kind === "user" ? p.username : `token ${p.tokenId} (${p.label})`,
      role: p.role,
      can: ROLE_CAN[p.role],
    };
  }),
});
