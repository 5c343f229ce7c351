/** The CLI's WebSocket link, for live progress (subscriptions). */
import { createTRPCClient, createWSClient, wsLink } from "@trpc/client";
import WebSocket from "ws";
import type { AppRouter } from "../routers/_app";
import type { Env } from "../storage/database-url";
import { serverUrl } from "./client";

export function wsApi(env: Env) {
  const client = createWSClient({
    url: `${serverUrl(env).replace(/^http/, "ws")}/api/trpc-ws`,
    WebSocket: WebSocket as unknown as typeof globalThis.WebSocket,
    connectionParams: { token: env.BEAMDECK_API_TOKEN ?? "" },
    retryDelayMs: (attempt) => Math.min(5000, 250 * 2 ** attempt),
  });
  return { trpc: createTRPCClient<AppRouter>({ links: [wsLink({ client })] }), close: () => client.close() };
}
