/**
 * A node's upgrade history, pushed (issue 11, item 4): the page no longer
 * polls it every second while a step runs. Every change is one version of
 * the history, sent whole with `tracked(version, rows)`; a client that
 * reconnects sends the last version it has (`lastEventId`) and gets the
 * history again only if it changed meanwhile. The history rows are the one
 * source of "this step finished" for the page.
 */
import { createHash } from "node:crypto";
import { tracked } from "@trpc/server";
import type { Hub } from "../live/hub";
import type { UpgradeWorkflow } from "./workflow";

type History = Awaited<ReturnType<UpgradeWorkflow["history"]>>;

/** What identifies one state of the history: every upgrade's status and every command's status. */
export function historyVersion(rows: History): string {
  const h = createHash("sha256");
  for (const u of rows) {
    h.update(`${u.id}:${u.status}:${new Date(u.updatedAt).getTime()};`);
    for (const c of u.commands) h.update(`${c.id}:${c.status};`);
  }
  return `h-${h.digest("hex").slice(0, 24)}`;
}

export async function* historyFeed(deps: { hub: Hub; upgrades: UpgradeWorkflow }, node: string, limit: number, lastEventId: string | null | undefined, signal?: AbortSignal) {
  // Subscribed before the first read: a step that finishes in between is not missed.
  const changes = deps.hub.subscribe(`upgrade:${node}`, signal);
  let last = lastEventId ?? null;
  const read = async () => {
    const rows = await deps.upgrades.history(node, limit);
    const version = historyVersion(rows);
    if (version === last) return null;
    last = version;
    return tracked(version, rows);
  };
  const first = await read();
  if (first) yield first;
  // Any step event (sent, progress, result) may have changed a status: read again.
  for await (const _ of changes) {
    const next = await read();
    if (next) yield next;
  }
}
