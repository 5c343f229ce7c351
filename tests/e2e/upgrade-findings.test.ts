/**
 * Error findings are accepted one by one in the browser (issue 13, "In the
 * UI"): on the bd_checks release, whose 1.0.0 → 1.1.0 upgrade fails in the
 * ways the plan's checks find, the Install button stays disabled and says
 * how many error findings are left until each is ticked; the ticked ids go
 * with the step and the audit records them. Then make_permanent: its own
 * error finding (the module the install left on old code) is accepted the
 * same way, and the unsupervised server the install's plan named, dead by
 * then, shows as a miss in predicted vs actual. Real server, real node, real
 * Chromium.
 */
import fs from "node:fs";
import type { Browser, BrowserContext, Page } from "playwright-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { stopAll, type BeamNode } from "../../tools/beam/nodes";
import { startAgentNode, waitConnected } from "../support/beam-node";
import { launchChromium, login, withScreenshotOnFailure } from "../support/browser";
import { startServer, type TestServer } from "../support/server";
import { ensureNextBuild } from "./next-build";

let bd: TestServer;
let node: BeamNode;
let browser: Browser;
let ctx: BrowserContext;
let page: Page;
let errorIds: string[];

beforeAll(async () => {
  await ensureNextBuild();
  bd = await startServer({ web: true });
  ({ node } = await startAgentNode(bd, { release: "bd_checks" }));
  await waitConnected(bd, node.name, true, 60_000);
  const unpack = await bd.cli(["upgrade", "unpack", node.name, "1.1.0"], {}, { timeoutMs: 120_000 });
  expect(unpack.code, unpack.stderr).toBe(0);
  const plan = await bd.cli(["upgrade", "plan", node.name, "1.1.0", "--json"], {}, { timeoutMs: 120_000 });
  errorIds = (JSON.parse(plan.stdout) as { findings: { id: string; severity: string }[] }).findings.filter((f) => f.severity === "error").map((f) => f.id);
  browser = await launchChromium();
  ctx = await browser.newContext({ baseURL: bd.url, viewport: { width: 1440, height: 1000 } });
  ctx.setDefaultTimeout(20_000);
  page = await ctx.newPage();
  await login(page, "admin", bd.adminPassword, "/");
}, 600_000);

afterAll(async () => {
  await ctx?.close().catch(() => {});
  await browser?.close().catch(() => {});
  await stopAll();
  await bd?.stop();
  if (bd) fs.rmSync(bd.dataDir, { recursive: true, force: true });
}, 60_000);

