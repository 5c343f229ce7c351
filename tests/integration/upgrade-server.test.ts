/**
 * Hot upgrades through the product (CLI → server → agent → release_handler)
 * on real releases, every claim checked against the node itself.
 * The forum's story: the default appup kills the listener at make_permanent;
 * soft post-purge keeps it alive on old code; the next upgrade then kills it
 * (brutal pre-purge) or is blocked (soft pre-purge). Plus: expected kills do
 * not page, and a server crash between intent and outcome leaves "no
 * outcome" until the agent reports back.
 *
 * Over 400 lines because each case is one whole upgrade story on a real
 * release, and they share the server, the CLI and the release builds.
 */
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { afterAll, afterEach, beforeEach, describe, expect, it } from "vitest";
import { listAudit } from "../../server/audit/query";
import { openDatabase } from "../../server/storage/db";
import { stopAll, type BeamNode } from "../../tools/beam/nodes";
import { freePort, GreetingClient } from "../../tools/beam/tcp";
import { startAgentNode, waitConnected } from "../support/beam-node";
import { waitFor } from "../support/ports";
import { startServer, type TestServer } from "../support/server";
import { httpClient } from "../support/trpc-clients";

const SUP = "'Elixir.RelTest.Supervisor'";
let server: TestServer;
let node: BeamNode;
let port: number;
let client: GreetingClient | null = null;

beforeEach(async () => {
  server = await startServer({ dataDir: fs.mkdtempSync(path.join(os.tmpdir(), "beamdeck-upg-")) });
  port = await freePort();
  ({ node } = await startAgentNode(server, { env: { REL_TEST_PORT: String(port) } }));
  await waitConnected(server, node.name);
  client = await GreetingClient.connect(port);
  expect(await client.hello()).toBe("Hey there!\n");
});
afterEach(async () => {
  client?.close();
  await stopAll();
  await server?.stop();
});
afterAll(async () => {
  await stopAll();
});

const acceptor = () => node.rpc(`[P] = [P || {'Elixir.Task', P, worker, _} <- supervisor:which_children(${SUP})], P`);
const handlers = (acc: string) => node.rpcJson<string[]>(`{links, L} = process_info(list_to_pid("${acc}"), links), [pid_to_list(P) || P <- L, is_pid(P), P =/= whereis(${SUP})]`);
const onOldCode = () => node.rpcJson<string[]>(`lists:sort([pid_to_list(P) || P <- processes(), erlang:check_process_code(P, 'Elixir.TestListener')])`);
const alive = async (pid: string) => (await node.rpc(`is_process_alive(list_to_pid("${pid}"))`)) === "true";

/**
 * Hold release_handler suspended so that a step waits on the node. A
 * suspension ends with the process that made it, so a holder process on the
 * node makes it and lifts it.
 */
async function holdReleaseHandler(): Promise<void> {
  await node.rpc(
    `RH = whereis(release_handler), Me = self(), H = spawn(fun() -> true = erlang:suspend_process(RH), Me ! held, receive lift -> erlang:resume_process(RH) end end), register(bd_rh_holder, H), receive held -> ok after 5000 -> timeout end`,
  );
}
async function releaseReleaseHandler(): Promise<void> {
  await node.rpc(`bd_rh_holder ! lift, ok`);
}

function cli(args: string[]) {
  return server.cli(args);
}
async function planJson(vsn: string, extra: string[] = []) {
  const r = await cli(["upgrade", "plan", node.name, vsn, "--json", ...extra]);
  return {
    code: r.code,
    plan: JSON.parse(r.stdout || "null") as {
      step: string;
      digest: string;
      verdict: string;
      killed: { install: string[]; make_permanent: string[] };
      modules: { module: string; processes: { pid: string; fate: string; when?: string; why: string }[] }[];
      lint: { module: string; function: string; arity: number; message: string }[];
    },
    stderr: r.stderr,
  };
}
function fatesOf(plan: Awaited<ReturnType<typeof planJson>>["plan"]) {
  return Object.fromEntries(plan.modules.flatMap((m) => m.processes.map((p) => [p.pid, `${p.fate}${p.when ? `@${p.when}` : ""}`])));
}
function step(args: string[]) {
  return cli(["upgrade", ...args, "--yes"]);
}

