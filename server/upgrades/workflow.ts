/**
 * The upgrade workflow on the server: previews, guarded steps, audit intent
 * before each command and outcome after it, expected kills handed to the
 * alert engine, and predicted-versus-actual once a step has run.
 *
 * Steps run on the node; the server only sends them and records what comes
 * back. A result that arrives late (after a reconnect, or after this server
 * restarted) is still matched to its command and audited.
 */
import { randomUUID } from "node:crypto";
import type { PrismaClient } from "../../generated/prisma/client";
import type { AgentRegistry } from "../agents/registry";
import type { AgentFrame } from "../agents/protocol";
import { agentFailure } from "../agents/agent-failure";
import { stepResult, type AgentMethod, type ReleasesReply, type ReplyOf, type StepResult } from "../agents/replies";
import { EXPECT_WINDOW_MS, type Expectations } from "../alerts/expectations";
import { appendAudit, jsonSafe, recordIntent, recordOutcome } from "../audit/log";
import { BeamdeckError } from "../errors";
import type { Hub } from "../live/hub";
import { gateParams, requireGate } from "./gate";
import { fallbackOfResult } from "./fallback";
import { pendingFallback, pendingFallbackMessage, recordFallbacks } from "./fallback-store";
import { upgradeHistory } from "./history";
import { releaseNodeLock, requireNodeLock, stepHolder } from "./node-lock";
import type { OldCodeReply } from "./old-code-watch";
import { diedPids, predictionComparison } from "./deaths";
import { readCommand, readUpgrade } from "./stored";
import type { Action, CommandState, ProgressEvent, StepInput, StepReply } from "./workflow-types";
import { errorFindingIds, findingsAccepted, killCount, onOldCode, predictedKills, type Plan, type PurgeChoices, type Verification, verificationOf } from "./plan";

const PLAN_TIMEOUT_MS = 30_000;
const STALE_AFTER_MS = 30 * 60_000;

export { ACTIONS, type Action, type CommandState, type ProgressEvent, type StepInput, type StepReply, stepReply } from "./workflow-types";

/**
 * Test-only: hold a step request's HTTP reply this long after the command was
 * sent, so a fast result is published before the caller has its reply (the
 * race of issue 18). Unset in production.
 */
function testReplyDelay(): Promise<void> {
  const ms = Number(process.env.BEAMDECK_TEST_DELAY_MUTATION_REPLY_MS ?? 0);
  return ms > 0 ? new Promise((r) => setTimeout(r, ms)) : Promise.resolve();
}

const ACTIVE = ["sent", "running"];

function describeError(e: { code?: string; message?: string } | null): string | undefined {
  return e ? `${e.code ?? "error"}: ${e.message ?? ""}` : undefined;
}

export class UpgradeWorkflow {
  constructor(
    private readonly prisma: PrismaClient,
    private readonly hub: Hub,
    private readonly registry: AgentRegistry,
    private readonly expectations: Expectations,
    /** Pages when a step's own verification finds misses (the alert engine's `upgrade_unverified` rule). */
    private readonly unverified: ((node: string, step: string, vsn: string, v: Verification) => Promise<void>) | null = null,
  ) {
    registry.onAgentFrame((node, frame) => this.onFrame(node, frame));
  }

  /** One request; its reply parsed by the method's schema (replies.ts), failures catalogued. */
  private ask<M extends AgentMethod>(node: string, method: M, params: Record<string, unknown>, timeoutMs = 10_000): Promise<ReplyOf<M>> {
    return this.registry.request(node, method, params, timeoutMs).catch(agentFailure);
  }

  releases(node: string, vsn?: string): Promise<ReleasesReply> {
    return this.ask(node, "releases", vsn ? { vsn } : {});
  }

  oldCode(node: string): Promise<OldCodeReply> {
    return this.ask(node, "old_code", {});
  }

  /** The agent's plan (an agent without digests fails the schema: "predates plan digests", see plan.ts). */
  plan(node: string, vsn: string, purge: PurgeChoices, prePurge: PurgeChoices): Promise<Plan> {
    return this.ask(node, "upgrade_plan", { vsn, purge, prePurge }, PLAN_TIMEOUT_MS);
  }

