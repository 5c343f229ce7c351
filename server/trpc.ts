/**
 * tRPC, initialised once. Exports only what the routers use: procedures by
 * the least role they need. Every role check runs on the server, for HTTP
 * and WebSocket calls alike; a refusal is written to the audit log.
 */
import { initTRPC, TRPCError } from "@trpc/server";
import { actorOf } from "./auth/principal";
import { hasRole, type Role } from "./auth/roles";
import { appendAudit } from "./audit/log";
import type { Context } from "./context";
import { BeamdeckError, ERRORS, errorDoc, toTrpcError } from "./errors";
import { forwardToOwner } from "./gateway/forward-call";

/** Procedure metadata: the least role, so tests can check every procedure's guard. */
export interface Meta {
  role?: Role | "public";
}

const t = initTRPC
  .context<Context>()
  .meta<Meta>()
  .create({
    errorFormatter({ shape, error }) {
      const cause = error.cause;
      return {
        ...shape,
        data: {
          ...shape.data,
          beamdeckCode: cause instanceof BeamdeckError ? cause.code : null,
          docs: cause instanceof BeamdeckError ? errorDoc(cause.code) : null,
          stack: undefined,
        },
      };
    },
  });

export const router = t.router;
export const createCallerFactory = t.createCallerFactory;

/** Turn catalogued errors thrown anywhere below into tRPC errors. */
const mapErrors = t.middleware(async ({ next }) => {
  const result = await next();
  if (!result.ok && result.error.cause instanceof BeamdeckError && result.error.code === "INTERNAL_SERVER_ERROR") {
    throw toTrpcError(result.error.cause);
  }
  return result;
});

export const publicProcedure = t.procedure.use(mapErrors).meta({ role: "public" });

function requireRole(role: Role) {
  return t.middleware(async ({ ctx, next, path, type }) => {
    const p = ctx.principal;
    if (!p) {
      const e = ctx.authError ?? new BeamdeckError("BD_UNAUTHENTICATED");
      throw new TRPCError({ code: ERRORS[e.code].trpc, message: e.message, cause: e });
    }
    if (!hasRole(p.role, role)) {
      await appendAudit(ctx.services.prisma, {
        actor: actorOf(p),
        action: "access.denied",
        target: path,
        outcome: "denied",
        data: { procedure: path, type, role: p.role, needed: role },
      }).catch(() => {});
      throw toTrpcError(new BeamdeckError("BD_FORBIDDEN", `${path} needs the ${role} role; you are ${p.role}`));
    }
    return next({ ctx: { ...ctx, principal: p } });
  });
}

/**
 * A node whose socket another instance holds (BD_NODE_ELSEWHERE, thrown by
 * routers/node-input.ts before any side effect) is answered by that owner:
 * the call is forwarded once, under the same principal. Subscriptions are not
 * forwarded: live changes reach every instance through the Hub.
 */
const ownerAnswers = t.middleware(async ({ ctx, next, path, type, getRawInput }) => {
  const result = await next();
  if (result.ok || type === "subscription" || ctx.forwardedFrom !== null || !ctx.principal) return result;
  const cause = result.error.cause;
  const owner = cause instanceof BeamdeckError && cause.code === "BD_NODE_ELSEWHERE" ? cause.data?.owner : undefined;
  if (typeof owner !== "string") return result;
  const data = await forwardToOwner(ctx.services, owner, { path, type, input: await getRawInput(), principal: ctx.principal });
  return { marker: result.marker, ok: true as const, data };
});

export const viewerProcedure = publicProcedure.use(requireRole("viewer")).use(ownerAnswers).meta({ role: "viewer" });
export const operatorProcedure = publicProcedure.use(requireRole("operator")).use(ownerAnswers).meta({ role: "operator" });
export const adminProcedure = publicProcedure.use(requireRole("admin")).use(ownerAnswers).meta({ role: "admin" });