describe("beamdeck releases", () => {
  /** The text table's rows as [release, version, status]. */
  const rows = (stdout: string) =>
    stdout
      .trim()
      .split("\n")
      .slice(1)
      .map((l) => l.split(/\s{2,}/));

  it("lists the releases, then the packages not unpacked yet, by the names the agent sends", async () => {
    const before = await cli(["releases", node.name]);
    expect(before.code, before.stderr).toBe(0);
    expect(before.stdout.split("\n")[0].split(/\s+/)).toEqual(["RELEASE", "VERSION", "STATUS"]);
    expect(rows(before.stdout)).toEqual([
      ["rel_test", "0.1.0", "permanent"],
      ["rel_test-0.1.1", "0.1.1", "package (not unpacked)"],
      ["rel_test-0.1.2", "0.1.2", "package (not unpacked)"],
    ]);

    expect((await cli(["upgrade", "unpack", node.name, "0.1.1"])).code).toBe(0);
    const after = await cli(["releases", node.name]);
    expect(after.code, after.stderr).toBe(0);
    // The unpacked release is listed once, as release_handler reports it on the node (newest first).
    expect(rows(after.stdout)).toEqual([
      ["rel_test", "0.1.1", "unpacked"],
      ["rel_test", "0.1.0", "permanent"],
      ["rel_test-0.1.2", "0.1.2", "package (not unpacked)"],
    ]);
    expect(await node.rpc(`lists:sort([{V, S} || {_, V, _, S} <- release_handler:which_releases()])`)).toBe(`[{"0.1.0",permanent},{"0.1.1",unpacked}]`);
    const json = JSON.parse((await cli(["releases", node.name, "--json"])).stdout) as { packages: { package: string; vsn: string; unpacked: boolean }[] };
    expect(json.packages.filter((p) => p.vsn === "0.1.2").map((p) => [p.package, p.unpacked])).toEqual([["rel_test-0.1.2", false]]);
  }, 120_000);
});

