/**
 * Issue 16 in a real browser: two `beamdeck server` instances on one real
 * PostgreSQL; a real rel_test node's agent on A; Chromium on B's dashboard.
 * The node page on B shows the supervision tree and a mailbox made on the
 * node (B's live reads answered by A), follows it live, and keeps following
 * without a reload after A is killed and the agent moves to B. Checked
 * against what the node itself says.
 */
import crypto from "node:crypto";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import pg from "pg";
import type { Page } from "playwright-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type BeamNode, stopAll } from "../../tools/beam/nodes";
import { startAgentNode } from "../support/beam-node";
import { type BrowserSession, launchBrowser, login, withScreenshotOnFailure } from "../support/browser";
import { waitFor } from "../support/ports";
import { startPostgres, type TestPostgres } from "../support/postgres";
import { startServer, type TestServer } from "../support/server";
import { ensureNextBuild } from "./next-build";

let pgServer: TestPostgres;
let db: pg.Client;
let A: TestServer;
let B: TestServer;
let node: BeamNode;
let browser: BrowserSession;
let page: Page;

const rowAt = (i: number) => page.locator(`[data-testid="proc-row"][data-index="${i}"]`);

async function ownerUrl(name: string): Promise<string | null> {
  const r = await db.query<{ internalUrl: string | null }>(`SELECT i."internalUrl" FROM "Node" n JOIN "Instance" i ON i.id = n."instanceId" WHERE n.name = $1 AND n."connectedAt" IS NOT NULL`, [name]);
  return r.rows[0]?.internalUrl ?? null;
}

beforeAll(async () => {
  await ensureNextBuild();
  pgServer = await startPostgres();
  const url = await pgServer.createDatabase(`scale_e2e_${Date.now()}`);
  db = new pg.Client({ connectionString: url });
  await db.connect();
  const shared = { databaseUrl: url, dataDir: fs.mkdtempSync(path.join(os.tmpdir(), "beamdeck-scale-e2e-")), env: { BEAMDECK_SECRET_KEY: crypto.randomBytes(32).toString("base64url") } };
  A = await startServer(shared);
  B = await startServer({ ...shared, web: true });
  ({ node } = await startAgentNode(A, { token: await A.agentToken("scale e2e"), env: { BEAMDECK_URL: `${A.agentUrl},${B.agentUrl}` } }));
  await waitFor("the node on A", async () => (await ownerUrl(node.name)) === A.url, 60_000, 300);
  browser = await launchBrowser({ baseURL: B.url });
  page = browser.page;
  await login(page, "admin", B.adminPassword, "/");
}, 600_000);

afterAll(async () => {
  await browser?.close();
  await stopAll();
  await A?.stop();
  await B?.stop();
  await db?.end();
  await pgServer?.stop();
});

describe("a browser on instance B", () => {
  it("shows a node whose socket A holds, live, and keeps following it after A is killed", async () => {
    await withScreenshotOnFailure(page, "scale-out-browser", async () => {
      const supPid = await node.rpcJson<string>("whereis('Elixir.RelTest.Supervisor')");
      // A mailbox only this test fills (the sink takes the node's own group leader, see dashboard.test.ts).
      const sink = await node.rpcJson<string>(
        "P = spawn(fun() -> group_leader(whereis(user), self()), receive stop -> ok end end), register(bd_scale_sink, P), [P ! {bd_scale, I} || I <- lists:seq(1, 777)], P",
      );
      const fill = (n: number) => node.rpc(`[bd_scale_sink ! {bd_scale_more, I} || I <- lists:seq(1, ${n})], ok`);
      const mailboxOnNode = () => node.rpcJson<number>("element(2, erlang:process_info(whereis(bd_scale_sink), message_queue_len))");

      await page.goto("/");
      await page.locator(`[data-testid="node-row"][data-node="${node.name}"][data-connected="true"]`).waitFor({ timeout: 30_000 });
      await page.goto(`/nodes/${encodeURIComponent(node.name)}`);
      const sup = page.locator(`[data-testid="tree-node"][data-name="Elixir.RelTest.Supervisor"]`);
      await sup.waitFor({ timeout: 30_000 });
      expect(await sup.getAttribute("data-pid")).toBe(supPid);
      await expect.poll(() => rowAt(0).getAttribute("data-pid"), { timeout: 20_000 }).toBe(sink);
      expect(await rowAt(0).locator('[data-testid="proc-mailbox"]').getAttribute("data-value")).toBe("777");

      // Live: the node's change reaches the page on B (A's summary fanned out, the window answered by A).
      await fill(100);
      expect(await mailboxOnNode()).toBe(877);
      await expect.poll(() => rowAt(0).locator('[data-testid="proc-mailbox"]').getAttribute("data-value"), { timeout: 20_000 }).toBe("877");

      // A dies; the agent moves to B; the same page, not reloaded, follows the node.
      await A.kill();
      await waitFor("the node on B", async () => (await ownerUrl(node.name)) === B.url, 15_000, 100);
      await fill(100);
      expect(await mailboxOnNode()).toBe(977);
      await expect.poll(() => rowAt(0).locator('[data-testid="proc-mailbox"]').getAttribute("data-value"), { timeout: 30_000 }).toBe("977");
    });
  });
});
