"use client";
/**
 * Start a rollout from the page (operators): group, version, purge choices,
 * canary, batch size, soak, fallback timer and auto-rollback; then the plan
 * of every node of the group, each asked of the server (which asks the
 * instance holding the node), and a start that accepts exactly those plans
 * (their digests, as `rollout start --accept-plan` does). A plan that
 * changes before a node's install is refused by that node's agent.
 */
import { useMutation, useQuery } from "@tanstack/react-query";
import { useRouter } from "next/navigation";
import { type FormEvent, useState } from "react";
import { ConfirmButton } from "../../_components/ConfirmButton";
import { RoleHint } from "../../_components/RoleHint";
import { parseFallback, parseSoak } from "../../_lib/duration";
import { parsePurgeEntry, purgeEntryError } from "../../_lib/purge";
import { useRole } from "../../_lib/me";
import { errorMessage, useTRPC, useTRPCClient } from "../../_lib/trpc";
import type { RouterOutputs } from "../../_lib/types";
import type { PurgeChoices } from "../../../server/upgrades/plan-schema";

type NodePlan = { node: string; plan: RouterOutputs["upgrades"]["plan"] | null; error: string | null };

/** `TestListener=soft, Other=brutal` → choices, or the first entry that is not one (the CLI's syntax, app/_lib/purge.ts). */
export function parsePurge(text: string): { ok: true; purge: PurgeChoices } | { ok: false; message: string } {
  const purge: PurgeChoices = {};
  for (const part of text
    .split(",")
    .map((p) => p.trim())
    .filter(Boolean)) {
    const e = parsePurgeEntry(part);
    if (!e) return { ok: false, message: purgeEntryError(part) };
    purge[e.module] = e.purge;
  }
  return { ok: true, purge };
}

const kills = (p: NonNullable<NodePlan["plan"]>) => p.counts.killedAtInstall + p.counts.killedAtPermanent;

/** Plans the page asks for, one after another; a larger group is started from the CLI (`rollout plan`, 4 at a time). */
export const MAX_REVIEWED_NODES = 100;

/**
 * Why a group cannot be reviewed here, or null. A group is reviewed whole or
 * not at all: the rollout covers every node of the group, so plans of only
 * some would start it on nodes nobody reviewed.
 */
export function reviewLimitProblem(group: string, nodes: number): string | null {
  if (nodes <= MAX_REVIEWED_NODES) return null;
  return `${group} has ${nodes} nodes; this page reviews at most ${MAX_REVIEWED_NODES}: use beamdeck rollout plan and rollout start --accept-plan`;
}