describe("the forum's upgrade through beamdeck", () => {
  it("default appup: predicted kills at make_permanent, exactly those die, recorded as expected, no alert", async () => {
    const acc = await acceptor();
    const hs = await handlers(acc);
    expect(hs.length).toBe(1);
    expect((await cli(["upgrade", "unpack", node.name, "0.1.1"])).code).toBe(0);

    const { code, plan } = await planJson("0.1.1");
    expect(code).toBe(3); // would kill
    expect(fatesOf(plan)).toEqual(Object.fromEntries([acc, ...hs].map((p) => [p, "killed@make_permanent"])));
    expect(plan.lint.map((l) => `${l.module}.${l.function}/${l.arity}`).sort()).toEqual(["Elixir.TestListener.loop/1", "Elixir.TestListener.start/1"]);
    expect(plan.lint[0].message).toMatch(/__MODULE__\./);

    expect(plan).toMatchObject({ step: "install", verdict: "would_kill" });
    expect(plan.digest).toMatch(/^[0-9a-f]{64}$/);
    // A step that kills needs a gate: exit 2, naming the flags, and nothing is sent.
    const ungated = await step(["install", node.name, "0.1.1"]);
    expect(ungated.code, ungated.stderr).toBe(2);
    expect(ungated.stderr).toContain(`--accept-plan ${plan.digest}`);
    expect(ungated.stderr).toContain("--max-kills N");
    const install = await step(["install", node.name, "0.1.1", "--accept-plan", plan.digest]);
    expect(install.code, install.stderr).toBe(0);
    // install_release killed nobody; everyone on old code is listed exactly.
    expect(await alive(acc)).toBe(true);
    for (const h of hs) expect(await alive(h)).toBe(true);
    const old = await onOldCode();
    expect(old).toEqual([acc, ...hs].sort());
    const api = httpClient(server.url, { token: server.apiToken });
    const listed = (await api.upgrades.oldCode.query({ node: node.name })) as { modules: { module: string; processes: { pid: string }[] }[] };
    const tl = listed.modules.find((m) => m.module === "Elixir.TestListener");
    expect(tl?.processes.map((p) => p.pid).sort()).toEqual(old);
    expect(await client!.hello()).toBe("Hey there!\n"); // still the old loop

    // After install, `upgrade plan` answers with the make_permanent plan and its own digest.
    const permPlan = await planJson("0.1.1");
    expect(permPlan.code).toBe(3);
    expect(permPlan.plan).toMatchObject({ step: "make_permanent", verdict: "would_kill" });
    expect(permPlan.plan.killed.make_permanent.sort()).toEqual([acc, ...hs].sort());
    expect(permPlan.plan.digest).not.toBe(plan.digest);
    expect((await step(["permanent", node.name, "0.1.1"])).code).toBe(2);
    const perm = await step(["permanent", node.name, "0.1.1", "--accept-plan", permPlan.plan.digest]);
    expect(perm.code, perm.stderr).toBe(0);
    expect(perm.stdout).toMatch(new RegExp(`predicted and died: .*${acc.replace(/[<>.]/g, "\\$&")}`));
    expect(perm.stdout).toMatch(/died, unpredicted:\s+-/);
    expect(await alive(acc)).toBe(false);
    for (const h of hs) expect(await alive(h)).toBe(false);
    // A new acceptor runs the new code.
    const fresh = await GreetingClient.connect(port);
    expect(await fresh.hello()).toBe("Hey there, next version!\n");
    fresh.close();
    // The supervisor report is recorded as expected, and nobody was paged.
    const ev = await waitFor("the expected kill", async () => {
      const evs = JSON.parse((await cli(["events", node.name, "--json"])).stdout) as { context: string; offender: { pid: string }; expected: boolean }[];
      return evs.find((e) => e.context === "child_terminated" && e.offender.pid === acc) ?? null;
    });
    expect(ev.expected).toBe(true);
    await new Promise((r) => setTimeout(r, 1000));
    const alerts = JSON.parse((await cli(["alerts", "--json", "--status", "all"])).stdout) as { kind: string }[];
    expect(alerts.filter((a) => a.kind === "child_terminated")).toEqual([]);
    // Intent and outcome for every step are in the audit log.
    const audit = JSON.parse((await cli(["audit", "--json", "--action", "upgrade."])).stdout) as { action: string; outcome: string | null; intentId: string | null }[];
    for (const a of ["upgrade.unpack", "upgrade.install", "upgrade.make_permanent"]) {
      expect(audit.filter((e) => e.action === a && e.intentId === null)).toHaveLength(1);
      expect(audit.filter((e) => e.action === a && e.outcome === "ok")).toHaveLength(1);
    }
    // The intent records which gate let the step through.
    const intents = JSON.parse((await cli(["audit", "--json", "--action", "upgrade."])).stdout) as {
      action: string;
      intentId: string | null;
      data: { gate?: { used: string; acceptPlan: string | null }; planDigest?: string; step?: string };
    }[];
    const installIntent = intents.find((e) => e.action === "upgrade.install" && e.intentId === null);
    expect(installIntent?.data).toMatchObject({ step: "install", planDigest: plan.digest, gate: { used: "plan", acceptPlan: plan.digest } });
    const permIntent = intents.find((e) => e.action === "upgrade.make_permanent" && e.intentId === null);
    expect(permIntent?.data).toMatchObject({ step: "make_permanent", planDigest: permPlan.plan.digest, gate: { used: "plan" } });
  }, 240_000);

  it("the agent's runner refuses a plan that kills someone nobody reviewed (exit 7); fewer kills than reviewed go through", async () => {
    expect((await cli(["upgrade", "unpack", node.name, "0.1.1"])).code).toBe(0);
    const acc = await acceptor();
    const reviewed = await planJson("0.1.1");
    expect(reviewed.code).toBe(3);
    const before = [...reviewed.plan.killed.make_permanent].sort();
    expect(before).toEqual([acc, ...(await handlers(acc))].sort());
    // A new connection after the review: one more handler stuck in TestListener.loop, killed at make_permanent.
    const extra = await GreetingClient.connect(port);
    expect(await extra.hello()).toBe("Hey there!\n");
    const newcomer = await waitFor("the new handler", async () => (await handlers(acc)).find((h) => !before.includes(h)) ?? null);
    const refused = await step(["install", node.name, "0.1.1", "--accept-plan", reviewed.plan.digest]);
    expect(refused.code, refused.stdout + refused.stderr).toBe(7);
    expect(refused.stdout).toMatch(/plan_changed: the plan changed since it was reviewed: 1 process\(es\) would be killed that the reviewed plan did not kill/);
    expect(refused.stdout).toContain(newcomer);
    // Refused before anything was touched: 0.1.1 is not installed, its relup not rewritten, nobody died.
    expect(await node.rpc(`[{V, S} || {_, V, _, S} <- release_handler:which_releases()]`)).not.toMatch(/"0\.1\.1",current/);
    expect(await node.rpc(`filelib:is_regular(filename:join([code:root_dir(), "releases", "0.1.1", "relup.beamdeck-orig"]))`)).toBe("false");
    for (const p of [...before, newcomer]) expect(await alive(p)).toBe(true);
    // The newcomer and one reviewed handler leave: fewer kills than reviewed, all of them reviewed.
    extra.close();
    client?.close();
    client = null;
    await waitFor("the handlers to exit", async () => !(await alive(newcomer)) && (await handlers(acc)).length === 0);
    const accepted = await step(["install", node.name, "0.1.1", "--accept-plan", reviewed.plan.digest]);
    expect(accepted.code, accepted.stdout + accepted.stderr).toBe(0);
    expect(await node.rpc(`[V || {_, V, _, current} <- release_handler:which_releases()]`)).toBe(`["0.1.1"]`);
  }, 240_000);

  it("installs from a reviewed plan that kills more than the 400 listed processes: tRPC with the digest, as the browser does", async () => {
    expect((await cli(["upgrade", "unpack", node.name, "0.1.1"])).code).toBe(0);
    const acc = await acceptor();
    // 450 more connections, held by one process on the node: 450 more handlers in TestListener.loop.
    const opened = await node.rpc(
      `Me = self(), H = spawn(fun() -> Ss = [S || _ <- lists:seq(1, 450), {ok, S} <- [gen_tcp:connect({127,0,0,1}, ${port}, [binary, {active, false}], 5000)]], Me ! {opened, length(Ss)}, receive stop -> Ss end end), register(bd_many, H), receive {opened, N} -> N after 60000 -> timeout end`,
      // 450 accepts, each logged by the listener: more than the default 10 s on a slow machine.
      { timeoutMs: 90_000 },
    );
    expect(opened).toBe("450");
    await waitFor("451 handlers", async () => (await handlers(acc)).length === 451, 30_000, 500);
    const api = httpClient(server.url, { token: server.apiToken });
    const plan = await api.upgrades.plan.query({ node: node.name, vsn: "0.1.1" });
    expect(plan).toMatchObject({ step: "install", verdict: "would_kill" });
    // The listing stops at 400 processes: a count of the listed ones is not what the step kills.
    const listed = plan.modules.flatMap((m) => m.processes).filter((p) => p.fate === "killed");
    expect(listed.length).toBeLessThanOrEqual(400);
    expect(plan.killed?.make_permanent).toHaveLength(452);
    // No gate for a step that kills: refused by the server, nothing sent.
    await expect(api.upgrades.install.mutate({ node: node.name, vsn: "0.1.1", confirmNode: node.name })).rejects.toThrow(/would kill 452 process\(es\)/);
    const sent = await api.upgrades.install.mutate({ node: node.name, vsn: "0.1.1", confirmNode: node.name, acceptPlan: plan.digest });
    const result = (id: string) =>
      waitFor(
        `the result of ${id}`,
        async () => (await api.upgrades.history.query({ node: node.name })).flatMap((u) => u.commands).find((c) => c.id === id && c.status !== "sent" && c.status !== "running") ?? null,
        60_000,
        500,
      );
    expect((await result(sent.commandId)).status).toBe("ok");
    expect(await node.rpc(`[V || {_, V, _, current} <- release_handler:which_releases()]`)).toBe(`["0.1.1"]`);
    // make_permanent from its own plan and digest: all 452 die, and nobody else.
    const perm = await api.upgrades.plan.query({ node: node.name, vsn: "0.1.1" });
    expect(perm.step).toBe("make_permanent");
    expect([...(perm.killed?.make_permanent ?? [])].sort()).toEqual(await onOldCode());
    expect(perm.killed?.make_permanent).toHaveLength(452);
    const sentPerm = await api.upgrades.makePermanent.mutate({ node: node.name, confirmNode: node.name, acceptPlan: perm.digest });
    expect((await result(sentPerm.commandId)).status).toBe("ok");
    expect(await onOldCode()).toEqual([]);
    expect(await alive(acc)).toBe(false);
    expect(await node.rpc(`[V || {_, V, _, permanent} <- release_handler:which_releases()]`)).toBe(`["0.1.1"]`);
  }, 180_000);

  it("soft post-purge keeps them alive on old code; the next upgrade kills them (brutal pre-purge) or is blocked (soft)", async () => {
    const acc = await acceptor();
    const hs = await handlers(acc);
    expect((await cli(["upgrade", "unpack", node.name, "0.1.1"])).code).toBe(0);
    const soft = await planJson("0.1.1", ["--purge", "TestListener=soft"]);
    expect(soft.code).toBe(0);
    expect(new Set(Object.values(fatesOf(soft.plan)))).toEqual(new Set(["stays_on_old_code"]));
    expect((await step(["install", node.name, "0.1.1", "--purge", "TestListener=soft"])).code).toBe(0);
    const perm = await step(["permanent", node.name, "0.1.1"]);
    expect(perm.code, perm.stderr).toBe(0);
    expect(await alive(acc)).toBe(true);
    for (const h of hs) expect(await alive(h)).toBe(true);
    expect(await client!.hello()).toBe("Hey there!\n"); // the open connection answers, on old code
    expect(await onOldCode()).toEqual([acc, ...hs].sort());

    // 0.1.2: TestListener has old code lingering, so the pre-purge decides.
    expect((await cli(["upgrade", "unpack", node.name, "0.1.2"])).code).toBe(0);
    const brutal = await planJson("0.1.2");
    expect(brutal.code).toBe(3);
    expect(fatesOf(brutal.plan)[acc]).toBe("killed@install");
    // The acceptor's supervisor restarts it, possibly onto the code being replaced: the plan says so.
    const why = (pid: string) => brutal.plan.modules.flatMap((m) => m.processes).find((p) => p.pid === pid)?.why ?? "";
    expect(why(acc)).toMatch(/its supervisor will restart it/);
    for (const h of hs) expect(why(h)).not.toMatch(/supervisor will restart/);
    const blocked = await planJson("0.1.2", ["--pre-purge", "TestListener=soft"]);
    expect(blocked.code).toBe(4);
    expect(fatesOf(blocked.plan)[acc]).toMatch(/^blocks_install/);
    // The real outcome matches: a soft pre-purge install fails, nobody dies...
    const refused = await step(["install", node.name, "0.1.2", "--pre-purge", "TestListener=soft"]);
    expect(refused.code).toBe(1);
    expect(refused.stdout + refused.stderr).toMatch(/old_processes/);
    expect(await alive(acc)).toBe(true);
    expect(await node.rpc(`element(2, hd([V || {_, V, _, current} <- release_handler:which_releases()] ++ [none]))`).catch(() => "")).not.toBe("0.1.2");
    // ...and the brutal one kills them at install.
    // --max-kills bounds the kills: one fewer than the plan kills is refused by the agent's runner (exit 7).
    const n = brutal.plan.killed.install.length;
    expect(n).toBeGreaterThan(0);
    const tooFew = await step(["install", node.name, "0.1.2", "--max-kills", String(n - 1)]);
    expect(tooFew.code, tooFew.stdout + tooFew.stderr).toBe(7);
    expect(tooFew.stdout).toMatch(/plan_changed: .*more than the accepted maximum/);
    expect(await alive(acc)).toBe(true);
    const killed = await step(["install", node.name, "0.1.2", "--max-kills", String(n)]);
    expect(killed.code, killed.stderr).toBe(0);
    expect(await alive(acc)).toBe(false);
    for (const h of hs) expect(await alive(h)).toBe(false);
    expect(killed.stdout).toMatch(/died, unpredicted:\s+-/);
  }, 240_000);

  it("rolls back after install; a bad relup is refused naming the file", async () => {
    expect((await cli(["upgrade", "unpack", node.name, "0.1.1"])).code).toBe(0);
    expect((await step(["install", node.name, "0.1.1", "--purge", "TestListener=soft"])).code).toBe(0);
    const acc = await acceptor();
    // The rollback's down script kills too: it needs a gate.
    expect((await step(["rollback", node.name])).code).toBe(2);
    const rb = await step(["rollback", node.name, "--max-kills", "1000"]);
    expect(rb.code, rb.stdout + rb.stderr).toBe(0);
    const rels = await node.rpc(`[{V, S} || {_, V, _, S} <- release_handler:which_releases()]`);
    expect(rels).toMatch(/\{"0\.1\.0",permanent\}/);
    expect(rels).not.toMatch(/\{"0\.1\.1",current\}/);
    // The down script's brutal pre-purge killed the processes stuck on the
    // old code, as predicted; nothing else died.
    expect(rb.stdout).toMatch(new RegExp(`predicted and died: .*${acc.replace(/[<>.]/g, "\\$&")}`));
    expect(rb.stdout).toMatch(/died, unpredicted:\s+-/);
    expect(await alive(acc)).toBe(false);
    // The supervisor restarted the acceptor; what runs old code now is what
    // the node says (a restart during the load can land on the outgoing code).
    const api = httpClient(server.url, { token: server.apiToken });
    const listed = (await api.upgrades.oldCode.query({ node: node.name })) as { modules: { module: string; processes: { pid: string }[] }[] };
    expect((listed.modules.find((m) => m.module === "Elixir.TestListener")?.processes ?? []).map((p) => p.pid).sort()).toEqual(await onOldCode());
    expect(await alive(await acceptor())).toBe(true);
    // Corrupt the relup of 0.1.1 on the node: the plan names the file.
    const relup = await node.rpc(`filename:join([code:root_dir(), "releases", "0.1.1", "relup"])`);
    await node.rpc(`file:write_file(${relup}, <<"{\\"0.1.1\\", [this is not a term">>)`);
    const bad = await cli(["upgrade", "plan", node.name, "0.1.1"]);
    expect(bad.code).toBe(1);
    expect(bad.stderr).toContain("releases/0.1.1/relup");
  }, 240_000);

  it("a server killed between intent and outcome: 'no outcome' until the agent reports back", async () => {
    expect((await cli(["upgrade", "unpack", node.name, "0.1.1"])).code).toBe(0);
    const api = httpClient(server.url, { token: server.apiToken });
    // Hold the step on the node: release_handler is suspended, so the install waits.
    await holdReleaseHandler();
    const sent = await api.upgrades.install.mutate({ node: node.name, vsn: "0.1.1", purge: { "Elixir.TestListener": "soft" }, prePurge: {}, confirmNode: node.name });
    await server.kill();
    await releaseReleaseHandler();
    // The step finishes on the node while the server is down.
    await waitFor("install on the node", async () => /"0\.1\.1",current/.test(await node.rpc(`[{V, S} || {_, V, _, S} <- release_handler:which_releases()]`)), 30_000, 500);
    // The audit log, read straight from the database: an intent, no outcome.
    const db = await openDatabase("test", { BEAMDECK_DATA_DIR: server.dataDir });
    const page = await listAudit(db.prisma, { action: "upgrade.install" }, 10);
    await db.close();
    expect(page.entries).toHaveLength(1);
    expect(page.entries[0]).toMatchObject({ outcome: null, pendingOutcome: true });
    expect((page.entries[0].data as { commandId: string }).commandId).toBe(sent.commandId);
    // Back up: the agent reconnects and reports; the outcome is appended.
    await server.restart();
    await waitConnected(server, node.name, true, 45_000);
    const outcome = await waitFor(
      "the outcome",
      async () => {
        const rows = JSON.parse((await cli(["audit", "--json", "--action", "upgrade.install"])).stdout) as { outcome: string | null; intentId: string | null; pendingOutcome: boolean; id: string }[];
        return rows.find((r) => r.intentId === page.entries[0].id) ?? null;
      },
      30_000,
      1000,
    );
    expect(outcome.outcome).toBe("ok");
    expect((await cli(["audit", "verify"])).code).toBe(0);
  });

  it("an agent disconnected mid-install: the step finishes on the node and is reported on reconnect", async () => {
    expect((await cli(["upgrade", "unpack", node.name, "0.1.1"])).code).toBe(0);
    const api = httpClient(server.url, { token: server.apiToken });
    await holdReleaseHandler();
    const sent = await api.upgrades.install.mutate({ node: node.name, vsn: "0.1.1", purge: { "Elixir.TestListener": "soft" }, prePurge: {}, confirmNode: node.name });
    await node.rpc(`exit(whereis(beamdeck_agent_conn), kill), ok`);
    await releaseReleaseHandler();
    const cmd = await waitFor(
      "the command's result",
      async () => {
        const h = await api.upgrades.history.query({ node: node.name });
        return h.flatMap((u) => u.commands).find((c) => c.id === sent.commandId && c.status === "ok") ?? null;
      },
      30_000,
      500,
    );
    expect(cmd.status).toBe("ok");
    expect(await node.rpc(`[V || {_, V, _, current} <- release_handler:which_releases()]`)).toBe(`["0.1.1"]`);
  });
});

describe("an OTP gen_server upgraded with update + code_change", () => {
  it("is suspended and migrated, never killed, its state transformed", async () => {
    client?.close();
    client = null;
    await stopAll();
    ({ node } = await startAgentNode(server, { release: "bd_counter" }));
    await waitConnected(server, node.name);
    const pid = await node.rpc(`whereis(bd_counter_server)`);
    const before = await node.rpc(`sys:get_state(bd_counter_server)`);
    expect(before).toMatch(/^\d+$/);
    expect((await cli(["upgrade", "unpack", node.name, "1.1.0"])).code).toBe(0);
    const { code, plan } = await planJson("1.1.0");
    expect(code).toBe(0);
    expect(fatesOf(plan)[pid]).toMatch(/^suspended/);
    expect((await step(["install", node.name, "1.1.0"])).code).toBe(0);
    expect((await step(["permanent", node.name, "1.1.0"])).code).toBe(0);
    expect(await node.rpc(`whereis(bd_counter_server)`)).toBe(pid);
    expect(await node.rpc(`sys:get_state(bd_counter_server)`)).toMatch(/^#\{.*count => \d+/);
  });
});
