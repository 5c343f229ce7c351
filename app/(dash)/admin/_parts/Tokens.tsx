"use client";
/**
 * API tokens (a role and an optional expiry, for the CLI and pipelines) and
 * agent tokens (one node each, or a fleet): created here and shown once,
 * listed with their last use, revoked. Revoking an agent token disconnects
 * its agent at once.
 */
import { ConfirmButton } from "../../../_components/ConfirmButton";
import { useMutation, useQuery, useQueryClient } from "@tanstack/react-query";
import { useState, type FormEvent } from "react";
import { OnceSecret } from "../../../_components/OnceSecret";
import { ago, dateTime } from "../../../_lib/format";
import { useNow } from "../../../_lib/hooks";
import { asRole, type Role } from "../../../_lib/me";
import { errorMessage, useTRPC } from "../../../_lib/trpc";
import { fromLocalInput, toMs } from "../../../_lib/when";
import { StatusRow } from "../../../_components/ListParts";

const EXPIRY = [
  { key: "never", label: "never", days: null },
  { key: "1d", label: "1 day", days: 1 },
  { key: "7d", label: "7 days", days: 7 },
  { key: "30d", label: "30 days", days: 30 },
  { key: "90d", label: "90 days", days: 90 },
  { key: "custom", label: "on…", days: null },
] as const;

function When({ v, now, never = "never" }: { v: string | Date | null | undefined; now: number; never?: string }) {
  const ms = toMs(v);
  if (ms === null) return <span className="muted">{never}</span>;
  // `now` ticks every 30 s; the clock decides what is future.
  const at = Math.max(now, Date.now());
  return <span title={dateTime(ms)}>{ms > at ? dateTime(ms) : ago(ms, at)}</span>;
}

function TokenState({ revokedAt, expiresAt, now }: { revokedAt: string | Date | null; expiresAt?: string | Date | null; now: number }) {
  const revoked = toMs(revokedAt);
  const expires = toMs(expiresAt ?? null);
  if (revoked)
    return (
      <span className="status status-down" title={dateTime(revoked)}>
        revoked
      </span>
    );
  if (expires !== null && expires <= now)
    return (
      <span className="status status-down" title={dateTime(expires)}>
        expired
      </span>
    );
  return <span className="status status-up">active</span>;
}

