"use client";
/**
 * The live process table, windowed on the server. The browser holds only
 * the rows in view (plus overscan): it asks `procs.window` for a block-
 * aligned slice, and sizes the scroll area from `matched`, so 100k
 * processes cost a few dozen DOM rows and one small request per scroll stop.
 */
import { onEnterOrSpace } from "../../../../_lib/keys";
import { keepPreviousData, useQuery } from "@tanstack/react-query";
import { useVirtualizer } from "@tanstack/react-virtual";
import { useEffect, useRef, useState } from "react";
import { Atom, Mfa, Pid } from "../../../../_components/Names";
import { bytes, int } from "../../../../_lib/format";
import { useDebounced } from "../../../../_lib/hooks";
import { errorMessage, useTRPC } from "../../../../_lib/trpc";
import type { ProcessRow, SortKey } from "../../../../_lib/types";
import { useColumnWidths } from "./useColumnWidths";

const ROW_HEIGHT = 26;
/** Windows start and end on multiples of this, so small scrolls reuse a request. */
const BLOCK = 50;
const OVERSCAN_ROWS = 25;

interface View {
  sort: SortKey;
  desc: boolean;
  filter: string;
}

const COLUMNS: { key: SortKey | null; label: string; num?: boolean; title?: string }[] = [
  { key: "pid", label: "PID" },
  { key: "name", label: "Name / initial call" },
  { key: null, label: "Current function" },
  { key: null, label: "Status" },
  { key: "mailbox", label: "Mailbox", num: true, title: "message queue length" },
  { key: "memory", label: "Memory", num: true },
  { key: "reductions", label: "Reductions", num: true },
];

function mailboxClass(n: number): string {
  if (n >= 10_000) return "mbox mbox-hot";
  if (n >= 100) return "mbox mbox-warm";
  if (n > 0) return "mbox mbox-some";
  return "mbox";
}

/** An unnamed process: its label (the module its anonymous fun runs) before the initial call. */
function NameCell({ p }: { p: ProcessRow }) {
  if (p.name) return <Atom text={p.name} compact />;
  if (!p.label) return <Mfa mfa={p.initialCall} />;
  return (
    <span title={`started from ${p.initialCall ?? "a fun"}; runs ${p.label}`} data-testid="proc-label" data-label={p.label}>
      <Atom text={p.label} compact /> <span className="muted">fun</span>
    </span>
  );
}

function Row({ p, index, top, selected, onSelect, template }: { p: ProcessRow; index: number; top: number; selected: boolean; onSelect: (pid: string) => void; template?: string }) {
  return (
    // biome-ignore lint/a11y/useSemanticElements: a virtualized ARIA grid (rows are positioned divs); a <table> cannot hold them
    <div
      className={selected ? "ptable-row selected" : "ptable-row"}
      style={{ transform: `translateY(${top}px)`, gridTemplateColumns: template }}
      data-testid="proc-row"
      data-pid={p.pid}
      data-index={index}
      role="row"
      aria-selected={selected}
      tabIndex={0}
      onClick={() => onSelect(p.pid)}
      onKeyDown={onEnterOrSpace(() => onSelect(p.pid))}
    >
      <div className="c-pid">
        <Pid pid={p.pid} />
      </div>
      <div className="c-name" data-testid="proc-name">
        <NameCell p={p} />
        {p.stackMatch.length ? (
          <span className="flag" data-testid="proc-stack-match" data-modules={p.stackMatch.join(" ")} title="the filter matched a module on this process's stack or its callback module">
            runs {p.stackMatch.map((m) => m.replace(/^Elixir\./, "")).join(", ")}
          </span>
        ) : null}
        {p.oldCode ? (
          <span
            className="flag flag-warn"
            data-testid="proc-old-code"
            data-modules={p.oldCodeModules.join(" ")}
            title={`still running old code of ${p.oldCodeModules.join(", ")}: the next load of it kills this process (brutal purge) or is blocked (soft purge)`}
          >
            old code
          </span>
        ) : null}
      </div>
      <div className="c-fun">
        <Mfa mfa={p.currentFunction} />
      </div>
      <div className="c-status">
        <span className={`pstatus pstatus-${p.status}`}>{p.status}</span>
      </div>
      <div className="num c-num" data-testid="proc-mailbox" data-value={p.mailbox}>
        <span className={mailboxClass(p.mailbox)}>{int(p.mailbox)}</span>
      </div>
      <div className="num c-num" data-testid="proc-memory" data-value={p.memory}>
        {bytes(p.memory)}
      </div>
      <div className="num c-num" data-testid="proc-reductions" data-value={p.reductions}>
        {int(p.reductions)}
      </div>
    </div>
  );
}

