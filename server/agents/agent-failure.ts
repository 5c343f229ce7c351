/**
 * How a failed agent request reaches a caller: one mapping from the agent's
 * error codes (docs/protocol.md) to the error catalogue (server/errors.ts),
 * used by every router and the upgrade workflow.
 */
import { BeamdeckError } from "../errors";
import { AgentRequestError } from "./session";

/** Rethrow an agent request's failure as a catalogued error (anything else unchanged). */
export function agentFailure(e: unknown): never {
  if (!(e instanceof AgentRequestError)) throw e;
  switch (e.code) {
    case "timeout":
      throw new BeamdeckError("BD_AGENT_TIMEOUT", e.message);
    case "disconnected":
      throw new BeamdeckError("BD_NODE_OFFLINE", e.message);
    case "busy":
      throw new BeamdeckError("BD_CONFLICT", `the node is busy with another upgrade step: ${e.message}`);
    case "not_found":
      // The agent's message is already the sentence ("no such process <0.8000.0>", "no release 0.1.1: …").
      throw new BeamdeckError("BD_NOT_FOUND", e.message, { agentCode: e.code });
    case "bad_reply":
      // The agent answered, but not in protocol 1's shape: a clear error naming the field.
      throw new BeamdeckError("BD_AGENT_BAD_REPLY", e.message);
    default:
      throw new BeamdeckError("BD_AGENT_ERROR", `${e.code}: ${e.message}`, { agentCode: e.code });
  }
}
