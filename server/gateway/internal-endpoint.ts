/**
 * POST /internal/call: another instance forwards a call about a node whose
 * socket this instance holds (gateway/forward-call.ts). Checked in order:
 * not from a browser, body size and read time, MAC, schema, addressee,
 * freshness, a forwardable procedure, a nonce not seen before; then it runs
 * here under the forwarded principal, role checks and audit included, and is
 * never forwarded again (one hop). A rollout engine's operation on a node
 * held here (fleet/rollout-remote.ts) runs for its rollout instead.
 */
import type { IncomingMessage, ServerResponse } from "node:http";
import { getTRPCErrorFromUnknown } from "@trpc/server";
import type { Context } from "../context";
import { BeamdeckError } from "../errors";
import type { Services } from "../services";
import { ROLLOUT_OP_PATH, serveRolloutOp } from "../fleet/rollout-remote";
import { activeSecretKey } from "../storage/secret-key";
import { createCallerFactory } from "../trpc";
import { BODY_READ_TIMEOUT_MS, forwardable, type InternalReply, internalCallSchema, MAC_HEADER, MAX_SKEW_MS, macMatches, SeenNonces } from "./internal-call";
import { MAX_BODY_BYTES } from "./limits";

type AnyRouter = Parameters<typeof createCallerFactory>[0];

function send(res: ServerResponse, status: number, reply: InternalReply | { error: string }): void {
  res.writeHead(status, { "content-type": "application/json" });
  res.end(JSON.stringify(reply));
}

/** The body, or null when it is too large; rejects when it does not arrive within BODY_READ_TIMEOUT_MS (a slow sender holds nothing for long). */
function readBody(req: IncomingMessage): Promise<string | null> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    const timer = setTimeout(() => {
      reject(new Error("timeout"));
      req.destroy();
    }, BODY_READ_TIMEOUT_MS);
    req.on("close", () => clearTimeout(timer));
    req.on("data", (c: Buffer) => {
      size += c.length;
      if (size > MAX_BODY_BYTES) {
        resolve(null);
        req.destroy();
        return;
      }
      chunks.push(c);
    });
    req.on("end", () => {
      clearTimeout(timer);
      resolve(Buffer.concat(chunks).toString("utf8"));
    });
    req.on("error", reject);
  });
}

/** An error as the caller's instance rethrows it (forward-call.ts): the catalogued code kept. */
function errorReply(e: unknown): InternalReply {
  const err = getTRPCErrorFromUnknown(e);
  const cause = err.cause instanceof BeamdeckError ? err.cause : e instanceof BeamdeckError ? e : null;
  return { ok: false, trpcCode: err.code, beamdeckCode: cause?.code ?? null, message: err.message.slice(0, 10_000) };
}

export function internalEndpoint(services: Services, router: AnyRouter) {
  const createCaller = createCallerFactory(router);
  const procedures = (router as unknown as { _def: { procedures: Record<string, { _def: { type: string } }> } })._def.procedures;
  const nonces = new SeenNonces();
  return async (req: IncomingMessage, res: ServerResponse): Promise<void> => {
    if (req.method !== "POST") return send(res, 405, { error: "POST only" });
    // Instances never send these; a browser always does: no page of any origin may drive this route.
    if (req.headers.origin !== undefined || req.headers["sec-fetch-site"] !== undefined) return send(res, 403, { error: "not for browsers" });
    if (Number(req.headers["content-length"] ?? 0) > MAX_BODY_BYTES) return send(res, 413, { error: `body over ${MAX_BODY_BYTES} bytes` });
    let body: string | null;
    try {
      body = await readBody(req);
    } catch {
      return send(res, 408, { error: `body not received within ${BODY_READ_TIMEOUT_MS / 1000} s` });
    }
    if (body === null) return send(res, 413, { error: `body over ${MAX_BODY_BYTES} bytes` });
    const mac = req.headers[MAC_HEADER];
    if (!macMatches(activeSecretKey(), body, typeof mac === "string" ? mac : undefined)) {
      return send(res, 401, { error: "bad or missing instance MAC: do the instances share BEAMDECK_SECRET_KEY?" });
    }
    let json: unknown;
    try {
      json = JSON.parse(body);
    } catch {
      return send(res, 400, { error: "body is not JSON" });
    }
    const parsed = internalCallSchema.safeParse(json);
    if (!parsed.success) return send(res, 400, { error: `bad internal call: ${parsed.error.issues[0]?.message}` });
    const call = parsed.data;
    // Meant for an instance that had this address before (a restart reuses the port).
    if (call.to !== services.instanceId) return send(res, 409, { error: `this is instance ${services.instanceId}, not ${call.to}` });
    if (Math.abs(Date.now() - call.at) > MAX_SKEW_MS) return send(res, 401, { error: "stale internal call (are the instances' clocks apart?)" });
    const rolloutOp = call.path === ROLLOUT_OP_PATH;
    if (!rolloutOp && (!forwardable(call.path) || procedures[call.path]?._def.type !== call.type)) return send(res, 400, { error: `no forwardable ${call.type} ${call.path}` });
    // A forwarded tRPC call runs for its caller; only a rollout's operation acts for the rollout (its row names the actor).
    if ((call.principal === null) !== rolloutOp) return send(res, 400, { error: rolloutOp ? "a rollout operation carries no principal" : "a forwarded call needs its principal" });
    // Last, once the call is authentic and fresh: a replay inside the window is refused, not run twice.
    if (!nonces.first(call.nonce)) return send(res, 409, { error: "this call was already received (replayed)" });
    const ctx: Context = {
      services,
      principal: call.principal,
      authError: null,
      ip: null,
      userAgent: `beamdeck instance ${call.from}`,
      setHeader: null,
      secure: false,
      forwardedFrom: call.from,
    };
    if (rolloutOp) {
      const reply = await serveRolloutOp(services, call.input).then(
        (data): InternalReply => ({ ok: true, data: data ?? null }),
        (e: unknown): InternalReply => errorReply(e),
      );
      return send(res, 200, reply);
    }
    try {
      let fn: unknown = createCaller(ctx);
      for (const part of call.path.split(".")) fn = (fn as Record<string, unknown>)[part];
      const data = await (fn as (input: unknown) => Promise<unknown>)(call.input);
      send(res, 200, { ok: true, data: data ?? null });
    } catch (e) {
      send(res, 200, errorReply(e));
    }
  };
}
