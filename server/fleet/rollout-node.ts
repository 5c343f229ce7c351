/**
 * One node's way through a rollout: install → soak under the health gate →
 * make_permanent, each step sent through the upgrade workflow (same gates,
 * same audit with the plan) and followed by its command id, which is stored
 * before the step is sent so a restarted server follows the same command
 * instead of sending another. A soak always starts over when resumed.
 */
import { randomUUID } from "node:crypto";
import type { PrismaClient } from "../../generated/prisma/client";
import { jsonSafe } from "../audit/log";
import type { Gate } from "../upgrades/gate";
import type { Action } from "../upgrades/workflow";
import { checkHealth } from "./rollout-gate";
import type { NodeStep, RolloutOptions } from "./rollout-options";
import type { NodeSteps } from "./rollout-steps";
import { setNode, type RolloutNodeView, type RolloutView } from "./rollout-store";

/** A node failed (a step, or its gate): the rollout halts; `rolledBack` tells what auto-rollback did. */
export class NodeFailed extends Error {
  constructor(
    readonly node: string,
    readonly reason: string,
  ) {
    super(`${node}: ${reason}`);
  }
}

/** The rollout stopped being driven here (halted, aborted, or claimed elsewhere): leave the node where it is. */
export class Stopped extends Error {}

export interface NodeRunContext {
  prisma: PrismaClient;
  /** Run here or on the node's owner (rollout-steps.ts). */
  steps: NodeSteps;
  rollout: RolloutView;
  lockHolder: string;
  actor: string;
  pollMs: number;
  stepTimeoutMs: number;
  /** Is the node connected now (held here: its socket; held elsewhere: its lease). */
  isConnected(node: string): Promise<boolean>;
  /** Throws Stopped when the rollout is no longer driven here. */
  check(): Promise<void>;
  changed(): void;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** How long a node may take to (re)connect before a step or soak: its agent reconnects after a server restart. */
const CONNECT_WAIT_MS = 60_000;

/** Wait until the node is connected (to some instance, by its lease); a node away for longer fails. */
async function untilConnected(c: NodeRunContext, node: string): Promise<void> {
  const until = Date.now() + CONNECT_WAIT_MS;
  for (;;) {
    await c.check();
    if (await c.isConnected(node)) return;
    if (Date.now() > until) throw new NodeFailed(node, `not connected for ${CONNECT_WAIT_MS / 1000} s`);
    await sleep(c.pollMs);
  }
}

/** The gate of install and make_permanent: a reviewed digest only if it is this node's current plan's. */
async function gateFor(c: NodeRunContext, node: string, action: Action, o: RolloutOptions): Promise<Gate> {
  const gate: Gate = { maxKills: o.maxKills, acceptFindings: o.acceptFindings.length ? o.acceptFindings : undefined };
  if (action === "install" && o.acceptPlans.length > 0) {
    const p = await c.steps.plan(node, c.rollout.toVsn, o.purge, o.prePurge);
    if (o.acceptPlans.includes(p.digest)) gate.acceptPlan = p.digest;
  }
  return gate;
}

/** Wait for a command's outcome (recorded by the workflow, also after a reconnect or restart). */
async function outcome(c: NodeRunContext, commandId: string): Promise<{ ok: boolean; error: string | null }> {
  const until = Date.now() + c.stepTimeoutMs;
  while (Date.now() < until) {
    const cmd = await c.prisma.upgradeCommand.findUnique({ where: { id: commandId }, select: { status: true, result: true } });
    if (cmd && (cmd.status === "ok" || cmd.status === "error")) {
      const e = (cmd.result as { error?: { code?: string; message?: string } | null } | null)?.error;
      return { ok: cmd.status === "ok", error: e ? `${e.code ?? "error"}: ${e.message ?? ""}` : null };
    }
    await sleep(c.pollMs);
  }
  return { ok: false, error: `no outcome within ${Math.round(c.stepTimeoutMs / 1000)} s (command ${commandId}); see: beamdeck upgrade history` };
}

/**
 * Send a step once: the command id is stored on the node first; when it is
 * already there (a resumed rollout), the workflow recognises the repeat and
 * nothing is sent again.
 */
async function step(
  c: NodeRunContext,
  n: Pick<RolloutNodeView, "node" | "step" | "commandId">,
  action: Action,
  stepName: RolloutNodeView["step"],
  extra: { upgradeId?: string; gate?: Gate; vsn?: string; fallbackMs?: number },
) {
  const o = c.rollout.options;
  let commandId = n.step === stepName ? n.commandId : null;
  if (!commandId) {
    commandId = `c-${randomUUID()}`;
    await setNode(c.prisma, c.rollout.id, n.node, { step: stepName, commandId, error: null });
    c.changed();
  }
  const reply = await c.steps
    .run({
      actor: c.actor,
      node: n.node,
      action,
      vsn: extra.vsn,
      upgradeId: extra.upgradeId,
      purge: o.purge,
      prePurge: o.prePurge,
      gate: extra.gate,
      fallbackMs: extra.fallbackMs,
      commandId,
      lockHolder: c.lockHolder,
    })
    .catch((e: Error) => {
      throw new NodeFailed(n.node, `${action} refused: ${e.message}`);
    });
  const r = await outcome(c, commandId);
  if (!r.ok) throw new NodeFailed(n.node, `${action} failed: ${r.error ?? "error"}`);
  return reply;
}

export async function unpackNode(c: NodeRunContext, n: RolloutNodeView): Promise<void> {
  await untilConnected(c, n.node);
  const rel = await c.steps.releases(n.node).catch((e: Error) => {
    throw new NodeFailed(n.node, `releases: ${e.message}`);
  });
  // Already unpacked (or running it): nothing to send.
  if (n.step !== "unpacking" && rel.releases.some((r) => r.vsn === c.rollout.toVsn)) {
    await setNode(c.prisma, c.rollout.id, n.node, { step: "unpacked", fromVsn: rel.current });
    return;
  }
  await step(c, n, "unpack", "unpacking", { vsn: c.rollout.toVsn });
  await setNode(c.prisma, c.rollout.id, n.node, { step: "unpacked", fromVsn: rel.current ?? n.fromVsn });
  c.changed();
}

/** Install, soak, make permanent; from wherever the node stands. */
export async function upgradeNode(c: NodeRunContext, start: RolloutNodeView): Promise<void> {
  const o = c.rollout.options;
  let n = start;
  if (n.step === "permanent") return;
  await untilConnected(c, n.node);
  if (n.step === "unpacked" || n.step === "installing" || n.step === "pending") {
    await c.check();
    const gate = await gateFor(c, n.node, "install", o);
    // With a fallback, the node rolls itself back unless made permanent in time, even with no server left to drive it.
    const reply = await step(c, n, "install", "installing", { vsn: c.rollout.toVsn, gate, fallbackMs: o.fallbackMs });
    const upgradeId = reply.upgradeId ?? n.upgradeId;
    const up = upgradeId ? await c.prisma.upgrade.findUnique({ where: { id: upgradeId } }) : null;
    await setNode(c.prisma, c.rollout.id, n.node, {
      step: "soaking",
      upgradeId,
      fromVsn: up?.fromVsn ?? n.fromVsn,
      predicted: jsonSafe(up?.expectedKills ?? null) as object,
      actual: jsonSafe(up?.actualKills ?? null) as object,
    });
    n = { ...n, step: "soaking", upgradeId: upgradeId ?? null };
    c.changed();
  }
  if (n.step === "soaking" || n.step === "gate_failed") await soak(c, n, start.step === "soaking" ? start.soakStartedAt : null);
  if (n.step !== "permanent") {
    await c.check();
    const gate: Gate = { maxKills: o.maxKills, acceptFindings: o.acceptFindings.length ? o.acceptFindings : undefined };
    await step(c, { ...n, step: n.step === "permanent_sent" ? "permanent_sent" : "soaking" }, "make_permanent", "permanent_sent", { upgradeId: n.upgradeId ?? undefined, gate });
    const up = n.upgradeId ? await c.prisma.upgrade.findUnique({ where: { id: n.upgradeId } }) : null;
    await setNode(c.prisma, c.rollout.id, n.node, { step: "permanent", predicted: jsonSafe(up?.expectedKills ?? null) as object, actual: jsonSafe(up?.actualKills ?? null) as object });
    c.changed();
  }
}

/**
 * The soak: the gate is looked at every poll; its clock starts over whenever
 * it is entered (also after a restart). `interrupted`: when the soak this
 * one takes over began (a restart, or another instance's claim that ran
 * out): its gate also judges the reports made since then, while no
 * instance was looking.
 */
async function soak(c: NodeRunContext, n: RolloutNodeView, interrupted: string | null): Promise<void> {
  // The clock starts with the node connected: a soak resumed after a restart waits for the agent to come back.
  await untilConnected(c, n.node);
  const started = new Date();
  const since = interrupted ? new Date(Math.min(Date.parse(interrupted), started.getTime())) : started;
  await setNode(c.prisma, c.rollout.id, n.node, { step: "soaking", soakStartedAt: started, error: null });
  c.changed();
  const end = started.getTime() + c.rollout.options.soakMs;
  for (;;) {
    await c.check();
    const done = Date.now() >= end + 1000; // one more look once the last reports are classified
    const v = await checkHealth(c.prisma, c.isConnected, n.node, n.upgradeId, started, since);
    await setNode(c.prisma, c.rollout.id, n.node, { gate: jsonSafe(v.figures) as object });
    c.changed();
    if (v.failure) {
      await setNode(c.prisma, c.rollout.id, n.node, { step: "gate_failed", error: `health gate: ${v.failure}` });
      throw new NodeFailed(n.node, `health gate: ${v.failure}`);
    }
    if (done) return;
    await sleep(Math.min(c.pollMs, Math.max(50, end + 1000 - Date.now())));
  }
}

/** --auto-rollback: back to the release the node ran before, gated on the rollback plan the server computes now (audited). */
export async function rollBackNode(c: NodeRunContext, node: string): Promise<string> {
  const row = await c.prisma.rolloutNode.findUnique({ where: { rolloutId_node: { rolloutId: c.rollout.id, node } } });
  if (!row?.upgradeId) return "nothing installed to roll back";
  const up = await c.prisma.upgrade.findUnique({ where: { id: row.upgradeId } });
  if (up?.status !== "installed") return `not rolled back: the upgrade is ${up?.status ?? "gone"}`;
  const o = c.rollout.options;
  const n = { node, step: row.step as NodeStep, commandId: row.commandId };
  try {
    const plan = await c.steps.plan(node, up.fromVsn, { ...((up.purge ?? {}) as object), ...o.purge }, { ...((up.prePurge ?? {}) as object), ...o.prePurge });
    await step(c, n, "rollback", "rolling_back", { upgradeId: up.id, gate: { acceptPlan: plan.digest } });
    await setNode(c.prisma, c.rollout.id, node, { step: "rolled_back" });
    c.changed();
    return `rolled back to ${up.fromVsn}`;
  } catch (e) {
    await setNode(c.prisma, c.rollout.id, node, { step: "failed", error: `auto-rollback failed: ${(e as Error).message}` });
    c.changed();
    return `auto-rollback failed: ${(e as Error).message}`;
  }
}
