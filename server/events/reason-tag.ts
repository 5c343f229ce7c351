/**
 * An exit reason as text without its values (pure: alert rules use it too).
 * Reasons are printed Erlang terms (docs/protocol.md); a reason like
 * `{{badmatch, V}, Stack}` carries data of the crashed process.
 */
const ATOM = String.raw`[a-z][A-Za-z0-9_@.]*|Elixir\.[A-Za-z0-9_.]+|'(?:[^'\\]|\\.){1,255}'`;
const BARE_ATOM = new RegExp(`^(?:${ATOM})$`);
const TAGGED = new RegExp(`^(\\{{1,2})\\s*(${ATOM})\\s*[,}]`);

/**
 * An exit reason without its values: an atom as it is, a tagged tuple as
 * its tag (`{badmatch,...}`, `{{badmatch,...},...}` for a reason with its
 * stack), anything else hidden.
 */
export function reasonTag(text: string | null): string | null {
  if (text === null) return null;
  const t = text.trim();
  if (BARE_ATOM.test(t)) return t;
  const m = TAGGED.exec(t);
  if (m) return m[1].length === 1 ? `{${m[2]},...}` : `{{${m[2]},...},...}`;
  return "(hidden)";
}
