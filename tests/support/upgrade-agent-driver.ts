/**
 * Drives a real node's agent through its upgrade entry point,
 * beamdeck_agent_upgrade:request/2, exactly as the connection's request
 * worker calls it; command outcomes are read with
 * beamdeck_agent_upgrade:status/1 (the journal entry the command_result
 * frame carries). Used by tests/integration/upgrade-checks.test.ts.
 */
import { setTimeout as sleep } from "node:timers/promises";
import type { BeamNode } from "../../tools/beam/nodes";

export type Json = Record<string, any>;

/** A JS value as an Erlang term: objects become maps with binary keys, strings binaries. */
export function erl(v: unknown): string {
  if (typeof v === "string") return `<<"${v.replace(/\\/g, "\\\\").replace(/"/g, '\\"')}"/utf8>>`;
  if (typeof v === "number" || typeof v === "boolean") return String(v);
  if (v === null || v === undefined) return "null";
  if (Array.isArray(v)) return `[${v.map(erl).join(",")}]`;
  return `#{${Object.entries(v as Record<string, unknown>)
    .map(([k, x]) => `${erl(k)} => ${erl(x)}`)
    .join(",")}}`;
}

export class AgentError extends Error {
  constructor(
    readonly code: string,
    message: string,
  ) {
    super(`${code}: ${message}`);
  }
}

export class AgentDriver {
  constructor(private readonly node: () => BeamNode) {}

  /** A request's result map; throws AgentError with the agent's error. */
  async request(method: string, params: Json = {}, timeoutMs = 45_000): Promise<Json> {
    const r = await this.node().rpcJson<unknown[]>(`beamdeck_agent_upgrade:request(<<"${method}">>, ${erl(params)})`, { timeoutMs });
    if (r[0] === "ok") return r[1] as Json;
    throw new AgentError(String(r[1]), String(r[2]));
  }

  /** Sends a command and waits for its outcome (the journal entry, status "done"). */
  async command(commandId: string, action: string, params: Json = {}, timeoutMs = 90_000): Promise<Json> {
    const accepted = await this.request("upgrade_command", { commandId, action, ...params });
    if (accepted.accepted !== true) throw new Error(`command ${commandId} not accepted: ${JSON.stringify(accepted)}`);
    return this.outcome(commandId, timeoutMs);
  }

  /** Waits for a command's outcome in the journal (which survives a node restart). */
  async outcome(commandId: string, timeoutMs = 90_000): Promise<Json> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const r = await this.node()
        .rpcJson<unknown[]>(`beamdeck_agent_upgrade:status(<<"${commandId}">>)`, { timeoutMs: 5000 })
        .catch(() => null);
      if (r && r[0] === "ok" && (r[1] as Json).status === "done") return r[1] as Json;
      if (Date.now() > deadline) throw new Error(`command ${commandId}: no outcome in ${timeoutMs} ms`);
      await sleep(200);
    }
  }
}
