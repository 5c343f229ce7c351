"use client";
/**
 * Supervision trees, one per application, collapsible per application and
 * supervisor. Processes linked to a process but not supervised (e.g. the
 * `Task.async` connection handlers of the forum's listener) hang under the
 * process that owns them, marked. The tree is flattened and virtualized;
 * mailbox and memory badges are read from the live table for the rows in
 * view only.
 */
import { onEnterOrSpace } from "../../../../_lib/keys";
import { useQueries, useQuery } from "@tanstack/react-query";
import { useVirtualizer } from "@tanstack/react-virtual";
import { useMemo, useRef, useState } from "react";
import { Atom, Mfa, Pid } from "../../../../_components/Names";
import { bytes, compact } from "../../../../_lib/format";
import { errorMessage, useTRPC } from "../../../../_lib/trpc";
import type { LinkedProcess, TreeApp, TreeNode } from "../../../../_lib/types";
import { AsOf } from "../../../../_components/AsOf";

const ROW_HEIGHT = 24;
const SYSTEM_APPS = new Set([
  "kernel",
  "stdlib",
  "sasl",
  "compiler",
  "elixir",
  "logger",
  "iex",
  "mix",
  "eex",
  "crypto",
  "public_key",
  "ssl",
  "inets",
  "runtime_tools",
  "os_mon",
  "mnesia",
  "asn1",
  "tools",
  "observer",
  "wx",
  "debugger",
  "xmerl",
  "syntax_tools",
  "parsetools",
  "beamdeck_agent",
]);
/** Children shown per supervisor before a "show more" row. */
const PAGE = 100;
/** Supervisors with more children than this start collapsed. */
const AUTO_COLLAPSE = 40;

type Row =
  | { kind: "app"; key: string; depth: number; app: TreeApp; open: boolean; expandable: boolean }
  | { kind: "node"; key: string; depth: number; node: TreeNode; open: boolean; expandable: boolean }
  | { kind: "linked"; key: string; depth: number; proc: LinkedProcess; open: boolean; expandable: boolean }
  | { kind: "more"; key: string; depth: number; parentKey: string; hidden: number }
  | { kind: "note"; key: string; depth: number; text: string };

/** Registered name, else the child id; a dynamic child ("undefined" id) by its module. */
function label(n: TreeNode): string {
  if (n.name) return n.name;
  if (n.id === "undefined" && Array.isArray(n.modules) && n.modules.length > 0) return n.modules[0];
  return n.id;
}

/** Open unless the user closed it; big supervisors start closed. */
function isOpen(toggles: Map<string, boolean>, key: string, dflt: boolean): boolean {
  return toggles.get(key) ?? dflt;
}

