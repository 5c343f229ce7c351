"use client";
/**
 * One audit entry: who, what, when, its hashes, the intent it answers or
 * the outcomes that answer it, and its data made readable — a field diff
 * for before/after, purge choices, predicted versus actual kills.
 */
import { useQuery } from "@tanstack/react-query";
import Link from "next/link";
import { Diff, Json, KV, leafText } from "../../../_components/DataView";
import { Drawer, Section } from "../../../_components/Drawer";
import { Pid } from "../../../_components/Names";
import { dateTime } from "../../../_lib/format";
import { errorMessage, useTRPC } from "../../../_lib/trpc";
import type { RouterOutputs } from "../../../_lib/types";
import { type Data, isRecord } from "./summary";

type Entry = RouterOutputs["audit"]["get"]["entry"];

/** Where an entry's target lives in the dashboard, if anywhere. */
function targetHref(target: string): string | null {
  const [kind, id] = [target.slice(0, target.indexOf(":")), target.slice(target.indexOf(":") + 1)];
  if (!id) return null;
  if (kind === "alert") return `/alerts?id=${encodeURIComponent(id)}`;
  if (kind === "rule") return "/alerts/rules";
  if (kind === "webhook") return "/alerts/webhooks";
  if (kind === "user" || kind === "api" || kind === "agent") return "/admin";
  return null;
}

export function OutcomeChip({ outcome, pending, intent }: { outcome: string | null; pending?: boolean; intent?: boolean }) {
  if (pending) {
    return (
      <span className="outcome outcome-none" data-testid="no-outcome" title="The intent was written, but no outcome followed: the server stopped, or the agent has not reported back yet.">
        no outcome
      </span>
    );
  }
  if (outcome) return <span className={`outcome outcome-${outcome}`}>{outcome}</span>;
  return intent ? <span className="outcome outcome-intent">intent</span> : <span className="muted">–</span>;
}

function PidList({ pids, testid }: { pids: unknown; testid: string }) {
  const list = Array.isArray(pids) ? pids.map(String) : [];
  return (
    <span className="chips" data-testid={testid} data-count={list.length}>
      {list.length ? list.map((p) => <Pid key={p} pid={p} />) : <span className="muted">none</span>}
    </span>
  );
}

function Choices({ title, value }: { title: string; value: unknown }) {
  if (!value || typeof value !== "object" || Object.keys(value).length === 0) return null;
  return (
    <Section title={title}>
      <table className="grid compact fit" data-testid="audit-purge">
        <tbody>
          {Object.entries(value).map(([m, c]) => (
            <tr key={m}>
              <td className="mono">{m}</td>
              <td className="mono">{leafText(c)}</td>
            </tr>
          ))}
        </tbody>
      </table>
    </Section>
  );
}

/** The database may reorder JSON keys (jsonb); show the releases first. */
const ORDER = ["fromVsn", "toVsn", "upgradeId", "commandId"];
const rank = (k: string) => (ORDER.includes(k) ? ORDER.indexOf(k) : ORDER.length);

/** An upgrade step's data: intent (releases, purge choices, prediction, preview) or outcome (result, predicted vs actual). */
function UpgradeData({ d }: { d: Data }) {
  const pva = d.predictedVsActual as { predictedAndDied?: unknown; predictedButAlive?: unknown; diedUnpredicted?: unknown } | null | undefined;
  const rest = Object.fromEntries(
    Object.entries(d)
      .filter(([k]) => !["purge", "prePurge", "predictedKills", "preview", "predictedVsActual", "result", "error"].includes(k))
      .sort(([a], [b]) => rank(a) - rank(b)),
  );
  const err = d.error as { code?: string; message?: string } | null | undefined;
  return (
    <>
      <KV data={rest} />
      <Choices title="Purge choices" value={d.purge} />
      <Choices title="Pre-purge choices" value={d.prePurge} />
      {"predictedKills" in d ? (
        <Section title="Predicted kills (accepted with this step)">
          <PidList pids={d.predictedKills} testid="audit-predicted" />
        </Section>
      ) : null}
      {pva ? (
        <Section title="Predicted versus actual" testid="audit-pva">
          <dl className="kv">
            <dt>predicted, died</dt>
            <dd>
              <PidList pids={pva.predictedAndDied} testid="pva-predicted-died" />
            </dd>
            <dt>predicted, alive</dt>
            <dd>
              <PidList pids={pva.predictedButAlive} testid="pva-predicted-alive" />
            </dd>
            <dt className={Array.isArray(pva.diedUnpredicted) && pva.diedUnpredicted.length ? "error-text" : ""}>died, not predicted</dt>
            <dd className={Array.isArray(pva.diedUnpredicted) && pva.diedUnpredicted.length ? "error-text" : ""}>
              <PidList pids={pva.diedUnpredicted} testid="pva-unpredicted" />
            </dd>
          </dl>
        </Section>
      ) : null}
      {err ? (
        <Section title="Error">
          <div className="alert alert-error">
            {err.code ? <span className="mono">{err.code}: </span> : null}
            {err.message}
          </div>
        </Section>
      ) : null}
      {d.result !== undefined && d.result !== null ? (
        <Section title="Result, as the agent reported it">
          <Json value={d.result} />
        </Section>
      ) : null}
      {d.preview ? (
        <details className="raw" open>
          <summary>Impact preview the operator saw</summary>
          <Json value={d.preview} testid="audit-preview" />
        </details>
      ) : null}
    </>
  );
}

