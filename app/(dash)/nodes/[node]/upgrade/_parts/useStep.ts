"use client";
/**
 * The step this page started, followed to its end: `upgrades.onProgress`
 * with its command id sends the node's progress and ends with the result,
 * the recorded one if the step finished before the page subscribed. That
 * result is the page's one source of "this step finished".
 */
import { useSubscription } from "@trpc/tanstack-react-query";
import { useRef, useState } from "react";
import { useTRPC } from "../../../../../_lib/trpc";
// The server's own type, imported for its shape only (nothing of the server is bundled).
import type { ProgressEvent } from "../../../../../../server/upgrades/workflow";

export type { ProgressEvent };

export interface ActiveStep {
  commandId: string;
  action: string;
  vsn: string | null;
  startedAt: number;
}

export interface StepOutcome {
  ok: boolean;
  message: string | null;
}

/** A step logs a few dozen lines; a runaway agent cannot grow the page without bound. */
const MAX_EVENTS = 200;

export function useStep(node: string, onFinished: () => void) {
  const trpc = useTRPC();
  const [active, setActive] = useState<ActiveStep | null>(null);
  const [events, setEvents] = useState<ProgressEvent[]>([]);
  const [finished, setFinished] = useState<StepOutcome | null>(null);
  const onFinishedRef = useRef(onFinished);
  onFinishedRef.current = onFinished;
  const commandId = active?.commandId ?? null;
  useSubscription(
    trpc.upgrades.onProgress.subscriptionOptions(
      { node, commandId: commandId ?? undefined },
      {
        enabled: commandId !== null,
        onData: (e) => {
          if (e.commandId !== commandId) return;
          setEvents((list) => [...list, e].slice(-MAX_EVENTS));
          if (e.kind === "result") {
            setFinished({ ok: Boolean(e.ok), message: e.message ?? null });
            onFinishedRef.current();
          }
        },
      },
    ),
  );
  const start = (step: Omit<ActiveStep, "startedAt">) => {
    setEvents([]);
    setFinished(null);
    setActive({ ...step, startedAt: Date.now() });
  };
  const dismiss = () => setActive(null);
  return { active, events: eventsInOrder(events), finished, running: active !== null && finished === null, start, dismiss };
}

/** "sent" is stamped by the server once the agent accepted, and the agent's own progress can carry an earlier time: it still comes first. */
function eventsInOrder(events: ProgressEvent[]): ProgressEvent[] {
  const rank = (e: ProgressEvent) => (e.kind === "sent" ? 0 : e.kind === "progress" ? 1 : 2);
  return [...events].sort((a, b) => rank(a) - rank(b) || a.at - b.at);
}
