/**
 * Where synthetic agents connect and how they retry: loopback endpoints only
 * (a load generator must not be pointed at someone else's server), and the
 * real agent's jittered backoff (docs/protocol.md, "Connecting").
 *
 * @module
 */

const BACKOFF_START_MS = 500;
const BACKOFF_MAX_MS = 30_000;

/** ws://HOST:PORT/agent from a ws(s):// URL or an http(s):// base. */
export function endpoint(url: string): string {
  let u: URL;
  try {
    u = new URL(url);
  } catch {
    throw new Error(`not a URL: ${JSON.stringify(url)} (expected ws://127.0.0.1:PORT/agent)`);
  }
  if (u.protocol === "http:" || u.protocol === "https:") {
    u.protocol = u.protocol === "https:" ? "wss:" : "ws:";
    u.pathname = "/agent";
  }
  if (u.protocol !== "ws:" && u.protocol !== "wss:") throw new Error(`not a WebSocket URL: ${url}`);
  return u.toString();
}

/** True for 127.0.0.0/8, ::1 and localhost. */
export function isLoopback(url: string): boolean {
  const host = new URL(url).hostname.replace(/^\[|\]$/g, "");
  return host === "localhost" || host === "::1" || /^127\.\d{1,3}\.\d{1,3}\.\d{1,3}$/.test(host);
}

/** 500 ms doubling to 30 s, ±20 % jitter, after `failures` failures in a row. */
export function backoffMs(failures: number, random: () => number): number {
  const base = Math.min(BACKOFF_MAX_MS, BACKOFF_START_MS * 2 ** Math.min(failures, 16));
  return Math.round(base * (0.8 + 0.4 * random()));
}