function EntryData({ e }: { e: Entry }) {
  const d = isRecord(e.data) ? e.data : null;
  if (!d || Object.keys(d).length === 0) return <p className="muted">no data</p>;
  if ("before" in d && "after" in d) {
    const rest = Object.fromEntries(Object.entries(d).filter(([k]) => k !== "before" && k !== "after"));
    return (
      <>
        <Diff before={d.before} after={d.after} testid="audit-diff" />
        {Object.keys(rest).length ? <KV data={rest} /> : null}
      </>
    );
  }
  if (e.action.startsWith("upgrade.")) return <UpgradeData d={d} />;
  return <KV data={d} testid="audit-data" />;
}

function EntryLink({ e, onOpen }: { e: Entry; onOpen: (id: string) => void }) {
  return (
    <button type="button" className="link-btn mono" onClick={() => onOpen(e.id)} data-testid="audit-linked-entry" data-id={e.id}>
      #{e.id} {e.action} {e.outcome ?? "intent"} · {dateTime(Date.parse(e.at))} · {e.actor}
    </button>
  );
}

export function AuditDrawer({ id, onClose, onOpen }: { id: string; onClose: () => void; onOpen: (id: string) => void }) {
  const trpc = useTRPC();
  const q = useQuery(trpc.audit.get.queryOptions({ id }, { refetchInterval: 10_000 }));
  const e = q.data?.entry;
  const isIntent = Boolean(e && e.action.startsWith("upgrade.") && e.intentId === null && e.outcome === null);
  const pending = Boolean(isIntent && q.data && q.data.outcomes.length === 0);
  return (
    <Drawer
      testid="audit-drawer"
      onClose={onClose}
      title={
        <>
          <span className="mono">#{id}</span>
          {e ? <strong className="mono">{e.action}</strong> : null}
          {e ? <OutcomeChip outcome={e.outcome} pending={pending} intent={isIntent} /> : null}
        </>
      }
    >
      {q.error ? <div className="alert alert-error">{errorMessage(q.error)}</div> : null}
      {q.isPending ? <p className="muted">Loading…</p> : null}
      {e && q.data ? (
        <div data-testid="audit-detail" data-id={e.id} data-action={e.action}>
          {pending ? (
            <div className="alert alert-warn" data-testid="audit-pending">
              No outcome recorded. The intent was written before the step was sent; nothing came back — the server stopped in between, or the agent has not reported yet. When the agent reports, the
              outcome is appended and linked here.
            </div>
          ) : null}
          <dl className="kv">
            <dt>When</dt>
            <dd>{dateTime(Date.parse(e.at))}</dd>
            <dt>Actor</dt>
            <dd className="mono" data-testid="audit-detail-actor">
              {e.actor}
            </dd>
            <dt>Action</dt>
            <dd className="mono">{e.action}</dd>
            <dt>Node</dt>
            <dd className="mono">{e.node ?? "–"}</dd>
            <dt>Target</dt>
            <dd className="mono">
              {e.target && targetHref(e.target) ? (
                <Link href={targetHref(e.target)!} data-testid="audit-target-link">
                  {e.target}
                </Link>
              ) : (
                (e.target ?? "–")
              )}
            </dd>
            <dt>Outcome</dt>
            <dd>
              <OutcomeChip outcome={e.outcome} pending={pending} intent={isIntent} />
            </dd>
          </dl>
          {q.data.intent ? (
            <Section title="Outcome of the intent">
              <EntryLink e={q.data.intent} onOpen={onOpen} />
              <div className="nested">
                <EntryData e={q.data.intent} />
              </div>
            </Section>
          ) : null}
          <Section title={q.data.intent ? "This outcome" : "Data"} testid="audit-entry-data">
            <EntryData e={e} />
          </Section>
          {q.data.outcomes.length ? (
            <Section title={`Outcome${q.data.outcomes.length > 1 ? "s" : ""}`}>
              {q.data.outcomes.map((o) => (
                <div key={o.id} className="nested">
                  <EntryLink e={o} onOpen={onOpen} />
                  <EntryData e={o} />
                </div>
              ))}
            </Section>
          ) : null}
          <Section title="Hash chain">
            <dl className="kv hashes">
              <dt>hash</dt>
              <dd className="mono wrap">{e.hash}</dd>
              <dt>previous</dt>
              <dd className="mono wrap">{e.prevHash}</dd>
            </dl>
          </Section>
          <details className="raw">
            <summary>Raw data</summary>
            <Json value={e.data} />
          </details>
        </div>
      ) : null}
    </Drawer>
  );
}
