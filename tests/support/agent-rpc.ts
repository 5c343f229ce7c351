/**
 * The agent's upgrade requests over distributed Erlang, as the connection's
 * request worker calls them: beamdeck_agent_upgrade:request/2 and, for a
 * command's outcome, beamdeck_agent_upgrade:status/1 (the journal entry the
 * command_result frame carries).
 */
import { setTimeout as sleep } from "node:timers/promises";
import { expect } from "vitest";
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

export class Agent {
  constructor(private readonly node: () => BeamNode) {}

  /** beamdeck_agent_upgrade:request/2 on the node: the result map, or throws with the error. */
  /** A plan may start a peer node for the code_change rehearsal: seconds on a small VM. */
  async request(method: string, params: Json = {}, timeoutMs = 45_000): Promise<Json> {
    const r = await this.node().rpcJson<unknown[]>(`beamdeck_agent_upgrade:request(<<"${method}">>, ${erl(params)})`, { timeoutMs });
    if (r[0] === "ok") return r[1] as Json;
    throw new AgentError(String(r[1]), String(r[2]));
  }

  async requestError(method: string, params: Json = {}): Promise<AgentError> {
    try {
      await this.request(method, params);
    } catch (e) {
      if (e instanceof AgentError) return e;
      throw e;
    }
    throw new Error(`${method} succeeded; an error was expected`);
  }

  /** Runs a command and waits for its outcome (the journal entry). */
  async command(commandId: string, action: string, params: Json = {}, timeoutMs = 90_000): Promise<Json> {
    const accepted = await this.request("upgrade_command", { commandId, action, ...params });
    expect(accepted).toMatchObject({ accepted: true, commandId });
    return this.outcome(commandId, timeoutMs);
  }

  async outcome(commandId: string, timeoutMs = 90_000): Promise<Json> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      try {
        const r = await this.node().rpcJson<unknown[]>(`beamdeck_agent_upgrade:status(<<"${commandId}">>)`, {
          timeoutMs: 5000,
        });
        if (r[0] === "ok" && (r[1] as Json).status === "done") return r[1] as Json;
      } catch {
        // the node may be restarting
      }
      if (Date.now() > deadline) throw new Error(`command ${commandId}: no outcome in ${timeoutMs} ms`);
      await sleep(200);
    }
  }
}

export class AgentError extends Error {
  constructor(
    readonly code: string,
    message: string,
  ) {
    super(`${code}: ${message}`);
  }
}
