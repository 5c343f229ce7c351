/**
 * The Rollouts page in a real browser, against a real server and real nodes
 * of the forum's release: a rollout followed live to the end (every node
 * permanent, nobody died, as the nodes themselves say), and a rollout an
 * operator halts from the page during the canary's soak (the other node not
 * touched) and then aborts. A viewer sees the same page without the
 * buttons, with the role hint instead. An operator starts a rollout from
 * the page's form after reviewing each node's plan (the digests the CLI
 * computes), and it runs to the end.
 */
import fs from "node:fs";
import type { Browser, BrowserContext, Page } from "playwright-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { stopAll, type BeamNode } from "../../tools/beam/nodes";
import { freePort } from "../../tools/beam/tcp";
import { startAgentNode, waitConnected } from "../support/beam-node";
import { launchChromium, login, withScreenshotOnFailure } from "../support/browser";
import { startServer, type TestServer } from "../support/server";
import { httpClient } from "../support/trpc-clients";
import { ensureNextBuild } from "./next-build";

const OPERATOR = { username: "rolf", password: "operator password 12345" };
const VIEWER = { username: "vicky", password: "viewer password 12345" };

let bd: TestServer;
let browser: Browser;
let opCtx: BrowserContext;
let viewCtx: BrowserContext;
let op: Page;
let viewer: Page;

const releasesOf = (n: BeamNode) => n.rpc(`lists:sort([{V, S} || {_, V, _, S} <- release_handler:which_releases()])`);

/** Two fresh nodes of rel_test 0.1.0 in their own group. */
async function pair(group: string): Promise<BeamNode[]> {
  const nodes: BeamNode[] = [];
  for (const x of ["a", "b"]) {
    const { node } = await startAgentNode(bd, { sname: `${group}${x}_${process.pid}`, env: { BEAMDECK_GROUP: group, REL_TEST_PORT: String(await freePort()) } });
    nodes.push(node);
  }
  await Promise.all(nodes.map((n) => waitConnected(bd, n.name)));
  return nodes.sort((a, b) => a.name.localeCompare(b.name));
}

async function start(group: string, soak: string): Promise<string> {
  const r = await bd.cli(["rollout", "start", group, "0.1.1", "--purge", "TestListener=soft", "--soak", soak, "--yes"]);
  expect(r.code, r.stderr).toBe(0);
  return r.stdout.trim();
}

const steps = (page: Page) => page.locator('[data-testid="rollout-node"]').evaluateAll((rows) => rows.map((r) => `${r.getAttribute("data-node")}=${r.getAttribute("data-step")}`));

beforeAll(async () => {
  await ensureNextBuild();
  bd = await startServer({ web: true });
  const admin = httpClient(bd.url, { token: bd.apiToken });
  await admin.users.add.mutate({ username: OPERATOR.username, role: "operator", password: OPERATOR.password });
  await admin.users.add.mutate({ username: VIEWER.username, role: "viewer", password: VIEWER.password });
  browser = await launchChromium();
  opCtx = await browser.newContext({ baseURL: bd.url, viewport: { width: 1440, height: 1000 } });
  viewCtx = await browser.newContext({ baseURL: bd.url, viewport: { width: 1440, height: 1000 } });
  opCtx.setDefaultTimeout(15_000);
  viewCtx.setDefaultTimeout(15_000);
  op = await opCtx.newPage();
  viewer = await viewCtx.newPage();
  await login(op, OPERATOR.username, OPERATOR.password, "/");
  await login(viewer, VIEWER.username, VIEWER.password, "/");
}, 400_000);

afterAll(async () => {
  await opCtx?.close().catch(() => {});
  await viewCtx?.close().catch(() => {});
  await browser?.close().catch(() => {});
  await stopAll();
  await bd?.stop();
  if (bd) fs.rmSync(bd.dataDir, { recursive: true, force: true });
}, 60_000);

