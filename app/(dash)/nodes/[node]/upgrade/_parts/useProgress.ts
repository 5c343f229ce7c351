"use client";
/**
 * Live progress of this node's upgrade steps (upgrades.onProgress): every
 * event since the page opened, newest last, bounded. A `result` event ends
 * a step; the page then refetches what the step changed.
 */
import { useSubscription } from "@trpc/tanstack-react-query";
import { useEffect, useRef, useState } from "react";
import { useTRPC } from "../../../../../_lib/trpc";
// The server's own type, imported for its shape only (nothing of the server is bundled).
import type { ProgressEvent } from "../../../../../../server/upgrades/workflow";

export type { ProgressEvent };

const MAX_EVENTS = 200;

export function useProgress(node: string, onResult: (e: ProgressEvent) => void): { events: ProgressEvent[]; status: string } {
  const trpc = useTRPC();
  const [events, setEvents] = useState<ProgressEvent[]>([]);
  const onResultRef = useRef(onResult);
  useEffect(() => {
    onResultRef.current = onResult;
  });
  const sub = useSubscription(
    trpc.upgrades.onProgress.subscriptionOptions(
      { node },
      {
        onData: (e) => {
          setEvents((list) => [...list, e].slice(-MAX_EVENTS));
          if (e.kind === "result") onResultRef.current(e);
        },
      },
    ),
  );
  return { events, status: sub.status };
}

/** The events of one command, in the order they happened. */
export function eventsOf(events: ProgressEvent[], commandId: string): ProgressEvent[] {
  // "sent" is stamped by the server once the agent accepted, and the agent's
  // own progress can carry an earlier time: it still comes first.
  const rank = (e: ProgressEvent) => (e.kind === "sent" ? 0 : e.kind === "progress" ? 1 : 2);
  return events.filter((e) => e.commandId === commandId).sort((a, b) => rank(a) - rank(b) || a.at - b.at);
}
