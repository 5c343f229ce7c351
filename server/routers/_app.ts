/** The root router: one sub-router per domain. */
import { router } from "../trpc";
import { alertsRouter } from "./alerts";
import { auditRouter } from "./audit";
import { authRouter } from "./auth";
import { eventsRouter } from "./events";
import { groupsRouter } from "./groups";
import { nodesRouter } from "./nodes";
import { procsRouter } from "./procs";
import { rolloutsRouter } from "./rollouts";
import { systemRouter } from "./system";
import { tokensRouter } from "./tokens";
import { upgradesRouter } from "./upgrades";
import { usersRouter } from "./users";

export const appRouter = router({
  alerts: alertsRouter,
  auth: authRouter,
  events: eventsRouter,
  groups: groupsRouter,
  audit: auditRouter,
  nodes: nodesRouter,
  procs: procsRouter,
  rollouts: rolloutsRouter,
  system: systemRouter,
  tokens: tokensRouter,
  upgrades: upgradesRouter,
  users: usersRouter,
});

export type AppRouter = typeof appRouter;
