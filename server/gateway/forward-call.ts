/**
 * Ask the instance that holds a node's socket to answer a call (issue 16):
 * live reads and upgrade steps run where the agent is, never by copying its
 * tables here. Bounded by FORWARD_TIMEOUT_MS and MAX_REPLY_BYTES.
 */
import crypto from "node:crypto";
import { TRPCError } from "@trpc/server";
import { TRPC_ERROR_CODES_BY_KEY } from "@trpc/server/rpc";
import type { Principal } from "../auth/principal";
import { BeamdeckError, ERRORS, type ErrorCode, toTrpcError } from "../errors";
import type { Services } from "../services";
import { activeSecretKey } from "../storage/secret-key";
import { FORWARD_TIMEOUT_MS, INTERNAL_CALL_PATH, type InternalCall, internalReplySchema, MAC_HEADER, MAX_REPLY_BYTES, signBody } from "./internal-call";

type TrpcCode = ConstructorParameters<typeof TRPCError>[0]["code"];

function unreachable(owner: string, why: string): TRPCError {
  return toTrpcError(new BeamdeckError("BD_OWNER_UNREACHABLE", `the server instance ${owner} holding this node did not answer: ${why}`));
}

async function readBounded(res: Response): Promise<string> {
  const reader = res.body?.getReader();
  if (!reader) return "";
  const chunks: Uint8Array[] = [];
  let size = 0;
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    size += value.byteLength;
    if (size > MAX_REPLY_BYTES) {
      await reader.cancel().catch(() => {});
      throw new Error(`answer over ${MAX_REPLY_BYTES} bytes`);
    }
    chunks.push(value);
  }
  return Buffer.concat(chunks).toString("utf8");
}

/** The owner's answer, or its error as this instance's caller would have got it. */
export async function forwardToOwner(
  services: Pick<Services, "prisma" | "instanceId">,
  owner: string,
  call: Pick<InternalCall, "path" | "type" | "input"> & { principal: Principal | null },
): Promise<unknown> {
  const row = await services.prisma.instance.findUnique({ where: { id: owner }, select: { internalUrl: true } });
  if (!row?.internalUrl) throw unreachable(owner, "it advertises no internal URL (stopped, or an older version)");
  const body = JSON.stringify({ ...call, from: services.instanceId, to: owner, at: Date.now(), nonce: crypto.randomUUID() } satisfies InternalCall);
  let text: string;
  try {
    const res = await fetch(new URL(INTERNAL_CALL_PATH, row.internalUrl), {
      method: "POST",
      headers: { "content-type": "application/json", [MAC_HEADER]: signBody(activeSecretKey(), body) },
      body,
      signal: AbortSignal.timeout(FORWARD_TIMEOUT_MS),
    });
    text = await readBounded(res);
    if (!res.ok) throw new Error(`HTTP ${res.status}: ${text.slice(0, 200).trim()}`);
  } catch (e) {
    const err = e as Error;
    throw unreachable(owner, err.name === "TimeoutError" ? `no answer within ${FORWARD_TIMEOUT_MS / 1000} s` : err.message);
  }
  let parsed: ReturnType<typeof internalReplySchema.safeParse>;
  try {
    parsed = internalReplySchema.safeParse(JSON.parse(text));
  } catch {
    throw unreachable(owner, "its answer is not JSON");
  }
  if (!parsed.success) throw unreachable(owner, `its answer does not match the internal protocol (${parsed.error.issues[0]?.message})`);
  const reply = parsed.data;
  if (reply.ok) return reply.data;
  if (reply.beamdeckCode && reply.beamdeckCode in ERRORS) throw toTrpcError(new BeamdeckError(reply.beamdeckCode as ErrorCode, reply.message));
  const code = reply.trpcCode in TRPC_ERROR_CODES_BY_KEY ? (reply.trpcCode as TrpcCode) : "INTERNAL_SERVER_ERROR";
  throw new TRPCError({ code, message: reply.message });
}
