"use client";
/** The head of a bounded list asked of the agent: title, "N of M (first K scanned)", and the sort buttons. */
import { int } from "../../../../../_lib/format";

export function ListHead<S extends string>({
  title,
  testid,
  counts,
  sorts,
  sort,
  onSort,
}: {
  title: string;
  testid: string;
  counts: { shown: number; total: number; partial: boolean; scanned: number } | null;
  sorts: readonly S[];
  sort: S;
  onSort: (s: S) => void;
}) {
  return (
    <div className="panel-head">
      <h2>{title}</h2>
      <span className="panel-meta" data-testid={`${testid}-count`}>
        {counts ? `${counts.shown} of ${int(counts.total)}${counts.partial ? ` (first ${int(counts.scanned)} scanned)` : ""}` : ""}
      </span>
      <div className="spacer" />
      <fieldset className="seg" aria-label={`Sort ${title} by`}>
        {sorts.map((s) => (
          <button key={s} type="button" className={s === sort ? "seg-btn active" : "seg-btn"} onClick={() => onSort(s)} data-testid={`${testid}-sort-${s}`}>
            {s}
          </button>
        ))}
      </fieldset>
    </div>
  );
}
