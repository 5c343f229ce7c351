"use client";
/**
 * The step this page started, followed to its end. Two subscriptions to
 * `upgrades.onProgress`: the node's, open from page load, collects what the
 * agent reports (a fast step can report before the page has its command id);
 * the step's own, with its command id, ends with the result — the recorded
 * one if the step finished before it subscribed. That result is the page's
 * one source of "this step finished".
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
      { node },
      {
        onData: (e) => {
          if (e.kind !== "result") setEvents((list) => [...list, e].slice(-MAX_EVENTS));
        },
      },
    ),
  );
  useSubscription(
    trpc.upgrades.onProgress.subscriptionOptions(
      { node, commandId: commandId ?? undefined },
      {
        enabled: commandId !== null,
        onData: (e) => {
          if (e.commandId !== commandId || e.kind !== "result") return;
          setEvents((list) => [...list, e].slice(-MAX_EVENTS));
          setFinished({ ok: Boolean(e.ok), message: e.message ?? null });
          onFinishedRef.current();
        },
      },
    ),
  );
  const start = (step: Omit<ActiveStep, "startedAt">) => {
    setFinished(null);
    setActive({ ...step, startedAt: Date.now() });
  };
  const dismiss = () => setActive(null);
  const mine = commandId ? eventsInOrder(events.filter((e) => e.commandId === commandId)) : [];
  return { active, events: mine, finished, running: active !== null && finished === null, start, dismiss };
}

/** "sent" is stamped by the server once the agent accepted, and the agent's own progress can carry an earlier time: it still comes first. */
function eventsInOrder(events: ProgressEvent[]): ProgressEvent[] {
  const rank = (e: ProgressEvent) => (e.kind === "sent" ? 0 : e.kind === "progress" ? 1 : 2);
  return [...events].sort((a, b) => rank(a) - rank(b) || a.at - b.at);
}