  /** Is a step of this node still waiting for its result? */
  private async running(node: string) {
    const cmd = await this.prisma.upgradeCommand.findFirst({ where: { node, status: { in: ["sent", "running"] } }, orderBy: { createdAt: "desc" } });
    // createdAt is the database's clock: compare on it (leases.ts keeps this instance's offset to it).
    if (cmd && cmd.createdAt.getTime() < this.registry.leases.dbNow() - STALE_AFTER_MS) {
      // Its result never came (the node was lost): stop blocking, and say so.
      await this.prisma.upgradeCommand.update({ where: { id: cmd.id }, data: { status: "no_outcome" } });
      return null;
    }
    return cmd;
  }

  async run(input: StepInput): Promise<StepReply> {
    const { node, action } = input;
    if (input.fallbackMs !== undefined) this.checkFallback(node, action);
    const busy = await this.running(node);
    const again = await this.repeatOf(input);
    if (again) return again;
    if (busy) throw new BeamdeckError("BD_CONFLICT", `step ${busy.action} (${busy.id}) is still running on ${node}; one upgrade step at a time`);
    const commandId = input.commandId ?? `c-${randomUUID()}`;
    const holder = input.lockHolder ?? stepHolder(commandId);
    await requireNodeLock(this.prisma, node, holder, STALE_AFTER_MS);
    try {
      return await this.runLocked(input, commandId);
    } catch (e) {
      // A manual step that was not sent gives its lock back at once (a sent one does when its result arrives).
      if (!input.lockHolder && !(await this.prisma.upgradeCommand.findUnique({ where: { id: commandId } }))) await releaseNodeLock(this.prisma, node, holder);
      throw e;
    }
  }

