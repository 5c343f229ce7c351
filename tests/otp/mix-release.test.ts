/**
 * An Elixir 1.18 `mix release` — mix's defaults, so its beams are stripped
 * (`strip_beams`) — with the agent as a path dependency, upgraded through
 * the product (CLI → server → agent → release_handler) on OTP 27 inside the
 * trixie chroot. Every claim is checked against the node itself.
 *
 * Only on OTP 27 (mix releases are built with the chroot's Elixir), so it
 * lives in tests/otp/, which the OTP matrix steps run (scripts/otp-steps.ts),
 * not the host's integration step. No trixie chroot is a failure, not a skip.
 */
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { buildMixRelease, mixBootArgs, type MixRelease } from "../../tools/beam/mix-release";
import { startNode, stopAll, type BeamNode } from "../../tools/beam/nodes";
import { otpPresent, testOtp } from "../../tools/beam/otp";
import { instantiate } from "../../tools/beam/releases";
import { waitConnected } from "../support/beam-node";
import { waitFor } from "../support/ports";
import { startServer, type TestServer } from "../support/server";

const OTP27 = testOtp({ BEAMDECK_TEST_OTP: "27" });
const COUNTER = "'Elixir.BdMix.Counter'";

let server: TestServer;
let node: BeamNode;
let rel: MixRelease;

beforeAll(async () => {
  if (!otpPresent(OTP27)) throw new Error("no trixie chroot (OTP 27, Elixir 1.18): bash scripts/otp-chroot.sh ensure trixie");
  rel = await buildMixRelease(OTP27);
  server = await startServer({ dataDir: fs.mkdtempSync(path.join(os.tmpdir(), "beamdeck-mixrel-")) });
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "beamdeck-bd_mix-"));
  await instantiate(rel.templateDir, dir);
  node = await startNode({
    release: "bd_mix",
    dir,
    otp: OTP27,
    extraArgs: mixBootArgs(dir),
    env: { BEAMDECK_URL: server.agentUrl, BEAMDECK_TOKEN: await server.agentToken("bd_mix") },
  });
  await waitConnected(server, node.name);
}, 900_000);

afterAll(async () => {
  await stopAll();
  await server?.stop();
});

const cli = (args: string[]) => server.cli(args);

