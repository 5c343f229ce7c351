/**
 * The README's agent config table is made from the agent's config schema
 * (beamdeck_agent_config:doc_table/0): a setting added, removed or given a
 * new default or range in the schema must show up in the README.
 */
import { execFileSync } from "node:child_process";
import fs from "node:fs";
import path from "node:path";
import { describe, expect, it } from "vitest";

const ROOT = path.resolve(__dirname, "../..");
const EBIN = path.join(ROOT, "agent/_build/default/lib/beamdeck_agent/ebin");

function schemaTable(): string {
  return execFileSync("erl", ["-noshell", "-pa", EBIN, "-eval", "io:setopts([{encoding, unicode}]), io:put_chars(beamdeck_agent_config:doc_table()), halt()."], { encoding: "utf8", timeout: 30_000 });
}

describe("README agent config table", () => {
  it("is the table the config schema makes", () => {
    const table = schemaTable();
    expect(table).toMatch(/^\| setting \| env \| default \| valid \| meaning \|\n/);
    expect(table).toContain("| `budget_10k` |");
    const readme = fs.readFileSync(path.join(ROOT, "README.md"), "utf8");
    expect(readme).toContain(table);
  });
});
