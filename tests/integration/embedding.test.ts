/**
 * The README's recipes for embedding the agent, run for real: an Elixir
 * project with the agent as a mix path dependency, released with
 * `mix release`, booted (not distributed: identity from BEAMDECK_NODE_ID)
 * and seen by the server; and a rebar3/relx release whose .rel carries it.
 * (The systools recipe is the demo builder itself, used by every test.)
 */
import { spawn, type ChildProcess } from "node:child_process";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { waitConnected } from "../support/beam-node";
import { run } from "../support/run";
import { ROOT, startServer, type TestServer } from "../support/server";

const AGENT = path.join(ROOT, "agent");
let server: TestServer;
let work: string;
let booted: ChildProcess | null = null;

beforeAll(async () => {
  server = await startServer();
  work = fs.mkdtempSync(path.join(os.tmpdir(), "beamdeck-embed-"));
});
afterAll(async () => {
  if (booted && booted.exitCode === null) {
    booted.kill("SIGKILL");
  }
  await server?.stop();
});

async function sh(cmd: string, args: string[], cwd: string, env: Record<string, string> = {}): Promise<string> {
  const r = await run(cmd, args, { cwd, env: { ...process.env, ...env }, timeoutMs: 240_000 });
  if (r.code !== 0) throw new Error(`${cmd} ${args.join(" ")} exited with ${r.code}: ${r.stderr.slice(-2000)}`);
  return r.stdout;
}

describe("embedding the agent", () => {
  it("in an Elixir project: mix path dependency, mix release, and the node shows up", async () => {
    const mixHome = path.join(work, ".mix");
    const env = { MIX_HOME: mixHome, MIX_REBAR3: (await sh("which", ["rebar3"], work)).trim(), MIX_ENV: "prod" };
    await sh("mix", ["new", "embed_ex", "--sup"], work, env);
    const proj = path.join(work, "embed_ex");
    fs.writeFileSync(
      path.join(proj, "mix.exs"),
      `defmodule EmbedEx.MixProject do
  use Mix.Project
  def project do
    [app: :embed_ex, version: "0.1.0", elixir: "~> 1.14", deps: deps(),
     releases: [embed_ex: [applications: [beamdeck_agent: :temporary]]]]
  end
  def application, do: [extra_applications: [:logger, :sasl], mod: {EmbedEx.Application, []}]
  defp deps, do: [{:beamdeck_agent, path: ${JSON.stringify(AGENT)}, manager: :rebar3}]
end
`,
    );
    await sh("mix", ["release", "--overwrite"], proj, env);
    const rel = fs.readFileSync(path.join(proj, "_build/prod/rel/embed_ex/releases/0.1.0/embed_ex.rel"), "utf8");
    expect(rel).toMatch(/\{beamdeck_agent,"0\.1\.0",temporary\}/);
    for (const app of ["sasl", "crypto", "public_key", "ssl"]) expect(rel).toContain(`{${app},`);

    const token = await server.agentToken("embed_ex");
    const nodeId = `embed_ex_${process.pid}@test`;
    booted = spawn(path.join(proj, "_build/prod/rel/embed_ex/bin/embed_ex"), ["start"], {
      env: { ...process.env, RELEASE_DISTRIBUTION: "none", BEAMDECK_URL: server.url, BEAMDECK_TOKEN: token, BEAMDECK_NODE_ID: nodeId },
      stdio: "ignore",
      detached: false,
    });
    await waitConnected(server, nodeId, true, 60_000);
    const tree = JSON.parse((await server.cli(["tree", nodeId, "--json"])).stdout) as { apps: { name: string; root: { id: string } | null }[] };
    expect(tree.apps.find((a) => a.name === "embed_ex")?.root?.id).toBe("Elixir.EmbedEx.Supervisor");
    booted.kill("SIGTERM");
  }, 300_000);

  it("in an Erlang release built by rebar3/relx from _checkouts", async () => {
    const proj = path.join(work, "embed_erl");
    fs.mkdirSync(path.join(proj, "src"), { recursive: true });
    fs.mkdirSync(path.join(proj, "_checkouts"));
    fs.symlinkSync(AGENT, path.join(proj, "_checkouts/beamdeck_agent"));
    fs.writeFileSync(path.join(proj, "src/embed_erl.app.src"), `{application, embed_erl, [{description, "x"}, {vsn, "1.0.0"}, {applications, [kernel, stdlib]}, {env, []}]}.\n`);
    fs.writeFileSync(path.join(proj, "rebar.config"), `{deps, [beamdeck_agent]}.\n{relx, [{release, {embed_erl, "1.0.0"}, [sasl, {beamdeck_agent, temporary}, embed_erl]}, {mode, prod}]}.\n`);
    await sh("rebar3", ["release"], proj);
    const rel = fs.readFileSync(path.join(proj, "_build/default/rel/embed_erl/releases/1.0.0/embed_erl.rel"), "utf8");
    expect(rel).toMatch(/\{beamdeck_agent,"0\.1\.0",temporary\}/);
    expect(fs.existsSync(path.join(proj, "_build/default/rel/embed_erl/lib/beamdeck_agent-0.1.0/ebin/beamdeck_agent_conn.beam"))).toBe(true);
  }, 240_000);
});
