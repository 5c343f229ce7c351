/**
 * Split a migration script into statements, so each can run inside one
 * transaction on both adapters (PGlite's prepared-statement path takes one
 * statement at a time). Understands quotes, dollar quotes and comments.
 */
export function splitSqlStatements(script: string): string[] {
  const out: string[] = [];
  let start = 0;
  let i = 0;
  const n = script.length;
  while (i < n) {
    const c = script[i];
    const next = script[i + 1];
    if (c === "-" && next === "-") {
      const end = script.indexOf("\n", i);
      i = end === -1 ? n : end + 1;
    } else if (c === "/" && next === "*") {
      const end = script.indexOf("*/", i + 2);
      i = end === -1 ? n : end + 2;
    } else if (c === "'" || c === '"') {
      i = skipQuoted(script, i, c);
    } else if (c === "$") {
      const tag = /^\$[A-Za-z_]*\$/.exec(script.slice(i))?.[0];
      if (tag) {
        const end = script.indexOf(tag, i + tag.length);
        i = end === -1 ? n : end + tag.length;
      } else i += 1;
    } else if (c === ";") {
      push(out, script.slice(start, i));
      i += 1;
      start = i;
    } else i += 1;
  }
  push(out, script.slice(start));
  return out;
}

function skipQuoted(s: string, i: number, q: string): number {
  let j = i + 1;
  while (j < s.length) {
    if (s[j] === q) {
      if (s[j + 1] === q) j += 2;
      else return j + 1;
    } else j += 1;
  }
  return j;
}

function push(out: string[], stmt: string): void {
  const withoutComments = stmt.replace(/--[^\n]*\n?/g, "").trim();
  if (withoutComments.length > 0) out.push(stmt.trim());
}