describe("the Rollouts page", () => {
  it("follows a rollout live to the end: every node permanent, nobody died", async () => {
    const nodes = await pair("okfleet");
    const id = await start("okfleet", "3s");
    await withScreenshotOnFailure(op, "rollout-done", async () => {
      await op.goto("/rollouts");
      await op.locator(`[data-testid="rollout-row"][data-rollout="${id}"] a`).click();
      await op.waitForURL((u) => u.pathname === `/rollouts/${id}`);
      // Live: the canary is seen soaking before the rollout is done.
      await expect.poll(async () => (await steps(op)).includes(`${nodes[0].name}=soaking`), { timeout: 120_000, interval: 200 }).toBe(true);
      await expect.poll(() => op.getByTestId("rollout-status").getAttribute("data-status"), { timeout: 180_000 }).toBe("done");
      expect(await steps(op)).toEqual(nodes.map((n) => `${n.name}=permanent`));
      for (const row of await op.locator('[data-testid="rollout-node"]').all()) {
        const cells = await row.locator("td").allTextContents();
        // #, node, step, from, predicted, died, unpredicted
        expect(cells.slice(3, 7)).toEqual(["0.1.0", "0", "0", "0"]);
        expect(cells[7]).toMatch(/^soaked [3-9]\d* s · connected · 0 unexpected report\(s\) · 0 alert\(s\)/);
      }
    });
    for (const n of nodes) expect(await releasesOf(n)).toBe(`[{"0.1.0",old},{"0.1.1",permanent}]`);
    // Done: no more buttons.
    expect(await op.getByTestId("rollout-halt").count()).toBe(0);
  }, 400_000);

  it("an operator halts a rollout during the canary's soak, then aborts it; a viewer only reads", async () => {
    const nodes = await pair("haltfleet");
    const id = await start("haltfleet", "120s");
    await withScreenshotOnFailure(op, "rollout-halt", async () => {
      await op.goto(`/rollouts/${id}`);
      await expect.poll(async () => (await steps(op)).includes(`${nodes[0].name}=soaking`), { timeout: 120_000, interval: 200 }).toBe(true);
      // The viewer sees the same rollout, read-only.
      await viewer.goto(`/rollouts/${id}`);
      await viewer.getByTestId("rollout-node").first().waitFor();
      expect(await viewer.getByTestId("rollout-halt").count()).toBe(0);
      await viewer.getByTestId("role-hint").waitFor();

      op.once("dialog", (d) => void d.accept());
      await op.getByTestId("rollout-halt").click();
      await expect.poll(() => op.getByTestId("rollout-status").getAttribute("data-status"), { timeout: 30_000 }).toBe("halted");
      expect(await op.getByTestId("rollout-halt-reason").textContent()).toBe(`halted by user:${OPERATOR.username}`);
      // Pushed to the viewer's page too.
      await expect.poll(() => viewer.getByTestId("rollout-status").getAttribute("data-status"), { timeout: 30_000 }).toBe("halted");
      // The second node was never installed; the canary was, and stays installed (not permanent).
      expect(await releasesOf(nodes[1])).toBe(`[{"0.1.0",permanent},{"0.1.1",unpacked}]`);
      expect(await releasesOf(nodes[0])).toBe(`[{"0.1.0",permanent},{"0.1.1",current}]`);
      const cli = await bd.cli(["rollout", "status", id]);
      expect(cli.code).toBe(8);

      op.once("dialog", (d) => void d.accept());
      await op.getByTestId("rollout-abort").click();
      await expect.poll(() => op.getByTestId("rollout-status").getAttribute("data-status"), { timeout: 30_000 }).toBe("aborted");
      expect(await op.getByTestId("rollout-resume").count()).toBe(0);
    });
  }, 400_000);

  it("an operator starts a rollout from the page after reviewing every node's plan; a viewer gets no form", async () => {
    const nodes = await pair("formfleet");
    // The digests the page shows are the plans the CLI computes for the same choices.
    const digests: string[] = [];
    for (const n of nodes) {
      const r = await bd.cli(["upgrade", "plan", n.name, "0.1.1", "--purge", "TestListener=soft", "--json"]);
      digests.push((JSON.parse(r.stdout) as { digest: string }).digest);
    }
    await withScreenshotOnFailure(op, "rollout-start", async () => {
      await viewer.goto("/rollouts");
      await viewer.getByTestId("rollout-start-hint").waitFor();
      expect(await viewer.getByTestId("rollout-start").count()).toBe(0);

      await op.goto("/rollouts");
      await op.getByTestId("rollout-start-group").selectOption("formfleet");
      await op.getByTestId("rollout-start-vsn").fill("0.1.1");
      await op.getByTestId("rollout-start-purge").fill("TestListener=soft");
      await op.getByTestId("rollout-start-soak").fill("2 seconds");
      // A bad duration is said at once, and nothing can be reviewed.
      expect(await op.getByTestId("rollout-start-problem").textContent()).toBe("soak: a duration like 500ms, 30s, 5m or 1h");
      expect(await op.getByTestId("rollout-start-review").isDisabled()).toBe(true);
      await op.getByTestId("rollout-start-soak").fill("2s");
      await op.getByTestId("rollout-start-batch").fill("1");
      await op.getByTestId("rollout-start-review").click();
      await op.getByTestId("rollout-start-plans").waitFor({ timeout: 120_000 });
      const shown = await op.getByTestId("rollout-start-plan").evaluateAll((rows) => rows.map((r) => `${r.getAttribute("data-node")}=${r.getAttribute("data-digest")}`));
      expect(shown).toEqual(nodes.map((n, i) => `${n.name}=${digests[i]}`));
      op.once("dialog", (d) => void d.accept());
      await op.getByTestId("rollout-start-submit").click();
      await op.waitForURL((u) => /^\/rollouts\/r-[0-9a-f]{12}$/.test(u.pathname), { timeout: 30_000 });
      await expect.poll(() => op.getByTestId("rollout-status").getAttribute("data-status"), { timeout: 240_000 }).toBe("done");
      expect(await steps(op)).toEqual(nodes.map((n) => `${n.name}=permanent`));
    });
    const id = new URL(op.url()).pathname.split("/").pop() as string;
    const r = JSON.parse((await bd.cli(["rollout", "status", id, "--json"])).stdout) as { nodes: { gate: { soakedMs: number } | null }[] };
    for (const n of r.nodes) expect(n.gate?.soakedMs).toBeGreaterThanOrEqual(2000);
    // Started by the operator, with the reviewed plans accepted (audited).
    const audit = JSON.parse((await bd.cli(["audit", "--action", "rollout.start", "--json"])).stdout) as {
      actor: string;
      target: string;
      data: { options: { acceptPlans: string[]; soakMs: number } };
    }[];
    const started = audit.find((e) => e.target === `rollout:${id}`);
    expect(started?.actor).toBe(`user:${OPERATOR.username}`);
    expect(started?.data.options.acceptPlans).toEqual(digests);
    expect(started?.data.options.soakMs).toBe(2000);
    for (const n of nodes) expect(await releasesOf(n)).toBe(`[{"0.1.0",old},{"0.1.1",permanent}]`);
  }, 400_000);
});
