/**
 * Events and alerts in a real browser, against a real server and a real
 * BEAM node (the forum's rel_test release with the agent).
 *
 * The canonical case from issue 3: `exit(Pid, kill)` of the Task acceptor
 * on the node shows up in the browser's live tail within seconds, as a
 * child_terminated / killed event naming the right offender; the shell's
 * badge counts one open alert; the alerts page shows it with the delivery
 * to a real local webhook receiver; a viewer gets no Acknowledge button but
 * a hint (and the server refuses the viewer anyway); an operator
 * acknowledges it in the page; the audit page shows that operator's
 * alert.ack entry. Every claim about the node is checked on the node itself
 * over distributed Erlang.
 */
import fs from "node:fs";
import http from "node:http";
import type { AddressInfo } from "node:net";
import type { Browser, BrowserContext, Page } from "playwright-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { stopAll, type BeamNode } from "../../tools/beam/nodes";
import { startAgentNode, waitConnected } from "../support/beam-node";
import { launchChromium, login, screenshot, withScreenshotOnFailure } from "../support/browser";
import { waitFor } from "../support/ports";
import { startServer, type TestServer } from "../support/server";
import { httpClient, loginCookie } from "../support/trpc-clients";
import { ensureNextBuild } from "./next-build";

const OPERATOR = { username: "olivia", password: "operator password 1234" };
const VIEWER = { username: "victor", password: "viewer password 12345" };
const SUPERVISOR = "Elixir.RelTest.Supervisor";
const ACCEPTOR_EXPR = `[P] = [P || {'Elixir.Task', P, worker, _} <- supervisor:which_children('${SUPERVISOR}')], P`;

let bd: TestServer;
let node: BeamNode;
let receiver: http.Server;
const received: { body: string; headers: http.IncomingHttpHeaders }[] = [];
let browser: Browser;
let opCtx: BrowserContext;
let viewerCtx: BrowserContext;
let op: Page;
let viewer: Page;

/** The acceptor before the kill, and facts about the kill. */
let acceptor = "";
let alertId = "";

async function newPage(): Promise<{ ctx: BrowserContext; page: Page }> {
  const ctx = await browser.newContext({ baseURL: bd.url, viewport: { width: 1440, height: 900 } });
  ctx.setDefaultTimeout(15_000);
  return { ctx, page: await ctx.newPage() };
}

beforeAll(async () => {
  await ensureNextBuild();
  receiver = http.createServer((req, res) => {
    let body = "";
    req.on("data", (c) => (body += c));
    req.on("end", () => {
      received.push({ body, headers: req.headers });
      res.writeHead(204).end();
    });
  });
  await new Promise<void>((r) => receiver.listen(0, "127.0.0.1", () => r()));
  bd = await startServer({ web: true });
  const admin = httpClient(bd.url, { token: bd.apiToken });
  // The receiver is on loopback: a private target, refused unless an admin allows it.
  await admin.alerts.setWebhookSettings.mutate({ allowPrivateTargets: true });
  await admin.alerts.addWebhook.mutate({ url: `http://127.0.0.1:${(receiver.address() as AddressInfo).port}/hook` });
  await admin.users.add.mutate({ username: OPERATOR.username, role: "operator", password: OPERATOR.password });
  await admin.users.add.mutate({ username: VIEWER.username, role: "viewer", password: VIEWER.password });
  ({ node } = await startAgentNode(bd));
  await waitConnected(bd, node.name);

  browser = await launchChromium();
  ({ ctx: opCtx, page: op } = await newPage());
  ({ ctx: viewerCtx, page: viewer } = await newPage());
  await login(op, OPERATOR.username, OPERATOR.password, "/events");
  await login(viewer, VIEWER.username, VIEWER.password, "/alerts");
}, 300_000);

afterAll(async () => {
  await opCtx?.close().catch(() => {});
  await viewerCtx?.close().catch(() => {});
  await browser?.close().catch(() => {});
  await stopAll();
  await bd?.stop();
  receiver?.close();
  if (bd) fs.rmSync(bd.dataDir, { recursive: true, force: true });
}, 60_000);

