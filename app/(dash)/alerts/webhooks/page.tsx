"use client";
/**
 * Webhooks (admins): where alerts are sent, each delivery's state, attempts
 * and last error. A new webhook's signing secret is shown once.
 */
import { ConfirmButton } from "../../../_components/ConfirmButton";
import { useMutation, useQuery, useQueryClient } from "@tanstack/react-query";
import Link from "next/link";
import { useEffect, useState, type FormEvent } from "react";
import { OnceSecret } from "../../../_components/OnceSecret";
import { RoleRequired } from "../../../_components/RoleHint";
import { dateTime } from "../../../_lib/format";
import { errorMessage, useTRPC } from "../../../_lib/trpc";
import type { RouterOutputs } from "../../../_lib/types";
import { toMs } from "../../../_lib/when";
import { AlertsTabs } from "../_parts/AlertsTabs";
import { DeliveryChip } from "../_parts/Deliveries";
import { StatusRow } from "../../../_components/ListParts";

type Hook = RouterOutputs["alerts"]["webhooks"][number];

function when(v: string | Date | null | undefined): string {
  const ms = toMs(v);
  return ms === null ? "–" : dateTime(ms);
}

function HookPanel({ h }: { h: Hook }) {
  const trpc = useTRPC();
  const queryClient = useQueryClient();
  const remove = useMutation(trpc.alerts.removeWebhook.mutationOptions({ onSuccess: () => void queryClient.invalidateQueries({ queryKey: trpc.alerts.webhooks.queryKey() }) }));
  const values = useMutation(trpc.alerts.setWebhookEventValues.mutationOptions({ onSuccess: () => void queryClient.invalidateQueries({ queryKey: trpc.alerts.webhooks.queryKey() }) }));
  const delivered = h.deliveries.filter((d) => d.status === "delivered").length;
  const failed = h.deliveries.filter((d) => d.status === "failed").length;
  return (
    <div className="panel hook" data-testid="webhook" data-id={h.id} data-url={h.url}>
      <div className="panel-head">
        <h2 className="mono">{h.url}</h2>
        <span className="panel-meta">
          added {when(h.createdAt)} by {h.createdBy ?? "?"}
        </span>
        <span className="spacer" />
        <span className="panel-meta">
          last {h.deliveries.length}: {delivered} delivered{failed ? `, ${failed} failed` : ""}
        </span>
        <ConfirmButton testid="webhook-remove" pending={remove.isPending} question={`Remove the webhook ${h.url}? Pending deliveries to it are dropped.`} onConfirm={() => remove.mutate({ id: h.id })}>
          Remove
        </ConfirmButton>
      </div>
      {remove.error ? <div className="alert alert-error">{errorMessage(remove.error)}</div> : null}
      <label className="inline-field" data-testid="webhook-event-values" data-on={String(h.eventValues)}>
        <input type="checkbox" checked={h.eventValues} disabled={values.isPending} onChange={(e) => values.mutate({ id: h.id, eventValues: e.target.checked })} />
        <span>Send event values: crash report state, messages and exit reasons&apos; data (off: the body&apos;s event is reduced as for a viewer below the process values role)</span>
        {values.error ? <span className="error-inline">{errorMessage(values.error)}</span> : null}
      </label>
      <table className="grid compact">
        <thead>
          <tr>
            <th>Alert</th>
            <th>Status</th>
            <th className="num">Attempts</th>
            <th>Last HTTP</th>
            <th>Last error</th>
            <th>Queued</th>
            <th>Delivered / next try</th>
          </tr>
        </thead>
        <tbody>
          {h.deliveries.map((d) => (
            <tr key={d.id} data-testid="webhook-delivery" data-status={d.status} data-alert={d.alertId}>
              <td>
                <Link className="mono" href={`/alerts?id=${encodeURIComponent(d.alertId)}`}>
                  {d.alertId.slice(0, 10)}…
                </Link>
              </td>
              <td>
                <DeliveryChip d={{ ...d, lastError: null }} />
              </td>
              <td className="num">{d.attempts}</td>
              <td className="mono">{d.lastStatus ?? "–"}</td>
              <td className="mono wrap error-text">{d.lastError ?? ""}</td>
              <td className="nowrap">{when(d.createdAt)}</td>
              <td className="nowrap">{d.status === "delivered" ? when(d.deliveredAt) : d.status === "pending" ? `next ${when(d.nextAttemptAt)}` : "gave up"}</td>
            </tr>
          ))}
          <StatusRow pending={false} empty={h.deliveries.length === 0} colSpan={7}>
            Nothing sent yet: deliveries appear when an alert is raised.
          </StatusRow>
        </tbody>
      </table>
    </div>
  );
}

