/**
 * Is another server instance up? Asked before a fleet token may take over a
 * name whose lease that instance still holds: a killed instance's lease
 * outlives it by up to BEAMDECK_LEASE_MS, its agents must not wait that long.
 */
import type { PrismaClient } from "../../generated/prisma/client";

/** Bounded: an instance that does not answer /healthz in this time counts as down. */
export const PROBE_TIMEOUT_MS = 2000;

export async function instanceAnswers(prisma: PrismaClient, instanceId: string): Promise<boolean> {
  const row = await prisma.instance.findUnique({ where: { id: instanceId }, select: { internalUrl: true } });
  // An instance without an address (an older version) cannot be asked: its lease decides.
  if (!row) return false;
  if (!row.internalUrl) return true;
  try {
    const res = await fetch(new URL("/healthz", row.internalUrl), { signal: AbortSignal.timeout(PROBE_TIMEOUT_MS) });
    await res.body?.cancel();
    return res.ok;
  } catch {
    return false;
  }
}