export function ApiTokens() {
  const trpc = useTRPC();
  const queryClient = useQueryClient();
  const now = useNow(30_000);
  const list = useQuery(trpc.tokens.apiList.queryOptions());
  const [label, setLabel] = useState("");
  const [role, setRole] = useState<Role>("viewer");
  const [expiry, setExpiry] = useState<(typeof EXPIRY)[number]["key"]>("90d");
  const [custom, setCustom] = useState("");
  const [created, setCreated] = useState<{ id: string; token: string; role: string; expiresAt: string | null } | null>(null);
  const refresh = () => void queryClient.invalidateQueries({ queryKey: trpc.tokens.apiList.queryKey() });
  const create = useMutation(
    trpc.tokens.apiCreate.mutationOptions({
      onSuccess: (t) => {
        setCreated(t);
        setLabel("");
        refresh();
      },
    }),
  );
  const revoke = useMutation(trpc.tokens.apiRevoke.mutationOptions({ onSettled: refresh }));

  const submit = (e: FormEvent) => {
    e.preventDefault();
    const days = EXPIRY.find((x) => x.key === expiry)?.days ?? null;
    const expiresAt = expiry === "custom" ? fromLocalInput(custom) : days ? new Date(Date.now() + days * 86_400_000).toISOString() : null;
    create.mutate({ label, role, ...(expiresAt ? { expiresAt } : {}) });
  };
  const error = create.error ?? revoke.error;

  return (
    <div className="panel admin-section" data-testid="admin-api-tokens">
      <div className="panel-head">
        <h2>API tokens</h2>
        <span className="panel-meta">for the CLI and pipelines: a role, an optional expiry; stored hashed</span>
      </div>
      <form className="form-row" onSubmit={submit} data-testid="api-token-create">
        <label className="inline-field">
          <span>Label</span>
          <input className="ctl" required maxLength={100} placeholder="ci deploys" value={label} onChange={(e) => setLabel(e.target.value)} data-testid="api-token-label" />
        </label>
        <label className="inline-field">
          <span>Role</span>
          <select className="ctl" value={role} onChange={(e) => setRole(asRole(e.target.value))} data-testid="api-token-role">
            <option value="viewer">viewer</option>
            <option value="operator">operator</option>
            <option value="admin">admin</option>
          </select>
        </label>
        <label className="inline-field">
          <span>Expires</span>
          <select className="ctl" value={expiry} onChange={(e) => setExpiry(e.target.value as typeof expiry)} data-testid="api-token-expiry">
            {EXPIRY.map((x) => (
              <option key={x.key} value={x.key}>
                {x.label}
              </option>
            ))}
          </select>
          {expiry === "custom" ? <input className="ctl" type="datetime-local" value={custom} onChange={(e) => setCustom(e.target.value)} data-testid="api-token-expiry-at" /> : null}
        </label>
        <button type="submit" className="btn btn-primary" disabled={!label || create.isPending || (expiry === "custom" && !custom)} data-testid="api-token-submit">
          {create.isPending ? "Creating…" : "Create token"}
        </button>
      </form>
      {error ? <div className="alert alert-error">{errorMessage(error)}</div> : null}
      {created ? (
        <OnceSecret
          title={`API token ${created.id} (${created.role}${created.expiresAt ? `, expires ${dateTime(Date.parse(created.expiresAt))}` : ", no expiry"})`}
          value={created.token}
          testid="api-token-created"
          onDismiss={() => setCreated(null)}
        >
          <code>BEAMDECK_URL={window.location.origin} BEAMDECK_API_TOKEN=… beamdeck nodes</code> — or <code>Authorization: Bearer …</code> on <code>/api/trpc</code>.
        </OnceSecret>
      ) : null}
      <table className="grid" data-testid="api-tokens-table">
        <thead>
          <tr>
            <th>Id</th>
            <th>Label</th>
            <th>Role</th>
            <th>Status</th>
            <th>Expires</th>
            <th>Last used</th>
            <th>Created</th>
            <th />
          </tr>
        </thead>
        <tbody>
          {(list.data ?? []).map((t) => (
            <tr key={t.id} data-testid="api-token-row" data-id={t.id} data-revoked={String(Boolean(t.revokedAt))}>
              <td className="mono">{t.id}</td>
              <td>{t.label}</td>
              <td>
                <span className={`role role-${t.role}`}>{t.role}</span>
              </td>
              <td data-testid="token-status">
                <TokenState revokedAt={t.revokedAt} expiresAt={t.expiresAt} now={now} />
              </td>
              <td className="nowrap">
                <When v={t.expiresAt} now={now} />
              </td>
              <td className="nowrap" data-testid="token-last-used">
                <When v={t.lastUsedAt} now={now} never="never used" />
              </td>
              <td className="nowrap">
                <When v={t.createdAt} now={now} /> <span className="muted">by {t.createdBy ?? "?"}</span>
              </td>
              <td className="actions-cell">
                <span className="row-actions">
                  {t.revokedAt ? null : (
                    <ConfirmButton
                      testid="api-token-revoke"
                      pending={revoke.isPending}
                      question={`Revoke API token ${t.id} (${t.label})? Anything using it fails from now on.`}
                      onConfirm={() => revoke.mutate({ id: t.id })}
                    >
                      Revoke
                    </ConfirmButton>
                  )}
                </span>
              </td>
            </tr>
          ))}
          <StatusRow pending={false} empty={list.data?.length === 0} colSpan={8}>
            No API tokens.
          </StatusRow>
        </tbody>
      </table>
    </div>
  );
}

