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

export const internalCallSchema = z.object({
  from: z.string().min(1).max(100),
  to: z.string().min(1).max(100),
  at: z.number().int(),
  path: z
    .string()
    .max(200)
    .regex(/^[A-Za-z]+(\.[A-Za-z]+)+$/, "a procedure path like procs.window"),
  type: z.enum(["query", "mutation"]),
  input: z.unknown(),
  principal: principalSchema,
});
export type InternalCall = z.infer<typeof internalCallSchema>;

export const internalReplySchema = z.discriminatedUnion("ok", [
  z.object({ ok: z.literal(true), data: z.unknown() }),
  z.object({ ok: z.literal(false), trpcCode: z.string().max(64), beamdeckCode: z.string().max(64).nullable(), message: z.string().max(10_000) }),
]);
export type InternalReply = z.infer<typeof internalReplySchema>;

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
