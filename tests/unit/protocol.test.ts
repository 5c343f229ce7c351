import { assert, describe, expect, it } from "vitest";
import { parseAgentFrame, type AgentFrame } from "../../server/agents/protocol";

/** The parsed frame; a refused frame fails the test with its reason. */
function accepted(text: string): AgentFrame {
  const r = parseAgentFrame(text);
  assert(r.ok, r.ok ? "" : `refused: ${r.reason}`);
  return r.frame;
}

const hello = {
  type: "hello",
  protocol: 1,
  node: "rel_test@host",
  bootId: "0123456789abcdef0123456789abcdef",
  agentVersion: "0.1.0",
  otpRelease: "25",
  ertsVersion: "13.1.5",
  processCount: 42,
  applications: [{ name: "kernel", vsn: "8.5.3" }],
  releases: null,
  capabilities: ["procs"],
  lastEventSeq: 0,
};

const record = {
  pid: "<0.116.0>",
  name: null,
  initialCall: "Elixir.Task.Supervised:invoke_mfa/2",
  currentFunction: "prim_inet:accept0/3",
  mailbox: 0,
  memory: 2848,
  reductions: "9007199254740993",
  status: "waiting",
  links: ["<0.115.0>", "#Port<0.7>"],
  parent: "<0.115.0>",
  ancestors: ["Elixir.RelTest.Supervisor"],
};

describe("agent frame parsing", () => {
  it("accepts a hello and defaults what may be omitted", () => {
    const f = accepted(JSON.stringify(hello));
    assert(f.type === "hello", `a ${f.type} frame`);
    expect(f.node).toBe("rel_test@host");
    expect(f.capabilities).toEqual(["procs"]);
  });

  it("accepts procs deltas; an integer beyond 2^53 (sent as a decimal string) stays exact, a smaller one is a number", () => {
    const small = { ...record, pid: "<0.117.0>", reductions: "9007199254740991" };
    const f = accepted(JSON.stringify({ type: "procs", seq: 1, at: 1, total: 2, upsert: [record, small], mailbox: [["<0.1.0>", 500]], remove: [] }));
    assert(f.type === "procs", `a ${f.type} frame`);
    // A string literal: 9007199254740993 as a JavaScript number is already 2^53 and would compare equal to a rounded value.
    expect(f.upsert[0].reductions).toBe("9007199254740993");
    expect(BigInt(f.upsert[0].reductions)).toBe(2n ** 53n + 1n);
    expect(f.upsert[1].reductions).toBe(Number.MAX_SAFE_INTEGER);
    expect(f.upsert[0].application).toBeNull();
    expect(f.reset).toBe(false);
    expect(f.mailbox[0]).toEqual(["<0.1.0>", 500]);
  });

  it("keeps a big integer exact through the JSON the browser and the CLI get", () => {
    const f = accepted(JSON.stringify({ type: "procs", seq: 1, at: 1, total: 1, upsert: [{ ...record, reductions: "123456789012345678901" }] }));
    assert(f.type === "procs", `a ${f.type} frame`);
    expect(JSON.parse(JSON.stringify(f.upsert[0])).reductions).toBe("123456789012345678901");
  });

  it("refuses a mailbox length or memory beyond 2^53 clearly (not a possible value, never a rounded one)", () => {
    for (const field of ["mailbox", "memory"] as const) {
      const r = parseAgentFrame(JSON.stringify({ type: "procs", seq: 1, at: 1, total: 1, upsert: [{ ...record, [field]: "9007199254740993" }] }));
      assert(!r.ok, `a ${field} of 2^53 + 1 was accepted`);
      expect(r.reason).toMatch(new RegExp(`upsert\\.0\\.${field}: beyond 2\\^53`));
    }
  });

  it("names the problem in a malformed frame, within a close reason's 123 bytes", () => {
    const cases: [string, RegExp][] = [
      ["{not json", /not valid JSON/],
      ["[1,2]", /not a JSON object/],
      ['{"x":1}', /no type/],
      [JSON.stringify({ ...hello, protocol: 2 }), /bad hello frame: protocol/],
      [JSON.stringify({ type: "procs", seq: 1, at: 1, total: 1, upsert: [{ ...record, mailbox: -1 }] }), /bad procs frame: upsert\.0\.mailbox/],
      [JSON.stringify({ type: "nonsense" }), /bad nonsense frame/],
    ];
    for (const [text, reason] of cases) {
      const r = parseAgentFrame(text);
      assert(!r.ok, `accepted: ${text}`);
      expect(r.reason).toMatch(reason);
      expect(Buffer.byteLength(r.reason)).toBeLessThanOrEqual(123);
    }
  });

  it("accepts a supervisor report event", () => {
    const r = parseAgentFrame(
      JSON.stringify({
        type: "event",
        seq: 3,
        bootId: hello.bootId,
        at: 1,
        kind: "supervisor_report",
        context: "child_terminated",
        supervisor: "Elixir.RelTest.Supervisor",
        reason: { text: "killed", truncated: false, atom: "killed" },
        offender: { id: "Elixir.Task", pid: "<0.601.0>", restartType: "permanent" },
      }),
    );
    assert(r.ok, r.ok ? "" : r.reason);
    assert(r.frame.type === "event", `a ${r.frame.type} frame`);
    expect(r.frame.offender?.pid).toBe("<0.601.0>");
  });
});
