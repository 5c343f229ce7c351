/** Small pieces the upgrade panels share: fates, purge chips, pid links, errors. */
import Link from "next/link";
import type { ReactNode } from "react";
import { elixirAlias, mfaText } from "../../../../../_lib/format";
import { readableError } from "../../../../../_lib/error-text";
import { trpcCode } from "../../../../../_lib/trpc";
import type { Fate, When } from "./types";

/** What each fate means, in a few words (the agent's `why` says the rest). */
export const FATE_INFO: Record<Fate | "node_restarts", { label: string; help: string }> = {
  killed: { label: "killed", help: "the purge kills it" },
  blocks_install: { label: "blocks_install", help: "on lingering old code with a soft pre-purge: install_release refuses and installs nothing" },
  badfun_on_next_call: { label: "badfun_on_next_call", help: "holds a fun of the old code: not killed, but its next call of that fun raises badfun" },
  stays_on_old_code: { label: "stays_on_old_code", help: "never reaches the new code; a soft purge leaves it running the old code" },
  may_migrate: { label: "may_migrate", help: "not in a loop: reaches the new code once its current calls return" },
  suspended: { label: "suspended", help: "suspended by release_handler, code loaded, resumed on the new code" },
  unaffected: { label: "unaffected", help: "mentions the module only as data" },
  node_restarts: { label: "node restarts", help: "the relup restarts the emulator: every process stops" },
};

export function FateBadge({ fate, when }: { fate: Fate | "node_restarts"; when?: When }) {
  return (
    <span className={`up-fate up-fate-${fate}`} data-testid="fate" data-fate={fate} data-when={when ?? ""} title={FATE_INFO[fate].help}>
      {FATE_INFO[fate].label}
      {when ? <span className="up-fate-when"> at {when}</span> : null}
    </span>
  );
}

/** A purge setting; brutal is the dangerous one. */
export function PurgeChip({ value, label, changedFrom, defaulted }: { value: string; label?: string; changedFrom?: string | null; defaulted?: boolean }) {
  return (
    <span className={`up-purge up-purge-${value}${changedFrom ? " up-purge-changed" : ""}`} data-purge={value} title={defaulted ? "not written in the appup: the default" : undefined}>
      {label ? <span className="up-purge-label">{label}</span> : null}
      {changedFrom ? <s className="up-purge-was">{changedFrom}</s> : null}
      {value}
      {defaulted ? <span className="up-purge-default"> (default)</span> : null}
    </span>
  );
}

/** A pid, linked to the node page's process drawer. */
export function PidLink({ node, pid, testid = "pid-link" }: { node: string; pid: string; testid?: string }) {
  return (
    <Link className="pid-link up-pid" href={`/nodes/${encodeURIComponent(node)}?pid=${encodeURIComponent(pid)}`} data-testid={testid} data-pid={pid} title="Open this process on the node page">
      {pid}
    </Link>
  );
}

/** A failed call, said in a sentence (app/_lib/error-text.ts), with the server's short words and the code beside it. */
export function ErrorBox({ error, what, testid = "up-error", onDismiss }: { error: unknown; what?: string; testid?: string; onDismiss?: () => void }) {
  if (!error) return null;
  const r = readableError(error);
  return (
    <div className="alert alert-error up-error" role="alert" data-testid={testid} data-code={trpcCode(error) ?? ""} data-error-code={r.code ?? ""}>
      {what ? <strong>{what}: </strong> : null}
      <span data-testid={`${testid}-message`}>{r.sentence}</span>
      {r.detail ? (
        <span className="muted up-error-detail" data-testid={`${testid}-detail`}>
          {" "}
          ({r.detail})
        </span>
      ) : null}
      {r.code ? <span className="up-error-code">{r.code}</span> : null}
      {onDismiss ? (
        <button type="button" className="link-btn up-dismiss" onClick={onDismiss}>
          dismiss
        </button>
      ) : null}
    </div>
  );
}

export function Panel({
  title,
  meta,
  children,
  testid,
  className = "",
  actions,
}: {
  title: ReactNode;
  meta?: ReactNode;
  children: ReactNode;
  testid?: string;
  className?: string;
  actions?: ReactNode;
}) {
  return (
    <section className={`panel up-panel ${className}`} data-testid={testid}>
      <div className="panel-head">
        <h2>{title}</h2>
        {meta ? <span className="panel-meta">{meta}</span> : null}
        {actions ? <div className="up-panel-actions">{actions}</div> : null}
      </div>
      <div className="up-panel-body">{children}</div>
    </section>
  );
}

/**
 * How a process started, readable: an anonymous fun's generated name
 * ("Elixir.RelTest:-start/2-fun-0-/0") becomes "fun in RelTest.start/2".
 */
export function initialCallText(mfa: string): string {
  const m = /^(.*):-([^/]+)\/(\d+)-fun-\d+-\/\d+$/.exec(mfa);
  if (!m) return mfaText(mfa);
  const alias = elixirAlias(m[1]);
  return `fun in ${alias ? `${alias}.` : `${m[1]}:`}${m[2]}/${m[3]}`;
}

export function InitialCall({ mfa }: { mfa: string | null | undefined }) {
  if (!mfa) return <span className="muted">–</span>;
  return (
    <span className="mfa" title={`initial call ${mfa}`}>
      {initialCallText(mfa)}
    </span>
  );
}

/** "1 process" / "3 processes". */
export function procs(n: number): string {
  return `${n} process${n === 1 ? "" : "es"}`;
}