  private async runLocked(input: StepInput, commandId: string): Promise<StepReply> {
    const { node, action } = input;
    // Under the node's lock, so no install lands between this look and the step.
    const pending = action === "install" ? await pendingFallback(this.prisma, node) : null;
    if (pending) throw new BeamdeckError("BD_CONFLICT", pendingFallbackMessage(node, pending));
    const purge = input.purge ?? {};
    const prePurge = input.prePurge ?? {};

    let upgrade = input.upgradeId ? await this.prisma.upgrade.findUnique({ where: { id: input.upgradeId } }) : null;
    if (input.upgradeId && !upgrade) throw new BeamdeckError("BD_NOT_FOUND", `no upgrade ${input.upgradeId}`);
    if (!upgrade && (action === "make_permanent" || action === "rollback")) {
      upgrade = await this.prisma.upgrade.findFirst({ where: { node, status: { in: ["installed", "installing", "failed"] } }, orderBy: { createdAt: "desc" } });
    }

    // The agent's plan of this step, computed now on the live node: which step
    // it is, who dies, its error findings and its digest.
    let preview: Plan | null = null;
    let vsn = input.vsn ?? upgrade?.toVsn ?? null;
    if (action === "install") {
      if (!vsn) throw new BeamdeckError("BD_BAD_INPUT", "install needs the target version");
      preview = await this.plan(node, vsn, purge, prePurge);
    } else if (action === "make_permanent" || action === "rollback") {
      if (!upgrade) throw new BeamdeckError("BD_CONFLICT", `no installed upgrade on ${node} to ${action === "rollback" ? "roll back" : "make permanent"}`);
      vsn = action === "rollback" ? upgrade.fromVsn : upgrade.toVsn;
      const stored = readUpgrade(upgrade);
      Object.assign(purge, stored.purge, input.purge ?? {});
      Object.assign(prePurge, stored.prePurge, input.prePurge ?? {});
      // After install the agent answers with the make_permanent plan; a rollback runs the relup's down instructions.
      preview = await this.plan(node, vsn, purge, prePurge);
      if (action === "make_permanent" && preview.step !== "make_permanent") {
        throw new BeamdeckError("BD_CONFLICT", `${vsn} is not installed and waiting to be made permanent on ${node} (the agent's plan is a ${preview.step} step)`);
      }
    }
    const predicted = preview ? predictedKills(preview).map((k) => k.pid) : [];
    const installKills = new Set(preview && action === "install" ? predictedKills(preview, "install").map((k) => k.pid) : []);
    const predictedCount = preview ? killCount(preview) : 0;
    const errorFindings = preview ? errorFindingIds(preview) : [];
    const gate = preview ? requireGate(action, preview, input.gate) : null;

    if (action === "install") {
      const current = (await this.releases(node).catch(() => null))?.current;
      upgrade = await this.prisma.upgrade.create({
        data: {
          node,
          bootId: this.registry.live(node)?.hello.bootId ?? null,
          fromVsn: current ?? "?",
          toVsn: vsn as string,
          status: "installing",
          purge,
          prePurge,
          preview: jsonSafe(preview) as object,
          expectedKills: { install: predicted.filter((p) => installKills.has(p)), make_permanent: predicted.filter((p) => !installKills.has(p)) },
          createdBy: input.actor,
        },
      });
    }

    const fallbackMs = action === "install" ? input.fallbackMs : undefined;
    const params = { commandId, action, vsn, purge, prePurge, ...(gate ? { gate: gateParams(gate) } : {}), ...(fallbackMs ? { fallbackMs } : {}) };
    const intentId = await recordIntent(this.prisma, {
      actor: input.actor,
      action: `upgrade.${action}`,
      node,
      target: upgrade ? `upgrade:${upgrade.id}` : `release:${vsn}`,
      data: {
        commandId,
        upgradeId: upgrade?.id ?? null,
        fromVsn: upgrade?.fromVsn ?? null,
        toVsn: vsn,
        purge,
        prePurge,
        predictedKills: predicted,
        step: preview?.step ?? action,
        planDigest: preview?.digest ?? null,
        verdict: preview?.verdict ?? null,
        errorFindings,
        // What the operator accepted, readable without the full preview below.
        acceptedOntoOldCode: preview ? onOldCode(preview) : [],
        findingsAccepted: preview ? findingsAccepted(preview) : [],
        // acceptFindings: the ids named one by one (the browser's ticks, the CLI's --accept-finding); acceptedFindings: every error finding the gate let through.
        gate: gate
          ? { used: gate.used, acceptPlan: gate.acceptPlan ?? null, maxKills: gate.maxKills ?? null, acceptFindings: gate.acceptFindings ?? [], acceptedFindings: gate.acceptedFindings }
          : null,
        preview: preview ? jsonSafe(preview) : null,
        // The deadline by this server's clock; the agent's own (its clock) and the rollback plan's digest, computed on the node right after install_release, are in the outcome.
        fallback: fallbackMs ? { durationMs: fallbackMs, deadline: new Date(Date.now() + fallbackMs).toISOString(), rollbackTo: upgrade?.fromVsn ?? null } : null,
      },
    });
    await this.prisma.upgradeCommand.create({
      data: { id: commandId, upgradeId: upgrade?.id ?? null, node, action, status: "sent", requestedBy: input.actor, params: jsonSafe(params) as object, intentId },
    });
    if (upgrade && (action === "make_permanent" || action === "rollback")) {
      const expected = { ...readUpgrade(upgrade).expectedKills, [action]: predicted };
      await this.prisma.upgrade.update({ where: { id: upgrade.id }, data: { expectedKills: expected } });
    }
    if (upgrade && action !== "unpack") this.expectations.expect(node, upgrade.id, predicted, EXPECT_WINDOW_MS);

    try {
      await this.ask(node, "upgrade_command", params, 10_000);
    } catch (e) {
      // Never sent or refused: the intent gets its outcome now.
      await this.finish(node, commandId, false, null, e instanceof BeamdeckError ? { code: e.code, message: e.message } : { code: "error", message: String(e) });
      throw e;
    }
    this.publish({ node, commandId, kind: "sent", step: action, at: Date.now() });
    await testReplyDelay();
    return { commandId, upgradeId: upgrade?.id ?? null, predicted: predictedCount, digest: preview?.digest ?? null, repeated: false };
  }

