"use client";
/** The hash chain's state, prominently: intact, or the first entry that fails. */
import { useQuery } from "@tanstack/react-query";
import { int } from "../../../_lib/format";
import { errorMessage, useTRPC } from "../../../_lib/trpc";

export function ChainStatus({ onOpen }: { onOpen: (id: string) => void }) {
  const trpc = useTRPC();
  const v = useQuery(trpc.audit.verify.queryOptions(undefined, { staleTime: 30_000 }));
  const recheck = (
    <button type="button" className="btn" onClick={() => void v.refetch()} disabled={v.isFetching} data-testid="chain-recheck">
      {v.isFetching ? "Verifying…" : "Verify again"}
    </button>
  );
  if (v.error) {
    return (
      <div className="chain chain-unknown" data-testid="chain-status" data-state="error">
        <strong>Chain status unknown:</strong> {errorMessage(v.error)}
        <span className="spacer" />
        {recheck}
      </div>
    );
  }
  if (!v.data) {
    return (
      <div className="chain chain-unknown" data-testid="chain-status" data-state="checking">
        Verifying the audit chain…
      </div>
    );
  }
  const d = v.data;
  if (d.ok) {
    return (
      <div className="chain chain-ok" data-testid="chain-status" data-state="intact" data-checked={d.checked}>
        <span className="chain-mark" aria-hidden="true">
          ✓
        </span>
        <strong data-testid="chain-status-text">Audit chain intact</strong>
        <span>{int(d.checked)} entries verified: each entry&apos;s hash matches its content and links to the one before.</span>
        <span className="mono muted" title={d.head}>
          head {d.head.slice(0, 12)}…
        </span>
        <span className="spacer" />
        {recheck}
      </div>
    );
  }
  return (
    <div className="chain chain-bad" role="alert" data-testid="chain-status" data-state="broken" data-first-bad={d.firstBad?.id ?? ""}>
      <span className="chain-mark" aria-hidden="true">
        ✗
      </span>
      <strong data-testid="chain-status-text">Audit chain broken at entry #{d.firstBad?.id}</strong>
      <span>
        {d.firstBad?.reason}. {int(d.checked)} entries before it verify; it and everything after it cannot be trusted.
      </span>
      {d.firstBad ? (
        <button type="button" className="link-btn" onClick={() => onOpen(d.firstBad!.id)} data-testid="chain-open-bad">
          open #{d.firstBad.id}
        </button>
      ) : null}
      <span className="spacer" />
      {recheck}
    </div>
  );
}
