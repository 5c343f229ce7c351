"use client";
/**
 * The fallback timer on this page (issue 15): the install's optional "fall
 * back automatically after" field, and while the installed release is not
 * permanent, the line saying when the agent rolls it back by itself.
 */
import { useEffect, useId, useState } from "react";
import { timeLeft } from "../../../../../_lib/duration";
import type { Upgrade } from "./types";

export function FallbackField({ value, onChange, error }: { value: string; onChange: (v: string) => void; error: string | null }) {
  const id = useId();
  return (
    <div className="up-confirm">
      <label htmlFor={id}>Fall back automatically after (optional: 20m, 1200s; empty for none)</label>
      <input
        id={id}
        className="input up-confirm-input"
        data-testid="install-fallback"
        value={value}
        onChange={(e) => onChange(e.target.value)}
        autoComplete="off"
        spellCheck={false}
        placeholder="e.g. 20m"
      />
      {error ? (
        <p className="up-needs-unpack" data-testid="install-fallback-error">
          {error}
        </p>
      ) : null}
    </div>
  );
}

/** The agent's deadline, counted down each second (the node's clock; the server only relays it). */
export function FallbackLine({ upgrade }: { upgrade: Upgrade | undefined }) {
  const f = upgrade?.fallback;
  const [now, setNow] = useState(() => Date.now());
  const pending = Boolean(f && f.outcome === null && upgrade?.status === "installed");
  useEffect(() => {
    if (!pending) return;
    const t = setInterval(() => setNow(Date.now()), 1000);
    return () => clearInterval(t);
  }, [pending]);
  if (!f || !pending) return null;
  const at = new Date(f.deadline).toLocaleTimeString();
  return (
    <p className="muted" data-testid="fallback-line">
      {f.deadline > now
        ? `Falls back to ${f.from} at ${at} unless made permanent (${timeLeft(f.deadline - now)} left).`
        : `Falls back to ${f.from} since ${at} unless made permanent: due, waiting for the node to report it.`}
    </p>
  );
}
