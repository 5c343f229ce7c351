"use client";
/**
 * One rollout, live: the group's nodes in order, the step of each, predicted
 * versus actual kills and the health gate's figures as the soak goes; halt,
 * resume and abort for operators, read-only for viewers. State is pushed by
 * `rollouts.onChange` (resumable), never polled.
 */
import { useMutation } from "@tanstack/react-query";
import { useSubscription } from "@trpc/tanstack-react-query";
import { use, useState } from "react";
import { ConfirmButton } from "../../../_components/ConfirmButton";
import { RoleHint } from "../../../_components/RoleHint";
import { useRole } from "../../../_lib/me";
import { errorMessage, useTRPC } from "../../../_lib/trpc";
import type { Rollout as RolloutView } from "../../../_lib/types";
import { deathsOf, predictedKillCount } from "../../../../server/fleet/rollout-figures";

const RUNNING = ["pending", "unpacking", "canary", "batches"];

function Gate({ g }: { g: Record<string, unknown> | null }) {
  if (!g) return <span>–</span>;
  const f = g as { soakedMs?: number; connected?: boolean; unexpectedReports?: number; alerts?: string[]; verification?: { ok: boolean } | null };
  return (
    <span data-testid="rollout-gate">
      soaked {Math.round((f.soakedMs ?? 0) / 1000)} s · {f.connected ? "connected" : "DISCONNECTED"} · {f.unexpectedReports ?? 0} unexpected report(s) · {f.alerts?.length ?? 0} alert(s)
      {f.verification ? ` · ${f.verification.ok ? "verified" : "NOT VERIFIED"}` : ""}
    </span>
  );
}

function Actions({ r }: { r: RolloutView }) {
  const trpc = useTRPC();
  const { can } = useRole();
  const halt = useMutation(trpc.rollouts.halt.mutationOptions());
  const resume = useMutation(trpc.rollouts.resume.mutationOptions());
  const abort = useMutation(trpc.rollouts.abort.mutationOptions());
  if (!can("operator")) return <RoleHint need="operator" verb="halt, resume or abort a rollout" />;
  const pending = halt.isPending || resume.isPending || abort.isPending;
  const error = halt.error ?? resume.error ?? abort.error;
  return (
    <span className="row-actions">
      {RUNNING.includes(r.status) ? (
        <ConfirmButton testid="rollout-halt" pending={pending} question="Halt this rollout? No further node is touched; the step in flight finishes." onConfirm={() => halt.mutate({ id: r.id })}>
          Halt
        </ConfirmButton>
      ) : null}
      {r.status === "halted" ? (
        <ConfirmButton testid="rollout-resume" pending={pending} question="Resume this rollout from where it halted?" onConfirm={() => resume.mutate({ id: r.id })}>
          Resume
        </ConfirmButton>
      ) : null}
      {RUNNING.includes(r.status) || r.status === "halted" ? (
        <ConfirmButton testid="rollout-abort" pending={pending} question="Abort this rollout for good? Nodes stay as they are." onConfirm={() => abort.mutate({ id: r.id })}>
          Abort
        </ConfirmButton>
      ) : null}
      {error ? <span className="alert alert-error">{errorMessage(error)}</span> : null}
    </span>
  );
}

export default function RolloutPage({ params }: { params: Promise<{ id: string }> }) {
  const { id } = use(params);
  const trpc = useTRPC();
  const [r, setR] = useState<RolloutView | null>(null);
  const sub = useSubscription(trpc.rollouts.onChange.subscriptionOptions({ id }, { onData: (d) => setR(d.data as RolloutView) }));
  return (
    <div className="page">
      <div className="page-head">
        <h1>
          Rollout <span className="mono">{id}</span>
        </h1>
        {r ? (
          <span className="page-meta" data-testid="rollout-status" data-status={r.status}>
            group {r.group} → {r.toVsn} · {r.status}
          </span>
        ) : null}
        {r ? <Actions r={r} /> : null}
      </div>
      {sub.error ? <div className="alert alert-error">{errorMessage(sub.error)}</div> : null}
      {r?.haltReason ? (
        <div className="alert alert-error" data-testid="rollout-halt-reason">
          {r.haltReason}
        </div>
      ) : null}
      {r ? (
        <table className="grid">
          <thead>
            <tr>
              <th className="num">#</th>
              <th>Node</th>
              <th>Step</th>
              <th>From</th>
              <th className="num">Predicted</th>
              <th className="num">Died</th>
              <th className="num">Unpredicted</th>
              <th>Health gate</th>
              <th>Error</th>
            </tr>
          </thead>
          <tbody>
            {r.nodes.map((n) => {
              const d = deathsOf(n.actual);
              return (
                <tr key={n.node} data-testid="rollout-node" data-node={n.node} data-step={n.step}>
                  <td className="num">{n.position + 1}</td>
                  <td className="mono">{n.node}</td>
                  <td data-testid="rollout-node-step">{n.step}</td>
                  <td className="mono">{n.fromVsn ?? "–"}</td>
                  <td className="num">{predictedKillCount(n.predicted)}</td>
                  <td className="num">{d.died}</td>
                  <td className="num">{d.unpredicted}</td>
                  <td>
                    <Gate g={n.gate} />
                  </td>
                  <td>{n.error ?? "–"}</td>
                </tr>
              );
            })}
          </tbody>
        </table>
      ) : null}
    </div>
  );
}
