"use client";
/**
 * Resizable columns for a CSS-grid table: the header cells are measured when
 * a drag starts, so the first drag turns the stylesheet's fractions into
 * pixels and later drags change one column only. Widths stay for the tab's
 * session (sessionStorage), per table.
 */
import { useCallback, useEffect, useState, type PointerEvent as ReactPointerEvent } from "react";

const MIN_WIDTH = 48;
const MAX_WIDTH = 1200;

export function useColumnWidths(storageKey: string, columns: number) {
  const [widths, setWidths] = useState<number[] | null>(null);

  useEffect(() => {
    try {
      const saved = JSON.parse(sessionStorage.getItem(storageKey) ?? "null") as unknown;
      if (Array.isArray(saved) && saved.length === columns && saved.every((w) => typeof w === "number")) setWidths(saved as number[]);
    } catch {
      /* nothing saved, or junk: the stylesheet's widths */
    }
  }, [storageKey, columns]);

  /** Start a drag on the handle of column `index` (inside its header cell). */
  const startResize = useCallback(
    (index: number, e: ReactPointerEvent<HTMLElement>) => {
      e.preventDefault();
      e.stopPropagation();
      const head = (e.currentTarget as HTMLElement).closest("[data-resizable-head]");
      if (!head) return;
      const start = Array.from(head.children, (c) => c.getBoundingClientRect().width).slice(0, columns);
      const x0 = e.clientX;
      const move = (ev: PointerEvent) => {
        const next = [...start];
        next[index] = Math.round(Math.min(MAX_WIDTH, Math.max(MIN_WIDTH, start[index] + ev.clientX - x0)));
        setWidths(next);
      };
      const up = () => {
        window.removeEventListener("pointermove", move);
        window.removeEventListener("pointerup", up);
        setWidths((w) => {
          if (w) sessionStorage.setItem(storageKey, JSON.stringify(w));
          return w;
        });
      };
      window.addEventListener("pointermove", move);
      window.addEventListener("pointerup", up);
    },
    [storageKey, columns],
  );

  /** The grid template for header and rows (undefined: the stylesheet's). */
  const template = widths ? widths.map((w) => `${w}px`).join(" ") : undefined;
  return { template, startResize };
}
