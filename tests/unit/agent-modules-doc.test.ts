/**
 * docs/agent-modules.md lists every module of the agent, one row each: a
 * module added to agent/src without a row, or a row left behind by a
 * removed module, fails here.
 */
import fs from "node:fs";
import path from "node:path";
import { describe, expect, it } from "vitest";

const ROOT = path.resolve(__dirname, "../..");
const DOC = path.join(ROOT, "docs/agent-modules.md");

function sourceModules(): string[] {
  return fs
    .readdirSync(path.join(ROOT, "agent/src"))
    .filter((f) => f.endsWith(".erl"))
    .map((f) => f.slice(0, -".erl".length))
    .sort();
}

/** The module named in the first cell of each table row. */
function documentedModules(doc: string): string[] {
  const rows = doc.split("\n").filter((line) => /^\| `beamdeck_agent[a-z0-9_]*` \|/.test(line));
  return rows.map((line) => (line.match(/^\| `([a-z0-9_]+)` \|/) as RegExpMatchArray)[1]).sort();
}

describe("docs/agent-modules.md", () => {
  const doc = fs.readFileSync(DOC, "utf8");

  it("has one row for every module in agent/src and none for others", () => {
    const sources = sourceModules();
    expect(sources.length).toBeGreaterThan(30);
    expect(documentedModules(doc)).toEqual(sources);
  });

  it("refers to no file outside the repository", () => {
    expect(doc).not.toMatch(/\/work\/|\/home\/|\/tmp\/|file:\/\/|\]\(\.\.\/\.\.\//);
  });
});
