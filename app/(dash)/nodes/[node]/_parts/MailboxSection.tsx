"use client";
/**
 * The drawer's mailbox section: how the leak rule sees this mailbox (growing
 * since when, how fast), hints for known leak patterns (counts and shapes,
 * sent whatever the settings), and the first messages where the agent's
 * get_state and the caller's role allow them (below 10,000 messages only).
 */
import { useQuery } from "@tanstack/react-query";
import { clockZone, int } from "../../../../_lib/format";
import { useTRPC } from "../../../../_lib/trpc";
import type { MailboxPreview } from "../../../../_lib/types";
import { valuesHiddenWhy } from "../../../../_lib/values-why";

const WHY: Record<Exclude<MailboxPreview["status"], "hidden">, string> = {
  empty: "empty",
  shown: "",
  too_many: "messages not read: at or above the preview limit",
  gone: "the process exited",
};

function Growth({ node, pid }: { node: string; pid: string }) {
  const trpc = useTRPC();
  const g = useQuery(trpc.procs.growth.queryOptions({ node, pid }, { refetchInterval: 5000 })).data;
  if (!g) return null;
  const minutes = Math.max(0, (Date.now() - g.since) / 60_000);
  return (
    <p className={g.fired ? "alert alert-warn" : "muted"} data-testid="drawer-growth" data-per-minute={g.perMinute.toFixed(2)} data-since={g.since}>
      {g.now > g.from ? `Growing: ${int(g.from)} → ${int(g.now)} messages` : `Not drained: ${int(g.now)} messages`} since {clockZone(g.since)} ({minutes.toFixed(1)} min, {g.perMinute.toFixed(1)}/min)
      {g.fired ? " — the mailbox_leak alert fired" : ""}
    </p>
  );
}

/** Messages hold the same data as state: hidden by the same setting on the node, and the same role rule on the server. */
function why(preview: MailboxPreview, hiddenBelow: string | null): string {
  if (preview.status === "hidden") return `messages not shown: ${valuesHiddenWhy(hiddenBelow)}`;
  return preview.status === "too_many" ? `${WHY.too_many} (${int(preview.limit)})` : WHY[preview.status];
}

export function MailboxSection({ node, pid, preview, hiddenBelow }: { node: string; pid: string; preview: MailboxPreview | undefined; hiddenBelow: string | null }) {
  return (
    <>
      <Growth node={node} pid={pid} />
      {preview?.hints.map((h) => (
        <div key={h.id} className="alert alert-warn" data-testid="mailbox-hint" data-hint={h.id} data-count={h.count}>
          <strong>{h.message}</strong>
          <div className="muted">Fix: {h.fix}</div>
        </div>
      ))}
      {!preview ? (
        <p className="muted">this agent sends no message preview</p>
      ) : preview.status === "shown" ? (
        <ol className="mailbox-messages" data-testid="mailbox-messages">
          {preview.messages.map((m, i) => (
            // biome-ignore lint/suspicious/noArrayIndexKey: a snapshot in mailbox order, replaced whole, never reordered; equal messages are common
            <li key={i} className="mono wrap" data-testid="mailbox-message">
              {m.text}
              {m.truncated ? " …" : ""}
            </li>
          ))}
        </ol>
      ) : (
        <p className="muted" data-testid="mailbox-why" data-status={preview.status}>
          {why(preview, hiddenBelow)}
        </p>
      )}
    </>
  );
}
