/**
 * Calls between server instances (issue 16): an instance asked about a node
 * whose socket another instance holds forwards the tRPC call to that owner.
 * One request and one reply schema; the body is authenticated with an HMAC
 * from the shared secret (`BEAMDECK_SECRET_KEY`, purpose "instance-request"),
 * names the instance it is meant for, and is fresh (MAX_SKEW_MS).
 */
import crypto from "node:crypto";
import { z } from "zod";
import { principalSchema } from "../auth/principal";
import { keyedMac, type SecretKey } from "../storage/secret-key";

export const INTERNAL_CALL_PATH = "/internal/call";
export const MAC_HEADER = "x-beamdeck-instance-mac";
/** A request older (or newer) than this is refused: a captured one cannot be replayed later. */
export const MAX_SKEW_MS = 30_000;
/** Above the longest agent request behind a call (an upgrade plan: 30 s). */
export const FORWARD_TIMEOUT_MS = 45_000;
/** An owner's answer: a table window or a tree; a node's whole tree at 1M processes is the largest. */
export const MAX_REPLY_BYTES = 64 * 1024 * 1024;

/**
 * The routers whose procedures look up a live node (routers/node-input.ts)
 * and so may be answered by its owner; nothing else is forwarded or accepted
 * (an admin procedure has no owner, and a leaked MAC must not reach it).
 */
export const FORWARDABLE_ROUTERS = ["procs", "nodes", "system", "upgrades"] as const;

export function forwardable(path: string): boolean {
  return (FORWARDABLE_ROUTERS as readonly string[]).includes(path.split(".")[0] ?? "");
}

/** How long the receiver may take to read a forwarded body (it is small: a tRPC input). */
export const BODY_READ_TIMEOUT_MS = 10_000;

export const internalCallSchema = z.object({
  from: z.string().min(1).max(100),
  /** Random per call: the receiver refuses a nonce it saw within twice MAX_SKEW_MS (a replay inside the window). */
  nonce: z.string().min(16).max(64),
  to: z.string().min(1).max(100),
  at: z.number().int(),
  path: z
    .string()
    .max(200)
    .regex(/^[A-Za-z]+(\.[A-Za-z]+)+$/, "a procedure path like procs.window"),
  type: z.enum(["query", "mutation"]),
  input: z.unknown(),
  /** The caller the owner runs a tRPC call for; null only for a rollout engine's operation (fleet/rollout-remote.ts), which acts for the rollout. */
  principal: principalSchema.nullable(),
});
export type InternalCall = z.infer<typeof internalCallSchema>;

export const internalReplySchema = z.discriminatedUnion("ok", [
  z.object({ ok: z.literal(true), data: z.unknown() }),
  z.object({ ok: z.literal(false), trpcCode: z.string().max(64), beamdeckCode: z.string().max(64).nullable(), message: z.string().max(10_000) }),
]);
export type InternalReply = z.infer<typeof internalReplySchema>;

/** Nonces seen within the freshness window, bounded: a replayed call is refused, not run twice. */
export class SeenNonces {
  private readonly seen = new Map<string, number>();
  constructor(private readonly max = 100_000) {}

  /** True the first time a nonce is offered within 2 × MAX_SKEW_MS; false for a repeat (or when full of fresh nonces: refuse rather than forget). */
  first(nonce: string, now = Date.now()): boolean {
    for (const [n, at] of this.seen) {
      if (now - at <= 2 * MAX_SKEW_MS) break; // insertion order: the rest are newer
      this.seen.delete(n);
    }
    if (this.seen.has(nonce) || this.seen.size >= this.max) return false;
    this.seen.set(nonce, now);
    return true;
  }
}

export function signBody(key: SecretKey, body: string): string {
  return keyedMac(key, "instance-request", body);
}

/** Constant-time check of the body's MAC. */
export function macMatches(key: SecretKey, body: string, mac: string | undefined): boolean {
  if (!mac) return false;
  const want = Buffer.from(signBody(key, body));
  const got = Buffer.from(mac);
  return got.length === want.length && crypto.timingSafeEqual(got, want);
}
