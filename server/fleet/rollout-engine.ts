/**
 * The rollout engine: starts, halts, resumes and aborts rollouts, and drives
 * the active ones through their phases — unpack on every node, then the
 * canary node(s), then batches (rollout-node.ts does one node). All state is
 * in the database (rollout-store.ts): an instance claims a rollout before it
 * drives it and renews the claim and the per-node locks on every tick; after
 * a restart (or when the driving instance died and its claim expired) the
 * next tick picks the rollout up where its rows say it stood. Nodes held by
 * other instances are driven through their owners (rollout-steps.ts).
 */
import { randomBytes } from "node:crypto";
import type { PrismaClient } from "../../generated/prisma/client";
import type { AlertEngine } from "../alerts/engine";
import { appendAudit, jsonSafe } from "../audit/log";
import { BeamdeckError } from "../errors";
import type { Hub } from "../live/hub";
import { pendingFallback, pendingFallbackMessage } from "../upgrades/fallback-store";
import { acquireNodeLock, describeHolder, nodeLockHolder, releaseNodeLock, renewNodeLock, rolloutHolder } from "../upgrades/node-lock";
import type { Group } from "./groups";
import { NodeFailed, type NodeRunContext, rollBackNode, Stopped, unpackNode, upgradeNode } from "./rollout-node";
import { ACTIVE_STATUSES, type NodeStep, type RolloutOptions, rolloutOptions, type RolloutStatus, type StartInput, startInput } from "./rollout-options";
import type { RolloutSteps } from "./rollout-steps";
import { activeRolloutIds, claimRollout, createRollout, disownRollout, moveRollout, mustReadRollout, type RolloutView, readRollout, setNode } from "./rollout-store";

export interface RolloutEngineOptions {
  /** How long a claim and a node lock last without renewal (the node lease's duration). */
  ttlMs: number;
  pollMs?: number;
  /** How long one step may take before the rollout halts with "no outcome". */
  stepTimeoutMs?: number;
  /** Is the node connected now (start.ts: the registry, else the node's lease). */
  isConnected(node: string): Promise<boolean>;
}

/** Nodes unpacked at once: each unpack copies a release onto its node. */
const UNPACK_CONCURRENCY = 4;

export class RolloutEngine {
  private readonly driving = new Map<string, AbortController>();
  private timer: NodeJS.Timeout | null = null;
  private ticking: Promise<void> | null = null;
  private readonly pollMs: number;
  private readonly stepTimeoutMs: number;

  constructor(
    private readonly prisma: PrismaClient,
    private readonly hub: Hub,
    /** Where each node's steps run: here, or on the instance holding it (rollout-steps.ts). */
    private readonly steps: RolloutSteps,
    private readonly alerts: AlertEngine | null,
    private readonly groups: () => Promise<Group[]>,
    private readonly instanceId: string,
    private readonly o: RolloutEngineOptions,
  ) {
    this.pollMs = o.pollMs ?? 500;
    this.stepTimeoutMs = o.stepTimeoutMs ?? 15 * 60_000;
  }

  start(): void {
    this.timer = setInterval(() => void this.tick(), Math.max(250, Math.floor(this.o.ttlMs / 3)));
    this.timer.unref();
    void this.tick();
  }

  async stop(): Promise<void> {
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
    for (const [id, ac] of this.driving) {
      ac.abort();
      // A graceful stop hands the rollout over at once; the state in the rows is where it resumes.
      await disownRollout(this.prisma, id, this.instanceId).catch(() => {});
    }
    this.driving.clear();
  }

  /** Renew what this instance drives; pick up active rollouts nobody drives. One tick at a time. */
  tick(): Promise<void> {
    this.ticking ??= (async () => {
      try {
        for (const [id, ac] of this.driving) {
          if (!(await claimRollout(this.prisma, id, this.instanceId, this.o.ttlMs))) ac.abort();
          else await this.renewLocks(id, ac);
        }
        for (const id of await activeRolloutIds(this.prisma, ACTIVE_STATUSES)) {
          if (!this.driving.has(id) && (await claimRollout(this.prisma, id, this.instanceId, this.o.ttlMs))) this.drive(id);
        }
      } catch (e) {
        console.error(`[beamdeck] rollout tick: ${(e as Error).message}`);
      } finally {
        this.ticking = null;
      }
    })();
    return this.ticking;
  }

