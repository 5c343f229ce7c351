/**
 * Running one upgrade step from the CLI and following it to its outcome.
 *
 * The CLI makes the command id and starts following it before it sends the
 * step (decisions.md, "Tooling and tests"): a step that ends on the node
 * before the server's reply arrives cannot be missed. Following is two
 * things at once: the live subscription for this command (progress lines;
 * the server sends an outcome already recorded), and a poll of the command's
 * recorded state by id, which also works for steps that belong to no
 * upgrade (unpack) and when the socket cannot be opened.
 */
import { randomUUID } from "node:crypto";
import type { Env } from "../storage/database-url";
import type { CommandState, StepReply } from "../upgrades/workflow";
import { call } from "./client";
import { waitingFor } from "./deadline";
import { CliError, EXIT } from "./errors";
import { wsApi } from "./ws-client";

export interface StepOutcome {
  ok: boolean;
  /** The error of a failed step ("code: message"). */
  message?: string;
  commandId: string;
  /** The step had been asked for before: this is that request's recorded outcome, the step did not run again. */
  repeated: boolean;
  /** The server's reply, when it arrived (a fast step's outcome can come first). */
  reply: StepReply | null;
  finishedAt: string | null;
}

/** How often the recorded state is read while following (the subscription is the fast path). */
const POLL_MS = 1000;
/** A step request may take long on the server (it computes the plan on the node); the command's deadline bounds it. */
const STEP_REQUEST_MS = 10 * 60_000;
/** After the outcome, how long to wait for the server's reply to the request (it carries the prediction). */
const REPLY_GRACE_MS = 2000;

const ACTIVE = ["sent", "running"];

function clock(iso: string | null | undefined): string {
  return iso ? iso.replace("T", " ").replace("Z", " UTC") : "?";
}

/** What the server has recorded of a command, in words. */
export function describeRecorded(state: CommandState | null | undefined, commandId: string): string {
  if (state === undefined) return `nothing read yet of command ${commandId}`;
  if (state === null) return `the server has no record of command ${commandId}`;
  if (state.status === "sent") return `sent to the node at ${clock(state.createdAt)}, no result yet (command ${commandId})`;
  if (state.status === "running") return `running on the node since ${clock(state.createdAt)}, no result yet (command ${commandId})`;
  return `the server recorded ${state.status} at ${clock(state.finishedAt)} (command ${commandId})`;
}

interface Watch {
  started: Promise<void>;
  outcome: Promise<{ ok: boolean; message?: string; finishedAt: string | null }>;
  known(): Promise<string>;
  close(): void;
}

async function watchCommand(env: Env, node: string, commandId: string): Promise<Watch> {
  let recorded: CommandState | null | undefined;
  let closed = false;
  let settle: (o: { ok: boolean; message?: string; finishedAt: string | null }) => void = () => {};
  const outcome = new Promise<{ ok: boolean; message?: string; finishedAt: string | null }>((r) => (settle = r));
  const fromRecord = (s: CommandState) => ({ ok: s.status === "ok", message: s.error ? `${s.error.code}: ${s.error.message}` : s.status === "ok" ? undefined : s.status, finishedAt: s.finishedAt });
  const read = async (timeoutMs: number) => {
    recorded = await call(env, (api) => api.upgrades.command.query({ node, commandId }), timeoutMs, true);
    if (recorded && !ACTIVE.includes(recorded.status)) settle(fromRecord(recorded));
  };

  let markStarted: () => void = () => {};
  const started = new Promise<void>((r) => (markStarted = r));
  const ws = await wsApi(env);
  const sub = ws.trpc.upgrades.onProgress.subscribe(
    { node, commandId },
    {
      onStarted: () => markStarted(),
      onData: (e) => {
        if (e.kind === "progress") console.error(`  ${e.step}: ${e.message}`);
        if (e.kind === "result") settle({ ok: Boolean(e.ok), message: e.message, finishedAt: new Date(e.at).toISOString() });
      },
      onError: () => markStarted(), // the poll still finds the outcome
    },
  );

  void (async () => {
    while (!closed) {
      await new Promise((r) => setTimeout(r, POLL_MS));
      if (closed) break;
      await read(10_000).catch(() => {}); // a failed read is retried; the deadline bounds the whole
    }
  })();

  return {
    started,
    outcome,
    async known() {
      await read(2000).catch(() => {});
      return describeRecorded(recorded, commandId);
    },
    close() {
      closed = true;
      sub.unsubscribe();
      ws.close();
    },
  };
}

/**
 * Send a step (with a command id made here) and follow it until its outcome.
 * `label` names it for the deadline's message ("unpack of 1.1.0 on n@h").
 */
export async function runStep(env: Env, node: string, label: string, send: (commandId: string, timeoutMs: number) => Promise<StepReply>): Promise<StepOutcome> {
  const ours = `c-${randomUUID()}`;
  let watch = await watchCommand(env, node, ours);
  let following = ours;
  const done = waitingFor({ what: label, known: () => watch.known() });
  try {
    // Subscribed before sending; a socket that will not open is no reason to wait long: the poll covers it.
    await Promise.race([watch.started, new Promise((r) => setTimeout(r, 5000))]);
    let reply: StepReply | null = null;
    const request = send(ours, STEP_REQUEST_MS).then(
      (r) => ({ kind: "reply" as const, r }),
      (e: unknown) => ({ kind: "error" as const, e }),
    );
    const first = await Promise.race([request, watch.outcome.then((o) => ({ kind: "outcome" as const, o }))]);
    if (first.kind === "error") {
      // Sent but unanswered: the server may still have run it; keep following it until the deadline.
      if (!(first.e instanceof CliError && first.e.exitCode === EXIT.timedOut)) throw first.e;
    } else if (first.kind === "reply") {
      reply = first.r;
      if (reply.commandId !== ours) {
        // Asked before: follow (report) the earlier request's command instead.
        watch.close();
        following = reply.commandId;
        watch = await watchCommand(env, node, following);
      }
    }
    const o = await watch.outcome;
    if (!reply) {
      const late = await Promise.race([request, new Promise<null>((r) => setTimeout(() => r(null), REPLY_GRACE_MS))]);
      if (late?.kind === "reply") reply = late.r;
    }
    return { ...o, commandId: following, repeated: reply?.repeated ?? false, reply };
  } finally {
    done();
    watch.close();
  }
}

/** One line for a step's outcome, saying when it was an earlier request's. */
export function outcomeLine(out: StepOutcome, okText: string, failText: string): string {
  const line = out.ok ? okText : `${failText}: ${out.message ?? "failed"}`;
  return out.repeated ? `${line} (already asked for: the server recorded ${out.ok ? "ok" : "an error"} at ${clock(out.finishedAt)} for command ${out.commandId}; not run again)` : line;
}