describe("error findings accepted one by one", () => {
  it("keeps Install disabled, saying how many are left, until each error finding is ticked; the ticked ids are audited", async () => {
    // The release really has error findings (appup_missing_module, not_suspended, …): otherwise this test shows nothing.
    expect(errorIds.length).toBeGreaterThanOrEqual(2);
    await withScreenshotOnFailure(page, "upgrade-findings", async () => {
      await page.goto(`/nodes/${encodeURIComponent(node.name)}/upgrade?vsn=1.1.0`);
      const install = page.getByTestId("install");
      await install.waitFor({ timeout: 120_000 });
      await page.getByTestId("confirm-install").fill(node.name);
      const boxes = page.getByTestId("accept-finding");
      await expect.poll(() => boxes.count(), { timeout: 60_000 }).toBe(errorIds.length);
      expect((await boxes.evaluateAll((els) => els.map((e) => e.getAttribute("data-id")))).sort()).toEqual([...errorIds].sort());
      // Warnings and infos have no box: only errors gate the step.
      expect(await page.locator('[data-testid="finding"][data-severity="warning"] [data-testid="accept-finding"]').count()).toBe(0);

      expect(await install.isDisabled()).toBe(true);
      expect(await install.getAttribute("data-unaccepted")).toBe(String(errorIds.length));
      expect(await install.textContent()).toContain(`(${errorIds.length} error finding(s) to accept)`);
      expect(await page.getByTestId("install-panel").locator(".up-why-disabled").textContent()).toContain(`(${errorIds.length} left)`);

      // All but one: still disabled, one left.
      for (const id of errorIds.slice(1)) await page.locator(`[data-testid="accept-finding"][data-id="${id}"]`).check();
      await expect.poll(() => install.getAttribute("data-unaccepted")).toBe("1");
      expect(await install.isDisabled()).toBe(true);
      // The last one: enabled.
      await page.locator(`[data-testid="accept-finding"][data-id="${errorIds[0]}"]`).check();
      await expect.poll(() => install.isDisabled()).toBe(false);
      expect(await install.getAttribute("data-unaccepted")).toBe("0");

      await install.click();
      await expect.poll(() => page.getByTestId("progress").getAttribute("data-state"), { timeout: 240_000 }).toBe("ok");
      // Predicted vs actual carries the agent's verification: bd_checks_missing is not in the appup.
      const verification = page.locator('[data-testid="pva-panel"] [data-testid="pva-step"][data-step="install"] [data-testid="pva-verification"]').first();
      await verification.waitFor({ timeout: 30_000 });
      expect(await verification.getAttribute("data-ok")).toBe("false");
      expect(await verification.textContent()).toMatch(/NOT VERIFIED: 1 of \d+ module\(s\) still run other code \(bd_checks_missing\)/);
    });
    // The step went out with exactly the ticked ids, and the audit says so.
    const audit = await bd.cli(["audit", "--json", "--action", "upgrade.install"]);
    expect(audit.code, audit.stderr).toBe(0);
    const intent = (JSON.parse(audit.stdout) as { data: { gate?: { acceptFindings?: string[] } } | null }[]).find((r) => r.data?.gate?.acceptFindings);
    expect([...(intent?.data?.gate?.acceptFindings ?? [])].sort()).toEqual([...errorIds].sort());
    expect(await node.rpcJson<string>(`[V] = [V || {_, V, _, current} <- release_handler:which_releases()], list_to_binary(V)`)).toBe("1.1.0");
  }, 600_000);

  it("make_permanent: its error finding is ticked on its own plan before the button enables; the dead unreachable process shows in predicted vs actual", async () => {
    // The install left bd_checks_missing on old code: the make_permanent plan says so as an error finding.
    const plan = await bd.cli(["upgrade", "plan", node.name, "1.1.0", "--json"], {}, { timeoutMs: 120_000 });
    const p = JSON.parse(plan.stdout) as { step: string; findings: { id: string; severity: string }[] };
    expect(p.step).toBe("make_permanent");
    const permErrors = p.findings.filter((f) => f.severity === "error").map((f) => f.id);
    expect(permErrors).toEqual(["appup_missing_module:bd_checks_missing"]);
    // The unsupervised server (not_suspended before install) crashes on its next call.
    const lone = await node.rpc("whereis(bd_checks_lone)");
    expect(await node.rpc("try bd_checks_lone:bump() of V -> {ok, V} catch exit:_ -> crashed end")).toBe("crashed");

    await withScreenshotOnFailure(page, "upgrade-findings-permanent", async () => {
      await page.goto(`/nodes/${encodeURIComponent(node.name)}/upgrade`);
      const area = page.getByTestId("decision-area");
      const button = area.getByTestId("make-permanent");
      await button.waitFor({ timeout: 120_000 });
      await area.getByTestId("confirm-decision").fill(node.name);
      // The make_permanent plan's panel (not the rollback one) has one box per error finding.
      const boxes = area.locator('[data-testid="impact-panel"] [data-testid="accept-finding"]');
      await expect.poll(() => boxes.count(), { timeout: 60_000 }).toBe(1);
      expect(await boxes.getAttribute("data-id")).toBe(permErrors[0]);
      await expect.poll(() => button.getAttribute("data-unaccepted")).toBe("1");
      expect(await button.isDisabled()).toBe(true);
      expect(await button.textContent()).toContain("(1 error finding(s) to accept)");

      await boxes.check();
      await expect.poll(() => button.isDisabled()).toBe(false);
      expect(await button.getAttribute("data-unaccepted")).toBe("0");
      await button.click();

      const verification = page.locator('[data-testid="pva-step"][data-step="make_permanent"] [data-testid="pva-verification"]').first();
      await verification.waitFor({ timeout: 240_000 });
      expect(await verification.getAttribute("data-ok")).toBe("false");
      const dead = verification.getByTestId("pva-verification-dead");
      expect(await dead.getAttribute("data-count")).toBe("1");
      expect(await dead.textContent()).toContain("bd_checks_lone");
      expect(await dead.textContent()).toContain(lone);
      // The agent watched it since the install: the exit reason of its crash on the old state.
      expect(await dead.textContent()).toContain("function_clause");
    });
    const audit = await bd.cli(["audit", "--json", "--action", "upgrade.make_permanent"]);
    expect(audit.code, audit.stderr).toBe(0);
    const intent = (JSON.parse(audit.stdout) as { data: { gate?: { acceptFindings?: string[] } } | null }[]).find((r) => r.data?.gate?.acceptFindings);
    expect(intent?.data?.gate?.acceptFindings).toEqual(permErrors);
    expect(await node.rpcJson<string>(`[V] = [V || {_, V, _, permanent} <- release_handler:which_releases()], list_to_binary(V)`)).toBe("1.1.0");
  }, 600_000);
});
