/**
 * A node's expected kills as the database holds them: its latest upgrade
 * step (install, make_permanent or rollback) and the kills its upgrade's
 * plans predicted. The instance that sent a step holds them in memory; after
 * a failover the deaths reach another instance (the agent's replay, or a
 * step still running when it moved), which reads them here, so a predicted
 * death is never paged as unexpected and a rollout's gate does not halt on it.
 */
import type { PrismaClient } from "../../generated/prisma/client";
import { readUpgrade } from "../upgrades/stored";
import { EXPECT_WINDOW_MS, type Expectation } from "./expectations";

const KILLING_STEPS = ["install", "make_permanent", "rollback"];

export async function storedExpectation(prisma: PrismaClient, node: string): Promise<Expectation | null> {
  const cmd = await prisma.upgradeCommand.findFirst({
    where: { node, upgradeId: { not: null }, action: { in: KILLING_STEPS } },
    orderBy: { createdAt: "desc" },
    include: { upgrade: true },
  });
  if (!cmd?.upgrade) return null;
  // Every step of the upgrade so far, as the sender's memory unions them.
  const pids = new Set(Object.values(readUpgrade(cmd.upgrade).expectedKills).flat());
  // The window opens when the step is sent, as on the sender (createdAt is its clock).
  return { upgradeId: cmd.upgrade.id, pids, until: cmd.createdAt.getTime() + EXPECT_WINDOW_MS };
}
