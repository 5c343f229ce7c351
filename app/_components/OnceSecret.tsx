"use client";
/**
 * A secret the server returns once (a generated password, an API or agent
 * token, a webhook secret): shown until dismissed, with a copy button. The
 * server keeps only a hash; nobody can show it again.
 */
import { useState, type ReactNode } from "react";

export function OnceSecret({ title, value, testid, onDismiss, children }: { title: string; value: string; testid: string; onDismiss: () => void; children?: ReactNode }) {
  const [copied, setCopied] = useState(false);
  const copy = async () => {
    try {
      await navigator.clipboard.writeText(value);
      setCopied(true);
    } catch {
      setCopied(false);
    }
  };
  return (
    <div className="once" role="status" data-testid={testid}>
      <div className="once-head">
        <strong>{title}</strong>
        <span className="once-warn">Shown once — copy it now. The server keeps only a hash.</span>
        <span className="spacer" />
        <button type="button" className="btn btn-ghost" onClick={onDismiss} data-testid={`${testid}-dismiss`}>
          Done
        </button>
      </div>
      <div className="once-value">
        <code data-testid={`${testid}-value`}>{value}</code>
        <button type="button" className="btn" onClick={() => void copy()}>
          {copied ? "Copied" : "Copy"}
        </button>
      </div>
      {children ? <div className="once-usage">{children}</div> : null}
    </div>
  );
}
