/**
 * The CLI's WebSocket link, for live progress (subscriptions). `ws` is
 * loaded only here, on first use: most commands never open a socket, and
 * loading it costs every command 30–50 ms of start-up (npm run bench -- cli).
 */
import { createTRPCClient, createWSClient, wsLink } from "@trpc/client";
import type { AppRouter } from "../routers/_app";
import type { Env } from "../storage/database-url";
import { serverUrl } from "./client";

export async function wsApi(env: Env) {
  const { default: WebSocket } = await import("ws");
  const client = createWSClient({
    url: `${serverUrl(env).replace(/^http/, "ws")}/api/trpc-ws`,
    WebSocket: WebSocket as unknown as typeof globalThis.WebSocket,
    connectionParams: { token: env.BEAMDECK_API_TOKEN ?? "" },
    retryDelayMs: (attempt) => Math.min(5000, 250 * 2 ** attempt),
  });
  return { trpc: createTRPCClient<AppRouter>({ links: [wsLink({ client })] }), close: () => client.close() };
}