  private async renewLocks(id: string, ac: AbortController): Promise<void> {
    const r = await readRollout(this.prisma, id);
    for (const n of r?.nodes ?? []) {
      if (await renewNodeLock(this.prisma, n.node, rolloutHolder(id), this.o.ttlMs)) continue;
      // Lost (expired while this instance stalled, and taken): never drive that node again without it.
      if (!(await acquireNodeLock(this.prisma, n.node, rolloutHolder(id), this.o.ttlMs))) {
        await this.halt(id, "engine", `lost the upgrade lock of ${n.node}`, n.node);
        ac.abort();
        return;
      }
    }
  }

  /** Lock every node or none (BD_CONFLICT names who holds one). */
  private async lockAll(id: string, nodes: string[]): Promise<void> {
    const taken: string[] = [];
    for (const node of nodes) {
      if (await acquireNodeLock(this.prisma, node, rolloutHolder(id), this.o.ttlMs)) {
        taken.push(node);
        continue;
      }
      for (const t of taken) await releaseNodeLock(this.prisma, t, rolloutHolder(id));
      const held = await nodeLockHolder(this.prisma, node);
      throw new BeamdeckError("BD_CONFLICT", `${node} is being upgraded by ${describeHolder(held ?? "someone")}; no node was touched`);
    }
  }

  /** A node whose pending fallback timer is not this rollout's own install is not taken (attack finding 7); called holding the locks. */
  private async refusePendingFallbacks(nodes: { node: string; upgradeId: string | null }[]): Promise<void> {
    for (const n of nodes) {
      const p = await pendingFallback(this.prisma, n.node);
      if (p && p.upgradeId !== n.upgradeId) throw new BeamdeckError("BD_CONFLICT", `${pendingFallbackMessage(n.node, p)}; no node was touched`);
    }
  }

  private async unlockAll(r: RolloutView): Promise<void> {
    for (const n of r.nodes) await releaseNodeLock(this.prisma, n.node, rolloutHolder(r.id));
  }

  async begin(raw: StartInput, actor: string): Promise<string> {
    const input = startInput.parse(raw);
    const group = (await this.groups()).find((g) => g.name === input.group);
    if (!group) throw new BeamdeckError("BD_NOT_FOUND", `no group named ${input.group}`);
    const away = group.nodes.filter((n) => !n.connected).map((n) => n.name);
    if (away.length > 0) throw new BeamdeckError("BD_CONFLICT", `group ${input.group}: ${away.join(", ")} not connected; a rollout must cover every node of the group`);
    const nodes = group.nodes.map((n) => n.name);
    const id = `r-${randomBytes(6).toString("hex")}`;
    const { group: _g, vsn: _v, ...rest } = input;
    const options: RolloutOptions = rolloutOptions.parse(rest);
    await this.lockAll(id, nodes);
    try {
      await this.refusePendingFallbacks(nodes.map((node) => ({ node, upgradeId: null })));
      await createRollout(this.prisma, { id, group: input.group, toVsn: input.vsn, nodes, options, createdBy: actor });
    } catch (e) {
      for (const node of nodes) await releaseNodeLock(this.prisma, node, rolloutHolder(id));
      throw e;
    }
    await appendAudit(this.prisma, { actor, action: "rollout.start", target: `rollout:${id}`, outcome: "ok", data: { group: input.group, vsn: input.vsn, nodes, options: jsonSafe(options) } });
    this.publish(id);
    void this.tick();
    return id;
  }

  /** Stop touching nodes; the node being stepped finishes its current step. */
  async halt(id: string, actor: string, reason: string, node?: string): Promise<RolloutView> {
    const r = await mustReadRollout(this.prisma, id);
    if (!(await moveRollout(this.prisma, id, ACTIVE_STATUSES, "halted", { haltReason: reason }))) {
      if (actor !== "engine") throw new BeamdeckError("BD_CONFLICT", `rollout ${id} is ${r.status}; only a running rollout can be halted`);
      return r;
    }
    await appendAudit(this.prisma, { actor, action: "rollout.halt", node: node ?? null, target: `rollout:${id}`, outcome: "ok", data: { reason, phase: r.status } });
    if (actor === "engine") await this.alerts?.rolloutHalted(r, node ?? r.nodes[0]?.node ?? r.group, reason);
    this.driving.get(id)?.abort();
    this.publish(id);
    return mustReadRollout(this.prisma, id);
  }