export function AgentTokens() {
  const trpc = useTRPC();
  const queryClient = useQueryClient();
  const now = useNow(30_000);
  const list = useQuery(trpc.tokens.agentList.queryOptions(undefined, { refetchInterval: 15_000 }));
  const [label, setLabel] = useState("");
  const [fleet, setFleet] = useState(false);
  const [pattern, setPattern] = useState("*");
  const [created, setCreated] = useState<{ id: string; token: string; fleet: boolean; fleetPattern: string | null } | null>(null);
  const [note, setNote] = useState<string | null>(null);
  const refresh = () => void queryClient.invalidateQueries({ queryKey: trpc.tokens.agentList.queryKey() });
  const create = useMutation(
    trpc.tokens.agentCreate.mutationOptions({
      onSuccess: (t) => {
        setCreated(t);
        setLabel("");
        setFleet(false);
        refresh();
      },
    }),
  );
  const revoke = useMutation(
    trpc.tokens.agentRevoke.mutationOptions({
      onSettled: refresh,
      onSuccess: (r) => setNote(`Agent token ${r.id} revoked; ${r.disconnected} connected agent${r.disconnected === 1 ? "" : "s"} disconnected.`),
    }),
  );
  const error = create.error ?? revoke.error;
  const agentUrl = `${window.location.protocol === "https:" ? "wss:" : "ws:"}//${window.location.host}/agent`;

  return (
    <div className="panel admin-section" data-testid="admin-agent-tokens">
      <div className="panel-head">
        <h2>Agent tokens</h2>
        <span className="panel-meta">one per node (bound to the first node that uses it), or a fleet token for many; revoking disconnects at once</span>
      </div>
      <form
        className="form-row"
        onSubmit={(e) => {
          e.preventDefault();
          create.mutate({ label, ...(fleet ? { fleetPattern: pattern } : {}) });
        }}
        data-testid="agent-token-create"
      >
        <label className="inline-field">
          <span>Label</span>
          <input className="ctl" required maxLength={100} placeholder="payments-1" value={label} onChange={(e) => setLabel(e.target.value)} data-testid="agent-token-label" />
        </label>
        <label className="check">
          <input type="checkbox" checked={fleet} onChange={(e) => setFleet(e.target.checked)} data-testid="agent-token-fleet" />
          fleet (many nodes)
        </label>
        {fleet ? (
          <label className="inline-field">
            <span>Node names</span>
            <input className="ctl" required maxLength={255} placeholder="shop_*@*" value={pattern} onChange={(e) => setPattern(e.target.value)} data-testid="agent-token-fleet-pattern" />
          </label>
        ) : null}
        <button type="submit" className="btn btn-primary" disabled={!label || create.isPending} data-testid="agent-token-submit">
          {create.isPending ? "Creating…" : "Create agent token"}
        </button>
      </form>
      {error ? <div className="alert alert-error">{errorMessage(error)}</div> : null}
      {note && !error ? <div className="note-ok">{note}</div> : null}
      {created ? (
        <OnceSecret title={`Agent token ${created.id}${created.fleet ? " (fleet)" : ""}`} value={created.token} testid="agent-token-created" onDismiss={() => setCreated(null)}>
          In the node&apos;s environment: <code>BEAMDECK_URL={agentUrl}</code> and <code>BEAMDECK_TOKEN=…</code>.
          {created.fleet ? ` Nodes named ${created.fleetPattern ?? ""} may use it; each name stays bound to it.` : " The first node that connects with it owns it."}
        </OnceSecret>
      ) : null}
      <table className="grid" data-testid="agent-tokens-table">
        <thead>
          <tr>
            <th>Id</th>
            <th>Label</th>
            <th>Scope</th>
            <th>Status</th>
            <th>Last used</th>
            <th>Created</th>
            <th />
          </tr>
        </thead>
        <tbody>
          {(list.data ?? []).map((t) => (
            <tr key={t.id} data-testid="agent-token-row" data-id={t.id} data-fleet={String(t.fleet)} data-bound={t.boundNode ?? ""} data-revoked={String(Boolean(t.revokedAt))}>
              <td className="mono">{t.id}</td>
              <td>{t.label}</td>
              <td data-testid="agent-token-scope">
                {t.fleet ? (
                  <span className="flag flag-fleet" title={`names matching ${t.fleetPattern ?? ""}`}>
                    fleet {t.fleetPattern}
                  </span>
                ) : t.boundNode ? (
                  <span className="mono">{t.boundNode}</span>
                ) : (
                  <span className="muted">unbound (first node to use it)</span>
                )}
              </td>
              <td>
                <TokenState revokedAt={t.revokedAt} now={now} />
              </td>
              <td className="nowrap">
                <When v={t.lastUsedAt} now={now} never="never used" />
              </td>
              <td className="nowrap">
                <When v={t.createdAt} now={now} /> <span className="muted">by {t.createdBy ?? "?"}</span>
              </td>
              <td className="actions-cell">
                <span className="row-actions">
                  {t.revokedAt ? null : (
                    <ConfirmButton
                      testid="agent-token-revoke"
                      pending={revoke.isPending}
                      question={`Revoke agent token ${t.id} (${t.label})?${t.boundNode || t.fleet ? " Its agents are disconnected now." : ""}`}
                      onConfirm={() => revoke.mutate({ id: t.id })}
                    >
                      Revoke
                    </ConfirmButton>
                  )}
                </span>
              </td>
            </tr>
          ))}
          <StatusRow pending={false} empty={list.data?.length === 0} colSpan={7}>
            No agent tokens.
          </StatusRow>
        </tbody>
      </table>
    </div>
  );
}
