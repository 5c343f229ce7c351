/**
 * The tRPC middleware's work (trpc.ts `ownerAnswers`): a call about a node
 * another instance holds is answered by that owner. If the owner is down
 * (killed, not answering /healthz), its agents reconnect elsewhere within
 * seconds: the call waits for the node's new owner and runs again, here or
 * there — queries always, mutations only when they carry a `commandId`
 * (upgrade steps: a repeated step follows the recorded command, never sends a
 * second one).
 */
import type { Principal } from "../auth/principal";
import type { Services } from "../services";
import { forwardToOwner } from "./forward-call";
import { instanceAnswers } from "./instance-probe";

/** How long a call waits for a dead owner's node to reappear elsewhere (agents retry within ~1 s). */
export const NEW_OWNER_WAIT_MS = 10_000;

type Call = { path: string; type: "query" | "mutation"; input: unknown; principal: Principal | null };

function nodeOf(input: unknown): string | null {
  const node = (input as { node?: unknown } | null)?.node;
  return typeof node === "string" ? node : null;
}

function mayRunAgain(call: Call): boolean {
  return call.type === "query" || typeof (call.input as { commandId?: unknown } | null)?.commandId === "string";
}

/** Until the node is held by someone other than `dead` (or nobody holds it), bounded. */
async function newOwner(services: Pick<Services, "prisma">, node: string, dead: string): Promise<void> {
  const until = Date.now() + NEW_OWNER_WAIT_MS;
  while (Date.now() < until) {
    const row = await services.prisma.node.findUnique({ where: { name: node }, select: { instanceId: true } });
    if (row?.instanceId !== dead) return;
    await new Promise((r) => setTimeout(r, 250));
  }
}

/**
 * The owner's answer; if the owner is down and the call may run again, the
 * answer of `again()` (the procedure run once more on this instance) once
 * the node has moved, itself forwarded once to a new owner elsewhere.
 */
export async function answerFromOwner(
  services: Pick<Services, "prisma" | "instanceId">,
  owner: string,
  call: Call,
  again: () => Promise<{ ok: true; data: unknown } | { ok: false; owner: string | null; error: unknown }>,
): Promise<unknown> {
  try {
    return await forwardToOwner(services, owner, call);
  } catch (e) {
    const node = nodeOf(call.input);
    if (!node || !mayRunAgain(call) || (await instanceAnswers(services.prisma, owner))) throw e;
    await newOwner(services, node, owner);
    const second = await again();
    if (second.ok) return second.data;
    if (second.owner && second.owner !== owner) return forwardToOwner(services, second.owner, call);
    throw second.error;
  }
}
