/**
 * Cross-site WebSocket hijacking and form CSRF (issue 10, item 3), in a real
 * Chromium: a page served on another port of 127.0.0.1 (same site, so the
 * SameSite=Lax session cookie travels with its requests) tries the tRPC
 * WebSocket and a multipart form POST as the logged-in operator. Both are
 * refused, and the operator's session is untouched. The dashboard itself
 * is not needed (the attacking page is plain HTML), so nothing is built.
 */
import http from "node:http";
import type { AddressInfo } from "node:net";
import type { Browser } from "playwright-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { launchChromium } from "../support/browser";
import { startServer, type TestServer } from "../support/server";
import { httpClient, loginCookie } from "../support/trpc-clients";

let bd: TestServer;
let browser: Browser;
let evil: http.Server;
let evilUrl: string;
let cookie: string;

/** The attacker's page: opens the tRPC WebSocket and asks who it is; offers a form aimed at logoutEverywhere. */
function evilPage(target: string): string {
  const ws = target.replace(/^http/, "ws");
  return `<!doctype html><html><body>
<form id="csrf" method="POST" enctype="multipart/form-data" action="${target}/api/trpc/auth.logoutEverywhere"><input name="x" value="1"></form>
<script>
window.wsOutcome = new Promise((resolve) => {
  const s = new WebSocket(${JSON.stringify(`${ws}/api/trpc-ws`)});
  s.onopen = () => s.send(JSON.stringify({ id: 1, method: "query", params: { path: "auth.me", input: {} } }));
  s.onmessage = (m) => resolve({ opened: true, message: String(m.data) });
  s.onerror = () => resolve({ opened: false, message: null });
  s.onclose = () => resolve({ opened: false, message: null });
});
</script></body></html>`;
}

beforeAll(async () => {
  bd = await startServer();
  const admin = httpClient(bd.url, { token: bd.apiToken });
  await admin.users.add.mutate({ username: "oscar", role: "operator", password: "operator-password-1" });
  cookie = await loginCookie(bd.url, "oscar", "operator-password-1");
  evil = http.createServer((_req, res) => {
    res.writeHead(200, { "content-type": "text/html" });
    res.end(evilPage(bd.url));
  });
  await new Promise<void>((resolve) => evil.listen(0, "127.0.0.1", resolve));
  evilUrl = `http://127.0.0.1:${(evil.address() as AddressInfo).port}`;
  browser = await launchChromium();
}, 180_000);

afterAll(async () => {
  await browser?.close();
  await new Promise<void>((resolve) => (evil ? evil.close(() => resolve()) : resolve()));
  await bd?.stop();
});

async function operatorContext() {
  const context = await browser.newContext();
  const [name, value] = cookie.split("=");
  await context.addCookies([{ name, value, domain: "127.0.0.1", path: "/", httpOnly: true, sameSite: "Lax" }]);
  return context;
}

describe("a page on another port of the same host, with the operator's cookie", () => {
  it("cannot use the tRPC WebSocket", async () => {
    const context = await operatorContext();
    try {
      const page = await context.newPage();
      // Same site: Chromium sends the cookie with this upgrade (before the fix the socket opened as oscar).
      await page.goto(evilUrl);
      const outcome = await page.evaluate(() => (window as unknown as { wsOutcome: Promise<{ opened: boolean; message: string | null }> }).wsOutcome);
      expect(outcome).toEqual({ opened: false, message: null });
    } finally {
      await context.close();
    }
  });

  it("cannot log the operator out everywhere with a form POST", async () => {
    const context = await operatorContext();
    try {
      const page = await context.newPage();
      await page.goto(evilUrl);
      const response = page.waitForResponse((r) => r.url() === `${bd.url}/api/trpc/auth.logoutEverywhere`);
      await page.evaluate(() => (document.getElementById("csrf") as HTMLFormElement).submit());
      expect((await response).status()).toBe(403);
      expect(await httpClient(bd.url, { cookie }).auth.me.query()).toMatchObject({ kind: "user", name: "oscar" });
    } finally {
      await context.close();
    }
  });

  it("while the dashboard's own origin still can", async () => {
    const context = await operatorContext();
    try {
      const page = await context.newPage();
      await page.goto(`${bd.url}/healthz`);
      const outcome = await page.evaluate(
        (ws) => {
          return new Promise<{ opened: boolean; message: string | null }>((resolve) => {
            const s = new WebSocket(`${ws}/api/trpc-ws`);
            s.onopen = () => s.send(JSON.stringify({ id: 1, method: "query", params: { path: "auth.me", input: {} } }));
            s.onmessage = (m) => resolve({ opened: true, message: String(m.data) });
            s.onerror = () => resolve({ opened: false, message: null });
          });
        },
        bd.url.replace(/^http/, "ws"),
      );
      expect(outcome.opened).toBe(true);
      expect(JSON.parse(outcome.message ?? "{}")).toMatchObject({ id: 1, result: { data: { kind: "user", name: "oscar", role: "operator" } } });
    } finally {
      await context.close();
    }
  });
});
