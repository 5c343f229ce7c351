/**
 * One context for both transports (HTTP and WebSocket): who is calling and
 * the instance's services. Authentication is by session cookie (browser) or
 * bearer API token (CLI; over WebSocket it comes in connectionParams).
 */
import type { IncomingMessage, ServerResponse } from "node:http";
import type { WebSocket } from "ws";
import { apiTokenPrincipal } from "./auth/api-tokens";
import type { Principal } from "./auth/principal";
import { readCookie, SESSION_COOKIE, sessionPrincipal } from "./auth/sessions";
import { BeamdeckError } from "./errors";
import { clientIp, requestIsHttps } from "./gateway/proxy";
import type { Services } from "./services";

export interface Context {
  services: Services;
  principal: Principal | null;
  /** Why authentication failed, when a credential was presented but refused. */
  authError: BeamdeckError | null;
  ip: string | null;
  userAgent: string | null;
  /** Set a response header (HTTP only; null over WebSocket). */
  setHeader: ((name: string, value: string) => void) | null;
  secure: boolean;
  /** Set when another instance forwarded this call to us, the node's owner (never forwarded again). */
  forwardedFrom: string | null;
}

export async function authenticate(
  services: Services,
  req: IncomingMessage,
  connectionParams?: Record<string, string | undefined> | null,
): Promise<{ principal: Principal | null; authError: BeamdeckError | null }> {
  const header = req.headers.authorization;
  const bearer = header?.startsWith("Bearer ") ? header.slice(7).trim() : (connectionParams?.token ?? null);
  if (bearer) {
    try {
      return { principal: await apiTokenPrincipal(services.prisma, bearer), authError: null };
    } catch (e) {
      if (e instanceof BeamdeckError) return { principal: null, authError: e };
      throw e;
    }
  }
  const cookie = readCookie(req.headers.cookie, SESSION_COOKIE);
  if (cookie) return { principal: await sessionPrincipal(services.prisma, cookie), authError: null };
  return { principal: null, authError: null };
}

export function contextFactory(services: Services) {
  return async (opts: { req: IncomingMessage; res?: ServerResponse | unknown; info?: { connectionParams?: Record<string, string | undefined> | null } }): Promise<Context> => {
    const { principal, authError } = await authenticate(services, opts.req, opts.info?.connectionParams ?? null);
    const res = opts.res;
    // Over WebSocket, `res` is the socket: remember who it is, to re-check later.
    if (res && typeof (res as { ping?: unknown }).ping === "function") services.wsSessions.track(res as WebSocket, principal);
    const isHttp = typeof (res as ServerResponse | undefined)?.setHeader === "function" && !(res as { ping?: unknown }).ping;
    return {
      services,
      principal,
      authError,
      ip: clientIp(opts.req),
      userAgent: opts.req.headers["user-agent"] ?? null,
      setHeader: isHttp ? (name, value) => (res as ServerResponse).appendHeader(name, value) : null,
      secure: requestIsHttps(opts.req),
      forwardedFrom: null,
    };
  };
}
