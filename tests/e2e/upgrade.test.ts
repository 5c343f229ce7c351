/**
 * The Upgrade page in a real browser, against a real server and the forum's
 * rel_test release (0.1.0 running, 0.1.1 and 0.1.2 pending as packages),
 * with TCP clients connected to its listener the whole time.
 *
 * The operator's flow: see 0.1.1 pending and unpack it; preview the default
 * appup (the acceptor Task and the connection handler killed at
 * make_permanent, the lint naming TestListener.start/1 and loop/1); a stale
 * review refused by the server (CONFLICT, shown verbatim); soft post-purge
 * (stays_on_old_code, the button kills none); install with the node's name
 * typed; the old-code list equal to what the node itself reports; make
 * permanent; nobody died and the open connections still answer; predicted
 * vs actual shown.
 *
 * A viewer: the same page read-only, with the explanation instead of the
 * buttons, and a direct upgrades.install refused FORBIDDEN.
 *
 * Every claim is checked against the node over distributed Erlang, never
 * by asking the agent.
 *
 * Over 400 lines because the operator's flow is one sequence on one node
 * (unpack, review, install, make permanent, roll back): each step starts
 * where the previous one left the release.
 */
import fs from "node:fs";
import { TRPCClientError } from "@trpc/client";
import type { Browser, BrowserContext, Page } from "playwright-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { stopAll, type BeamNode } from "../../tools/beam/nodes";
import { freePort, GreetingClient } from "../../tools/beam/tcp";
import { startAgentNode, waitConnected } from "../support/beam-node";
import { launchChromium, login, screenshot, withScreenshotOnFailure } from "../support/browser";
import { startServer, type TestServer } from "../support/server";
import { httpClient, loginCookie } from "../support/trpc-clients";
import { ensureNextBuild } from "./next-build";

const OPERATOR = { username: "otto", password: "operator password 12345" };
const VIEWER = { username: "vera", password: "viewer password 12345" };
const SUPERVISOR = "Elixir.RelTest.Supervisor";
const MODULE = "Elixir.TestListener";
const ACCEPTOR_EXPR = `[P] = [P || {'Elixir.Task', P, worker, _} <- supervisor:which_children('${SUPERVISOR}')], pid_to_list(P)`;
const OLD_GREETING = "Hey there!\n";

let bd: TestServer;
let node: BeamNode;
let listenPort: number;
let browser: Browser;
let opCtx: BrowserContext;
let op: Page;
const clients: GreetingClient[] = [];

/** Facts from the node itself. */
const acceptorPid = () => node.rpcJson<string>(ACCEPTOR_EXPR);
/** The acceptor's connection handlers: the processes linked to it (Task.async), not its supervisor. */
const handlerPids = async () =>
  (
    await node.rpcJson<string[]>(
      `A = list_to_pid(${JSON.stringify(await acceptorPid())}), {links, L} = erlang:process_info(A, links), [pid_to_list(P) || P <- L, is_pid(P), P =/= whereis('${SUPERVISOR}')]`,
    )
  ).sort();
/** Every process on the node that runs old code of TestListener (check_process_code over all processes). */
const onOldCode = async () => (await node.rpcJson<string[]>(`[pid_to_list(P) || P <- erlang:processes(), erlang:check_process_code(P, '${MODULE}')]`)).sort();
const releaseStatus = async (vsn: string) =>
  node.rpcJson<string>(`case [S || {_, V, _, S} <- release_handler:which_releases(), V =:= ${JSON.stringify(vsn)}] of [S] -> atom_to_list(S); [] -> "absent" end`);
const alive = (pid: string) => node.rpcJson<boolean>(`erlang:is_process_alive(list_to_pid(${JSON.stringify(pid)}))`);

const upgradePath = () => `/nodes/${encodeURIComponent(node.name)}/upgrade`;
const impactRow = (page: Page, pid: string) => page.locator(`[data-testid="impact-panel"] [data-testid="impact-row"][data-pid="${pid}"]`);
/** Click a step's button and wait for its own progress block (not the previous step's) to end well. */
async function runStep(page: Page, button: ReturnType<Page["getByTestId"]>, timeout = 60_000): Promise<string> {
  const before = await page
    .getByTestId("progress")
    .getAttribute("data-command", { timeout: 1000 })
    .catch(() => null);
  await button.click();
  const progress = page.getByTestId("progress");
  await expect.poll(async () => (await progress.getAttribute("data-command", { timeout: 1000 }).catch(() => null)) ?? before, { timeout: 15_000 }).not.toBe(before);
  await expect.poll(() => progress.getAttribute("data-state"), { timeout }).toBe("ok");
  return (await progress.getAttribute("data-command")) as string;
}
const text = async (page: Page, testid: string) => (await page.getByTestId(testid).first().textContent())?.trim() ?? "";