function AddWebhook() {
  const trpc = useTRPC();
  const queryClient = useQueryClient();
  const [url, setUrl] = useState("");
  const [secret, setSecret] = useState("");
  const [created, setCreated] = useState<{ url: string; secret: string; generated: boolean } | null>(null);
  const add = useMutation(
    trpc.alerts.addWebhook.mutationOptions({
      onSuccess: (r, input) => {
        setCreated({ url: r.url, secret: r.secret, generated: !input.secret });
        setUrl("");
        setSecret("");
        void queryClient.invalidateQueries({ queryKey: trpc.alerts.webhooks.queryKey() });
      },
    }),
  );
  const submit = (e: FormEvent) => {
    e.preventDefault();
    if (!url) return;
    add.mutate({ url, ...(secret ? { secret } : {}) });
  };
  return (
    <div className="panel">
      <div className="panel-head">
        <h2>Add a webhook</h2>
        <span className="panel-meta">POST, JSON with a Slack-compatible text field, signed with HMAC-SHA256, retried with backoff</span>
      </div>
      <form className="form-row" onSubmit={submit} data-testid="webhook-add">
        <label className="inline-field grow">
          <span>URL</span>
          <input className="ctl" type="url" required placeholder="https://hooks.example.com/beamdeck" value={url} onChange={(e) => setUrl(e.target.value)} data-testid="webhook-url" />
        </label>
        <label className="inline-field">
          <span>Secret</span>
          <input className="ctl" placeholder="generated if empty (≥ 16 chars)" value={secret} onChange={(e) => setSecret(e.target.value)} data-testid="webhook-secret" />
        </label>
        <button type="submit" className="btn btn-primary" disabled={!url || add.isPending || (secret.length > 0 && secret.length < 16)} data-testid="webhook-add-submit">
          {add.isPending ? "Adding…" : "Add webhook"}
        </button>
        {add.error ? <span className="error-inline">{errorMessage(add.error)}</span> : null}
      </form>
      {created ? (
        <OnceSecret title={`Signing secret for ${created.url}`} value={created.secret} testid="webhook-created-secret" onDismiss={() => setCreated(null)}>
          Each request carries <code>x-beamdeck-timestamp</code> and <code>x-beamdeck-signature: sha256=HEX</code>, the HMAC-SHA256 of <code>TIMESTAMP.BODY</code> with this secret.
          {created.generated ? " The server generated it." : " It is the one you gave."}
        </OnceSecret>
      ) : null}
    </div>
  );
}

/** Loopback, link-local and private-network targets: refused unless allowed here (docs/operations.md). */
function PrivateTargets() {
  const trpc = useTRPC();
  const queryClient = useQueryClient();
  const settings = useQuery(trpc.alerts.webhookSettings.queryOptions());
  const save = useMutation(trpc.alerts.setWebhookSettings.mutationOptions({ onSuccess: () => void queryClient.invalidateQueries({ queryKey: trpc.alerts.webhookSettings.queryKey() }) }));
  const allowed = settings.data?.allowPrivateTargets ?? false;
  return (
    <label className="inline-field" data-testid="webhook-private-targets" data-allowed={String(allowed)}>
      <input type="checkbox" checked={allowed} disabled={!settings.data || save.isPending} onChange={(e) => save.mutate({ allowPrivateTargets: e.target.checked })} />
      <span>Allow private targets (loopback, 169.254.x.x, 10/8, 172.16/12, 192.168/16, ::1, fc00::/7): they let webhook results probe this server&apos;s network</span>
      {save.error ? <span className="error-inline">{errorMessage(save.error)}</span> : null}
    </label>
  );
}

function Webhooks() {
  const trpc = useTRPC();
  const hooks = useQuery(
    trpc.alerts.webhooks.queryOptions(undefined, {
      refetchInterval: (q) => ((q.state.data ?? []).some((h) => h.deliveries.some((d) => d.status === "pending")) ? 2000 : 15_000),
    }),
  );
  return (
    <>
      <AddWebhook />
      <PrivateTargets />
      {hooks.error ? <div className="alert alert-error">{errorMessage(hooks.error)}</div> : null}
      <div className="stack" data-testid="webhooks">
        {(hooks.data ?? []).map((h) => (
          <HookPanel key={h.id} h={h} />
        ))}
        {hooks.data && hooks.data.length === 0 ? <div className="panel empty">No webhooks: alerts show here and in the badge only.</div> : null}
      </div>
    </>
  );
}

export default function WebhooksPage() {
  useEffect(() => {
    document.title = "Webhooks · beamdeck";
  }, []);
  return (
    <div className="page">
      <div className="page-head">
        <h1>Alerts</h1>
        <span className="page-meta">where alerts are sent</span>
      </div>
      <AlertsTabs />
      <RoleRequired need="admin" what="Managing webhooks">
        <Webhooks />
      </RoleRequired>
    </div>
  );
}
