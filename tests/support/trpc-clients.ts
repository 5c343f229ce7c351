/** tRPC clients for tests: over HTTP or WebSocket, with a token or a session cookie. */
import { createTRPCClient, createWSClient, httpLink, wsLink, type TRPCClient } from "@trpc/client";
import WebSocket from "ws";
import type { AppRouter } from "../../server/routers/_app";

export type Credentials = { token: string } | { cookie: string } | null;

function headersOf(c: Credentials): Record<string, string> {
  if (!c) return {};
  return "token" in c ? { authorization: `Bearer ${c.token}` } : { cookie: c.cookie };
}

export function httpClient(baseUrl: string, creds: Credentials): TRPCClient<AppRouter> {
  return createTRPCClient<AppRouter>({ links: [httpLink({ url: `${baseUrl}/api/trpc`, headers: headersOf(creds) })] });
}

/** A WebSocket client; the token goes in connectionParams, a cookie in the upgrade request. */
export function wsClient(baseUrl: string, creds: Credentials, onClose?: (cause?: { code?: number }) => void) {
  const headers = creds && "cookie" in creds ? headersOf(creds) : {};
  class HeaderWebSocket extends WebSocket {
    constructor(url: string | URL, protocols?: string | string[]) {
      super(url, protocols, { headers });
    }
  }
  const client = createWSClient({
    url: `${baseUrl.replace(/^http/, "ws")}/api/trpc-ws`,
    WebSocket: HeaderWebSocket as unknown as typeof globalThis.WebSocket,
    connectionParams: creds && "token" in creds ? { token: creds.token } : null,
    retryDelayMs: () => 100_000,
    onClose,
  });
  return { trpc: createTRPCClient<AppRouter>({ links: [wsLink({ client })] }), close: () => client.close() };
}

/** Log in over HTTP; returns the session cookie the server set. */
export async function loginCookie(baseUrl: string, username: string, password: string): Promise<string> {
  const r = await fetch(`${baseUrl}/api/trpc/auth.login`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ username, password }),
  });
  if (!r.ok) throw new Error(`login failed: ${r.status} ${await r.text()}`);
  const set = r.headers.get("set-cookie") ?? "";
  const m = /beamdeck_session=([^;]+)/.exec(set);
  if (!m) throw new Error(`no session cookie in ${set}`);
  if (!/HttpOnly/i.test(set) || !/SameSite=Lax/i.test(set)) throw new Error(`session cookie lacks HttpOnly/SameSite: ${set}`);
  return `beamdeck_session=${m[1]}`;
}
