/** tools/loadgen: its command line (caps, loopback only, durations), the backoff, the top-k selection. */
import { describe, expect, it } from "vitest";
import { backoffMs } from "../../tools/loadgen/endpoints";
import { MAX_AGENTS, parseArgs } from "../../tools/loadgen/options";
import { topIndexes } from "../../tools/loadgen/process-template";

const base = ["--token", "t0k"];

describe("loadgen options", () => {
  it("takes several loopback endpoints, an http base becoming its /agent URL", () => {
    const o = parseArgs(["--url", "ws://127.0.0.1:4000/agent,http://localhost:4001,ws://[::1]:4002/agent", "--agents", "200", "--procs=10000", "--duration", "90s", ...base]);
    expect(o.url).toEqual(["ws://127.0.0.1:4000/agent", "ws://localhost:4001/agent", "ws://[::1]:4002/agent"]);
    expect([o.agents, o.procs, o.duration]).toEqual([200, 10_000, 90]);
  });

  it("refuses an endpoint that is not this machine, naming it", () => {
    expect(() => parseArgs(["--url", "ws://127.0.0.1:4000/agent,ws://10.1.2.3:4000/agent", ...base])).toThrow(/ws:\/\/10\.1\.2\.3:4000\/agent is not a loopback address/);
    expect(() => parseArgs(["--url", "ws://example.com/agent", ...base])).toThrow(/not a loopback address/);
  });

  it("enforces the caps on agents, agents × procs and time", () => {
    const url = ["--url", "ws://127.0.0.1:1/agent", ...base];
    expect(() => parseArgs([...url, "--agents", String(MAX_AGENTS + 1)])).toThrow(/--agents/);
    expect(() => parseArgs([...url, "--agents", "1000", "--procs", "1000000"])).toThrow(/agents × procs is capped/);
    expect(() => parseArgs([...url, "--duration", "2h"])).toThrow(/--duration: a duration like 60s/);
    expect(() => parseArgs([...url, "--duration", "61m"])).toThrow(/at most 3600 s/);
    expect(parseArgs([...url, "--duration", "1500ms"]).duration).toBe(1.5);
  });

  it("names an unknown option and a missing value", () => {
    expect(() => parseArgs(["--url", "ws://127.0.0.1:1/agent", ...base, "--agnets", "3"])).toThrow(/unknown option --agnets/);
    expect(() => parseArgs(["--url"])).toThrow(/--url needs a value/);
  });
});

describe("loadgen backoff", () => {
  it("starts at 500 ms, doubles, stops at 30 s, within ±20 %", () => {
    expect([0, 1, 2].map((f) => backoffMs(f, () => 0.5))).toEqual([500, 1000, 2000]);
    expect(backoffMs(20, () => 0.5)).toBe(30_000);
    expect(backoffMs(0, () => 0)).toBe(400);
    expect(backoffMs(0, () => 0.999999)).toBe(600);
  });
});

describe("topIndexes", () => {
  it("matches a full sort, biggest first, ties by higher index", () => {
    const values = Array.from({ length: 5000 }, (_v, i) => (i * 7919) % 97);
    const expected = values
      .map((v, i) => [v, i])
      .sort((a, b) => b[0] - a[0] || b[1] - a[1])
      .slice(0, 10)
      .map(([, i]) => i);
    expect(topIndexes(values.length, 10, (i) => values[i])).toEqual(expected);
    expect(topIndexes(3, 10, (i) => values[i])).toEqual([2, 1, 0].sort((a, b) => values[b] - values[a] || b - a));
  });
});
