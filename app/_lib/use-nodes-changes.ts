"use client";
/** A list of nodes kept fresh: every connect or disconnect (`nodes.onNodes`) refetches the query with this key. */
import { type QueryKey, useQueryClient } from "@tanstack/react-query";
import { useSubscription } from "@trpc/tanstack-react-query";
import { useTRPC } from "./trpc";

export function useRefetchOnNodeChanges(queryKey: QueryKey): void {
  const trpc = useTRPC();
  const queryClient = useQueryClient();
  useSubscription(trpc.nodes.onNodes.subscriptionOptions(undefined, { onData: () => void queryClient.invalidateQueries({ queryKey }) }));
}
