/**
 * The long-lived parts of one server instance, built once at start-up and
 * handed to every request through the tRPC context.
 */
import type { PrismaClient } from "../generated/prisma/client";
import type { AgentRegistry } from "./agents/registry";
import type { EventStore } from "./events/store";
import type { Hub } from "./live/hub";

export interface Services {
  prisma: PrismaClient;
  hub: Hub;
  registry: AgentRegistry;
  events: EventStore;
  instanceId: string;
  /** Extension point for later domains (alerts, upgrades) without changing this type's users. */
  extras: Record<string, unknown>;
}