export function StartRollout() {
  const trpc = useTRPC();
  const client = useTRPCClient();
  const router = useRouter();
  const { can } = useRole();
  const groups = useQuery(trpc.groups.list.queryOptions());
  const [group, setGroup] = useState("");
  const [vsn, setVsn] = useState("");
  const [purgeText, setPurgeText] = useState("");
  const [canary, setCanary] = useState(1);
  const [batch, setBatch] = useState(1);
  const [soakText, setSoakText] = useState("60s");
  const [fallbackText, setFallbackText] = useState("");
  const [autoRollback, setAutoRollback] = useState(false);
  const [plans, setPlans] = useState<NodePlan[] | null>(null);
  const [reviewing, setReviewing] = useState(false);
  const start = useMutation(trpc.rollouts.start.mutationOptions({ onSuccess: (r) => router.push(`/rollouts/${r.id}`) }));

  if (!can("operator")) return <RoleHint need="operator" verb="start a rollout" testid="rollout-start-hint" />;

  const purge = parsePurge(purgeText);
  const soak = parseSoak(soakText);
  const fallback = fallbackText.trim() ? parseFallback(fallbackText) : null;
  const members = groups.data?.find((g) => g.name === group)?.nodes ?? [];
  const problem = !purge.ok ? purge.message : !soak.ok ? `soak: ${soak.message}` : fallback && !fallback.ok ? fallback.message : reviewLimitProblem(group, members.length);
  // Any change to what was reviewed asks for a new review.
  const edit =
    <T,>(set: (v: T) => void) =>
    (v: T) => {
      set(v);
      setPlans(null);
    };

  async function review(e: FormEvent) {
    e.preventDefault();
    if (!purge.ok || problem) return;
    setReviewing(true);
    const out: NodePlan[] = [];
    // One node after another: a group's plans are computed on its nodes, each within the server's deadline.
    for (const n of members) {
      try {
        out.push({ node: n.name, plan: await client.upgrades.plan.query({ node: n.name, vsn, purge: purge.purge, prePurge: {} }), error: null });
      } catch (err) {
        out.push({ node: n.name, plan: null, error: errorMessage(err) });
      }
    }
    setPlans(out);
    setReviewing(false);
  }

  const planned = plans?.every((p) => p.plan) ?? false;
  const total = plans?.reduce((s, p) => s + (p.plan ? kills(p.plan) : 0), 0) ?? 0;
  return (
    <div className="panel" data-testid="rollout-start">
      <div className="panel-head">
        <h2>Start a rollout</h2>
        <span className="panel-meta">unpack everywhere, then the canary, then batches: install → soak under the health gate → make permanent</span>
      </div>
      <form className="form-row" onSubmit={review}>
        <label className="inline-field">
          <span>Group</span>
          <select className="ctl" required value={group} onChange={(e) => edit(setGroup)(e.target.value)} data-testid="rollout-start-group">
            <option value="">choose…</option>
            {(groups.data ?? []).map((g) => (
              <option key={g.name} value={g.name}>
                {g.name} ({g.connected} of {g.nodes.length} connected)
              </option>
            ))}
          </select>
        </label>
        <label className="inline-field">
          <span>Version</span>
          <input className="ctl" required maxLength={100} pattern="[\w.+\-]+" value={vsn} onChange={(e) => edit(setVsn)(e.target.value)} data-testid="rollout-start-vsn" placeholder="0.1.1" />
        </label>
        <label className="inline-field">
          <span>Purge</span>
          <input className="ctl" value={purgeText} onChange={(e) => edit(setPurgeText)(e.target.value)} data-testid="rollout-start-purge" placeholder="Module=soft, …" spellCheck={false} />
        </label>
        <label className="inline-field">
          <span>Canary</span>
          <input className="ctl" type="number" min={1} max={100} value={canary} onChange={(e) => setCanary(Number(e.target.value))} data-testid="rollout-start-canary" />
        </label>
        <label className="inline-field">
          <span>Batch</span>
          <input className="ctl" type="number" min={1} max={100} value={batch} onChange={(e) => setBatch(Number(e.target.value))} data-testid="rollout-start-batch" />
        </label>
        <label className="inline-field">
          <span>Soak</span>
          <input className="ctl" value={soakText} onChange={(e) => setSoakText(e.target.value)} data-testid="rollout-start-soak" placeholder="60s" spellCheck={false} />
        </label>
        <label className="inline-field">
          <span>Fall back after</span>
          <input className="ctl" value={fallbackText} onChange={(e) => setFallbackText(e.target.value)} data-testid="rollout-start-fallback" placeholder="none, or 20m" spellCheck={false} />
        </label>
        <label className="inline-field">
          <input type="checkbox" checked={autoRollback} onChange={(e) => setAutoRollback(e.target.checked)} data-testid="rollout-start-auto-rollback" />
          <span>auto-rollback</span>
        </label>
        <button type="submit" className="btn" disabled={!group || !vsn || problem !== null || reviewing} data-testid="rollout-start-review">
          {reviewing ? "Planning…" : "Review the plans"}
        </button>
      </form>
      {problem ? (
        <div className="alert alert-error" data-testid="rollout-start-problem">
          {problem}
        </div>
      ) : null}
      {plans ? (
        <table className="grid" data-testid="rollout-start-plans">
          <thead>
            <tr>
              <th>Node</th>
              <th>Step</th>
              <th>Verdict</th>
              <th className="num">Kills</th>
              <th>Error findings</th>
              <th>Digest</th>
            </tr>
          </thead>
          <tbody>
            {plans.map((p) => (
              <tr key={p.node} data-testid="rollout-start-plan" data-node={p.node} data-digest={p.plan?.digest ?? ""}>
                <td>{p.node}</td>
                {p.plan ? (
                  <>
                    <td className="mono">
                      {p.plan.step} {p.plan.from} → {p.plan.to}
                    </td>
                    <td>{p.plan.verdict}</td>
                    <td className="num">{kills(p.plan)}</td>
                    <td className="mono">{p.plan.findings.filter((f) => f.severity === "error").length || "-"}</td>
                    <td className="mono">{p.plan.digest.slice(0, 12)}</td>
                  </>
                ) : (
                  <td colSpan={5}>not planned: {p.error}</td>
                )}
              </tr>
            ))}
          </tbody>
        </table>
      ) : null}
      {plans && planned ? (
        <ConfirmButton
          testid="rollout-start-submit"
          className="btn btn-primary"
          pending={start.isPending}
          question={`Start the rollout of ${group} to ${vsn} on ${plans.length} node(s), accepting these plans (${total} process(es) killed in all)?`}
          onConfirm={() =>
            purge.ok &&
            soak.ok &&
            start.mutate({
              group,
              vsn,
              purge: purge.purge,
              canary,
              batch,
              soakMs: soak.ms,
              fallbackMs: fallback?.ok ? fallback.ms : undefined,
              autoRollback,
              acceptPlans: plans.flatMap((p) => (p.plan ? [p.plan.digest] : [])),
            })
          }
        >
          Accept these plans and start ({total} kill(s))
        </ConfirmButton>
      ) : null}
      {start.error ? (
        <div className="alert alert-error" data-testid="rollout-start-error">
          {errorMessage(start.error)}
        </div>
      ) : null}
    </div>
  );
}
