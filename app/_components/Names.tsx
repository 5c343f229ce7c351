/** Erlang names as operators read them: pids in monospace, Elixir aliases beside atom text. */
import { elixirAlias, mfaText } from "../_lib/format";

export function Pid({ pid }: { pid: string }) {
  return <span className="pid">{pid}</span>;
}

/**
 * A module or registered name. "Elixir.TestListener" shows as TestListener
 * with its atom text beside it (or only in the tooltip when `compact`).
 */
export function Atom({ text, compact = false }: { text: string; compact?: boolean }) {
  const alias = elixirAlias(text);
  if (!alias)
    return (
      <span className="atom" title={text}>
        {text}
      </span>
    );
  return (
    <span className="atom" title={text} data-atom={text}>
      <span className="alias">{alias}</span>
      {compact ? null : <span className="atom-text">{text}</span>}
    </span>
  );
}

/** "mod:fun/arity", Elixir modules in Elixir style; the raw text in the tooltip. */
export function Mfa({ mfa }: { mfa: string | null }) {
  if (!mfa) return <span className="muted">–</span>;
  return (
    <span className="mfa" title={mfa}>
      {mfaText(mfa)}
    </span>
  );
}
