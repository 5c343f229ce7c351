/**
 * POST /internal/call: another instance forwards a call about a node whose
 * socket this instance holds (gateway/forward-call.ts). Checked in order:
 * body size, MAC, schema, addressee, freshness; then the procedure runs
 * here under the forwarded principal, role checks and audit included, and is
 * never forwarded again (one hop).
 */
import type { IncomingMessage, ServerResponse } from "node:http";
import { getTRPCErrorFromUnknown } from "@trpc/server";
import type { Context } from "../context";
import { BeamdeckError } from "../errors";
import type { Services } from "../services";
import { activeSecretKey } from "../storage/secret-key";
import { createCallerFactory } from "../trpc";
import { type InternalReply, internalCallSchema, MAC_HEADER, MAX_SKEW_MS, macMatches } from "./internal-call";
import { MAX_BODY_BYTES } from "./limits";

type AnyRouter = Parameters<typeof createCallerFactory>[0];

function send(res: ServerResponse, status: number, reply: InternalReply | { error: string }): void {
  res.writeHead(status, { "content-type": "application/json" });
  res.end(JSON.stringify(reply));
}

function readBody(req: IncomingMessage): Promise<string | null> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    req.on("data", (c: Buffer) => {
      size += c.length;
      if (size > MAX_BODY_BYTES) {
        resolve(null);
        req.destroy();
        return;
      }
      chunks.push(c);
    });
    req.on("end", () => resolve(Buffer.concat(chunks).toString("utf8")));
    req.on("error", reject);
  });
}

export function internalEndpoint(services: Services, router: AnyRouter) {
  const createCaller = createCallerFactory(router);
  const procedures = (router as unknown as { _def: { procedures: Record<string, { _def: { type: string } }> } })._def.procedures;
  return async (req: IncomingMessage, res: ServerResponse): Promise<void> => {
    if (req.method !== "POST") return send(res, 405, { error: "POST only" });
    const body = await readBody(req);
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
    if (procedures[call.path]?._def.type !== call.type) return send(res, 400, { error: `no ${call.type} ${call.path}` });
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
    try {
      let fn: unknown = createCaller(ctx);
      for (const part of call.path.split(".")) fn = (fn as Record<string, unknown>)[part];
      const data = await (fn as (input: unknown) => Promise<unknown>)(call.input);
      send(res, 200, { ok: true, data: data ?? null });
    } catch (e) {
      const err = getTRPCErrorFromUnknown(e);
      const cause = err.cause instanceof BeamdeckError ? err.cause : null;
      send(res, 200, { ok: false, trpcCode: err.code, beamdeckCode: cause?.code ?? null, message: err.message.slice(0, 10_000) });
    }
  };
}
