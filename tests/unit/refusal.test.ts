import { describe, expect, it } from "vitest";
import { parseAgentFrame } from "../../server/agents/protocol";
import { REFUSAL_LOG_LINES, refusedEventRecord, shouldLogRefusal } from "../../server/agents/refusal";
import { sequenceEvents } from "../../server/events/sequence";

const BOOT = "b0075eed".repeat(4);

function refuse(frame: Record<string, unknown>) {
  const r = parseAgentFrame(JSON.stringify(frame));
  if (r.ok) throw new Error("expected a refusal");
  return r;
}

describe("a refused event", () => {
  it("becomes a refused gap record at its own seq, so the contiguous prefix moves past it", () => {
    const r = refuse({ type: "event", seq: 7, bootId: BOOT, at: 1, kind: "probe", reason: "plain" });
    expect(r.type).toBe("event");
    const rec = refusedEventRecord(r.json, r.reason);
    expect(rec).toMatchObject({ seq: 7, bootId: BOOT, kind: "event_gap", context: "refused", from: 7, to: 7 });
    expect(rec?.reason?.text).toBe(`event seq 7 (kind probe) of boot ${BOOT} refused by the server: bad event frame: reason: Invalid input: expected object, received string`);
    if (!rec) throw new Error("no record");
    expect(sequenceEvents(6, BOOT, [rec]).acked).toBe(7);
  });

  it("is not accounted for when its seq or boot cannot be read, nor for other frame types", () => {
    expect(refusedEventRecord(refuse({ type: "event", seq: "7", bootId: BOOT }).json, "x")).toBeNull();
    expect(refusedEventRecord(refuse({ type: "event", seq: 7, bootId: "short" }).json, "x")).toBeNull();
    expect(refusedEventRecord(refuse({ type: "procs", seq: 7, bootId: BOOT }).json, "x")).toBeNull();
    const notJson = parseAgentFrame("{");
    expect(notJson.ok ? null : refusedEventRecord(notJson.json, notJson.reason)).toBeNull();
  });

  it("logs the first lines of a socket, then every thousandth", () => {
    expect(shouldLogRefusal(1)).toBe(true);
    expect(shouldLogRefusal(REFUSAL_LOG_LINES)).toBe(true);
    expect(shouldLogRefusal(REFUSAL_LOG_LINES + 1)).toBe(false);
    expect(shouldLogRefusal(2000)).toBe(true);
  });
});
