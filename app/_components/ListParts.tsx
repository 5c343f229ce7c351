"use client";
/** Pieces every list page shares: its loading/empty row, its foot with "Load older", its select filters. */
import type { ReactNode } from "react";

/** The one row a table shows instead of rows: "Loading…" while pending, else `empty` when there are none. */
export function StatusRow({ pending, empty, colSpan, testid, children }: { pending: boolean; empty: boolean; colSpan: number; testid?: string; children: ReactNode }) {
  if (!pending && !empty) return null;
  return (
    <tr>
      <td colSpan={colSpan} className="empty" data-testid={pending ? undefined : testid}>
        {pending ? "Loading…" : children}
      </td>
    </tr>
  );
}

/** The foot of a keyset-paged list: how many rows are shown, and "Load older". */
export function ListFoot({
  testid,
  count,
  hasMore,
  loading,
  loaded,
  endText,
  onMore,
}: {
  testid: string;
  count: ReactNode;
  hasMore: boolean;
  loading: boolean;
  loaded: boolean;
  endText: string;
  onMore: () => void;
}) {
  return (
    <div className="panel-foot list-foot">
      <span className="muted" data-testid={`${testid}-count`}>
        {count}
      </span>
      {hasMore ? (
        <button type="button" className="btn" disabled={loading} onClick={onMore} data-testid={`${testid}-more`}>
          {loading ? "Loading…" : "Load older"}
        </button>
      ) : loaded ? (
        <span className="muted">{endText}</span>
      ) : null}
    </div>
  );
}

/** A labelled <select> with "any" first; the current value stays listed even if unknown. */
export function SelectFilter({ label, value, options, onChange, testid }: { label: string; value: string; options: readonly string[]; onChange: (v: string | null) => void; testid: string }) {
  return (
    <label className="inline-field">
      <span>{label}</span>
      <select className="ctl" value={value} onChange={(e) => onChange(e.target.value || null)} data-testid={testid}>
        <option value="">any</option>
        {[...new Set([...options, ...(value ? [value] : [])])].map((k) => (
          <option key={k} value={k}>
            {k}
          </option>
        ))}
      </select>
    </label>
  );
}