function flatten(apps: TreeApp[], toggles: Map<string, boolean>, shown: Map<string, number>): Row[] {
  const rows: Row[] = [];
  const linkedRows = (procs: LinkedProcess[], parentKey: string, depth: number) => {
    for (const l of procs) {
      const key = `${parentKey}~${l.pid}`;
      const expandable = l.linked.length > 0;
      const open = isOpen(toggles, key, true);
      rows.push({ kind: "linked", key, depth, proc: l, open, expandable });
      if (open && expandable) linkedRows(l.linked, key, depth + 1);
    }
  };
  const nodeRows = (n: TreeNode, key: string, depth: number) => {
    const expandable = n.children.length > 0 || n.linked.length > 0;
    const open = isOpen(toggles, key, n.children.length <= AUTO_COLLAPSE);
    rows.push({ kind: "node", key, depth, node: n, open, expandable });
    if (!open) return;
    linkedRows(n.linked, key, depth + 1);
    const limit = shown.get(key) ?? PAGE;
    n.children.slice(0, limit).forEach((c, i) => {
      nodeRows(c, `${key}/${c.pid ?? `${c.id}#${i}`}`, depth + 1);
    });
    if (n.children.length > limit) rows.push({ kind: "more", key: `${key}/+more`, depth: depth + 1, parentKey: key, hidden: n.children.length - limit });
    if (n.truncated) rows.push({ kind: "note", key: `${key}/+trunc`, depth: depth + 1, text: "more children exist; the agent capped this list" });
  };
  for (const app of apps) {
    const key = `app:${app.name}`;
    const open = isOpen(toggles, key, true);
    rows.push({ kind: "app", key, depth: 0, app, open, expandable: Boolean(app.root) });
    if (open && app.root) nodeRows(app.root, `${key}/${app.root.pid ?? "root"}`, 1);
  }
  return rows;
}

function rowPid(r: Row): string | null {
  if (r.kind === "node") return r.node.pid;
  if (r.kind === "linked") return r.proc.pid;
  return null;
}

export function SupervisionTree({ node, selected, onSelect }: { node: string; selected: string | null; onSelect: (pid: string) => void }) {
  const trpc = useTRPC();
  const tree = useQuery(trpc.procs.tree.queryOptions({ node }, { refetchInterval: 5000 }));
  const [toggles, setToggles] = useState(() => new Map<string, boolean>());
  const [shown, setShown] = useState(() => new Map<string, number>());
  const [showSystem, setShowSystem] = useState(false);

  const apps = useMemo(() => {
    const all = tree.data?.apps ?? [];
    // The node's own applications first; OTP's, Elixir's, the agent's and
    // library applications (no tree) after them, hidden unless asked for.
    const isSystem = (a: TreeApp) => SYSTEM_APPS.has(a.name) || !a.root;
    const own = all.filter((a) => !isSystem(a));
    return showSystem ? [...own, ...all.filter(isSystem)] : own;
  }, [tree.data, showSystem]);
  const hiddenSystem = (tree.data?.apps.length ?? 0) - apps.length;
  const rows = useMemo(() => flatten(apps, toggles, shown), [apps, toggles, shown]);

  const scrollRef = useRef<HTMLDivElement>(null);
  const virtualizer = useVirtualizer({ count: rows.length, getScrollElement: () => scrollRef.current, estimateSize: () => ROW_HEIGHT, overscan: 10 });
  const items = virtualizer.getVirtualItems();

  // Badges for the rows in view, from the live process table.
  const pids = Array.from(new Set(items.map((it) => rowPid(rows[it.index])).filter((p): p is string => p !== null)));
  const badges = useQueries({
    queries: pids.map((pid) => trpc.procs.get.queryOptions({ node, pid }, { staleTime: 2000, gcTime: 30_000 })),
  });
  const recordOf = new Map(pids.map((pid, i) => [pid, badges[i]?.data ?? null]));

  const toggle = (key: string, open: boolean) => setToggles((t) => new Map(t).set(key, !open));

  const renderBadges = (pid: string | null) => {
    if (!pid) return null;
    const rec = recordOf.get(pid);
    const old = tree.data?.oldCode[pid];
    const oldFlag = old ? (
      <span className="flag flag-warn" data-testid="tree-old-code" data-modules={old.join(" ")} title={`still running old code of ${old.join(", ")}`}>
        old code
      </span>
    ) : null;
    if (!rec) return oldFlag;
    return (
      <span className="badges">
        {oldFlag}
        <span
          className={rec.mailbox > 0 ? (rec.mailbox >= 1000 ? "badge badge-mbox hot" : "badge badge-mbox warm") : "badge badge-mbox"}
          title={`mailbox: ${rec.mailbox} messages`}
          data-testid="tree-mailbox"
          data-value={rec.mailbox}
        >
          ✉ {compact(rec.mailbox)}
        </span>
        <span className="badge badge-mem" title={`memory: ${rec.memory} bytes`} data-testid="tree-memory" data-value={rec.memory}>
          {bytes(rec.memory)}
        </span>
      </span>
    );
  };

  const renderRow = (r: Row) => {
    const indent = { paddingLeft: 6 + r.depth * 16 };
    const caret = (open: boolean, expandable: boolean, key: string) =>
      expandable ? (
        <button
          type="button"
          className="caret"
          aria-label={open ? "collapse" : "expand"}
          aria-expanded={open}
          onClick={(e) => {
            e.stopPropagation();
            toggle(key, open);
          }}
        >
          {open ? "▾" : "▸"}
        </button>
      ) : (
        <span className="caret-space" />
      );
    switch (r.kind) {
      case "app":
        return (
          <div className="tree-row tree-app" style={indent} data-testid="tree-app" data-app={r.app.name}>
            {caret(r.open, r.expandable, r.key)}
            <span className="kind kind-app">app</span>
            <strong>{r.app.name}</strong>
            {r.app.vsn ? <span className="muted mono">{r.app.vsn}</span> : null}
            {!r.app.root ? <span className="muted">no supervision tree</span> : null}
          </div>
        );
      case "node": {
        const n = r.node;
        const sup = n.kind === "supervisor";
        return (
          <div
            className={`tree-row${n.pid && n.pid === selected ? " selected" : ""}${n.pid ? " clickable" : ""}`}
            style={indent}
            data-testid="tree-node"
            data-pid={n.pid ?? ""}
            data-kind={n.kind}
            data-name={label(n)}
            data-timeout={n.timeout ? "true" : undefined}
            role="treeitem"
            aria-selected={Boolean(n.pid && n.pid === selected)}
            tabIndex={n.pid ? 0 : -1}
            onClick={n.pid ? () => onSelect(n.pid as string) : undefined}
            onKeyDown={n.pid ? onEnterOrSpace(() => onSelect(n.pid as string)) : undefined}
          >
            {caret(r.open, r.expandable, r.key)}
            <span className={sup ? "kind kind-sup" : "kind kind-worker"} title={n.kind}>
              {sup ? "sup" : "wrk"}
            </span>
            <span className="tree-label">
              <Atom text={label(n)} compact />
            </span>
            {n.pid ? <Pid pid={n.pid} /> : <span className="muted">(not running)</span>}
            {n.timeout ? (
              <span className="flag flag-warn" data-testid="tree-timeout" title="which_children did not answer in time (suspended during an upgrade?); children unknown">
                timed out
              </span>
            ) : null}
            {sup && r.expandable && !r.open ? (
              <span className="count" title={`${n.children.length} children`}>
                {n.children.length}
              </span>
            ) : null}
            {renderBadges(n.pid)}
          </div>
        );
      }
      case "linked": {
        const l = r.proc;
        return (
          <div
            className={`tree-row tree-linked clickable${l.pid === selected ? " selected" : ""}`}
            style={indent}
            data-testid="tree-node"
            data-pid={l.pid}
            data-kind="linked"
            data-linked="true"
            role="treeitem"
            aria-selected={l.pid === selected}
            tabIndex={0}
            onClick={() => onSelect(l.pid)}
            onKeyDown={onEnterOrSpace(() => onSelect(l.pid))}
          >
            {caret(r.open, r.expandable, r.key)}
            <span className="flag flag-linked" title="linked to the process above, not supervised: a supervisor will not restart or stop it">
              linked · not supervised
            </span>
            <span className="tree-label">{l.name ? <Atom text={l.name} compact /> : <Mfa mfa={l.initialCall} />}</span>
            <Pid pid={l.pid} />
            {renderBadges(l.pid)}
          </div>
        );
      }
      case "more":
        return (
          <div className="tree-row tree-more" style={indent}>
            <span className="caret-space" />
            <button type="button" className="link-btn" onClick={() => setShown((s) => new Map(s).set(r.parentKey, (s.get(r.parentKey) ?? PAGE) + PAGE))}>
              show {Math.min(PAGE, r.hidden)} more of {r.hidden} hidden children
            </button>
          </div>
        );
      case "note":
        return (
          <div className="tree-row tree-more muted" style={indent}>
            <span className="caret-space" />
            {r.text}
          </div>
        );
    }
  };

  return (
    <section className="panel tree" data-testid="supervision-tree">
      <div className="panel-head">
        <h2>Supervision tree</h2>
        <span className="panel-meta">{tree.data?.at ? <AsOf at={tree.data.at} /> : ""}</span>
        <div className="spacer" />
        <label className="check">
          <input type="checkbox" checked={showSystem} onChange={(e) => setShowSystem(e.target.checked)} />
          system apps{hiddenSystem > 0 && !showSystem ? ` (${hiddenSystem})` : ""}
        </label>
      </div>
      <div className="tree-scroll" ref={scrollRef}>
        <div style={{ height: virtualizer.getTotalSize(), position: "relative" }}>
          {items.map((it) => (
            <div key={it.key} className="tree-slot" style={{ transform: `translateY(${it.start}px)` }}>
              {renderRow(rows[it.index])}
            </div>
          ))}
        </div>
        {tree.data && rows.length === 0 ? <div className="empty">No supervision tree reported{hiddenSystem > 0 ? " outside OTP's own applications" : ""}.</div> : null}
        {tree.isPending ? <div className="empty">Loading…</div> : null}
      </div>
      {tree.error ? <div className="panel-foot error-inline">{errorMessage(tree.error)}</div> : null}
    </section>
  );
}
