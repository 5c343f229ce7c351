import { describe, expect, it } from "vitest";
import { canonicalJson } from "../../server/audit/canonical";
import { entryHash, GENESIS_HASH } from "../../server/audit/chain";

describe("canonical JSON", () => {
  it("sorts keys at every depth and drops undefined", () => {
    expect(canonicalJson({ b: 1, a: { d: [3, { z: 1, y: 2 }], c: undefined } })).toBe('{"a":{"d":[3,{"y":2,"z":1}]},"b":1}');
  });
  it("writes dates as millisecond UTC and bigints as strings", () => {
    expect(canonicalJson({ at: new Date(Date.UTC(2026, 0, 2, 3, 4, 5, 6)), id: 12n })).toBe('{"at":"2026-01-02T03:04:05.006Z","id":"12"}');
  });
});

describe("audit hash chain", () => {
  const content = { at: new Date(0), actor: "user:alice", action: "upgrade.install", node: "n@h", target: null, intentId: null, outcome: null, data: { vsn: "0.1.1" } };
  it("depends on the previous hash and on every field", () => {
    const h = entryHash(GENESIS_HASH, content);
    expect(h).toMatch(/^[0-9a-f]{64}$/);
    expect(entryHash(GENESIS_HASH, { ...content })).toBe(h);
    expect(entryHash("1".repeat(64), content)).not.toBe(h);
    expect(entryHash(GENESIS_HASH, { ...content, actor: "user:mallory" })).not.toBe(h);
    expect(entryHash(GENESIS_HASH, { ...content, data: { vsn: "0.1.2" } })).not.toBe(h);
  });
  it("does not depend on key order of the data (jsonb reorders keys)", () => {
    expect(entryHash(GENESIS_HASH, { ...content, data: { a: 1, b: 2 } })).toBe(entryHash(GENESIS_HASH, { ...content, data: { b: 2, a: 1 } }));
  });
});
