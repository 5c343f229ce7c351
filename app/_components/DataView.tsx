"use client";
/**
 * Structured data for detail views: pretty JSON, a key/value list, and a
 * before/after diff that names each changed field.
 */
import { useState } from "react";

/** One line of a value: strings bare, the rest as compact JSON. */
export function leafText(v: unknown): string {
  if (v === undefined) return "";
  if (typeof v === "string") return v;
  return JSON.stringify(v);
}

export function Json({ value, testid }: { value: unknown; testid?: string }) {
  return (
    <pre className="code" data-testid={testid}>
      {JSON.stringify(value, null, 2)}
    </pre>
  );
}

/** Short arrays of scalars read better whole: ["killed","shutdown"]. */
function isLeaf(v: unknown): boolean {
  if (v === null || typeof v !== "object") return true;
  if (Array.isArray(v)) return v.length === 0 || (v.length <= 20 && v.every((x) => x === null || typeof x !== "object"));
  return Object.keys(v).length === 0;
}

/** Paths to leaves, in first-seen order: {a:{b:1}} → [["a.b", 1]]. */
export function flatten(v: unknown, prefix = ""): [string, unknown][] {
  if (isLeaf(v)) return [[prefix || "(value)", v]];
  const out: [string, unknown][] = [];
  const entries = Array.isArray(v) ? v.map((x, i) => [String(i), x] as const) : Object.entries(v as Record<string, unknown>);
  for (const [k, x] of entries) out.push(...flatten(x, prefix ? `${prefix}.${k}` : k));
  return out;
}

export type DiffRow = { path: string; before: unknown; after: unknown; change: "changed" | "added" | "removed" | "same" };

export function diffRows(before: unknown, after: unknown): DiffRow[] {
  const b = new Map(flatten(before));
  const a = new Map(flatten(after));
  const paths = [...new Set([...b.keys(), ...a.keys()])];
  return paths.map((path) => {
    const hasB = b.has(path);
    const hasA = a.has(path);
    const change = !hasB ? "added" : !hasA ? "removed" : leafText(b.get(path)) === leafText(a.get(path)) ? "same" : "changed";
    return { path, before: b.get(path), after: a.get(path), change };
  });
}

export function Diff({ before, after, testid = "diff" }: { before: unknown; after: unknown; testid?: string }) {
  const rows = diffRows(before, after);
  const [showSame, setShowSame] = useState(false);
  const same = rows.filter((r) => r.change === "same").length;
  const shown = rows.filter((r) => showSame || r.change !== "same");
  return (
    <div className="diff" data-testid={testid}>
      <table className="grid compact">
        <thead>
          <tr>
            <th>Field</th>
            <th>Before</th>
            <th>After</th>
          </tr>
        </thead>
        <tbody>
          {shown.map((r) => (
            <tr key={r.path} className={`diff-${r.change}`} data-testid="diff-row" data-path={r.path} data-change={r.change}>
              <td className="mono">{r.path}</td>
              <td className="mono diff-before">{r.change === "added" ? <span className="muted">—</span> : leafText(r.before)}</td>
              <td className="mono diff-after">{r.change === "removed" ? <span className="muted">—</span> : leafText(r.after)}</td>
            </tr>
          ))}
          {shown.length === 0 ? (
            <tr>
              <td colSpan={3} className="muted">
                no changes
              </td>
            </tr>
          ) : null}
        </tbody>
      </table>
      {same > 0 ? (
        <button type="button" className="link-btn diff-toggle" onClick={() => setShowSame((s) => !s)}>
          {showSame ? "hide unchanged" : `show ${same} unchanged`}
        </button>
      ) : null}
    </div>
  );
}

/** A flat object as a key/value list (nested values as compact JSON). */
export function KV({ data, testid }: { data: Record<string, unknown>; testid?: string }) {
  const entries = Object.entries(data);
  if (entries.length === 0) return <p className="muted">none</p>;
  return (
    <dl className="kv" data-testid={testid}>
      {entries.map(([k, v]) => (
        <KVRow key={k} k={k} v={v} />
      ))}
    </dl>
  );
}

function KVRow({ k, v }: { k: string; v: unknown }) {
  return (
    <>
      <dt>{k}</dt>
      <dd className="mono wrap" data-key={k}>
        {v === null || v === undefined ? <span className="muted">–</span> : leafText(v)}
      </dd>
    </>
  );
}
