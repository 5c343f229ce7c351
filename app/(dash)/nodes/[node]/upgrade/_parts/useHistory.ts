"use client";
/**
 * The node's upgrade history, pushed by the server on every change
 * (`upgrades.onHistory`, resumable with tracked ids: after a reconnect the
 * server sends it again only if it changed). No polling.
 */
import { useSubscription } from "@trpc/tanstack-react-query";
import { useState } from "react";
import { useTRPC } from "../../../../../_lib/trpc";
import type { Upgrade } from "./types";

export function useHistory(node: string): { upgrades: Upgrade[]; loaded: boolean; error: unknown } {
  const trpc = useTRPC();
  const [held, setHeld] = useState<{ node: string; upgrades: Upgrade[] } | null>(null);
  const sub = useSubscription(
    trpc.upgrades.onHistory.subscriptionOptions(
      { node },
      {
        onData: (e) => setHeld({ node, upgrades: e.data }),
      },
    ),
  );
  const upgrades = held?.node === node ? held.upgrades : [];
  return { upgrades, loaded: held?.node === node, error: sub.error };
}