  /** Go on from the phase it halted in; a node whose gate failed is soaked again, a rolled back one installed again. */
  async resume(id: string, actor: string): Promise<RolloutView> {
    const r = await mustReadRollout(this.prisma, id);
    if (r.status !== "halted") throw new BeamdeckError("BD_CONFLICT", `rollout ${id} is ${r.status}; only a halted rollout resumes`);
    await this.lockAll(
      id,
      r.nodes.map((n) => n.node),
    );
    try {
      // Halted, its nodes were free: a manual install with a fallback may have landed meanwhile.
      await this.refusePendingFallbacks(r.nodes);
    } catch (e) {
      await this.unlockAll(r);
      throw e;
    }
    for (const n of r.nodes) {
      const back = await this.resumeStep(n.step, n.commandId);
      if (back) await setNode(this.prisma, id, n.node, { step: back, commandId: null, ...(back === "unpacked" ? { upgradeId: null } : {}) });
      // An operator's resume starts a node's soak afresh: its gate judges from the new start, not the halted one's.
      if ((back ?? n.step) === "soaking") await setNode(this.prisma, id, n.node, { soakStartedAt: null });
    }
    if (!(await moveRollout(this.prisma, id, ["halted"], r.phase, { haltReason: null }))) throw new BeamdeckError("BD_CONFLICT", `rollout ${id} changed meanwhile; try again`);
    await appendAudit(this.prisma, { actor, action: "rollout.resume", target: `rollout:${id}`, outcome: "ok", data: { phase: r.phase } });
    this.publish(id);
    void this.tick();
    return mustReadRollout(this.prisma, id);
  }

  /**
   * Where a node of a halted rollout goes on from (null: where it is). A
   * step whose command failed or was lost is sent again as a new command
   * (the old id would only repeat its outcome); a failed gate is soaked
   * again; a rolled back node is installed again.
   */
  private async resumeStep(step: NodeStep, commandId: string | null): Promise<NodeStep | null> {
    if (step === "gate_failed" || step === "failed") return "soaking";
    if (step === "rolled_back") return "unpacked";
    const redo: Partial<Record<NodeStep, NodeStep>> = { unpacking: "pending", installing: "unpacked", permanent_sent: "soaking", rolling_back: "soaking" };
    const to = redo[step];
    if (!to || !commandId) return null;
    const cmd = await this.prisma.upgradeCommand.findUnique({ where: { id: commandId }, select: { status: true } });
    return cmd && (cmd.status === "error" || cmd.status === "no_outcome") ? to : null;
  }

  /** Give the rollout up for good: no node is touched again; nodes stay as they are. */
  async abort(id: string, actor: string): Promise<RolloutView> {
    const r = await mustReadRollout(this.prisma, id);
    if (!(await moveRollout(this.prisma, id, [...ACTIVE_STATUSES, "halted"], "aborted"))) throw new BeamdeckError("BD_CONFLICT", `rollout ${id} is ${r.status}; it has ended`);
    this.driving.get(id)?.abort();
    if (!this.driving.has(id)) await this.unlockAll(r);
    await appendAudit(this.prisma, { actor, action: "rollout.abort", target: `rollout:${id}`, outcome: "ok", data: { phase: r.status, nodes: r.nodes.map((n) => ({ node: n.node, step: n.step })) } });
    this.publish(id);
    return mustReadRollout(this.prisma, id);
  }

  private publish(id: string): void {
    this.hub.publish(`rollout:${id}`, { id, at: Date.now() });
    this.hub.publish("rollouts", { id, at: Date.now() });
  }

  private drive(id: string): void {
    const ac = new AbortController();
    this.driving.set(id, ac);
    void this.run(id, ac)
      .catch((e) => console.error(`[beamdeck] rollout ${id}: ${(e as Error).message}`))
      .finally(async () => {
        this.driving.delete(id);
        const r = await readRollout(this.prisma, id).catch(() => null);
        // Ended or halted here: the nodes are free (a resume locks them again).
        if (r && !ACTIVE_STATUSES.includes(r.status)) await this.unlockAll(r).catch(() => {});
        await disownRollout(this.prisma, id, this.instanceId).catch(() => {});
      });
  }

