/**
 * Issue 14 in real Chromium against a real node (the demo release's
 * listener): the acceptor is found by the module on its stack and labelled
 * by it; its drawer names the Task.async leak (hint with the count the node
 * has) and says why messages are not shown; columns resize; the chart legend
 * names processes; "as of" times carry their zone. A mailbox the node keeps
 * filling shows its growth line (since when, how fast) and the leak alert;
 * the node's events timeline shows an upgrade step between its events; a
 * viewer is told why process values are hidden. The browser runs in
 * Asia/Kolkata (UTC+5:30), so a zone label cannot be right by accident.
 */
import net from "node:net";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { Page } from "playwright-core";
import { stopAll, type BeamNode } from "../../tools/beam/nodes";
import { startAgentNode, waitConnected } from "../support/beam-node";
import { launchBrowser, login, withScreenshotOnFailure, type BrowserSession } from "../support/browser";
import { freePort, waitFor } from "../support/ports";
import { httpClient } from "../support/trpc-clients";
import { startServer, type TestServer } from "../support/server";
import { ensureNextBuild } from "./next-build";

let bd: TestServer;
let browser: BrowserSession;
let page: Page;
let node: BeamNode;
let listenPort: number;
/** Not the host's zone (UTC here), and with a half-hour offset. */
const ZONE = "Asia/Kolkata";
const ZONE_LABEL = "UTC+5:30";
/** "HH:MM:SS" of `ms` in ZONE, as the page should print it. */
const clockIn = (ms: number) => new Intl.DateTimeFormat("en-GB", { timeZone: ZONE, hour: "2-digit", minute: "2-digit", second: "2-digit", hourCycle: "h23" }).format(ms);

beforeAll(async () => {
  await ensureNextBuild();
  bd = await startServer({ web: true });
  listenPort = await freePort();
  ({ node } = await startAgentNode(bd, { env: { REL_TEST_PORT: String(listenPort) } }));
  await waitConnected(bd, node.name, true, 60_000);
  browser = await launchBrowser({ baseURL: bd.url, timezoneId: ZONE });
  page = browser.page;
  await login(page, "admin", bd.adminPassword, "/");
}, 300_000);
afterAll(async () => {
  await browser?.close();
  await stopAll();
  await bd?.stop();
});

/** One client that comes and goes: the acceptor's Task.async result is never awaited. */
function visit(): Promise<void> {
  return new Promise<void>((resolve, reject) => {
    const s = net.connect(listenPort, "127.0.0.1", () => s.write("hi\n"));
    s.setTimeout(10_000, () => reject(new Error("listener did not answer")));
    s.once("data", () => s.end());
    s.once("close", () => resolve());
    s.once("error", reject);
  });
}

