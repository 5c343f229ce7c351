"use client";
/**
 * The browser's tRPC client: queries and mutations over HTTP (`/api/trpc`),
 * subscriptions over one WebSocket (`/api/trpc-ws`), both on the page's own
 * origin. Nothing here runs during server rendering: `window.location` is the
 * only source of the WebSocket URL (a NEXT_PUBLIC_* value would be baked into
 * the build), so the provider renders its children on the client only.
 */
import { MutationCache, QueryCache, QueryClient, QueryClientProvider } from "@tanstack/react-query";
import { createTRPCClient, createWSClient, httpBatchLink, splitLink, TRPCClientError, wsLink } from "@trpc/client";
import { createTRPCContext } from "@trpc/tanstack-react-query";
import { useState, useSyncExternalStore, type ReactNode } from "react";
import { MAX_BATCH_CALLS } from "../../server/gateway/limits";
import type { AppRouter } from "../../server/routers/_app";

export const { TRPCProvider, useTRPC, useTRPCClient } = createTRPCContext<AppRouter>();

/** The tRPC error code of a failed call, if it is one ("UNAUTHORIZED", …). */
export function trpcCode(error: unknown): string | null {
  if (error instanceof TRPCClientError) {
    const data = (error as TRPCClientError<AppRouter>).data as { code?: string } | undefined;
    return data?.code ?? null;
  }
  return null;
}

/** The catalogued beamdeck code (BD_NODE_OFFLINE, …) of a failed call, if any. */
export function beamdeckCode(error: unknown): string | null {
  if (error instanceof TRPCClientError) {
    const data = (error as TRPCClientError<AppRouter>).data as { beamdeckCode?: string | null } | undefined;
    return data?.beamdeckCode ?? null;
  }
  return null;
}

/** The server's one-line message for a failed call. */
export function errorMessage(error: unknown): string {
  if (error instanceof Error) return error.message;
  return String(error);
}

/** Send an anonymous (or logged-out) visitor to the login page, back here afterwards. */
export function redirectToLogin(): void {
  const here = window.location.pathname + window.location.search;
  if (window.location.pathname === "/login") return;
  window.location.assign(`/login?next=${encodeURIComponent(here)}`);
}

function onAnyError(error: unknown): void {
  if (trpcCode(error) === "UNAUTHORIZED") redirectToLogin();
}

function makeQueryClient(): QueryClient {
  return new QueryClient({
    queryCache: new QueryCache({ onError: onAnyError }),
    mutationCache: new MutationCache({
      onError: (e) => {
        // A failed login is answered on the login form, not by a redirect.
        if (window.location.pathname !== "/login") onAnyError(e);
      },
    }),
    defaultOptions: {
      queries: {
        staleTime: 1000,
        refetchOnWindowFocus: false,
        // Client errors (4xx: offline node, unknown pid, no session) will not heal by retrying.
        retry: (count, error) => {
          const code = trpcCode(error);
          if (code && code !== "INTERNAL_SERVER_ERROR" && code !== "TIMEOUT") return false;
          return count < 2;
        },
      },
    },
  });
}

function wsUrl(): string {
  const { protocol, host } = window.location;
  return `${protocol === "https:" ? "wss:" : "ws:"}//${host}/api/trpc-ws`;
}

function makeTrpcClient() {
  // Lazy: the socket opens with the first subscription and closes when idle.
  // The session cookie travels with the upgrade request (same origin).
  const ws = createWSClient({ url: wsUrl, lazy: { enabled: true, closeMs: 10_000 } });
  return createTRPCClient<AppRouter>({
    links: [
      splitLink({
        condition: (op) => op.type === "subscription",
        true: wsLink<AppRouter>({ client: ws }),
        false: httpBatchLink({ url: "/api/trpc", maxURLLength: 6000, maxItems: MAX_BATCH_CALLS }),
      }),
    ],
  });
}

const noSubscribe = () => () => {};

/** True on the client after hydration, false during server rendering. */
export function useIsClient(): boolean {
  return useSyncExternalStore(
    noSubscribe,
    () => true,
    () => false,
  );
}

function ClientProviders({ children }: { children: ReactNode }) {
  const [queryClient] = useState(makeQueryClient);
  const [trpcClient] = useState(makeTrpcClient);
  return (
    <QueryClientProvider client={queryClient}>
      <TRPCProvider trpcClient={trpcClient} queryClient={queryClient}>
        {children}
      </TRPCProvider>
    </QueryClientProvider>
  );
}

export function Providers({ children }: { children: ReactNode }) {
  const isClient = useIsClient();
  if (!isClient) return <div className="boot" aria-busy="true" />;
  return <ClientProviders>{children}</ClientProviders>;
}