async function connectClient(): Promise<GreetingClient> {
  const c = await GreetingClient.connect(listenPort);
  expect(await c.hello()).toBe(OLD_GREETING);
  clients.push(c);
  return c;
}

beforeAll(async () => {
  await ensureNextBuild();
  bd = await startServer({ web: true });
  listenPort = await freePort();
  ({ node } = await startAgentNode(bd, { env: { REL_TEST_PORT: String(listenPort) } }));
  await waitConnected(bd, node.name);
  await connectClient();
  browser = await launchChromium();
  opCtx = await browser.newContext({ baseURL: bd.url, viewport: { width: 1440, height: 1000 } });
  opCtx.setDefaultTimeout(15_000);
  op = await opCtx.newPage();
  // The flow is run by an operator, not an admin: the least role that may.
  await httpClient(bd.url, { token: bd.apiToken }).users.add.mutate({ username: OPERATOR.username, role: "operator", password: OPERATOR.password });
  await login(op, OPERATOR.username, OPERATOR.password, "/");
}, 300_000);

afterAll(async () => {
  for (const c of clients) c.close();
  await opCtx?.close().catch(() => {});
  await browser?.close().catch(() => {});
  await stopAll();
  await bd?.stop();
  if (bd) fs.rmSync(bd.dataDir, { recursive: true, force: true });
}, 60_000);

