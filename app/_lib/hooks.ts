"use client";
/** Small React hooks shared by the pages. */
import { useEffect, useRef, useState } from "react";

/** The current time, re-rendering every `everyMs` (for "… ago" labels). */
export function useNow(everyMs = 1000): number {
  const [now, setNow] = useState(() => Date.now());
  useEffect(() => {
    const t = setInterval(() => setNow(Date.now()), everyMs);
    return () => clearInterval(t);
  }, [everyMs]);
  return now;
}

/** `value`, but only after it has stopped changing for `ms`. */
export function useDebounced<T>(value: T, ms: number): T {
  const [v, setV] = useState(value);
  useEffect(() => {
    const t = setTimeout(() => setV(value), ms);
    return () => clearTimeout(t);
  }, [value, ms]);
  return v;
}

/**
 * A function that runs `fn` at most once per `ms`: the first call runs at
 * once, calls during the quiet period collapse into one trailing run.
 */
export function useThrottled(fn: () => void, ms: number): () => void {
  const fnRef = useRef(fn);
  useEffect(() => {
    fnRef.current = fn;
  });
  const state = useRef<{ last: number; timer: ReturnType<typeof setTimeout> | null }>({ last: 0, timer: null });
  useEffect(
    () => () => {
      if (state.current.timer) clearTimeout(state.current.timer);
    },
    [],
  );
  const ref = useRef<() => void>(null);
  ref.current ??= () => {
    const s = state.current;
    if (s.timer) return;
    const wait = s.last + ms - Date.now();
    if (wait <= 0) {
      s.last = Date.now();
      fnRef.current();
      return;
    }
    s.timer = setTimeout(() => {
      s.timer = null;
      s.last = Date.now();
      fnRef.current();
    }, wait);
  };
  return ref.current;
}

/**
 * The last error of a query until data arrives. React Query clears `error`
 * while a query without data refetches; a page that switches its layout on
 * the error would flicker (and remount what refetches again).
 */
export function useStickyError(query: { error: unknown; data: unknown }): unknown {
  const [error, setError] = useState<unknown>(null);
  useEffect(() => {
    if (query.data !== undefined) setError(null);
    else if (query.error) setError(query.error);
  }, [query.error, query.data]);
  return query.data !== undefined ? null : (query.error ?? error);
}