describe("the canonical kill, from the node to the browser", () => {
  it("shows the killed acceptor in the live tail within seconds, with the right offender", async () => {
    await withScreenshotOnFailure(op, "events-live", async () => {
      await op.goto("/events");
      await op.locator('[data-testid="live-state"][data-state="live"]').waitFor();
      // The node tab is there and the history is loaded before the kill.
      await op.locator(`[data-testid="node-tab"][data-node="${node.name}"]`).waitFor();
      await op.locator('[data-testid="events-table"]').waitFor();

      acceptor = await node.rpc(ACCEPTOR_EXPR);
      expect(acceptor).toMatch(/^<\d+\.\d+\.\d+>$/);
      const killedAt = Date.now();
      await node.rpc(`exit(list_to_pid("${acceptor}"), kill)`);

      const row = op.locator(`[data-testid="event-row"][data-context="child_terminated"][data-offender-pid="${acceptor}"]`);
      await row.waitFor({ timeout: 10_000 });
      const seenAfterMs = Date.now() - killedAt;
      expect(seenAfterMs).toBeLessThan(5000);
      // It came over the subscription, without a reload.
      expect(await row.getAttribute("data-source")).toBe("live");
      expect(await row.getAttribute("data-reason")).toBe("killed");
      expect(await row.getAttribute("data-kind")).toBe("supervisor_report");
      expect(await row.getAttribute("data-offender-id")).toBe("Elixir.Task");
      expect(await row.getAttribute("data-node")).toBe(node.name);
      expect(await op.locator('[data-testid="event-row"][data-context="child_terminated"]').count()).toBe(1);

      // The node agrees: that pid is dead and the supervisor runs a new acceptor.
      expect(await node.rpc(`erlang:is_process_alive(list_to_pid("${acceptor}"))`)).toBe("false");
      const restarted = await node.rpc(ACCEPTOR_EXPR);
      expect(restarted).not.toBe(acceptor);
      await screenshot(op, "events-live-tail");

      // The detail: the report, and links to the processes involved.
      await row.click();
      const detail = op.getByTestId("event-detail");
      await detail.waitFor();
      expect(await detail.getAttribute("data-reason")).toBe("killed");
      expect(await op.getByTestId("event-offender-id").textContent()).toBe("Elixir.Task");
      expect(await op.getByTestId("event-report").textContent()).toContain("killed");
      const nodePath = `/nodes/${encodeURIComponent(node.name)}`;
      expect(await op.getByTestId("event-offender-link").getAttribute("href")).toBe(`${nodePath}?pid=${encodeURIComponent(acceptor)}`);
      const supPid = await node.rpc(`whereis('${SUPERVISOR}')`);
      await op.getByTestId("event-supervisor-link").waitFor();
      expect(await op.getByTestId("event-supervisor-link").textContent()).toBe(supPid);
      await op.getByTestId("event-restarted-link").waitFor();
      expect(await op.getByTestId("event-restarted-link").textContent()).toBe(restarted);
      expect(new URL(op.url()).searchParams.get("id")).toBe(await row.getAttribute("data-id"));
      await screenshot(op, "events-detail");

      // The supervisor link opens the node page's drawer on that process.
      await op.getByTestId("event-supervisor-link").click();
      await op.waitForURL((u) => u.pathname === nodePath);
      expect(new URL(op.url()).searchParams.get("pid")).toBe(supPid);
      const drawer = op.getByTestId("proc-drawer");
      await drawer.waitFor();
      expect(await drawer.getAttribute("data-pid")).toBe(supPid);
    });
  });

  it("counts one open alert in the shell's badge", async () => {
    await withScreenshotOnFailure(op, "badge", async () => {
      await op.goto("/events?context=child_terminated");
      await expect.poll(() => op.getByTestId("alerts-badge").getAttribute("data-count"), { timeout: 15_000 }).toBe("1");
      expect(await op.getByTestId("alerts-badge").textContent()).toBe("1");
      // The filtered history shows the one event (from the database this time).
      const row = op.locator(`[data-testid="event-row"][data-offender-pid="${acceptor}"]`);
      await row.waitFor();
      expect(await row.getAttribute("data-source")).toBe("history");
      expect(await op.locator('[data-testid="event-row"]').count()).toBe(1);
      await screenshot(op, "events-filtered");
    });
  });

  it("shows the alert with its webhook delivery to a real receiver", async () => {
    await withScreenshotOnFailure(op, "alerts-page", async () => {
      await op.goto("/alerts");
      const row = op.locator(`[data-testid="alert-row"][data-kind="child_terminated"][data-node="${node.name}"]`);
      await row.waitFor({ timeout: 15_000 });
      alertId = (await row.getAttribute("data-id")) ?? "";
      expect(alertId).not.toBe("");
      expect(await row.getAttribute("data-status")).toBe("open");
      expect(await row.getAttribute("data-count")).toBe("1");
      expect(await row.getByTestId("alert-title").textContent()).toBe(`${SUPERVISOR}: child Elixir.Task terminated (killed)`);
      expect(await op.locator('[data-testid="alert-row"]').count()).toBe(1);
      // The receiver got it once; the page says delivered (live on delivery changes).
      await expect.poll(() => received.filter((r) => r.body.includes(alertId)).length, { timeout: 15_000 }).toBe(1);
      await row.locator('[data-testid="delivery"][data-status="delivered"]').waitFor({ timeout: 15_000 });
      // The receiver answered 204, and the page says so.
      expect(await row.getByTestId("delivery").textContent()).toBe("delivered (HTTP 204)");
      expect(JSON.parse(received.find((r) => r.body.includes(alertId))!.body).text).toMatch(/^\[beamdeck\] .*terminated \(killed\)/);

      // The detail links back to the event.
      await row.click();
      await op.getByTestId("alert-detail").waitFor();
      await op.getByTestId("alert-event-link").waitFor();
      await screenshot(op, "alerts-open");
    });
  });

  it("gives a viewer no Acknowledge button but a hint, and the server refuses the viewer", async () => {
    await withScreenshotOnFailure(viewer, "alerts-viewer", async () => {
      await viewer.goto("/alerts");
      const row = viewer.locator(`[data-testid="alert-row"][data-id="${alertId}"]`);
      await row.waitFor();
      expect(await viewer.getByTestId("user-role").textContent()).toBe("viewer");
      expect(await row.getByTestId("alert-ack").count()).toBe(0);
      expect(await row.getByTestId("alert-resolve").count()).toBe(0);
      expect(await row.getByTestId("role-hint-text").textContent()).toBe("Operators can acknowledge — you are a viewer");
      await row.getByRole("button", { name: "why?" }).click();
      expect(await row.getByTestId("role-hint-why").textContent()).toContain("Operators can also run upgrade steps and acknowledge or resolve alerts");
      // The viewer still sees the delivery status; no Admin link in the shell.
      expect(await row.getByTestId("delivery").getAttribute("data-status")).toBe("delivered");
      expect(await viewer.getByTestId("nav-admin").count()).toBe(0);
      await screenshot(viewer, "alerts-viewer");
    });
    // Hiding is a courtesy: the server refuses the viewer's acknowledgement.
    const asViewer = httpClient(bd.url, { cookie: await loginCookie(bd.url, VIEWER.username, VIEWER.password) });
    await expect(asViewer.alerts.ack.mutate({ id: alertId })).rejects.toThrow("alerts.ack needs the operator role; you are viewer");
  });

  it("lets an operator acknowledge it in the page; every open page follows", async () => {
    await withScreenshotOnFailure(op, "alerts-ack", async () => {
      await op.goto("/alerts");
      const row = op.locator(`[data-testid="alert-row"][data-id="${alertId}"]`);
      await row.getByTestId("alert-ack").click();
      // Gone from the open list, here and on the viewer's page (over onAlerts).
      await row.waitFor({ state: "detached" });
      await viewer.locator(`[data-testid="alert-row"][data-id="${alertId}"]`).waitFor({ state: "detached" });
      await expect.poll(() => op.getByTestId("alerts-badge").getAttribute("data-count")).toBe("0");
      await expect.poll(() => viewer.getByTestId("alerts-badge").getAttribute("data-count")).toBe("0");

      await op.getByTestId("alert-status-acked").click();
      const acked = op.locator(`[data-testid="alert-row"][data-id="${alertId}"]`);
      await acked.waitFor();
      expect(await acked.getAttribute("data-status")).toBe("acked");
      expect(await acked.getByTestId("alert-acked-by").textContent()).toMatch(new RegExp(`^acked by user:${OPERATOR.username} `));
      // An acknowledged alert can still be resolved by the operator.
      expect(await acked.getByTestId("alert-resolve").count()).toBe(1);
      await screenshot(op, "alerts-acked");
    });
    // The server's own record, through the CLI.
    const cli = await bd.cli(["alerts", "--json"]);
    expect(cli.code, cli.stderr).toBe(0);
    const mine = (JSON.parse(cli.stdout) as { id: string; status: string; ackedBy: string | null }[]).find((a) => a.id === alertId);
    expect(mine).toMatchObject({ status: "acked", ackedBy: `user:${OPERATOR.username}` });
  });

  it("shows the operator's alert.ack entry in the audit log", async () => {
    await withScreenshotOnFailure(viewer, "audit-ack", async () => {
      await viewer.goto("/audit?action=alert.ack");
      await viewer.locator('[data-testid="chain-status"][data-state="intact"]').waitFor();
      const rows = viewer.locator('[data-testid="audit-row"]');
      await rows.first().waitFor();
      expect(await rows.count()).toBe(1);
      expect(await rows.first().getAttribute("data-action")).toBe("alert.ack");
      expect(await rows.first().getAttribute("data-actor")).toBe(`user:${OPERATOR.username}`);
      expect(await rows.first().getAttribute("data-outcome")).toBe("ok");
      await rows.first().click();
      const detail = viewer.getByTestId("audit-detail");
      await detail.waitFor();
      expect(await viewer.getByTestId("audit-detail-actor").textContent()).toBe(`user:${OPERATOR.username}`);
      expect(await detail.textContent()).toContain(`alert:${alertId}`);
      await screenshot(viewer, "audit-alert-ack");
    });
  });
});

