/**
 * The per-OTP bench table (tests/bench/agent-otp.ts): a chroot's output is
 * read by its tagged BENCH_JSON lines, and every OTP gets one row, with
 * `-` where a benchmark gave nothing and the reason beside its place.
 */
import { describe, expect, it } from "vitest";
import { benchJson, type OtpBench, tableRows } from "../bench/agent-otp";

const stats = (total: number) => ({ total_ms: total, median_us: 120, p99_us: 900, max_us: 4000 });
const lint = { otp: "27", modules: 1000, stripped: stats(310.5), debug_info: stats(1200.25), compared: 990, same_loops: 968, decoder_errors: 0 };
const preview = {
  goalMs: 2000,
  sizes: [
    { label: 10000, processes: 10012, floorMs: 20, scanMs: 30, previewMs: 40, oldCodeMs: 5 },
    { label: 100000, processes: 100012, floorMs: 210.4, scanMs: 320.6, previewMs: 450.2, oldCodeMs: 50 },
  ],
};

describe("per-OTP agent bench", () => {
  it("finds each module's tagged BENCH_JSON line, and none when it printed none", () => {
    const lines = ["compiling", `BENCH_JSON[beamdeck_agent_lint_bench] ${JSON.stringify(lint)}`, `BENCH_JSON[beamdeck_agent_preview_bench] ${JSON.stringify(preview)}`];
    expect(benchJson("beamdeck_agent_lint_bench", lines)).toEqual(lint);
    expect(benchJson("beamdeck_agent_preview_bench", lines)).toEqual(preview);
    expect(benchJson("beamdeck_agent_bench", lines)).toBeNull();
  });

  it("prints one row per OTP: the 100k preview, the lint both ways, and why a row is empty", () => {
    const rows: OtpBench[] = [
      { otp: "27", where: "trixie chroot", lint, preview, error: null },
      { otp: "29", where: "sid chroot", lint: null, preview: null, error: "exit 2: rebar3 failed" },
    ];
    const [head, r27, r29] = tableRows(rows);
    expect(head).toHaveLength(r27.length);
    const col = (name: string) => head.indexOf(name);
    expect(r27[col("OTP")]).toBe("27");
    expect(r27[col("beams")]).toBe("1000");
    expect(r27[col("lint stripped ms")]).toBe("310.5");
    expect(r27[col("debug_info ms")]).toBe("1200.3");
    expect(r27[col("same loops")]).toBe("968/990");
    expect(r27[col("preview 100k ms")]).toBe("450.2");
    expect(r27[col("scan 100k ms")]).toBe("320.6");
    expect(r29[col("where")]).toBe("sid chroot (exit 2: rebar3 failed)");
    expect(r29[col("preview 100k ms")]).toBe("-");
    expect(r29[col("same loops")]).toBe("-");
  });
});
