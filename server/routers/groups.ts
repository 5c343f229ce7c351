/** Groups of nodes: which nodes run which release, drift, old code. */
import { listNodes } from "../agents/node-listing";
import { groupNodes } from "../fleet/groups";
import { router, viewerProcedure } from "../trpc";

export const groupsRouter = router({
  list: viewerProcedure.query(async ({ ctx }) => groupNodes(await listNodes(ctx.services))),
});