export function ProcessTable({ node, selected, onSelect }: { node: string; selected: string | null; onSelect: (pid: string) => void }) {
  const trpc = useTRPC();
  const [sort, setSort] = useState<{ key: SortKey; desc: boolean }>({ key: "mailbox", desc: true });
  const [filterText, setFilterText] = useState("");
  const filter = useDebounced(filterText.trim(), 200);
  const view: View = { sort: sort.key, desc: sort.desc, filter };
  const viewKey = `${view.sort}|${view.desc}|${view.filter}`;

  const scrollRef = useRef<HTMLDivElement>(null);
  const [count, setCount] = useState(0);
  const { template, startResize } = useColumnWidths("beamdeck.ptable.widths", COLUMNS.length);
  const virtualizer = useVirtualizer({
    count,
    getScrollElement: () => scrollRef.current,
    estimateSize: () => ROW_HEIGHT,
    overscan: 8,
  });
  const items = virtualizer.getVirtualItems();
  const first = items.length ? items[0].index : 0;
  const last = items.length ? items[items.length - 1].index : 0;
  const offset = Math.floor(Math.max(0, first - OVERSCAN_ROWS) / BLOCK) * BLOCK;
  const end = Math.max(offset + BLOCK * 2, Math.ceil((last + 1 + OVERSCAN_ROWS) / BLOCK) * BLOCK);
  const limit = Math.min(1000, end - offset);

  const input = { node, sort: view.sort, desc: view.desc, filter: view.filter || undefined, offset, limit };
  const win = useQuery(
    trpc.procs.window.queryOptions(input, {
      // Windows scrolled past are dropped soon: a long scroll must not pile them up.
      gcTime: 15_000,
      // While the next window loads, keep the last one of the same view (never
      // another sort's rows, which would flash wrong numbers).
      placeholderData: (prev, prevQuery) => {
        const prevInput = (prevQuery?.queryKey[1] as { input?: typeof input } | undefined)?.input;
        if (!prevInput) return undefined;
        const same = prevInput.node === input.node && prevInput.sort === input.sort && prevInput.desc === input.desc && (prevInput.filter ?? "") === (input.filter ?? "");
        return same ? keepPreviousData(prev) : undefined;
      },
    }),
  );
  const data = win.data;

  // The scroll height follows `matched`, and holds still while a window loads.
  useEffect(() => {
    if (data) setCount(data.matched);
  }, [data]);

  // A new view starts at its top.
  const lastViewKey = useRef(viewKey);
  useEffect(() => {
    if (lastViewKey.current !== viewKey) {
      lastViewKey.current = viewKey;
      scrollRef.current?.scrollTo({ top: 0 });
    }
  }, [viewKey]);

  const rowAt = (i: number): ProcessRow | undefined => {
    if (!data) return undefined;
    const k = i - data.offset;
    return k >= 0 && k < data.rows.length ? data.rows[k] : undefined;
  };

  const clickSort = (key: SortKey) => {
    setSort((s) => (s.key === key ? { key, desc: !s.desc } : { key, desc: key !== "pid" && key !== "name" }));
  };

  return (
    <section className="panel ptable" data-testid="proc-table" data-sort={view.sort} data-desc={String(view.desc)} data-filter={view.filter}>
      <div className="panel-head">
        <h2>Processes</h2>
        <span className="panel-meta" data-testid="proc-table-count" data-matched={data?.matched ?? ""} data-total={data?.total ?? ""}>
          {data ? (view.filter ? `${data.partial ? "≥ " : ""}${int(data.matched)} of ${int(data.total)} match${data.partial ? " (still scanning)" : ""}` : `${int(data.total)} processes`) : ""}
        </span>
        {data?.stackSearch ? (
          <span className="panel-meta muted" data-testid="proc-stack-scan" data-scanned={data.stackSearch.scanned} data-total={data.stackSearch.total}>
            stacks and callback modules: scanned {int(data.stackSearch.scanned)} of {int(data.stackSearch.total)}
            {data.stackSearch.partial ? " (time budget spent)" : ""}
          </span>
        ) : null}
        <div className="spacer" />
        <input
          className="filter"
          type="search"
          placeholder="Filter: name, module, pid…"
          aria-label="Filter processes by name or module"
          data-testid="proc-filter"
          value={filterText}
          onChange={(e) => setFilterText(e.target.value)}
        />
      </div>
      {/* biome-ignore lint/a11y/useSemanticElements lint/a11y/useFocusableInteractive: the head row of the virtualized ARIA grid below (its sortable headers take the focus) */}
      <div className="ptable-head" role="row" data-resizable-head style={{ gridTemplateColumns: template }}>
        {COLUMNS.map((c, i) => {
          const active = c.key !== null && c.key === sort.key;
          const cls = `${c.num ? "num " : ""}${c.key ? "sortable" : ""}${active ? " active" : ""}`;
          return (
            // biome-ignore lint/a11y/useSemanticElements: a header of the virtualized ARIA grid
            <div
              key={c.label}
              className={cls}
              title={c.title}
              role="columnheader"
              aria-sort={active ? (sort.desc ? "descending" : "ascending") : undefined}
              data-testid={c.key ? `sort-${c.key}` : undefined}
              tabIndex={c.key ? 0 : -1}
              onClick={c.key ? () => clickSort(c.key as SortKey) : undefined}
              onKeyDown={c.key ? onEnterOrSpace(() => clickSort(c.key as SortKey)) : undefined}
            >
              {c.label}
              {active ? <span className="sort-arrow">{sort.desc ? " ▼" : " ▲"}</span> : null}
              {/* biome-ignore lint/a11y/useSemanticElements lint/a11y/useKeyWithClickEvents: a pointer-drag handle inside a header cell (an <hr> cannot be dragged); its click only stops the header's sort, the keyboard sorts through the header itself */}
              <span
                className="col-resize"
                role="separator"
                aria-orientation="vertical"
                aria-label={`Resize ${c.label}`}
                data-testid={`resize-${i}`}
                onPointerDown={(e) => startResize(i, e)}
                onClick={(e) => e.stopPropagation()}
              />
            </div>
          );
        })}
      </div>
      {/* biome-ignore lint/a11y/useSemanticElements: virtualized rows (react-virtual) are positioned divs, not table rows */}
      <div className="ptable-scroll" ref={scrollRef} data-testid="proc-table-scroll" role="grid" aria-rowcount={count}>
        <div className="ptable-inner" style={{ height: virtualizer.getTotalSize() }}>
          {items.map((it) => {
            const p = rowAt(it.index);
            if (!p) {
              return (
                <div key={it.key} className="ptable-row loading" style={{ transform: `translateY(${it.start}px)` }} data-testid="proc-row-loading" data-index={it.index}>
                  <div className="c-pid">
                    <span className="skeleton" />
                  </div>
                </div>
              );
            }
            return <Row key={it.key} p={p} index={it.index} top={it.start} selected={p.pid === selected} onSelect={onSelect} template={template} />;
          })}
        </div>
        {data && data.matched === 0 ? (
          <div className="empty" data-testid="proc-table-empty">
            {view.filter ? `No process matches “${view.filter}”.` : "No processes reported yet."}
          </div>
        ) : null}
      </div>
      {win.error ? <div className="panel-foot error-inline">{errorMessage(win.error)}</div> : null}
    </section>
  );
}
