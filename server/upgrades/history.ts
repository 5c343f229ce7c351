/**
 * A node's upgrades as the page, the CLI and the history feed read them:
 * stored JSON parsed at the read (stored.ts) and each install's fallback
 * with what became of it (fallback-store.ts).
 */
import type { PrismaClient } from "../../generated/prisma/client";
import { fallbackOf, fallbackOutcomes } from "./fallback-store";
import { readCommand, readUpgrade } from "./stored";

export async function upgradeHistory(prisma: PrismaClient, node: string, limit = 20) {
  const rows = await prisma.upgrade.findMany({ where: { node }, orderBy: { createdAt: "desc" }, take: limit, include: { commands: { orderBy: { createdAt: "asc" } } } });
  const outcomes = await fallbackOutcomes(prisma, node);
  const now = Date.now();
  return rows.map((u) => ({
    ...u,
    ...readUpgrade(u),
    commands: u.commands.map((c) => ({ ...c, ...readCommand(c), intentId: c.intentId?.toString() ?? null })),
    fallback: fallbackOf(u.status, u.commands, outcomes, now),
  }));
}