describe("crash report values by role, in the page", () => {
  it("a viewer's event drawer shows the reason's tag and says the values are hidden; an operator's shows them", async () => {
    // With get_state on the agent sends the crashed process's dictionary and reason data.
    await node.rpc("application:set_env(beamdeck_agent, get_state, true)");
    const pid = await node.rpc(`proc_lib:spawn(fun() -> put(bd_e2e_key, <<"e2e-s3cret">>), erlang:error({badmatch, <<"e2e-s3cret">>}) end)`);
    const admin = httpClient(bd.url, { token: bd.apiToken });
    const id = await waitFor(
      "the crash report",
      async () => (await admin.events.list.query({ node: node.name, kind: "crash_report" })).events.find((e) => (e.reason ?? "").includes("e2e-s3cret"))?.id ?? null,
      15_000,
      300,
    );
    await withScreenshotOnFailure(viewer, "event-values-viewer", async () => {
      await viewer.goto(`/events?id=${id}`);
      const detail = viewer.getByTestId("event-detail");
      await detail.waitFor();
      expect(await detail.getAttribute("data-reason")).toBe("{badmatch,...}");
      expect(await viewer.getByTestId("event-values-hidden").textContent()).toContain("Values hidden below the operator role");
      expect(await viewer.getByTestId("event-drawer").textContent()).not.toContain("e2e-s3cret");
      expect(await viewer.getByTestId("event-drawer").textContent()).toContain(pid);
      await screenshot(viewer, "event-values-hidden");
    });
    await withScreenshotOnFailure(op, "event-values-operator", async () => {
      await op.goto(`/events?id=${id}`);
      await op.getByTestId("event-detail").waitFor();
      expect(await op.getByTestId("event-values-hidden").count()).toBe(0);
      expect(await op.getByTestId("event-report").textContent()).toContain("e2e-s3cret");
    });
  });
});