  /**
   * A step asked again is not run twice: the same command id (a retried
   * request), or the same action and version as the node's last command while
   * that one is still running or ended ok (a CLI re-run after a timeout),
   * returns that command, whose recorded outcome the caller then reports. A
   * failed or lost step may be run again.
   */
  private async repeatOf(input: StepInput): Promise<StepReply | null> {
    const { node, action } = input;
    if (input.commandId) {
      const same = await this.prisma.upgradeCommand.findUnique({ where: { id: input.commandId }, include: { upgrade: true } });
      if (same) {
        if (same.node !== node || same.action !== action) throw new BeamdeckError("BD_CONFLICT", `command id ${input.commandId} is already used by another step`);
        return this.reply(same, true);
      }
    }
    const last = await this.prisma.upgradeCommand.findFirst({ where: { node }, orderBy: { createdAt: "desc" }, include: { upgrade: true } });
    if (!last || last.action !== action || ![...ACTIVE, "ok"].includes(last.status)) return null;
    const lastVsn = readCommand(last).params.vsn ?? null;
    if (input.vsn !== undefined && input.vsn !== lastVsn) return null;
    if (input.upgradeId !== undefined && input.upgradeId !== last.upgradeId) return null;
    return this.reply(last, true);
  }

  private reply(cmd: { id: string; upgradeId: string | null; action: string; upgrade: Parameters<typeof readUpgrade>[0] | null }, repeated: boolean): StepReply {
    const expected = cmd.upgrade ? readUpgrade(cmd.upgrade).expectedKills : {};
    return { commandId: cmd.id, upgradeId: cmd.upgradeId, predicted: expected[cmd.action]?.length ?? 0, digest: null, repeated };
  }

  /** One command's state, for a caller following it (null: no such command on this node). */
  async command(node: string, commandId: string): Promise<CommandState | null> {
    const c = await this.prisma.upgradeCommand.findUnique({ where: { id: commandId } });
    if (!c || c.node !== node) return null;
    const { params, result } = readCommand(c);
    return {
      id: c.id,
      node: c.node,
      action: c.action,
      vsn: params.vsn ?? null,
      status: c.status,
      error: result?.error ?? null,
      createdAt: c.createdAt.toISOString(),
      finishedAt: c.finishedAt?.toISOString() ?? null,
    };
  }

  /**
   * Progress of one node's steps, live; with a command id, only that
   * command's, ending with its result. The listener is attached before the
   * recorded state is read, so a result published in between is not lost.
   */
  async *progress(node: string, commandId: string | undefined, signal?: AbortSignal): AsyncGenerator<ProgressEvent> {
    const live = this.hub.subscribe(`upgrade:${node}`, signal);
    if (commandId) {
      const now = await this.command(node, commandId);
      if (now && !ACTIVE.includes(now.status)) {
        yield {
          node,
          commandId,
          kind: "result",
          ok: now.status === "ok",
          message: describeError(now.error) ?? (now.status === "ok" ? undefined : now.status),
          at: Date.parse(now.finishedAt ?? now.createdAt),
        };
        return;
      }
    }
    // The hub's channels are untyped; `upgrade:NODE` carries only this class's ProgressEvents.
    for await (const e of live as AsyncIterable<ProgressEvent>) {
      if (commandId && e.commandId !== commandId) continue;
      yield e;
      if (commandId && e.kind === "result") return;
    }
  }

  private onFrame(node: string, frame: AgentFrame): void {
    if (frame.type === "progress") {
      this.publish({ node, commandId: frame.commandId, kind: "progress", step: frame.step, message: frame.message, at: frame.at });
      void this.prisma.upgradeCommand.updateMany({ where: { id: frame.commandId, status: "sent" }, data: { status: "running" } }).catch(() => {});
    } else if (frame.type === "command_result") {
      void this.finish(node, frame.commandId, frame.ok, frame.result, frame.error ?? null).catch((e) => console.error(`[beamdeck] upgrade result ${frame.commandId}: ${(e as Error).message}`));
    }
  }

