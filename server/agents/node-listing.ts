/**
 * What the nodes list shows of every known node, connected or not: one
 * place for the nodes page, `beamdeck nodes`, the groups and drift.
 * A node connected to this instance is read live; otherwise its last hello
 * row (and another instance's lease, which says whether it is connected there).
 */
import { type HelloFrame, readStoredHello } from "./protocol";
import type { Services } from "../services";

type Releases = HelloFrame["releases"];

/** The release a node runs: the one `current` (installed, not yet permanent), else the permanent one. */
export function runningRelease(releases: Releases | undefined): { name: string; vsn: string } | null {
  const r = releases?.find((x) => x.status === "current") ?? releases?.find((x) => x.status === "permanent") ?? null;
  return r ? { name: r.name, vsn: r.vsn } : null;
}

/** A node's group: the agent's `group` setting (BEAMDECK_GROUP), else its release's name. */
export function groupOf(hello: Pick<HelloFrame, "group" | "releases"> | null): string | null {
  return hello?.group ?? runningRelease(hello?.releases)?.name ?? null;
}

export const MAX_LISTED_NODES = 1000;

export async function listNodes(services: Pick<Services, "prisma" | "registry" | "oldCode" | "instanceId">) {
  const rows = await services.prisma.node.findMany({ orderBy: { name: "asc" }, take: MAX_LISTED_NODES });
  const now = Date.now();
  return rows.map((r) => {
    const heldElsewhere = r.connectedAt !== null && services.registry.leases.heldElsewhere(r);
    // A node that moved to another instance: what is left here is older than its row.
    const live = heldElsewhere ? undefined : services.registry.live(r.name);
    const s = live?.summary();
    const stored = readStoredHello(r.hello);
    const hello = live?.hello ?? stored;
    const release = runningRelease(hello.releases ?? null);
    const oldCode = s?.connected ? services.oldCode.snapshot(r.name) : null;
    return {
      name: r.name,
      // Elsewhere: only while that instance's lease is unexpired (a killed instance's nodes are not connected).
      connected: s?.connected ?? (r.connectedAt !== null && r.instanceId !== null && services.registry.leases.current(r.leaseExpiresAt)),
      connectedHere: Boolean(s?.connected),
      instance: r.instanceId && r.instanceId !== services.instanceId ? r.instanceId : null,
      lastSeenAt: s && s.connected ? now : (s?.disconnectedAt ?? r.lastSeenAt.getTime()),
      connectedSince: s?.connected ? s.connectedAt : (r.connectedAt?.getTime() ?? null),
      firstSeenAt: r.firstSeenAt.getTime(),
      otpRelease: s?.otpRelease ?? r.otpRelease,
      ertsVersion: s?.ertsVersion ?? stored.ertsVersion ?? null,
      agentVersion: s?.agentVersion ?? r.agentVersion,
      processCount: s?.processCount ?? stored.processCount ?? null,
      topMailbox: s?.topMailbox ?? null,
      boundTokenId: r.boundTokenId,
      group: groupOf({ group: hello.group, releases: hello.releases ?? null }),
      release,
      /** Processes on old code (null: not scanned yet, or not connected here). */
      oldCode: oldCode ? oldCode.total : null,
    };
  });
}

export type NodeListing = Awaited<ReturnType<typeof listNodes>>[number];
