/**
 * A failed call as a sentence a person can read (issue 14, item 6): the
 * catalogued code (server/errors.ts) or the agent's error code says what
 * went wrong and what to do; the server's own words follow only when they
 * are a short line (never a zod issue list as JSON, never a stack trace).
 */
import { beamdeckCode, errorMessage, trpcCode } from "./trpc";

export interface ReadableError {
  /** What went wrong and what to do, in words. */
  sentence: string;
  /** The server's own one-line message when it adds something; null when it is raw data. */
  detail: string | null;
  /** The catalogued code (BD_…), the agent's code, or tRPC's. */
  code: string | null;
}

const BEAMDECK: Record<string, string> = {
  BD_UNAUTHENTICATED: "You are not logged in any more. Log in again.",
  BD_FORBIDDEN: "Your role does not allow this; an operator or admin can do it.",
  BD_NODE_UNKNOWN: "No node of this name has connected to this server. Check the name, or start its agent.",
  BD_NODE_OFFLINE: "The node's agent is not connected right now. This works again once the agent reconnects.",
  BD_NODE_ELSEWHERE: "Another beamdeck instance holds this node's connection; open the node there.",
  BD_OWNER_UNREACHABLE: "The beamdeck instance holding this node's connection did not answer. If it stopped, the agent moves to another instance within seconds; try again.",
  BD_AGENT_TIMEOUT: "The node's agent did not answer in time. The node may be busy; try again in a moment.",
  BD_CONFLICT: "The node changed since you looked: the preview was recomputed, review it and try again.",
  BD_GATE_REQUIRED: "This step kills processes or has error findings: it needs the reviewed plan accepted.",
  BD_NOT_FOUND: "It no longer exists (it may have been removed meanwhile).",
  BD_BAD_INPUT: "The request was not accepted as given.",
};

/** The agent's error codes (its `{error, Code}` replies, docs/protocol.md) on the upgrade path. */
const AGENT: Record<string, string> = {
  busy: "The node is busy with another upgrade step; wait until it ends.",
  not_found: "The node has no such release or process.",
  no_relup: "The target release has no relup for the running version, so it cannot be installed as a hot upgrade.",
  bad_relup: "The target release's relup could not be read.",
  bad_appup: "An application's appup could not be read.",
  missing_file: "A file the release needs is missing on the node.",
  bad_package: "The release package could not be read.",
  not_unpacked: "The release is still a package: unpack it first.",
  unpack_failed: "Unpacking the release failed on the node.",
  install_failed: "release_handler could not install the release; nothing was switched.",
  old_processes: "Processes still run old code of a module with a soft purge: release_handler refuses the install.",
  already_installed: "That release is already installed.",
  already_permanent: "That release is already permanent.",
  make_permanent_failed: "release_handler could not make the release permanent.",
  check_failed: "release_handler's check of the release failed.",
  not_running: "release_handler is not running on the node.",
  plan_changed: "The plan the node computes now differs from the one you reviewed: review the new preview.",
  timeout: "The step did not finish in time on the node; its outcome shows in the history once known.",
  interrupted: "The step was interrupted on the node (its connection or the node went away).",
  unavailable: "The node cannot answer this now.",
  bad_request: "The node did not accept the request.",
};

/** A zod input error reaches the browser as a JSON list of issues: say which field and what is expected. */
function zodIssues(message: string): string | null {
  if (!message.trimStart().startsWith("[")) return null;
  try {
    const issues = JSON.parse(message) as { path?: (string | number)[]; message?: string }[];
    if (!Array.isArray(issues) || issues.length === 0) return null;
    return issues
      .slice(0, 3)
      .map((i) => `${(i.path ?? []).join(".") || "input"}: ${i.message ?? "invalid"}`)
      .join("; ");
  } catch {
    return null;
  }
}

/** Only a short single line of the server's words is shown as is. */
function plainLine(text: string): string | null {
  const line = text.trim();
  if (!line || line.length > 240 || line.includes("\n") || /^[[{]/.test(line) || /\bat .+:\d+:\d+\)?$/.test(line)) return null;
  return line;
}

export function readableError(error: unknown): ReadableError {
  const message = errorMessage(error);
  const bd = beamdeckCode(error);
  const issues = zodIssues(message);
  if (issues) return { sentence: `The request was not accepted: ${issues}.`, detail: null, code: bd ?? "BAD_REQUEST" };
  if (bd === "BD_AGENT_ERROR") {
    // The server words it "agentCode: the agent's message".
    const m = /^([a-z_]+): ?(.*)$/s.exec(message);
    const agentCode = m?.[1] ?? null;
    const rest = m?.[2] ?? message;
    const sentence = (agentCode && AGENT[agentCode]) ?? "The node's agent refused the request.";
    return { sentence, detail: plainLine(rest), code: agentCode ?? bd };
  }
  if (bd && BEAMDECK[bd]) {
    return { sentence: BEAMDECK[bd], detail: plainLine(message), code: bd };
  }
  const code = bd ?? trpcCode(error);
  if (error instanceof TypeError || /fetch|network|socket/i.test(message)) {
    return { sentence: "The server could not be reached. Check the connection; the page retries by itself.", detail: null, code };
  }
  return { sentence: plainLine(message) ?? "Something went wrong on the server; the details are in its log.", detail: null, code };
}