  /** Record a command's outcome once (results are replayed by the agent after reconnects). */
  private async finish(node: string, commandId: string, ok: boolean, raw: unknown, error: { code: string; message: string } | null): Promise<void> {
    // The raw result is what gets recorded; the parsed one is what the server reads.
    const result = raw ?? null;
    const cmd = await this.prisma.upgradeCommand.findUnique({ where: { id: commandId }, include: { upgrade: true } });
    if (!cmd || cmd.node !== node) return; // not ours (another server's, or forged): ignore
    const claimed = await this.prisma.upgradeCommand.updateMany({
      where: { id: commandId, status: { in: ["sent", "running", "no_outcome"] } },
      data: { status: ok ? "ok" : "error", result: jsonSafe({ result, error }) as object, finishedAt: new Date() },
    });
    if (claimed.count === 0) return; // already recorded
    await releaseNodeLock(this.prisma, node, stepHolder(commandId));
    const parsed = stepResult.safeParse(result);
    if (!parsed.success)
      console.warn(`[beamdeck] ${node}: the result of ${commandId} does not match the protocol (${parsed.error.issues[0]?.path.join(".")}: ${parsed.error.issues[0]?.message}); deaths not compared`);
    const read: StepResult = parsed.success ? parsed.data : null;
    const upgrade = cmd.upgrade;
    const diedList = diedPids(read);
    const comparison = cmd.action === "install" || cmd.action === "make_permanent" || cmd.action === "rollback" ? predictionComparison(read) : null;
    this.refreshReleases(node, read);
    // After install and make_permanent the agent checks every changed module runs its target code.
    const verification = verificationOf(read);
    if (ok && verification && !verification.ok && this.unverified) await this.unverified(node, cmd.action, readCommand(cmd).params.vsn ?? upgrade?.toVsn ?? "?", verification);
    if (upgrade) {
      const status = !ok ? "failed" : cmd.action === "install" ? "installed" : cmd.action === "make_permanent" ? "permanent" : cmd.action === "rollback" ? "rolled_back" : upgrade.status;
      const actual = { ...readUpgrade(upgrade).actualKills, [cmd.action]: { died: diedList, comparison, verification } };
      await this.prisma.upgrade.update({ where: { id: upgrade.id }, data: { status, actualKills: jsonSafe(actual) as object } });
      this.expectations.extend(node, 10_000);
    }
    if (cmd.intentId !== null) {
      await recordOutcome(this.prisma, cmd.intentId, {
        actor: cmd.requestedBy,
        action: `upgrade.${cmd.action}`,
        node,
        target: upgrade ? `upgrade:${upgrade.id}` : null,
        outcome: ok ? "ok" : "error",
        data: { commandId, result: jsonSafe(result), error, predictedVsActual: comparison, verification, fallback: cmd.action === "install" ? fallbackOfResult({ result }) : null },
      });
    } else {
      await appendAudit(this.prisma, { actor: "agent", action: `upgrade.${cmd.action}`, node, outcome: ok ? "ok" : "error", data: { commandId, result: jsonSafe(result), error } });
    }
    this.publish({ node, commandId, kind: "result", ok, message: error ? `${error.code}: ${error.message}` : undefined, at: Date.now() });
  }

  /** A fallback needs an agent that announces it (an older one would ignore the field and never roll back). */
  private checkFallback(node: string, action: Action): void {
    if (action !== "install") throw new BeamdeckError("BD_BAD_INPUT", "a fallback timer is for install only");
    const caps = this.registry.live(node)?.hello.capabilities ?? [];
    if (!caps.includes("fallback")) throw new BeamdeckError("BD_AGENT_ERROR", `the agent on ${node} has no fallback timer (capability "fallback"); upgrade the agent or install without --fallback`);
  }

  /**
   * Stored events (EventStore.onStored): a `fallback` event says what the
   * agent's timer did. A rollback it ran, or a node restart into the
   * permanent release, leaves the upgrade rolled back; every outcome is
   * audited as the agent's.
   */
  async onStoredEvents(node: string, stored: { frame: { kind: string } }[]): Promise<void> {
    for (const progress of await recordFallbacks(this.prisma, node, stored)) this.publish(progress);
  }

  /** A step changes the node's releases: keep the live view (hello) in step. */
  private refreshReleases(node: string, result: StepResult): void {
    const rels = result?.releases;
    const live = this.registry.live(node);
    if (!live || !rels || !live.hello.releases) return;
    const name = live.hello.releases[0]?.name ?? "";
    live.hello = { ...live.hello, releases: rels.map((r) => ({ ...(live.hello.releases?.find((x) => x.vsn === r.vsn) ?? { name }), vsn: r.vsn, status: r.status })) };
    this.hub.publish(`node:${node}`, live.summary());
  }

  private publish(e: ProgressEvent): void {
    this.hub.publish(`upgrade:${e.node}`, e);
  }

  history(node: string, limit = 20) {
    return upgradeHistory(this.prisma, node, limit);
  }
}
