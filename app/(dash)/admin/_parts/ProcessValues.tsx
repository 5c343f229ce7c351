"use client";
/**
 * Who sees process values (state, mailbox messages, dictionary values) where
 * a node sends them: the least role, enforced by the server for the browser,
 * the CLI and the API alike (server/agents/process-values.ts).
 */
import { useMutation, useQuery, useQueryClient } from "@tanstack/react-query";
import { ROLES, type Role } from "../../../_lib/me";
import { errorMessage, useTRPC } from "../../../_lib/trpc";

export function ProcessValues() {
  const trpc = useTRPC();
  const queryClient = useQueryClient();
  const current = useQuery(trpc.procs.valuesRole.queryOptions());
  const save = useMutation(trpc.procs.setValuesRole.mutationOptions({ onSuccess: () => void queryClient.invalidateQueries({ queryKey: trpc.procs.valuesRole.queryKey() }) }));
  const least = current.data?.least;
  return (
    <div className="panel admin-section" data-testid="admin-process-values" data-least={least ?? ""}>
      <div className="panel-head">
        <h2>Process values</h2>
        <span className="panel-meta">state, mailbox messages and dictionary values can hold secrets; leak hints, counts and keys are shown to every role</span>
      </div>
      <label className="inline-field">
        <span>Shown to</span>
        <select value={least ?? ""} disabled={!least || save.isPending} onChange={(e) => save.mutate({ least: e.target.value as Role })} data-testid="process-values-role">
          {ROLES.map((r) => (
            <option key={r} value={r}>
              {r} and up
            </option>
          ))}
        </select>
        <span className="muted">— and only where the node&apos;s agent sends them (its get_state setting)</span>
        {save.error ? <span className="error-inline">{errorMessage(save.error)}</span> : null}
      </label>
    </div>
  );
}