describe("an operator upgrades the forum's listener without killing it", () => {
  let acceptor: string;
  let handler: string;
  let handlers: string[];

  it("reaches the Upgrade page from the node page and sees 0.1.1 pending; unpacks it", async () => {
    await withScreenshotOnFailure(op, "upgrade-unpack", async () => {
      await op.goto(`/nodes/${encodeURIComponent(node.name)}`);
      await op.getByTestId("tab-upgrade").click();
      await op.waitForURL((u) => u.pathname === upgradePath());
      const row = op.locator('[data-testid="pending-row"][data-vsn="0.1.1"]');
      await row.waitFor();
      expect(await row.getAttribute("data-state")).toBe("package");
      expect(await releaseStatus("0.1.1")).toBe("absent");
      expect(await text(op, "running-vsn")).toBe("0.1.0");
      await screenshot(op, "upgrade-1-pending", true);

      await runStep(op, row.getByTestId("unpack"));
      await expect.poll(() => row.getAttribute("data-state"), { timeout: 20_000 }).toBe("unpacked");
      // The node agrees: release_handler knows 0.1.1, unpacked.
      expect(await releaseStatus("0.1.1")).toBe("unpacked");
    });
  }, 120_000);

  it("previews the default appup: the acceptor Task and the connection handler killed at make_permanent; the lint names start/1 and loop/1", async () => {
    acceptor = await acceptorPid();
    handlers = await handlerPids();
    expect(handlers).toHaveLength(1);
    handler = handlers[0];
    await withScreenshotOnFailure(op, "upgrade-preview", async () => {
      expect(await op.getByTestId("choose-area").getAttribute("data-target")).toBe("0.1.1");
      await impactRow(op, acceptor).waitFor({ timeout: 30_000 });
      for (const pid of [acceptor, handler]) {
        expect(await impactRow(op, pid).getAttribute("data-fate")).toBe("killed");
        expect(await impactRow(op, pid).getAttribute("data-when")).toBe("make_permanent");
        expect(await impactRow(op, pid).getByTestId("fate").textContent()).toBe("killed at make_permanent");
        expect(await impactRow(op, pid).getAttribute("data-module")).toBe(MODULE);
      }
      // After the kill (issue 14, item 5): the acceptor is a permanent child of RelTest.Supervisor, so it
      // comes back; the handler's parent is the acceptor (Task.async), so nothing restarts it. The node says so.
      const supervisorPid = await node.rpcJson<string>(`pid_to_list(whereis('${SUPERVISOR}'))`);
      const acceptorRestart = await node.rpcJson<string>(
        `A = list_to_pid(${JSON.stringify(acceptor)}), [R] = [maps:get(restart, S) || {Id, P, _, _} <- supervisor:which_children('${SUPERVISOR}'), P =:= A, {ok, S} <- [supervisor:get_childspec('${SUPERVISOR}', Id)]], atom_to_list(R)`,
      );
      expect(acceptorRestart).toBe("permanent");
      const handlerParent = await node.rpcJson<string>(`{parent, P} = erlang:process_info(list_to_pid(${JSON.stringify(handler)}), parent), pid_to_list(P)`);
      expect(handlerParent).toBe(acceptor);
      const acceptorAfter = impactRow(op, acceptor).getByTestId("after-kill");
      expect(await acceptorAfter.getAttribute("data-outcome")).toBe("restarted");
      expect(await acceptorAfter.getAttribute("data-restart")).toBe("permanent");
      expect(await acceptorAfter.getAttribute("data-supervisor")).toBe(supervisorPid);
      expect(await acceptorAfter.textContent()).toContain("restarted by its supervisor");
      const handlerAfter = impactRow(op, handler).getByTestId("after-kill");
      expect(await handlerAfter.getAttribute("data-outcome")).toBe("gone");
      expect(await handlerAfter.getAttribute("data-supervisor")).toBe("");
      expect(await handlerAfter.textContent()).toContain("gone for good");

      // Exactly these two are killed, and nobody else is touched.
      const killed = await op.locator('[data-testid="impact-panel"] [data-testid="impact-row"][data-fate="killed"]').evaluateAll((els) => els.map((e) => e.getAttribute("data-pid")).sort());
      expect(killed).toEqual([acceptor, handler].sort());
      expect(await op.getByTestId("verdict").getAttribute("data-impact")).toBe("kills");
      expect(await op.getByTestId("verdict").getAttribute("data-verdict")).toBe("would_kill");
      // The digest the Install button will send is the agent's.
      expect(await op.getByTestId("plan-digest").getAttribute("data-digest")).toMatch(/^[0-9a-f]{64}$/);

      // The lint: both loops, with the Elixir fix, and who is stuck in each.
      const lint = op.getByTestId("lint-item");
      expect(await lint.count()).toBe(2);
      const start = op.locator('[data-testid="lint-item"][data-function="start"][data-arity="1"]');
      const loop = op.locator('[data-testid="lint-item"][data-function="loop"][data-arity="1"]');
      expect(await start.getByTestId("lint-name").textContent()).toBe("TestListener.start/1");
      expect(await start.getByTestId("lint-fix").textContent()).toBe("__MODULE__.start(...)");
      expect(await loop.getByTestId("lint-name").textContent()).toBe("TestListener.loop/1");
      expect(await loop.getByTestId("lint-fix").textContent()).toBe("__MODULE__.loop(...)");
      expect(await start.locator(`[data-testid="pid-link"][data-pid="${acceptor}"]`).count()).toBe(1);
      expect(await loop.locator(`[data-testid="pid-link"][data-pid="${handler}"]`).count()).toBe(1);

      // The appup of rel_test, or the agent's words on why there is none, as the node's files are.
      const appupOnNode = await node.rpcJson<boolean>(`filelib:is_regular(filename:join([code:root_dir(), "lib", "rel_test-0.1.1", "ebin", "rel_test.appup"]))`);
      const appup = op.locator('[data-testid="appup"][data-app="rel_test"]');
      await appup.waitFor();
      if (appupOnNode) {
        // The instructions for 0.1.0 → 0.1.1, as the file on the node writes them; the purges are defaults, brutal.
        const onNode = await node.rpcJson<string[]>(
          `{ok, [{_, Ups, _}]} = file:consult(filename:join([code:root_dir(), "lib", "rel_test-0.1.1", "ebin", "rel_test.appup"])), {_, Is} = lists:keyfind("0.1.0", 1, Ups), [lists:flatten(io_lib:format("~0tp", [I])) || I <- Is]`,
        );
        const shown = await appup.locator('[data-testid="appup-instruction"] code').evaluateAll((els) => els.map((e) => e.textContent));
        expect(shown).toEqual(onNode);
        const load = appup.locator('[data-testid="appup-instruction"][data-kind="load_module"]');
        if (onNode[0] === "{load_module,'Elixir.TestListener'}") expect(await load.first().locator('[data-purge="brutal"]').count()).toBe(2);
      } else expect(await appup.getByTestId("appup-error").textContent()).toMatch(/lib\/rel_test-0\.1\.1\/ebin\/rel_test\.appup: no such file$/);

      // The relup as release_handler will run it: brutal both ways, by default.
      const load = op.locator(`[data-testid="relup-instruction"][data-op="load"][data-module="${MODULE}"]`);
      expect(await load.locator('[data-purge="brutal"]').count()).toBe(2);
      expect(await op.locator('[data-testid="purge-row"][data-module="Elixir.TestListener"] [data-testid="post-purge"]').getAttribute("data-value")).toBe("brutal");

      const install = op.getByTestId("install");
      expect(await install.textContent()).toBe("Install 0.1.1 — kills 0 now, 2 at make permanent");
      expect(await install.isDisabled()).toBe(true); // the node's name is not typed yet
      await screenshot(op, "upgrade-2-preview-default", true);
    });
  }, 90_000);

  it("refuses an install whose impact changed after the review: the agent's runner, in its words", async () => {
    await withScreenshotOnFailure(op, "upgrade-conflict", async () => {
      await op.getByTestId("confirm-install").fill(node.name);
      const install = op.getByTestId("install");
      expect(await install.textContent()).toBe("Install 0.1.1 — kills 0 now, 2 at make permanent");
      const reviewed = [...handlers];
      // A second client connects after the review: one more handler on the node.
      await connectClient();
      handlers = await handlerPids();
      expect(handlers).toHaveLength(2);
      const newcomer = handlers.find((h) => !reviewed.includes(h)) as string;
      await install.click();
      // The browser sent the digest of the plan it showed; the agent recomputed the plan and refused.
      const progress = op.getByTestId("progress");
      await expect.poll(() => progress.getAttribute("data-state"), { timeout: 60_000 }).toBe("error");
      await expect
        .poll(() => progress.textContent())
        .toContain(`plan_changed: the plan changed since it was reviewed: 1 process(es) would be killed that the reviewed plan did not kill (${newcomer})`);
      // Nothing was installed; the preview shows the new impact.
      expect(await releaseStatus("0.1.1")).toBe("unpacked");
      await expect.poll(() => install.textContent(), { timeout: 30_000 }).toBe("Install 0.1.1 — kills 0 now, 3 at make permanent");
      for (const pid of handlers) await impactRow(op, pid).waitFor();
      await screenshot(op, "upgrade-3-conflict", true);
    });
  }, 90_000);

  it("soft post-purge for TestListener: the preview changes to stays_on_old_code and the button kills none", async () => {
    await withScreenshotOnFailure(op, "upgrade-soft", async () => {
      await op.locator(`[data-testid="purge-row"][data-module="${MODULE}"] [data-testid="post-purge-soft"]`).click();
      await expect.poll(() => impactRow(op, acceptor).getAttribute("data-fate"), { timeout: 30_000 }).toBe("stays_on_old_code");
      for (const pid of [acceptor, ...handlers]) {
        await expect.poll(() => impactRow(op, pid).getAttribute("data-fate")).toBe("stays_on_old_code");
        expect(await impactRow(op, pid).getAttribute("data-when")).toBe("");
      }
      expect(await op.locator('[data-testid="impact-panel"] [data-testid="impact-row"][data-fate="killed"]').count()).toBe(0);
      const install = op.getByTestId("install");
      await expect.poll(() => install.textContent()).toBe("Install 0.1.1 — kills none");
      expect(await install.getAttribute("data-kills")).toBe("0");
      // The relup shows the change against the original.
      const load = op.locator(`[data-testid="relup-instruction"][data-op="load"][data-module="${MODULE}"]`);
      await expect.poll(() => load.locator('[data-testid="relup-purges"] [data-purge="soft"]').count()).toBe(1);
      expect(await op.getByTestId("verdict").getAttribute("data-impact")).toBe("at_risk");
      expect(await op.getByTestId("verdict").getAttribute("data-verdict")).toBe("safe");
      await screenshot(op, "upgrade-4-preview-soft", true);

      // The choice is in the URL (issue 14, item 8): a reload, and the link opened in another tab, show this review.
      const reviewed = new URL(op.url());
      expect(reviewed.searchParams.get("vsn")).toBe("0.1.1");
      expect(reviewed.searchParams.get("post")).toBe(`${MODULE}:soft`);
      await op.reload();
      const postSeg = op.locator(`[data-testid="purge-row"][data-module="${MODULE}"] [data-testid="post-purge"]`);
      await expect.poll(() => postSeg.getAttribute("data-value"), { timeout: 30_000 }).toBe("soft");
      await expect.poll(() => impactRow(op, acceptor).getAttribute("data-fate"), { timeout: 30_000 }).toBe("stays_on_old_code");
      await expect.poll(() => op.getByTestId("install").textContent()).toBe("Install 0.1.1 — kills none");
      const shared = await opCtx.newPage();
      try {
        await shared.goto(reviewed.pathname + reviewed.search);
        await expect.poll(() => shared.getByTestId("choose-area").getAttribute("data-target"), { timeout: 30_000 }).toBe("0.1.1");
        await expect.poll(() => shared.locator(`[data-testid="purge-row"][data-module="${MODULE}"] [data-testid="post-purge"]`).getAttribute("data-value"), { timeout: 30_000 }).toBe("soft");
        await expect.poll(() => shared.getByTestId("install").textContent(), { timeout: 30_000 }).toBe("Install 0.1.1 — kills none");
      } finally {
        await shared.close();
      }
    });
  }, 60_000);

  it("installs with the node's name typed: live progress, then exactly the old-code list the node reports", async () => {
    await withScreenshotOnFailure(op, "upgrade-install", async () => {
      await op.getByTestId("confirm-install").fill(node.name);
      const install = op.getByTestId("install");
      // The fallback timer (issue 15): a duration out of bounds is said, and the button waits for a valid one.
      await op.getByTestId("install-fallback").fill("3s");
      await expect.poll(() => op.getByTestId("install-fallback-error").textContent()).toBe("the fallback must be from 5s to 24h, not 3s");
      expect(await install.isEnabled()).toBe(false);
      await op.getByTestId("install-fallback").fill("20m");
      await expect.poll(() => install.isEnabled()).toBe(true);
      await runStep(op, install);
      expect(await op.locator('[data-testid="progress-event"][data-step="install_release"]').count()).toBeGreaterThan(0);
      await op.getByTestId("decision-area").waitFor({ timeout: 20_000 });
      expect(await releaseStatus("0.1.1")).toBe("current");
      // The agent journalled the deadline on the node; the page counts it down (made permanent in the next test).
      expect(await node.rpc(`filelib:is_regular(filename:join([code:root_dir(), "releases", "beamdeck_agent_fallback.term"]))`)).toBe("true");
      await expect.poll(() => op.getByTestId("fallback-line").textContent(), { timeout: 10_000 }).toMatch(/^Falls back to 0\.1\.0 at .+ unless made permanent \((19|20)m \d+s left\)\.$/);

      // The list on the page, polled every second, equals the node's own answer.
      const nodeSays = await onOldCode();
      expect(nodeSays).toEqual([acceptor, ...handlers].sort());
      const shown = async () => (await op.locator('[data-testid="old-code-panel"] [data-testid="old-code-row"]').evaluateAll((els) => els.map((e) => e.getAttribute("data-pid")))).sort();
      await expect.poll(shown, { timeout: 10_000 }).toEqual(nodeSays);
      for (const pid of await shown()) expect(await node.rpcJson<boolean>(`erlang:check_process_code(list_to_pid(${JSON.stringify(pid)}), '${MODULE}')`)).toBe(true);
      expect(await op.getByTestId("old-code-meta").getAttribute("data-total")).toBe(String(nodeSays.length));
      // Nobody died at install.
      expect(await acceptorPid()).toBe(acceptor);
      for (const pid of handlers) expect(await alive(pid)).toBe(true);
      await screenshot(op, "upgrade-5-installed", true);

      // Rolling back is previewed too: the down script's brutal pre-purge would kill
      // whoever runs 0.1.0's code, now old — the three, as the node says.
      const rb = op.getByTestId("rollback");
      await expect.poll(() => rb.textContent(), { timeout: 15_000 }).toBe(`Roll back to 0.1.0 — kills ${nodeSays.length}`);
      await op.getByTestId("rollback-details").locator("summary").click();
      const rbKilled = await op.locator('[data-testid="rollback-impact-panel"] [data-testid="impact-row"][data-fate="killed"]').evaluateAll((els) => els.map((e) => e.getAttribute("data-pid")).sort());
      expect(rbKilled).toEqual(nodeSays);
      await screenshot(op, "upgrade-5b-rollback-preview", true);
      await op.getByTestId("rollback-details").locator("summary").click();
    });
  }, 120_000);

  it("makes 0.1.1 permanent: nobody dies, the open connections still answer, predicted vs actual side by side", async () => {
    await withScreenshotOnFailure(op, "upgrade-permanent", async () => {
      const button = op.getByTestId("make-permanent");
      await expect.poll(() => button.textContent()).toBe("Make 0.1.1 permanent — kills none");
      expect(await button.isDisabled()).toBe(true);
      await op.getByTestId("confirm-decision").fill(node.name);
      await expect.poll(() => button.isEnabled()).toBe(true);
      await runStep(op, button);
      await expect.poll(() => op.getByTestId("upgrade-page").getAttribute("data-stage"), { timeout: 20_000 }).toBe("choose");

      // The node: 0.1.1 permanent, the same acceptor, every handler alive, both connections answer.
      expect(await releaseStatus("0.1.1")).toBe("permanent");
      expect(await acceptorPid()).toBe(acceptor);
      for (const pid of handlers) expect(await alive(pid)).toBe(true);
      for (const c of clients) expect(await c.hello()).toBe(OLD_GREETING);
      // They are still on the old code (soft purge), as the page said they would be.
      expect(await onOldCode()).toEqual([acceptor, ...handlers].sort());

      const pva = op.getByTestId("pva-panel");
      await pva.waitFor();
      for (const step of ["install", "make_permanent"]) {
        const s = pva.locator(`[data-testid="pva-step"][data-step="${step}"]`);
        await expect.poll(() => s.getAttribute("data-done"), { timeout: 20_000 }).toBe("true");
        expect(await s.getAttribute("data-held")).toBe("true");
        expect(await s.getByTestId("pva-predicted").getAttribute("data-count")).toBe("0");
        expect(await s.getByTestId("pva-actual").getAttribute("data-count")).toBe("0");
      }
      const row = op.locator('[data-testid="history-row"]').first();
      expect(await row.getAttribute("data-status")).toBe("permanent");
      expect(await row.textContent()).toContain("0.1.0 → 0.1.1");
      await screenshot(op, "upgrade-6-permanent", true);
    });
  }, 120_000);

  it("then previews 0.1.2 as the forum's answer warned: the processes left on old code are killed at install", async () => {
    await withScreenshotOnFailure(op, "upgrade-next", async () => {
      await expect.poll(() => op.getByTestId("choose-area").getAttribute("data-target"), { timeout: 20_000 }).toBe("0.1.2");
      await impactRow(op, acceptor).waitFor({ timeout: 30_000 });
      const stuck = await onOldCode();
      for (const pid of stuck) {
        expect(await impactRow(op, pid).getAttribute("data-fate")).toBe("killed");
        expect(await impactRow(op, pid).getAttribute("data-when")).toBe("install");
      }
      // The pre-purge matters now: the advanced section is open, and soft blocks the install.
      expect(await op.getByTestId("advanced").getAttribute("open")).not.toBeNull();
      await op.locator(`[data-testid="pre-purge-row"][data-module="${MODULE}"] [data-testid="pre-purge-soft"]`).click();
      await expect.poll(() => impactRow(op, acceptor).getAttribute("data-fate"), { timeout: 30_000 }).toBe("blocks_install");
      await screenshot(op, "upgrade-7-next-blocked", true);
    });
  }, 90_000);
});

