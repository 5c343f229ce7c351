/** Which `fallback` events the server believes (fallbackRefusal): only about an install it sent to that node with a fallback. */
import { describe, expect, it } from "vitest";
import { type FallbackEvent, fallbackRefusal } from "../../server/upgrades/fallback";

const event = (commandId: string, vsn: string): FallbackEvent => ({
  kind: "fallback",
  context: "rolled_back",
  reason: { text: "forged" },
  fallback: { vsn, from: "0.1.0", deadline: 1, durationMs: 5000, commandId, rollbackDigest: null, maxKills: null, acceptFindings: [] },
  rollbackCommandId: null,
});
const sent = { node: "a@h", action: "install", params: { commandId: "c-1", action: "install", vsn: "0.1.1", fallbackMs: 60_000 } };

describe("fallbackRefusal", () => {
  it("believes the install sent to this node with a fallback, for its release", () => {
    expect(fallbackRefusal("a@h", event("c-1", "0.1.1"), sent)).toBeNull();
  });
  it("refuses an unknown command, another node's, a non-install, one without a fallback, another release", () => {
    expect(fallbackRefusal("a@h", event("c-1", "0.1.1"), null)).toBe("no such command");
    expect(fallbackRefusal("b@h", event("c-1", "0.1.1"), sent)).toBe("the command was sent to another node");
    expect(fallbackRefusal("a@h", event("c-1", "0.1.1"), { ...sent, action: "unpack" })).toBe("the command is unpack, not an install");
    expect(fallbackRefusal("a@h", event("c-1", "0.1.1"), { ...sent, params: { vsn: "0.1.1" } })).toBe("the install had no fallback timer");
    expect(fallbackRefusal("a@h", event("c-1", "9.9.9"), sent)).toBe("the install was of 0.1.1, not 9.9.9");
  });
});
