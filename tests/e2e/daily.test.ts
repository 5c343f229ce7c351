/**
 * Issue 14 in real Chromium against a real node (the demo release's
 * listener): the acceptor is found by the module on its stack and labelled
 * by it; its drawer names the Task.async leak (hint with the count the node
 * has) and says why messages are not shown; columns resize; the chart legend
 * names processes; "as of" times carry their zone.
 */
import net from "node:net";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { Page } from "playwright-core";
import { stopAll, type BeamNode } from "../../tools/beam/nodes";
import { startAgentNode, waitConnected } from "../support/beam-node";
import { launchBrowser, login, withScreenshotOnFailure, type BrowserSession } from "../support/browser";
import { freePort } from "../support/ports";
import { startServer, type TestServer } from "../support/server";
import { ensureNextBuild } from "./next-build";

let bd: TestServer;
let browser: BrowserSession;
let page: Page;
let node: BeamNode;
let listenPort: number;

beforeAll(async () => {
  await ensureNextBuild();
  bd = await startServer({ web: true });
  listenPort = await freePort();
  ({ node } = await startAgentNode(bd, { env: { REL_TEST_PORT: String(listenPort) } }));
  await waitConnected(bd, node.name, true, 60_000);
  browser = await launchBrowser({ baseURL: bd.url });
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
      expect(await page.getByTestId("mailbox-chart").getByTestId("as-of").textContent()).toMatch(/^as of \d\d:\d\d:\d\d UTC([+-]\d+(:\d\d)?)? \(/);
    });
  }, 240_000);
});