describe("a viewer sees the upgrade page read-only", () => {
  let viewerCtx: BrowserContext;
  let vp: Page;

  beforeAll(async () => {
    const admin = httpClient(bd.url, { token: bd.apiToken });
    await admin.users.add.mutate({ username: VIEWER.username, role: "viewer", password: VIEWER.password });
    viewerCtx = await browser.newContext({ baseURL: bd.url, viewport: { width: 1440, height: 1000 } });
    viewerCtx.setDefaultTimeout(15_000);
    vp = await viewerCtx.newPage();
    await login(vp, VIEWER.username, VIEWER.password, upgradePath());
  }, 60_000);

  afterAll(async () => {
    await viewerCtx?.close().catch(() => {});
  });

  it("shows releases, preview and history, with the explanation instead of the buttons", async () => {
    await withScreenshotOnFailure(vp, "upgrade-viewer", async () => {
      await vp.getByTestId("releases-panel").waitFor();
      await vp.getByTestId("impact-panel").waitFor({ timeout: 30_000 });
      await vp.getByTestId("history-panel").waitFor();
      const notes = vp.getByTestId("viewer-note");
      await notes.first().waitFor();
      expect(await notes.first().textContent()).toContain("Operators and admins can run upgrade steps — you are a viewer");
      for (const b of ["unpack", "install", "make-permanent", "rollback", "confirm-install", "confirm-decision"]) expect(await vp.getByTestId(b).count()).toBe(0);
      expect(await vp.locator('[data-testid="pending-row"][data-vsn="0.1.2"]').count()).toBe(1);
      await screenshot(vp, "upgrade-8-viewer", true);
    });
  }, 60_000);

  it("says an error in a sentence, and an unknown ?vsn= as such", async () => {
    await withScreenshotOnFailure(vp, "upgrade-errors", async () => {
      // A node that never connected: the catalogued code becomes a sentence, not the server's raw words.
      await vp.goto("/nodes/no-such-node%40nowhere/upgrade");
      const box = vp.getByTestId("releases-error");
      await box.waitFor({ timeout: 30_000 });
      expect(await box.getAttribute("data-error-code")).toBe("BD_NODE_UNKNOWN");
      const sentence = (await vp.getByTestId("releases-error-message").textContent()) ?? "";
      expect(sentence).toBe("No node of this name has connected to this server. Check the name, or start its agent.");
      expect(await box.textContent()).not.toMatch(/[{}[\]]|at \S+:\d+/);

      // A link to a release the node does not have: said, and nothing chosen in its place.
      await vp.goto(`${upgradePath()}?vsn=9.9.9&post=${encodeURIComponent(`${MODULE}:soft`)}`);
      const note = vp.getByTestId("unknown-vsn");
      await note.waitFor({ timeout: 30_000 });
      expect(await note.getAttribute("data-vsn")).toBe("9.9.9");
      expect(await note.textContent()).toContain("9.9.9, which is not a release of this node");
      expect(await vp.getByTestId("choose-area").count()).toBe(0);
      // Back to the plain page for the tests below.
      await vp.goto(upgradePath());
      await vp.getByTestId("impact-panel").waitFor({ timeout: 30_000 });
    });
  }, 90_000);

  it("links a pid to the node page's process drawer", async () => {
    await withScreenshotOnFailure(vp, "upgrade-pid-link", async () => {
      const pid = await acceptorPid();
      const link = vp.locator(`[data-testid="impact-row"][data-pid="${pid}"] [data-testid="pid-link"]`);
      expect(await link.getAttribute("href")).toBe(`/nodes/${encodeURIComponent(node.name)}?pid=${encodeURIComponent(pid)}`);
      await link.click();
      await vp.waitForURL((u) => u.pathname === `/nodes/${encodeURIComponent(node.name)}`);
      const drawer = vp.getByTestId("proc-drawer");
      await drawer.waitFor();
      expect(await drawer.getAttribute("data-pid")).toBe(pid);
    });
  }, 60_000);

  it("is refused FORBIDDEN by the server when calling upgrades.install directly", async () => {
    const before = await node.rpcJson<string[]>('[V ++ ":" ++ atom_to_list(S) || {_, V, _, S} <- release_handler:which_releases()]');
    const cookie = await loginCookie(bd.url, VIEWER.username, VIEWER.password);
    const viewer = httpClient(bd.url, { cookie });
    const err = await viewer.upgrades.install.mutate({ node: node.name, vsn: "0.1.2", confirmNode: node.name, maxKills: 0 }).then(
      () => null,
      (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(TRPCClientError);
    expect(((err as TRPCClientError<never>).data as { code?: string } | undefined)?.code).toBe("FORBIDDEN");
    expect((err as Error).message).toBe("upgrades.install needs the operator role; you are viewer");
    // Nothing happened on the node.
    expect(await node.rpcJson<string[]>('[V ++ ":" ++ atom_to_list(S) || {_, V, _, S} <- release_handler:which_releases()]')).toEqual(before);
    expect(await releaseStatus("0.1.2")).toBe("absent");
  });
});

describe("the next upgrade kills what the soft purge left on old code, exactly as predicted", () => {
  let leftover: string[] = [];

  it("installs 0.1.2 with the brutal pre-purge: the processes on old code die at install, only they, as the page said", async () => {
    await withScreenshotOnFailure(op, "upgrade-kill", async () => {
      const stuck = await onOldCode();
      expect(stuck).toHaveLength(3);
      const oldAcceptor = await acceptorPid();
      expect(stuck).toContain(oldAcceptor);

      await op.goto(`${upgradePath()}?vsn=0.1.2`);
      await runStep(op, op.locator('[data-testid="pending-row"][data-vsn="0.1.2"]').getByTestId("unpack"));
      expect(await releaseStatus("0.1.2")).toBe("unpacked");
      for (const pid of stuck) {
        await expect.poll(() => impactRow(op, pid).getAttribute("data-fate"), { timeout: 30_000 }).toBe("killed");
        expect(await impactRow(op, pid).getAttribute("data-when")).toBe("install");
      }
      const install = op.getByTestId("install");
      await expect.poll(() => install.textContent()).toBe("Install 0.1.2 — kills 3 now, 0 at make permanent");
      await op.getByTestId("confirm-install").fill(node.name);
      await runStep(op, install);
      await op.getByTestId("decision-area").waitFor({ timeout: 20_000 });

      // The node: exactly those died, and the supervisor started a new acceptor.
      for (const pid of stuck) expect(await alive(pid)).toBe(false);
      const newAcceptor = await acceptorPid();
      expect(newAcceptor).not.toBe(oldAcceptor);
      for (const c of clients) expect(await c.closed).not.toBeUndefined();

      // Predicted vs actual, side by side: three predicted, the same three died.
      const s = op.locator('[data-testid="pva-panel"] [data-testid="pva-step"][data-step="install"]');
      await expect.poll(() => s.getAttribute("data-done"), { timeout: 20_000 }).toBe("true");
      expect(await s.getAttribute("data-held")).toBe("true");
      expect(await s.getByTestId("pva-predicted").getAttribute("data-count")).toBe("3");
      expect(await s.getByTestId("pva-actual").getAttribute("data-count")).toBe("3");
      const died = (
        await s
          .getByTestId("pva-actual")
          .locator('[data-testid="pid-link"]')
          .evaluateAll((els) => els.map((e) => e.getAttribute("data-pid")))
      ).sort();
      expect(died).toEqual(stuck);

      // The restarted acceptor raced the code load: if the supervisor restarted it
      // before 0.1.2 was loaded, it runs 0.1.1 — now old code — and answers with
      // 0.1.1's greeting. Whichever it was, the page lists what the node says.
      const fresh = await GreetingClient.connect(listenPort);
      clients.push(fresh);
      const greeting = await fresh.hello();
      leftover = await onOldCode();
      expect(greeting).toBe(leftover.includes(newAcceptor) ? "Hey there, next version!\n" : "Hey there, version three!\n");
      const shown = async () => (await op.locator('[data-testid="old-code-panel"] [data-testid="old-code-row"]').evaluateAll((els) => els.map((e) => e.getAttribute("data-pid")))).sort();
      await expect.poll(shown, { timeout: 10_000 }).toEqual(leftover);
      await screenshot(op, "upgrade-9-killed-as-predicted", true);
    });
  }, 120_000);

  it("makes 0.1.2 permanent: the button states who dies now, and exactly they die", async () => {
    await withScreenshotOnFailure(op, "upgrade-kill-permanent", async () => {
      const button = op.getByTestId("make-permanent");
      const n = leftover.length;
      await expect.poll(() => button.textContent()).toBe(`Make 0.1.2 permanent — ${n === 0 ? "kills none" : `kills ${n} now`}`);
      // The make_permanent preview follows the old-code list: the same processes, killed at make_permanent.
      for (const pid of leftover) {
        await expect.poll(() => impactRow(op, pid).getAttribute("data-fate"), { timeout: 15_000 }).toBe("killed");
        expect(await impactRow(op, pid).getAttribute("data-when")).toBe("make_permanent");
      }
      await op.getByTestId("confirm-decision").fill(node.name);
      await runStep(op, button);
      await expect.poll(() => op.getByTestId("upgrade-page").getAttribute("data-stage"), { timeout: 20_000 }).toBe("choose");

      expect(await releaseStatus("0.1.2")).toBe("permanent");
      for (const pid of leftover) expect(await alive(pid)).toBe(false);
      expect(await onOldCode()).toEqual([]);
      const c = await GreetingClient.connect(listenPort);
      clients.push(c);
      expect(await c.hello()).toBe("Hey there, version three!\n");

      const s = op.locator('[data-testid="pva-panel"] [data-testid="pva-step"][data-step="make_permanent"]');
      await expect.poll(() => s.getAttribute("data-done"), { timeout: 20_000 }).toBe("true");
      expect(await s.getAttribute("data-held")).toBe("true");
      expect(await s.getByTestId("pva-predicted").getAttribute("data-count")).toBe(String(n));
      expect(await s.getByTestId("pva-actual").getAttribute("data-count")).toBe(String(n));
      await screenshot(op, "upgrade-10-permanent-after-kill", true);
    });
  }, 120_000);
});

describe("the audit page shows the operator's upgrade", () => {
  it("lists every step by the operator, intent and outcome, for an auditor with the viewer role", async () => {
    const ctx = await browser.newContext({ baseURL: bd.url, viewport: { width: 1440, height: 1000 } });
    try {
      const page = await ctx.newPage();
      await login(page, VIEWER.username, VIEWER.password, "/audit?action=upgrade.");
      await withScreenshotOnFailure(page, "upgrade-audit", async () => {
        const rows = page.locator('[data-testid="audit-row"]');
        const seen = async () =>
          (await rows.evaluateAll((els) => els.map((e) => `${e.getAttribute("data-actor")} ${e.getAttribute("data-action")} ${e.getAttribute("data-outcome") || "intent"}`))).sort();
        const want = ["upgrade.unpack", "upgrade.install", "upgrade.make_permanent"].flatMap((a) => [`user:${OPERATOR.username} ${a} intent`, `user:${OPERATOR.username} ${a} ok`]);
        await expect.poll(async () => want.every((w) => seen().then((s) => s.includes(w))), { timeout: 15_000 }).toBe(true);
        await expect.poll(seen, { timeout: 15_000 }).toEqual(expect.arrayContaining(want));
        // Nothing is left without an outcome, and the chain is intact.
        expect(await rows.evaluateAll((els) => els.filter((e) => e.getAttribute("data-pending") === "true").length)).toBe(0);
        const audit = await httpClient(bd.url, { token: bd.apiToken }).audit.verify.query();
        expect(audit.ok).toBe(true);
        await screenshot(page, "upgrade-11-audit", true);
      });
    } finally {
      await ctx.close();
    }
  }, 60_000);
});
