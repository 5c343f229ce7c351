"use client";
/**
 * One bounded list asked of the agent (ETS tables, ports): the head with its
 * counts and sorts, the error, the table and its loading and empty states.
 * Each panel says only which query, which columns and which row attributes.
 */
import type { ReactNode } from "react";
import { elixirAlias } from "../../../../../_lib/format";
import { errorMessage } from "../../../../../_lib/trpc";
import { ListHead } from "./ListHead";

export interface Column<R> {
  head: string;
  num?: boolean;
  cell: (row: R) => ReactNode;
  title?: (row: R) => string;
}

/** A process owning a table or port: its registered name (Elixir alias shown short) and pid. */
export function ownerText(name: string | null, pid: string | null): string {
  return name ? `${elixirAlias(name) ?? name} ${pid ?? ""}` : (pid ?? "-");
}

export function AgentList<S extends string, R extends { id: string }>({
  title,
  testid,
  rowTestid,
  sorts,
  sort,
  onSort,
  list,
  error,
  pending,
  columns,
  rowData,
  empty,
}: {
  title: string;
  /** `X-panel`, `X-table`, `X-count`, `X-sort-…` */
  testid: string;
  rowTestid: string;
  sorts: readonly S[];
  sort: S;
  onSort: (s: S) => void;
  list: { rows: R[]; total: number; partial: boolean; scanned: number } | undefined;
  error: unknown;
  pending: boolean;
  columns: Column<R>[];
  rowData: (row: R) => Record<`data-${string}`, string | number>;
  empty?: (total: number) => ReactNode;
}) {
  return (
    <section className="panel" data-testid={`${testid}-panel`}>
      <ListHead
        title={title}
        testid={testid}
        counts={list ? { shown: list.rows.length, total: list.total, partial: list.partial, scanned: list.scanned } : null}
        sorts={sorts}
        sort={sort}
        onSort={onSort}
      />
      {error ? <div className="panel-foot error-inline">{errorMessage(error)}</div> : null}
      <div className="sys-table-scroll">
        <table className="grid compact" data-testid={`${testid}-table`}>
          <thead>
            <tr>
              {columns.map((c) => (
                <th key={c.head} className={c.num ? "num" : undefined}>
                  {c.head}
                </th>
              ))}
            </tr>
          </thead>
          <tbody>
            {list?.rows.map((r) => (
              <tr key={r.id} data-testid={rowTestid} {...rowData(r)}>
                {columns.map((c) => (
                  <td key={c.head} className={c.num ? "num" : undefined} title={c.title?.(r)}>
                    {c.cell(r)}
                  </td>
                ))}
              </tr>
            ))}
          </tbody>
        </table>
        {pending ? <div className="empty">Loading…</div> : null}
        {list && list.rows.length === 0 && empty ? <div className="empty">{empty(list.total)}</div> : null}
      </div>
    </section>
  );
}
