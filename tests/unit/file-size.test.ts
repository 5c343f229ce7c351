/**
 * No source file over 400 lines without a reason written at its top (issue
 * 11): a comment in its first 60 lines containing "over 400 lines"
 * (any case), followed by why, e.g. `Over 400 lines because one gen_statem
 * shares its state record…`. A file that grows past the limit without one
 * fails here, naming the file and its length.
 */
import fs from "node:fs";
import path from "node:path";
import { describe, expect, it } from "vitest";

const ROOT = path.resolve(__dirname, "../..");
const MAX_LINES = 400;
/** Where the reason must be: near the top, where a reader opening the file sees it. */
const HEAD_LINES = 60;
const MARKER = /over 400 lines/i;
const ROOTS = ["app", "server", "agent/src", "agent/test", "agent/bench", "tests", "scripts", "tools", "demo/builder"];
const SOURCE = /\.(ts|tsx|mts|mjs|js|erl|hrl|ex|exs|sh)$/;
const SKIP = new Set(["node_modules", "_build", "generated", ".next", "dist", "fixtures"]);

function sources(dir: string, out: string[] = []): string[] {
  if (!fs.existsSync(dir)) return out;
  for (const e of fs.readdirSync(dir, { withFileTypes: true })) {
    if (SKIP.has(e.name)) continue;
    const p = path.join(dir, e.name);
    if (e.isDirectory()) sources(p, out);
    else if (SOURCE.test(e.name)) out.push(p);
  }
  return out;
}

/** Lines of a file's text (a final newline ends the last line, it does not start another). */
function lineCount(text: string): number {
  return text.length === 0 ? 0 : text.split("\n").length - (text.endsWith("\n") ? 1 : 0);
}

/** Why a file's length is a problem, or null when it is within the limit or says why not. */
function sizeProblem(text: string): string | null {
  const n = lineCount(text);
  if (n <= MAX_LINES) return null;
  const head = text.split("\n").slice(0, HEAD_LINES).join("\n");
  return MARKER.test(head) ? null : `${n} lines and no "Over 400 lines because …" in its first ${HEAD_LINES} lines`;
}

describe("file size", () => {
  it("tells a long file without a reason from one with a reason and from a short one", () => {
    const body = Array.from({ length: MAX_LINES + 1 }, (_, i) => `line ${i}`).join("\n");
    expect(sizeProblem(body)).toMatch(/^401 lines and no/);
    expect(sizeProblem(`%%% Over 400 lines because the cases share one node.\n${body}`)).toBeNull();
    // The reason has to be at the top, not buried at the end.
    expect(sizeProblem(`${body}\n// over 400 lines because of reasons`)).toMatch(/^402 lines/);
    expect(sizeProblem(Array.from({ length: MAX_LINES }, () => "x").join("\n"))).toBeNull();
  });

  it("every source file over 400 lines says why at its top", () => {
    const files = ROOTS.flatMap((r) => sources(path.join(ROOT, r)));
    // The walk found the tree (a wrong root would make this pass vacuously).
    expect(files.length).toBeGreaterThan(300);
    const problems = files.flatMap((f) => {
      const p = sizeProblem(fs.readFileSync(f, "utf8"));
      return p ? [`${path.relative(ROOT, f)}: ${p}`] : [];
    });
    expect(problems).toEqual([]);
  });
});
