/**
 * CSV formula injection in the audit export (issue 10, item 17): a cell a
 * spreadsheet would evaluate (= + - @, tab, CR first) is exported as text.
 */
import { describe, expect, it } from "vitest";
import { toCsv } from "../../server/audit/query";
import { parseCsv } from "../support/csv";

const entry = (over: Record<string, unknown>) => ({
  id: "7",
  at: "2026-12-02T04:00:00.000Z",
  actor: "user:alice",
  action: "auth.login",
  node: null,
  target: null,
  intentId: null,
  outcome: "ok",
  data: { ip: "127.0.0.1" },
  hash: "ab",
  prevHash: "cd",
  ...over,
});

describe("audit CSV export", () => {
  it.each(['=HYPERLINK("http://evil.example","x")', "+cmd|' /C calc'!A0", "-2+3", "@SUM(A1:A2)", "\t=1+1", "\r=1+1"])("keeps %j as text", (evil) => {
    const csv = toCsv([entry({ actor: `user:x`, target: evil, node: evil, action: evil })]);
    const [, row] = parseCsv(csv);
    for (const cell of row) expect(cell, JSON.stringify(row)).not.toMatch(/^[=+\-@\t\r]/);
    // The text itself is kept, after the quote that makes it text.
    expect(row[5]).toBe(`'${evil}`);
  });

  it("leaves ordinary cells as they were", () => {
    const csv = toCsv([entry({ target: "alert:1", node: "a@b" })]);
    const [head, row] = parseCsv(csv);
    expect(head[0]).toBe("id");
    expect(row.slice(0, 6)).toEqual(["7", "2026-12-02T04:00:00.000Z", "user:alice", "auth.login", "a@b", "alert:1"]);
    expect(JSON.parse(row[8])).toEqual({ ip: "127.0.0.1" });
  });
});
