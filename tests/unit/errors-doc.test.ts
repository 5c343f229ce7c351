/** docs/errors.md explains every code of the error catalogue and every CLI exit code, and nothing else. */
import fs from "node:fs";
import path from "node:path";
import { describe, expect, it } from "vitest";
import { EXIT } from "../../server/cli/errors";
import { ERRORS, errorDoc, type ErrorCode } from "../../server/errors";

const doc = fs.readFileSync(path.join(__dirname, "..", "..", "docs", "errors.md"), "utf8");
/** The anchors GitHub makes of the `###` headings: lowercased, spaces to dashes. */
const anchors = [...doc.matchAll(/^### (.+)$/gm)].map((m) => m[1].trim().toLowerCase().replace(/\s+/g, "-"));

describe("docs/errors.md", () => {
  it("has one section per server error code, and one per CLI exit code", () => {
    const codes = Object.keys(ERRORS).map((c) => c.toLowerCase());
    const exits = Object.values(EXIT).map((n) => `exit-${n}`);
    expect([...anchors].sort()).toEqual([...codes, ...exits].sort());
    expect(new Set(anchors).size).toBe(anchors.length);
  });

  it("links each code to its own section", () => {
    for (const code of Object.keys(ERRORS) as ErrorCode[]) {
      const [file, anchor] = errorDoc(code).split("#");
      expect(file).toBe("docs/errors.md");
      expect(anchors, code).toContain(anchor);
    }
  });
});