  private async run(id: string, ac: AbortController): Promise<void> {
    let r = await mustReadRollout(this.prisma, id);
    const ctx = (rollout: RolloutView): NodeRunContext => ({
      prisma: this.prisma,
      steps: this.steps.of(id),
      rollout,
      lockHolder: rolloutHolder(id),
      actor: rollout.createdBy,
      pollMs: this.pollMs,
      stepTimeoutMs: this.stepTimeoutMs,
      isConnected: this.o.isConnected,
      check: async () => {
        const s = (await this.prisma.rollout.findUnique({ where: { id }, select: { status: true } }))?.status as RolloutStatus | undefined;
        if (ac.signal.aborted || !s || !ACTIVE_STATUSES.includes(s)) throw new Stopped(`rollout ${id} is ${s ?? "gone"}`);
      },
      changed: () => this.publish(id),
    });
    try {
      if (r.status === "pending") await this.phase(id, "pending", "unpacking");
      r = await mustReadRollout(this.prisma, id);
      if (r.status === "unpacking") {
        const c = ctx(r);
        const todo = r.nodes.filter((n) => ["pending", "unpacking"].includes(n.step));
        for (let i = 0; i < todo.length; i += UNPACK_CONCURRENCY) {
          await c.check();
          await this.together(
            todo.slice(i, i + UNPACK_CONCURRENCY).map((n) => () => unpackNode(c, n)),
            ac,
          );
        }
        await this.phase(id, "unpacking", "canary");
      }
      r = await mustReadRollout(this.prisma, id);
      const canary = r.nodes.slice(0, r.options.canary);
      if (r.status === "canary") {
        const c = ctx(r);
        await this.together(
          canary.map((n) => () => upgradeNode(c, n)),
          ac,
        );
        await this.phase(id, "canary", "batches");
      }
      r = await mustReadRollout(this.prisma, id);
      if (r.status === "batches") {
        const c = ctx(r);
        const rest = r.nodes.slice(r.options.canary);
        for (let i = 0; i < rest.length; i += r.options.batch) {
          await c.check();
          await this.together(
            rest.slice(i, i + r.options.batch).map((n) => () => upgradeNode(c, n)),
            ac,
          );
        }
        if (await moveRollout(this.prisma, id, ["batches"], "done", { phase: "done" })) {
          await appendAudit(this.prisma, { actor: r.createdBy, action: "rollout.done", target: `rollout:${id}`, outcome: "ok", data: { group: r.group, vsn: r.toVsn, nodes: r.nodes.length } });
          this.publish(id);
        }
      }
    } catch (e) {
      if (e instanceof Stopped) return;
      if (e instanceof NodeFailed) {
        const latest = await mustReadRollout(this.prisma, id);
        const rb = latest.options.autoRollback ? ` (auto-rollback: ${await rollBackNode(ctx(latest), e.node)})` : "";
        await this.halt(id, "engine", `${e.message}${rb}`, e.node);
        return;
      }
      await this.halt(id, "engine", `the engine failed: ${(e as Error).message}`);
    }
  }

  /** Move to the next phase (also remembered as where a halted rollout resumes). */
  private async phase(id: string, from: RolloutStatus, to: RolloutStatus): Promise<void> {
    if (!(await moveRollout(this.prisma, id, [from], to, { phase: to }))) throw new Stopped(`rollout ${id} left ${from}`);
    this.publish(id);
  }

  /**
   * Several nodes at once; the first failure stops the others at their next
   * look (no further step), and is the one reported.
   */
  private async together(jobs: (() => Promise<void>)[], ac: AbortController): Promise<void> {
    const results = await Promise.allSettled(
      jobs.map((j) =>
        j().catch((e) => {
          if (e instanceof NodeFailed) ac.abort();
          throw e;
        }),
      ),
    );
    const failed = results.find((x): x is PromiseRejectedResult => x.status === "rejected" && x.reason instanceof NodeFailed);
    if (failed) throw failed.reason;
    const other = results.find((x): x is PromiseRejectedResult => x.status === "rejected");
    if (other) throw other.reason;
  }
}
