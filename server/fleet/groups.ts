/**
 * Groups of nodes (a release's fleet) and version drift: which releases the
 * connected nodes of a group run. Pure, so the router, the CLI's view and
 * the drift rule see the same answer.
 */
import type { NodeListing } from "../agents/node-listing";

/** Nodes without a group setting and without a release (a bare `erl` with the agent). */
export const NO_GROUP = "(none)";

export interface Group {
  name: string;
  nodes: NodeListing[];
  connected: number;
  /** Distinct "name vsn" of the releases its connected nodes run, sorted. */
  versions: string[];
  /** Connected nodes run more than one release. */
  drift: boolean;
  oldCode: number;
}

export function releaseLabel(r: { name: string; vsn: string } | null): string {
  return r ? `${r.name} ${r.vsn}` : "(no release)";
}

export function groupNodes(nodes: NodeListing[]): Group[] {
  const byName = new Map<string, NodeListing[]>();
  for (const n of nodes) {
    const key = n.group ?? NO_GROUP;
    const members = byName.get(key);
    if (members) members.push(n);
    else byName.set(key, [n]);
  }
  return [...byName.entries()]
    .sort(([a], [b]) => a.localeCompare(b))
    .map(([name, members]) => {
      const live = members.filter((n) => n.connected);
      const versions = [...new Set(live.map((n) => releaseLabel(n.release)))].sort();
      return {
        name,
        nodes: members,
        connected: live.length,
        versions,
        drift: versions.length > 1,
        oldCode: members.reduce((sum, n) => sum + (n.oldCode ?? 0), 0),
      };
    });
}
