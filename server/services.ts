/**
 * The long-lived parts of one server instance, built once at start-up and
 * handed to every request through the tRPC context.
 */
import type { PrismaClient } from "../generated/prisma/client";
import type { AgentRegistry } from "./agents/registry";
import type { EventStore } from "./events/store";
import type { AlertEngine } from "./alerts/engine";
import type { Hub } from "./live/hub";
import type { UpgradeWorkflow } from "./upgrades/workflow";
import type { WsSessions } from "./live/ws-sessions";
import type { SystemWatch } from "./agents/system-views";
import type { MetricsCounters } from "./gateway/metrics";
import type { OldCodeWatch } from "./upgrades/old-code-watch";
import type { RolloutEngine } from "./fleet/rollout-engine";

export interface Services {
  prisma: PrismaClient;
  hub: Hub;
  registry: AgentRegistry;
  events: EventStore;
  alerts: AlertEngine;
  upgrades: UpgradeWorkflow;
  /** Rolling upgrades of a group (driven from the database; any instance resumes them). */
  rollouts: RolloutEngine;
  wsSessions: WsSessions;
  /** Node overviews over time (Observer's system view). */
  system: SystemWatch;
  /** Processes left on old code, per node (marks in the table, tree and nodes list). */
  oldCode: OldCodeWatch;
  /** Counters behind GET /metrics, fed since this instance started. */
  metrics: MetricsCounters;
  instanceId: string;
  /** The dashboard's public URL, for links in notifications (BEAMDECK_PUBLIC_URL). */
  publicUrl: string | null;
}
