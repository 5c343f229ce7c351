/**
 * Cross-site request refusal for cookie-carrying requests: the tRPC
 * WebSocket upgrade and every state-changing HTTP request. SameSite=Lax
 * does not help against a page on another port of the same host (same
 * site, so the browser sends the cookie), so the browser's own statement
 * of where the request comes from is checked: `Origin`, and
 * `Sec-Fetch-Site` where the browser sends it.
 *
 * The server's own origin is `BEAMDECK_PUBLIC_URL` when set, or whatever
 * the Host header (or a trusted proxy's X-Forwarded-Host) names. Requests without either header (the CLI, `ws`,
 * curl) carry no ambient credentials from a browser and pass.
 */
import type { IncomingMessage } from "node:http";
import { trustProxy } from "./proxy";

/** Why the request is refused as cross-site, or null when it may proceed. */
export function crossSiteReason(req: IncomingMessage, publicUrl: string | null): string | null {
  const site = req.headers["sec-fetch-site"];
  if (typeof site === "string" && site !== "same-origin" && site !== "none") return `cross-site request refused (Sec-Fetch-Site: ${site})`;
  const origin = req.headers.origin;
  if (origin === undefined) return null;
  if (origin === "null") return "cross-site request refused (Origin: null)";
  let from: URL;
  try {
    from = new URL(origin);
  } catch {
    return "cross-site request refused (malformed Origin)";
  }
  if (publicUrl && from.origin === safeOrigin(publicUrl)) return null;
  if (from.protocol !== "http:" && from.protocol !== "https:") return `cross-site request refused (Origin ${origin})`;
  // The host the browser asked for: the Host header, or what a trusted proxy says it was.
  const hosts = [req.headers.host, trustProxy() ? req.headers["x-forwarded-host"] : undefined].flat().filter((h): h is string => Boolean(h));
  if (hosts.some((h) => h.split(",")[0].trim().toLowerCase() === from.host)) return null;
  return `cross-site request refused (Origin ${from.origin} is not this server's)`;
}

function safeOrigin(url: string): string | null {
  try {
    return new URL(url).origin;
  } catch {
    return null;
  }
}

/** Methods that change nothing (and so need no origin check). */
export function isSafeMethod(method: string | undefined): boolean {
  return method === "GET" || method === "HEAD" || method === "OPTIONS";
}

/** A bearer token is sent on purpose, never by the browser on its own. */
export function hasBearer(req: IncomingMessage): boolean {
  return req.headers.authorization?.startsWith("Bearer ") ?? false;
}
