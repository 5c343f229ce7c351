/** Users (admin): add, list, change role, reset password, disable. */
import { z } from "zod";
import { appendAudit } from "../audit/log";
import { clearAccountThrottle } from "../auth/login-throttle";
import { hashPassword, MIN_PASSWORD_LENGTH } from "../auth/passwords";
import { actorOf } from "../auth/principal";
import { roleSchema } from "../auth/roles";
import { newPassword } from "../auth/secrets";
import { logoutEverywhere } from "../auth/sessions";
import { createUser, listUsers, usernameSchema } from "../auth/users";
import { fail } from "../errors";
import { adminProcedure, router } from "../trpc";

export const usersRouter = router({
  list: adminProcedure.query(({ ctx }) => listUsers(ctx.services.prisma)),

  add: adminProcedure.input(z.object({ username: usernameSchema, role: roleSchema, password: z.string().min(MIN_PASSWORD_LENGTH).max(1024).optional() })).mutation(async ({ ctx, input }) => {
    const actor = actorOf(ctx.principal);
    const u = await createUser(ctx.services.prisma, { ...input, createdBy: actor });
    await appendAudit(ctx.services.prisma, { actor, action: "user.add", target: `user:${u.username}`, outcome: "ok", data: { role: u.role } });
    return { id: u.id, username: u.username, role: u.role, password: u.generated ? u.password : null };
  }),

  setRole: adminProcedure.input(z.object({ username: usernameSchema, role: roleSchema })).mutation(async ({ ctx, input }) => {
    const prisma = ctx.services.prisma;
    const user = await prisma.user.findUnique({ where: { username: input.username } });
    if (!user) fail("BD_NOT_FOUND", `no user ${input.username}`);
    if (user.role === "admin" && input.role !== "admin" && (await prisma.user.count({ where: { role: "admin", disabledAt: null } })) <= 1) {
      fail("BD_CONFLICT", "this is the last admin; make someone else admin first");
    }
    await prisma.user.update({ where: { id: user.id }, data: { role: input.role } });
    // Open sockets were authorised with the old role: they reconnect with the new one.
    void ctx.services.wsSessions.sweep();
    await appendAudit(prisma, {
      actor: actorOf(ctx.principal),
      action: "user.set_role",
      target: `user:${input.username}`,
      outcome: "ok",
      data: { before: user.role, after: input.role },
    });
    return { username: input.username, role: input.role };
  }),

  resetPassword: adminProcedure.input(z.object({ username: usernameSchema, password: z.string().min(MIN_PASSWORD_LENGTH).max(1024).optional() })).mutation(async ({ ctx, input }) => {
    const prisma = ctx.services.prisma;
    const user = await prisma.user.findUnique({ where: { username: input.username } });
    if (!user) fail("BD_NOT_FOUND", `no user ${input.username}`);
    const password = input.password ?? newPassword();
    await prisma.user.update({ where: { id: user.id }, data: { passwordHash: await hashPassword(password) } });
    await clearAccountThrottle(prisma, user.username);
    const ended = await logoutEverywhere(prisma, user.id);
    void ctx.services.wsSessions.sweep();
    await appendAudit(prisma, { actor: actorOf(ctx.principal), action: "user.reset_password", target: `user:${input.username}`, outcome: "ok", data: { sessionsEnded: ended } });
    return { username: input.username, password: input.password ? null : password };
  }),

  setDisabled: adminProcedure.input(z.object({ username: usernameSchema, disabled: z.boolean() })).mutation(async ({ ctx, input }) => {
    const prisma = ctx.services.prisma;
    const user = await prisma.user.findUnique({ where: { username: input.username } });
    if (!user) fail("BD_NOT_FOUND", `no user ${input.username}`);
    if (ctx.principal.kind === "user" && ctx.principal.userId === user.id && input.disabled) fail("BD_CONFLICT", "you cannot disable yourself");
    await prisma.user.update({ where: { id: user.id }, data: { disabledAt: input.disabled ? new Date() : null } });
    await clearAccountThrottle(prisma, user.username);
    if (input.disabled) await logoutEverywhere(prisma, user.id);
    void ctx.services.wsSessions.sweep();
    await appendAudit(prisma, { actor: actorOf(ctx.principal), action: input.disabled ? "user.disable" : "user.enable", target: `user:${input.username}`, outcome: "ok" });
    return { username: input.username, disabled: input.disabled };
  }),
});
