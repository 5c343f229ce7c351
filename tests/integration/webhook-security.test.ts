/**
 * Issue 10, items 13 and 14 against a real server: webhook URLs and secrets
 * never reach the audit log in clear, secrets are sealed at rest, private
 * targets are refused unless an admin allows them, and viewers see only
 * whether a delivery succeeded.
 */
import http from "node:http";
import type { AddressInfo } from "node:net";
import { TRPCClientError } from "@trpc/client";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { appendAudit } from "../../server/audit/log";
import { openDatabase } from "../../server/storage/db";
import { startServer, type TestServer } from "../support/server";
import { httpClient } from "../support/trpc-clients";

const SECRET = "a-webhook-secret-of-some-length";
const SLACK_PATH = "/services/T0SECRET/B0SECRET/xoxbSecretPathToken";

let server: TestServer;
let receiver: http.Server;
let hookUrl: string;

async function errorOf(call: () => Promise<unknown>): Promise<string> {
  try {
    await call();
    return "OK";
  } catch (e) {
    if (e instanceof TRPCClientError) return `${(e.data as { code?: string } | undefined)?.code}: ${e.message}`;
    throw e;
  }
}

beforeAll(async () => {
  receiver = http.createServer((req, res) => {
    req.resume();
    req.on("end", () => res.writeHead(204).end());
  });
  await new Promise<void>((r) => receiver.listen(0, "127.0.0.1", () => r()));
  hookUrl = `http://127.0.0.1:${(receiver.address() as AddressInfo).port}${SLACK_PATH}`;
  server = await startServer();
}, 300_000);
afterAll(async () => {
  await server?.stop();
  receiver?.close();
});

describe("webhook targets (item 14)", () => {
  it("refuses loopback, link-local and private targets by default, also by name", async () => {
    const admin = httpClient(server.url, { token: server.apiToken });
    expect(await admin.alerts.webhookSettings.query()).toEqual({ allowPrivateTargets: false });
    expect(await errorOf(() => admin.alerts.addWebhook.mutate({ url: hookUrl }))).toMatch(/^BAD_REQUEST: webhook target 127\.0\.0\.1 is a loopback address; private targets are refused/);
    expect(await errorOf(() => admin.alerts.addWebhook.mutate({ url: "http://169.254.169.254/latest/meta-data/" }))).toMatch(/link-local/);
    expect(await errorOf(() => admin.alerts.addWebhook.mutate({ url: "http://10.1.2.3:8080/x" }))).toMatch(/RFC 1918/);
    expect(await errorOf(() => admin.alerts.addWebhook.mutate({ url: "http://[::1]:9/x" }))).toMatch(/loopback/);
    expect(await errorOf(() => admin.alerts.addWebhook.mutate({ url: `http://localhost:${(receiver.address() as AddressInfo).port}/x` }))).toMatch(/webhook target localhost \((127\.0\.0\.1|::1)\)/);
    expect((await admin.alerts.webhooks.query()).length).toBe(0);
    // Only an admin may allow them, and it is audited.
    await admin.users.add.mutate({ username: "vic", role: "viewer", password: "viewer-password-1" });
    const viewerToken = (await admin.tokens.apiCreate.mutate({ label: "vic", role: "viewer" })).token;
    expect(await errorOf(() => httpClient(server.url, { token: viewerToken }).alerts.setWebhookSettings.mutate({ allowPrivateTargets: true }))).toMatch(/^FORBIDDEN/);
    await admin.alerts.setWebhookSettings.mutate({ allowPrivateTargets: true });
    const { entries } = await admin.audit.list.query({ action: "setting.update" });
    expect(entries[0]).toMatchObject({ target: "setting:webhooks.allowPrivateTargets", data: { before: false, after: true } });
  }, 180_000);
});

describe("webhook secrets (item 13) and delivery results (item 14)", () => {
  it("keeps the URL and the secret out of the audit log and seals the secret at rest", async () => {
    const admin = httpClient(server.url, { token: server.apiToken });
    const hook = await admin.alerts.addWebhook.mutate({ url: hookUrl, secret: SECRET });
    expect(hook.secret).toBe(SECRET); // shown once, to the admin who added it
    const viewer = httpClient(server.url, { token: (await admin.tokens.apiCreate.mutate({ label: "viewer2", role: "viewer" })).token });
    const seen = await viewer.audit.list.query({ action: "webhook.add" });
    expect(seen.entries).toHaveLength(1);
    // The audit records the webhook's eventValues choice (off by default) beside the redacted URL.
    expect(seen.entries[0].data).toEqual({ url: { origin: new URL(hookUrl).origin, fingerprint: expect.stringMatching(/^sha256:[0-9a-f]{16}$/) }, eventValues: false });
    expect(JSON.stringify(seen)).not.toContain("xoxbSecretPathToken");
    expect(JSON.stringify(seen)).not.toContain(SECRET);
    expect(await errorOf(() => viewer.alerts.webhooks.query())).toMatch(/^FORBIDDEN/);

    // At rest: the server stopped, the database read directly.
    await server.stop();
    const db = await openDatabase("test", { BEAMDECK_DATA_DIR: server.dataDir });
    try {
      const row = await db.prisma.webhook.findUniqueOrThrow({ where: { id: hook.id } });
      expect(row.secret).toMatch(/^sealed:v1:/);
      expect(row.secret).not.toContain(SECRET);
      const audit = await db.prisma.auditEntry.findMany({ where: { action: "webhook.add" } });
      expect(JSON.stringify(audit.map((a) => a.data))).not.toContain("xoxbSecretPathToken");
      // An entry written before item 13, with the URL in clear, and a failed delivery with its error text.
      await appendAudit(db.prisma, { actor: "user:old", action: "webhook.add", target: "webhook:old", outcome: "ok", data: { url: "https://hooks.slack.com/services/OLD/ENTRY/oldSecretToken" } });
      await db.prisma.alert.create({ data: { id: "alert-scan", kind: "node_down", node: "n@h", groupKey: "g", status: "open", title: "t", detail: {} } });
      await db.prisma.webhookDelivery.create({
        data: { webhookId: hook.id, alertId: "alert-scan", status: "failed", attempts: 6, lastError: "ECONNREFUSED (gave up after 6 attempts)", lastStatus: null, payload: {} },
      });
      await db.prisma.webhookDelivery.create({ data: { webhookId: hook.id, alertId: "alert-scan", status: "delivered", attempts: 1, lastStatus: 401, payload: {} } });
    } finally {
      await db.close();
    }
    await server.restart();

    const oldSeen = await viewer.audit.list.query({ action: "webhook.add", actor: "user:old" });
    expect(JSON.stringify(oldSeen)).not.toContain("oldSecretToken");
    expect(oldSeen.entries[0].data).toMatchObject({ url: { origin: "https://hooks.slack.com" }, redacted: ["url"] });
    // The row itself is unchanged: the chain still verifies.
    expect(await viewer.audit.verify.query()).toMatchObject({ ok: true });

    const asViewer = (await viewer.alerts.list.query({ status: "all" })).find((a) => a.id === "alert-scan");
    expect(asViewer?.deliveries.map((d) => d.status).sort()).toEqual(["delivered", "failed"]);
    expect(asViewer?.deliveries.every((d) => d.lastError === null && d.lastStatus === null)).toBe(true);
    const asAdmin = (await admin.alerts.list.query({ status: "all" })).find((a) => a.id === "alert-scan");
    expect(asAdmin?.deliveries.map((d) => d.lastError ?? d.lastStatus)).toEqual(expect.arrayContaining(["ECONNREFUSED (gave up after 6 attempts)", 401]));
  }, 400_000);
});
