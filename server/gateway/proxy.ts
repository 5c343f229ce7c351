/**
 * What a reverse proxy may tell us, and only when told to trust it
 * (`BEAMDECK_TRUST_PROXY=1`): the client's address and whether the client
 * spoke TLS. Without the setting both come from the socket itself.
 *
 * X-Forwarded-For is a list each hop appends to; everything left of the
 * last entry was written by the client (or hops we know nothing about) and
 * is free for an attacker to choose. The last entry is the one our proxy
 * wrote: the address it saw. That is the only one used.
 */
import type { IncomingMessage } from "node:http";

type Env = Record<string, string | undefined>;

export function trustProxy(env: Env = process.env): boolean {
  return env.BEAMDECK_TRUST_PROXY === "1";
}

/** The last value of a header that may arrive as a list or repeated. */
function lastListEntry(value: string | string[] | undefined): string | null {
  if (value === undefined) return null;
  const joined = Array.isArray(value) ? value.join(",") : value;
  const parts = joined
    .split(",")
    .map((s) => s.trim())
    .filter(Boolean);
  return parts.length ? parts[parts.length - 1] : null;
}

/** The client's address: the socket peer, or the proxy's own X-Forwarded-For hop. */
export function clientIp(req: IncomingMessage, env: Env = process.env): string | null {
  if (trustProxy(env)) {
    const hop = lastListEntry(req.headers["x-forwarded-for"]);
    if (hop) return hop.slice(0, 64);
  }
  return req.socket.remoteAddress ?? null;
}

/** Did the client reach us over TLS (directly, or to a trusted proxy that says so)? */
export function requestIsHttps(req: IncomingMessage, env: Env = process.env): boolean {
  if ((req.socket as { encrypted?: boolean }).encrypted) return true;
  return trustProxy(env) && lastListEntry(req.headers["x-forwarded-proto"])?.toLowerCase() === "https";
}
