/** The audit log: list with filters, one entry with its intent/outcome, chain status. */
import { z } from "zod";
import { listAudit, auditFilter, viewOf } from "../audit/query";
import { verifyAuditChain } from "../audit/log";
import { fail } from "../errors";
import { router, viewerProcedure } from "../trpc";

export const auditRouter = router({
  list: viewerProcedure
    .input(auditFilter.extend({ limit: z.number().int().min(1).max(500).default(100), before: z.string().regex(/^\d+$/).optional() }))
    .query(({ ctx, input }) => listAudit(ctx.services.prisma, input, input.limit, input.before)),

  get: viewerProcedure.input(z.object({ id: z.string().regex(/^\d+$/) })).query(async ({ ctx, input }) => {
    const prisma = ctx.services.prisma;
    const row = await prisma.auditEntry.findUnique({ where: { id: BigInt(input.id) } });
    if (!row) fail("BD_NOT_FOUND", `no audit entry ${input.id}`);
    const intent = row.intentId ? await prisma.auditEntry.findUnique({ where: { id: row.intentId } }) : null;
    const outcomes = await prisma.auditEntry.findMany({ where: { intentId: row.id }, orderBy: { id: "asc" } });
    return { entry: viewOf(row), intent: intent ? viewOf(intent) : null, outcomes: outcomes.map(viewOf) };
  }),

  verify: viewerProcedure.query(({ ctx }) => verifyAuditChain(ctx.services.prisma)),
});
