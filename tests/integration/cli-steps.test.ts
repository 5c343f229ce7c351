/**
 * Issue 18, "Nothing hangs": an upgrade step run from the CLI always ends.
 *
 * The server here holds each step request's reply for REPLY_DELAY_MS after
 * the command was sent (BEAMDECK_TEST_DELAY_MUTATION_REPLY_MS), so a fast
 * unpack's result is published before the CLI has the reply: the race that
 * hung `upgrade unpack` for 15 minutes when the CLI subscribed only after the
 * reply and polled a history that has no unpack in it. A step held on the
 * node (release_handler suspended) shows the deadline, and re-running the
 * step afterwards reports the recorded outcome instead of running it twice.
 * Claims are checked on the node itself (release_handler) and in the audit log.
 */
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { stopAll, type BeamNode } from "../../tools/beam/nodes";
import { startAgentNode, waitConnected } from "../support/beam-node";
import { startServer, type TestServer } from "../support/server";

const REPLY_DELAY_MS = 20_000;
let server: TestServer;
let node: BeamNode;

beforeAll(async () => {
  server = await startServer({ dataDir: fs.mkdtempSync(path.join(os.tmpdir(), "beamdeck-steps-")), env: { BEAMDECK_TEST_DELAY_MUTATION_REPLY_MS: String(REPLY_DELAY_MS) } });
  ({ node } = await startAgentNode(server));
  await waitConnected(server, node.name, true, 60_000);
});
afterAll(async () => {
  await stopAll();
  await server?.stop();
});

/** The release's status as release_handler itself reports it. */
const releaseStatus = (vsn: string) => node.rpc(`case [S || {_, V, _, S} <- release_handler:which_releases(), V =:= "${vsn}"] of [S] -> S; [] -> none end`);

async function unpackIntents(vsn: string) {
  const r = await server.cli(["audit", "--json", "--action", "upgrade.unpack"]);
  expect(r.code, r.stderr).toBe(0);
  const rows = JSON.parse(r.stdout) as { id: string; intentId: string | null; outcome: string | null; data: { toVsn?: string } | null }[];
  return rows.filter((e) => e.intentId === null && e.data?.toVsn === vsn).map((i) => ({ ...i, outcomes: rows.filter((o) => o.intentId === i.id).map((o) => o.outcome) }));
}

describe("upgrade steps from the CLI end", () => {
  it("reports a step whose result is published before the server's reply arrives, without waiting for the reply", async () => {
    const t0 = Date.now();
    // Bounded: the old CLI never returned here (its own limit was 15 min); the helper kills it at 90 s.
    const r = await server.cli(["upgrade", "unpack", node.name, "0.1.1"], {}, { timeoutMs: 90_000 });
    const took = Date.now() - t0;
    // stderr has the node's progress lines only.
    expect(r.stderr.split("\n").filter((l) => l && !l.startsWith("  unpack_release: "))).toEqual([]);
    expect(r.stdout.trim()).toBe(`unpacked 0.1.1 on ${node.name}`);
    expect(r.code).toBe(0);
    expect(await releaseStatus("0.1.1")).toBe("unpacked");
    // It did not need the (held) reply: the outcome came by the subscription or the poll.
    expect(took).toBeLessThan(REPLY_DELAY_MS);
  });

  it("a step held on the node ends at --timeout with exit 6 saying what is known; re-running it reports the recorded outcome, run once", async () => {
    // Hold release_handler so the unpack waits on the node.
    await node.rpc(
      `RH = whereis(release_handler), Me = self(), H = spawn(fun() -> true = erlang:suspend_process(RH), Me ! held, receive lift -> erlang:resume_process(RH) end end), register(bd_rh_holder, H), receive held -> ok after 5000 -> timeout end`,
    );
    let lifted = false;
    try {
      const first = await server.cli(["upgrade", "unpack", node.name, "0.1.2", "--timeout", "8s"], {}, { timeoutMs: 60_000 });
      expect(first.code, first.stderr).toBe(6);
      // Progress lines ("  step: message") and then one line of failure.
      const errors = first.stderr.split("\n").filter((l) => l && !l.startsWith("  "));
      expect(errors).toHaveLength(1);
      const line = errors[0];
      expect(line).toMatch(
        new RegExp(
          `^beamdeck: unpack of 0\\.1\\.2 on ${node.name.replace(/[.]/g, "\\.")}: (sent to the node|running on the node) .*, no result yet \\(command c-[0-9a-f-]{36}\\); .*no answer within 8 s \\(--timeout to wait longer\\)$`,
        ),
      );
      const commandId = /\(command (c-[0-9a-f-]{36})\)/.exec(line)?.[1];
      expect(commandId).toBeDefined();

      // Still held: a re-run follows the same command instead of failing as busy or sending a second unpack.
      const again = server.cli(["upgrade", "unpack", node.name, "0.1.2", "--json"], {}, { timeoutMs: 90_000 });
      await new Promise((r) => setTimeout(r, 3000));
      await node.rpc(`bd_rh_holder ! lift, ok`);
      lifted = true;
      const second = await again;
      expect(second.code, second.stderr).toBe(0);
      expect(JSON.parse(second.stdout)).toEqual({ ok: true, commandId, repeated: true, message: null });
      expect(await releaseStatus("0.1.2")).toBe("unpacked");

      // Done: once more, the recorded outcome, said as such.
      const third = await server.cli(["upgrade", "unpack", node.name, "0.1.2"], {}, { timeoutMs: 90_000 });
      expect(third.code, third.stderr).toBe(0);
      expect(third.stdout).toMatch(new RegExp(`^unpacked 0\\.1\\.2 on .* \\(already asked for: the server recorded ok at .* for command ${commandId}; not run again\\)\\n$`));

      // One unpack of 0.1.2 was ever sent: one intent, with its ok outcome.
      const intents = await unpackIntents("0.1.2");
      expect(intents).toHaveLength(1);
      expect(intents[0].outcomes).toEqual(["ok"]);
    } finally {
      if (!lifted) await node.rpc(`bd_rh_holder ! lift, ok`);
    }
  });
});