describe("daily use of the process view", () => {
  it("finds the acceptor by its code, explains its mailbox, resizes columns, names legend lines", async () => {
    await withScreenshotOnFailure(page, "daily-process-view", async () => {
      for (let i = 0; i < 2; i += 1) await visit();
      const acceptor = await node.rpcJson<string>("[{_, P, _, _}] = supervisor:which_children('Elixir.RelTest.Supervisor'), P");
      const queued = () => node.rpcJson<number>(`element(2, erlang:process_info(list_to_pid("${acceptor}"), message_queue_len))`);
      await expect.poll(queued, { timeout: 20_000 }).toBe(4);

      await page.goto(`/nodes/${encodeURIComponent(node.name)}`);
      await page.getByTestId("proc-filter").fill("TestListener");
      const row = page.locator(`[data-testid="proc-row"][data-pid="${acceptor}"]`);
      await row.waitFor({ timeout: 30_000 });
      expect(await row.getByTestId("proc-stack-match").getAttribute("data-modules")).toContain("Elixir.TestListener");
      expect(await row.getByTestId("proc-label").getAttribute("data-label")).toBe("Elixir.TestListener");
      const scan = page.getByTestId("proc-stack-scan");
      expect(Number(await scan.getAttribute("data-scanned"))).toBeGreaterThan(0);
      expect(await scan.textContent()).toMatch(/scanned [\d,]+ of [\d,]+/);

      // Resizable columns: drag the name column's edge 120 px to the right.
      const head = page.locator(".ptable-head > div").nth(1);
      const before = (await head.boundingBox())!.width;
      const handle = (await page.getByTestId("resize-1").boundingBox())!;
      await page.mouse.move(handle.x + handle.width / 2, handle.y + handle.height / 2);
      await page.mouse.down();
      await page.mouse.move(handle.x + handle.width / 2 + 60, handle.y + 5, { steps: 4 });
      await page.mouse.move(handle.x + handle.width / 2 + 120, handle.y + 5, { steps: 4 });
      await page.mouse.up();
      const after = (await head.boundingBox())!.width;
      expect(Math.abs(after - before - 120)).toBeLessThanOrEqual(2);
      const cell = (await row.locator(".c-name").boundingBox())!.width;
      expect(Math.abs(cell - after)).toBeLessThanOrEqual(1);

      // The drawer: the hint counts what the node holds; no message values while get_state is off.
      await row.click();
      const drawer = page.getByTestId("proc-drawer");
      const hint = drawer.locator('[data-testid="mailbox-hint"][data-hint="task_async_unawaited"]');
      await hint.waitFor({ timeout: 20_000 });
      expect(await hint.getAttribute("data-count")).toBe("2");
      expect(await drawer.getByTestId("mailbox-why").textContent()).toContain("get_state setting is off");
      expect(await drawer.getByTestId("mailbox-message").count()).toBe(0);
      await page.getByTestId("drawer-close").click();

      // The chart legend names the acceptor by its label, not by a bare pid; as-of times carry a zone.
      await page.getByTestId("proc-filter").fill("");
      const legend = page.locator(`[data-testid="mailbox-legend"] li[data-pid="${acceptor}"] [data-testid="legend-name"]`);
      await legend.waitFor({ timeout: 30_000 });
      expect(await legend.textContent()).toBe("TestListener");
      expect(await page.getByTestId("mailbox-chart").getByTestId("as-of").textContent()).toMatch(/^as of \d\d:\d\d:\d\d UTC\+5:30 \(/);
    });
  }, 240_000);

  it("a mailbox the node keeps filling shows its growth line: since when, how fast, and the leak alert", async () => {
    await withScreenshotOnFailure(page, "daily-growth-line", async () => {
      const api = httpClient(bd.url, { token: bd.apiToken });
      await api.alerts.updateRule.mutate({ kind: "mailbox_leak", enabled: true, params: { windowSeconds: 6, minGrowth: 5 } });
      const started = Date.now();
      // A registered process nobody serves, and a sender adding 4 messages a second for a minute.
      const leaky = await node.rpcJson<string>(
        `P = spawn(fun() -> receive never_sent -> ok end end), register(bd_e2e_leak, P), spawn(fun() -> [begin P ! {tick, I}, timer:sleep(250) end || I <- lists:seq(1, 240)] end), list_to_binary(pid_to_list(P))`,
      );
      const queued = () => node.rpcJson<number>(`element(2, erlang:process_info(whereis(bd_e2e_leak), message_queue_len))`);
      await page.goto(`/nodes/${encodeURIComponent(node.name)}`);
      await page.getByTestId("proc-filter").fill("bd_e2e_leak");
      const row = page.locator(`[data-testid="proc-row"][data-pid="${leaky}"]`);
      await row.waitFor({ timeout: 30_000 });
      await row.click();
      const growth = page.getByTestId("proc-drawer").getByTestId("drawer-growth");
      // The rule fires after its window: the line says so, with the slope it measured.
      await expect.poll(async () => (await growth.count()) > 0 && (await growth.textContent()), { timeout: 40_000, interval: 1000 }).toMatch(/the mailbox_leak alert fired/);
      const text = (await growth.textContent()) ?? "";
      const m = /^Growing: ([\d,]+) → ([\d,]+) messages since (\d\d:\d\d:\d\d) (\S+) \(([\d.]+) min, ([\d.]+)\/min\)/.exec(text);
      if (!m) throw new Error(`the growth line does not read as expected: ${text}`);
      const [from, to] = [Number(m[1].replace(/,/g, "")), Number(m[2].replace(/,/g, ""))];
      const now = await queued();
      expect(to).toBeGreaterThan(from);
      expect(to).toBeLessThanOrEqual(now);
      // Since: after the test started it, printed in the browser's zone with the zone named.
      const since = Number(await growth.getAttribute("data-since"));
      expect(since).toBeGreaterThanOrEqual(started - 1000);
      expect(m[3]).toBe(clockIn(since));
      expect(m[4]).toBe(ZONE_LABEL);
      // The slope: messages per minute between the two readings, and the sender's own rate bounds it (4/s = 240/min).
      const perMinute = Number(await growth.getAttribute("data-per-minute"));
      expect(perMinute).toBeGreaterThan(0);
      expect(perMinute).toBeLessThanOrEqual(240 * 1.2);
      const alert = (await api.alerts.list.query({ status: "open" })).find((a) => a.kind === "mailbox_leak" && (a.detail as { pid: string }).pid === leaky);
      expect(alert?.title).toMatch(/mailbox grew from \d+ to \d+/);
      await page.getByTestId("drawer-close").click();
      await node.rpc(`exit(whereis(bd_e2e_leak), kill), ok`);
    });
  }, 180_000);

  it("the node's events timeline shows an upgrade step between its events, times in the browser's zone", async () => {
    await withScreenshotOnFailure(page, "daily-timeline-step", async () => {
      const unpack = await bd.cli(["upgrade", "unpack", node.name, "0.1.1"], {}, { timeoutMs: 240_000 });
      expect(unpack.code, unpack.stderr).toBe(0);
      // A supervisor report after the step: the acceptor killed (and restarted).
      await node.rpc(`[{_, P, _, _}] = supervisor:which_children('Elixir.RelTest.Supervisor'), exit(P, kill), ok`);
      const api = httpClient(bd.url, { token: bd.apiToken });
      const [step] = await api.events.upgradeSteps.query({ node: node.name });
      expect(step).toMatchObject({ action: "unpack", vsn: "0.1.1", status: "ok" });
      const killed = await waitFor(
        "the report of the killed acceptor",
        async () => (await api.events.list.query({ node: node.name, kind: "supervisor_report", limit: 50 })).events.find((e) => e.reason === "killed" && e.at > step.at) ?? null,
        30_000,
        500,
      );

      await page.goto(`/events?node=${encodeURIComponent(node.name)}`);
      const stepRow = page.locator('[data-testid="event-upgrade-step"][data-action="unpack"]');
      await stepRow.waitFor({ timeout: 30_000 });
      expect(await stepRow.getAttribute("data-status")).toBe("ok");
      expect(await stepRow.textContent()).toContain("to 0.1.1");
      expect(await stepRow.locator("td").first().textContent()).toBe(clockIn(step.at));
      // Newest first: the report (after the step) is above it, in the same table.
      const eventRow = page.locator(`[data-testid="event-row"][data-id="${killed.id}"]`);
      await eventRow.waitFor({ timeout: 30_000 });
      const rows = page.locator('tbody tr[data-testid="event-row"], tbody tr[data-testid="event-upgrade-step"]');
      const order = await rows.evaluateAll((trs) => trs.map((tr) => tr.getAttribute("data-id") ?? `step:${tr.getAttribute("data-action")}`));
      expect(order.indexOf(killed.id)).toBeGreaterThanOrEqual(0);
      expect(order.indexOf(killed.id)).toBeLessThan(order.indexOf("step:unpack"));
      // The time column names its zone.
      expect(await page.getByTestId("time-header").textContent()).toBe(`Time (${ZONE_LABEL})`);
    });
  }, 360_000);

  it("a viewer is told which role sees the messages the node sends", async () => {
    await withScreenshotOnFailure(page, "daily-viewer-values", async () => {
      const add = await bd.cli(["user", "add", "vera", "--role", "viewer", "--password-stdin"], {}, { input: "vera-long-password-1\n" });
      expect(add.code, add.stderr).toBe(0);
      const acceptor = await node.rpcJson<string>("[{_, P, _, _}] = supervisor:which_children('Elixir.RelTest.Supervisor'), list_to_binary(pid_to_list(P))");
      await node.rpc(`P = list_to_pid("${acceptor}"), P ! {bd_e2e, hello}, application:set_env(beamdeck_agent, get_state, true)`);
      try {
        const viewer = await launchBrowser({ baseURL: bd.url, timezoneId: ZONE });
        try {
          await login(viewer.page, "vera", "vera-long-password-1", `/nodes/${encodeURIComponent(node.name)}`);
          const row = viewer.page.locator(`[data-testid="proc-row"][data-pid="${acceptor}"]`);
          await viewer.page.getByTestId("proc-filter").fill("TestListener");
          await row.waitFor({ timeout: 30_000 });
          await row.click();
          const why = viewer.page.getByTestId("proc-drawer").getByTestId("mailbox-why");
          await why.waitFor({ timeout: 20_000 });
          expect(await why.textContent()).toBe("messages not shown: your role may not see process values (operator and up may; an admin sets this under Admin → Process values)");
          expect(await viewer.page.getByTestId("mailbox-message").count()).toBe(0);
        } finally {
          await viewer.close();
        }
        // The admin's page, same process: the message the test sent is there.
        await page.goto(`/nodes/${encodeURIComponent(node.name)}`);
        await page.getByTestId("proc-filter").fill("TestListener");
        await page.locator(`[data-testid="proc-row"][data-pid="${acceptor}"]`).click();
        await expect.poll(async () => (await page.getByTestId("mailbox-message").allTextContents()).join("\n"), { timeout: 20_000 }).toContain("{bd_e2e,hello}");
      } finally {
        await node.rpc(`application:set_env(beamdeck_agent, get_state, false)`);
      }
    });
  }, 180_000);

  it("after a soft-purge install, the processes left on old code are marked in the nodes list, the table and the tree", async () => {
    await withScreenshotOnFailure(page, "daily-old-code-marks", async () => {
      // 0.1.1 was unpacked by the timeline test above.
      const install = await bd.cli(["upgrade", "install", node.name, "0.1.1", "--purge", "TestListener=soft", "--yes"], {}, { timeoutMs: 240_000 });
      expect(install.code, install.stderr).toBe(0);
      const stuck = await node.rpcJson<string[]>(`lists:sort([list_to_binary(pid_to_list(P)) || P <- processes(), erlang:check_process_code(P, 'Elixir.TestListener')])`);
      expect(stuck.length).toBeGreaterThanOrEqual(1);
      const acceptor = await node.rpcJson<string>("[{_, P, _, _}] = supervisor:which_children('Elixir.RelTest.Supervisor'), list_to_binary(pid_to_list(P))");
      expect(stuck).toContain(acceptor);

      await page.goto("/");
      const nodeRow = page.locator(`[data-testid="node-row"][data-node="${node.name}"]`);
      await expect.poll(() => nodeRow.getByTestId("node-old-code").getAttribute("data-value"), { timeout: 30_000 }).toBe(String(stuck.length));

      await page.goto(`/nodes/${encodeURIComponent(node.name)}`);
      // The tree: the supervised acceptor carries the mark, with the module.
      const treeMark = page.locator(`[data-testid="tree-node"][data-pid="${acceptor}"] [data-testid="tree-old-code"]`);
      await treeMark.waitFor({ timeout: 30_000 });
      expect(await treeMark.getAttribute("data-modules")).toBe("Elixir.TestListener");
      // The table: every process the node says is on old code, and no other, is marked.
      await page.getByTestId("proc-filter").fill("TestListener");
      await page.locator(`[data-testid="proc-row"][data-pid="${acceptor}"] [data-testid="proc-old-code"]`).waitFor({ timeout: 30_000 });
      const marked = async () => (await page.locator('[data-testid="proc-row"]:has([data-testid="proc-old-code"])').evaluateAll((rows) => rows.map((r) => r.getAttribute("data-pid") ?? ""))).sort();
      await expect.poll(marked, { timeout: 20_000 }).toEqual(stuck);
      expect(await page.locator(`[data-testid="proc-row"][data-pid="${acceptor}"] [data-testid="proc-old-code"]`).getAttribute("data-modules")).toBe("Elixir.TestListener");
    });
  }, 360_000);
});
