/** The CLI's deadline: durations, `--timeout` taken out of any command, and the one line said at the deadline. */
import { describe, expect, it } from "vitest";
import { parseDuration, takeTimeout, waitingFor, withDeadline } from "../../server/cli/deadline";
import { CliError, EXIT } from "../../server/cli/errors";

describe("CLI deadlines", () => {
  it("reads durations and refuses nonsense as a usage error", () => {
    expect(parseDuration("30s")).toBe(30_000);
    expect(parseDuration("5m")).toBe(300_000);
    expect(parseDuration("1h")).toBe(3_600_000);
    expect(parseDuration("250ms")).toBe(250);
    expect(parseDuration("12")).toBe(12_000);
    for (const bad of ["soon", "0", "-1s", "5d", "25h", ""]) {
      expect(() => parseDuration(bad), bad).toThrow(CliError);
      try {
        parseDuration(bad);
      } catch (e) {
        expect((e as CliError).exitCode, bad).toBe(EXIT.usage);
      }
    }
  });

  it("takes --timeout out of a command's arguments wherever it is", () => {
    expect(takeTimeout(["upgrade", "unpack", "n@h", "1.1.0", "--timeout", "2m"])).toEqual({ argv: ["upgrade", "unpack", "n@h", "1.1.0"], timeoutMs: 120_000 });
    expect(takeTimeout(["--timeout=10s", "nodes", "--json"])).toEqual({ argv: ["nodes", "--json"], timeoutMs: 10_000 });
    expect(takeTimeout(["nodes"])).toEqual({ argv: ["nodes"], timeoutMs: null });
    expect(takeTimeout(["events", "--", "--timeout", "1s"])).toEqual({ argv: ["events", "--", "--timeout", "1s"], timeoutMs: null });
    expect(() => takeTimeout(["nodes", "--timeout"])).toThrow(/needs a duration/);
  });

  it("ends a command at its deadline with exit 6, saying what it waited for and what is known", async () => {
    const never = () =>
      new Promise<number>(() => {
        waitingFor({ what: "unpack of 1.1.0 on n@h", known: async () => "the server recorded ok at 2026-12-02 00:44:29.494 UTC (command c-1)" });
        waitingFor({ what: "the server's reply to upgrades.unpack" });
      });
    const t0 = Date.now();
    const e = await withDeadline(300, never).catch((x: unknown) => x);
    expect(e).toBeInstanceOf(CliError);
    expect((e as CliError).exitCode).toBe(EXIT.timedOut);
    expect((e as CliError).message).toBe(
      "unpack of 1.1.0 on n@h: the server recorded ok at 2026-12-02 00:44:29.494 UTC (command c-1); waiting for the server's reply to upgrades.unpack; no answer within 300 ms (--timeout to wait longer)",
    );
    expect(Date.now() - t0).toBeLessThan(5000);
  });

  it("a known fact that cannot be read in time is left out, not waited for", async () => {
    const never = () =>
      new Promise<number>(() => {
        waitingFor({ what: "install of 0.1.1 on n@h", known: () => new Promise<string>(() => {}) });
      });
    const e = (await withDeadline(100, never).catch((x: unknown) => x)) as CliError;
    expect(e.message).toBe("install of 0.1.1 on n@h: no answer within 100 ms (--timeout to wait longer)");
  });

  it("a command that finishes in time returns its own exit code; `server` has no deadline", async () => {
    expect(await withDeadline(1000, async () => 3)).toBe(3);
    expect(await withDeadline(null, () => new Promise<number>((r) => setTimeout(() => r(0), 50)))).toBe(0);
  });
});