describe("an Elixir 1.18 mix release (stripped beams, the agent a path dependency) on OTP 27", () => {
  it("is what mix makes by default: OTP 27, Elixir 1.18, no debug_info in the app's or the agent's beams", async () => {
    expect(node.otpRelease).toBe("27");
    expect(rel.elixir).toMatch(/^1\.18\./);
    expect(await node.rpcJson<string>(`{ok, V} = application:get_key(elixir, vsn), list_to_binary(V)`)).toBe(rel.elixir);
    // strip_beams leaves no Dbgi (debug_info) chunk, in the app and in the dependency alike.
    for (const mod of [COUNTER, "beamdeck_agent_upgrade"]) {
      const chunks = await node.rpcJson<string[]>(`{ok, _, Cs} = beam_lib:all_chunks(code:which(${mod})), [list_to_binary(Id) || {Id, _} <- Cs]`);
      expect(chunks).toContain("Code");
      expect(chunks).not.toContain("Dbgi");
    }
  });

  it("the agent, built by mix inside the release, takes OTP 27's runtime-checked APIs", async () => {
    // Loaded from the release's own lib (built in the chroot by mix and OTP 27's rebar3), not the host's agent/_build.
    expect(await node.rpcJson<string>(`list_to_binary(code:which(beamdeck_agent_upgrade))`)).toBe(path.join(node.dir, "lib", "beamdeck_agent-0.1.0", "ebin", "beamdeck_agent_upgrade.beam"));
    expect(await node.rpc("beamdeck_agent_json:backend()")).toBe("otp_json");
    expect(await node.rpc("beamdeck_agent_procinfo:dict_mode()")).toBe("key");
    expect(await node.rpc("beamdeck_agent_otp:app_supervisor_mode()")).toBe("get_supervisor");
    // erlang:processes_iterator/0 is OTP 28+: on 27 the agent walks the list.
    expect(await node.rpc("beamdeck_agent_procinfo:cursor_mode()")).toBe("list");
  });

  it("upgraded through beamdeck: the counter is suspended and migrated by code_change, never killed, as planned", async () => {
    const pid = await node.rpc(`whereis(${COUNTER})`);
    for (let i = 0; i < 3; i++) await node.rpc(`${COUNTER}:bump()`);
    expect(await node.rpc(`sys:get_state(${COUNTER})`)).toBe("3");

    const unpack = await cli(["upgrade", "unpack", node.name, "1.1.0"]);
    expect(unpack.code, unpack.stderr).toBe(0);
    const planned = await cli(["upgrade", "plan", node.name, "1.1.0", "--json"]);
    expect(planned.code, planned.stderr).toBe(0);
    const plan = JSON.parse(planned.stdout) as {
      step: string;
      verdict: string;
      killed: { install: string[]; make_permanent: string[] };
      modules: { module: string; processes: { pid: string; fate: string }[] }[];
    };
    expect(plan.step).toBe("install");
    expect(plan.killed).toEqual({ install: [], make_permanent: [] });
    const counter = plan.modules.find((m) => m.module === "Elixir.BdMix.Counter");
    expect(counter?.processes.map((p) => [p.pid, p.fate])).toEqual([[pid, "suspended"]]);

    const install = await cli(["upgrade", "install", node.name, "1.1.0", "--yes"]);
    expect(install.code, install.stderr).toBe(0);
    // Same process, its state migrated up by 1.1.0's code_change/3, the new code running.
    expect(await node.rpc(`whereis(${COUNTER})`)).toBe(pid);
    expect(await node.rpc(`sys:get_state(${COUNTER})`)).toBe("{3,1}");
    expect(await node.rpcJson<string>(`${COUNTER}:version()`)).toBe("1.1.0");
    expect(await node.rpc(`${COUNTER}:bump()`)).toBe("4");

    const permanent = await cli(["upgrade", "permanent", node.name, "1.1.0", "--yes"]);
    expect(permanent.code, permanent.stderr).toBe(0);
    expect(await node.rpc(`whereis(${COUNTER})`)).toBe(pid);
    const releases = await node.rpcJson<[string, string, string[], string][]>("release_handler:which_releases()");
    expect(releases.map(([, v, , s]) => [v, s])).toEqual([
      ["1.1.0", "permanent"],
      ["1.0.0", "old"],
    ]);
  });

  it("a supervisor report reaches the server as an event: Elixir 1.18's logger translator (a primary filter) does not hide it", async () => {
    // What Elixir's Logger does with SASL reports here, said by the node itself.
    const filters = await node.rpcJson<string[]>("[atom_to_binary(Id) || {Id, _} <- maps:get(filters, logger:get_primary_config())]");
    expect(filters).toContain("logger_translator");
    expect(filters[0]).toBe("beamdeck_agent_logger_h");
    const pid = await node.rpc(`whereis(${COUNTER})`);
    await node.rpc(`exit(whereis(${COUNTER}), kill)`);
    const ev = await waitFor("the counter's child_terminated event", async () => {
      const r = await cli(["events", node.name, "--json"]);
      const evs = JSON.parse(r.stdout || "[]") as { kind: string; context: string; offender: { pid: string } | null }[];
      return evs.find((e) => e.context === "child_terminated" && e.offender?.pid === pid) ?? null;
    });
    expect(ev.kind).toBe("supervisor_report");
    // Once, not once from the filter and once from the handler.
    const again = JSON.parse((await cli(["events", node.name, "--json"])).stdout) as { context: string; offender: { pid: string } | null }[];
    expect(again.filter((e) => e.context === "child_terminated" && e.offender?.pid === pid)).toHaveLength(1);
  });
});
