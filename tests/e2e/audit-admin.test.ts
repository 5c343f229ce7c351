/**
 * Administration and the audit log in a real browser against a real server.
 *
 * An admin creates a viewer and an operator on the admin page (each with a
 * generated password, shown once); each of them logs in and sees only what
 * the role allows, with an explanation where a page is not theirs (and the
 * server refuses them anyway). The admin manages tokens (shown once, used,
 * revoked), changes a role, resets a password, disables a user, edits an
 * alert rule. The audit page shows the user.add entries, filters by actor
 * and action, shows a rule change as a field diff, reports the chain as
 * intact, and exports the filtered rows as CSV and JSON.
 */
import fs from "node:fs";
import type { Browser, BrowserContext, Page } from "playwright-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { launchChromium, login, screenshot, withScreenshotOnFailure } from "../support/browser";
import { startServer, type TestServer } from "../support/server";
import { httpClient, loginCookie } from "../support/trpc-clients";
import { ensureNextBuild } from "./next-build";
import { parseCsv } from "../support/csv";

const ADMIN = "admin";
const VIEWER = "vera";
const OPERATOR = "otto";

let bd: TestServer;
let browser: Browser;
const contexts: BrowserContext[] = [];
let admin: Page;
const passwords: Record<string, string> = {};

async function newPage(): Promise<Page> {
  const ctx = await browser.newContext({ baseURL: bd.url, viewport: { width: 1440, height: 900 }, acceptDownloads: true });
  ctx.setDefaultTimeout(15_000);
  contexts.push(ctx);
  const page = await ctx.newPage();
  page.on("dialog", (d) => void d.accept());
  return page;
}

/** auth.me over HTTP with a bearer token: the status and the body. */
async function meWithToken(token: string): Promise<{ status: number; body: string }> {
  const r = await fetch(`${bd.url}/api/trpc/auth.me`, { headers: { authorization: `Bearer ${token}` } });
  return { status: r.status, body: await r.text() };
}

beforeAll(async () => {
  await ensureNextBuild();
  bd = await startServer({ web: true });
  browser = await launchChromium();
  admin = await newPage();
  await login(admin, ADMIN, bd.adminPassword, "/admin");
}, 300_000);

afterAll(async () => {
  for (const c of contexts) await c.close().catch(() => {});
  await browser?.close().catch(() => {});
  await bd?.stop();
  if (bd) fs.rmSync(bd.dataDir, { recursive: true, force: true });
}, 60_000);

describe("the admin page", () => {
  it("adds a viewer and an operator, each with a generated password shown once", async () => {
    await withScreenshotOnFailure(admin, "admin-add-users", async () => {
      await admin.goto("/admin");
      await admin.getByTestId("users-table").waitFor();
      expect(await admin.getByTestId("nav-admin").count()).toBe(1);
      for (const [username, role] of [
        [VIEWER, "viewer"],
        [OPERATOR, "operator"],
      ] as const) {
        await admin.getByTestId("user-add-username").fill(username);
        await admin.getByTestId("user-add-role").selectOption(role);
        await admin.getByTestId("user-add-submit").click();
        const shown = admin.getByTestId("user-created-password-value");
        await shown.waitFor();
        await expect.poll(() => shown.textContent()).not.toBe(passwords[VIEWER] ?? "");
        passwords[username] = (await shown.textContent()) ?? "";
        expect(passwords[username].length).toBeGreaterThanOrEqual(12);
        expect(await admin.getByTestId("user-created-password").textContent()).toContain(`Password for ${username} (${role})`);
        const row = admin.locator(`[data-testid="user-row"][data-username="${username}"]`);
        await row.waitFor();
        expect(await row.getAttribute("data-role")).toBe(role);
        expect(await row.getByTestId("user-status").textContent()).toBe("active");
      }
      await screenshot(admin, "admin-users-added");
      // Shown once: gone after "Done", and nowhere in the list.
      await admin.getByTestId("user-created-password-dismiss").click();
      expect(await admin.getByTestId("user-created-password").count()).toBe(0);
      expect(await admin.getByTestId("users-table").textContent()).not.toContain(passwords[OPERATOR]);
    });
  });

  it("lets the viewer in, showing only what a viewer may do", async () => {
    const page = await newPage();
    await withScreenshotOnFailure(page, "viewer-views", async () => {
      await login(page, VIEWER, passwords[VIEWER], "/");
      expect(await page.getByTestId("user-role").textContent()).toBe("viewer");
      for (const nav of ["nodes", "events", "alerts", "audit"]) expect(await page.getByTestId(`nav-${nav}`).count()).toBe(1);
      expect(await page.getByTestId("nav-admin").count()).toBe(0);

      // /admin by URL: an explanation, not a blank page.
      await page.goto("/admin");
      const why = page.getByTestId("role-required");
      await why.waitFor();
      expect(await why.locator("h2").textContent()).toBe("Administration needs the admin role — you are a viewer");
      expect(await page.getByTestId("users-table").count()).toBe(0);
      await screenshot(page, "admin-as-viewer");

      // Rules: readable, not editable, and a hint says who may.
      await page.goto("/alerts/rules");
      await page.locator('[data-testid="rule"][data-kind="mailbox"]').waitFor();
      expect(await page.getByTestId("rule-save").count()).toBe(0);
      expect(await page.locator('[data-kind="mailbox"] [data-testid="rule-param-threshold"]').isDisabled()).toBe(true);
      expect(await page.locator('[data-kind="mailbox"] [data-testid="rule-param-threshold"]').inputValue()).toBe("10000");
      expect(await page.locator('[data-kind="mailbox"] [data-testid="rule-param-threshold-default"]').textContent()).toBe("default 10000");
      expect(await page.getByTestId("role-hint-text").textContent()).toBe("Admins can change alert rules — you are a viewer");
      await screenshot(page, "rules-as-viewer");

      await page.goto("/alerts/webhooks");
      await page.getByTestId("role-required").waitFor();
      expect(await page.getByTestId("webhook-add").count()).toBe(0);

      // The audit log is for viewers too.
      await page.goto("/audit");
      await page.locator('[data-testid="chain-status"][data-state="intact"]').waitFor();
    });
    // The server refuses what the page hides.
    const asViewer = httpClient(bd.url, { cookie: await loginCookie(bd.url, VIEWER, passwords[VIEWER]) });
    await expect(asViewer.users.list.query()).rejects.toThrow("users.list needs the admin role; you are viewer");
    await expect(asViewer.alerts.updateRule.mutate({ kind: "mailbox", enabled: true, params: { threshold: 1, forSeconds: 1 } })).rejects.toThrow(/needs the admin role/);
  });

  it("lets the operator in, showing only what an operator may do", async () => {
    const page = await newPage();
    await withScreenshotOnFailure(page, "operator-views", async () => {
      await login(page, OPERATOR, passwords[OPERATOR], "/");
      expect(await page.getByTestId("user-role").textContent()).toBe("operator");
      expect(await page.getByTestId("nav-admin").count()).toBe(0);
      await page.goto("/admin");
      await page.getByTestId("role-required").waitFor();
      expect(await page.getByTestId("role-required").locator("h2").textContent()).toBe("Administration needs the admin role — you are an operator");
      await page.goto("/alerts/rules");
      await page.locator('[data-testid="rule"]').first().waitFor();
      expect(await page.getByTestId("rule-save").count()).toBe(0);
      expect(await page.getByTestId("role-hint-text").textContent()).toBe("Admins can change alert rules — you are an operator");
      await page.getByRole("button", { name: "why?" }).click();
      expect(await page.getByTestId("role-hint-why").textContent()).toContain("Admins can also manage users, tokens, alert rules and webhooks");
      await screenshot(page, "rules-as-operator");
    });
    const asOperator = httpClient(bd.url, { cookie: await loginCookie(bd.url, OPERATOR, passwords[OPERATOR]) });
    await expect(asOperator.tokens.apiList.query()).rejects.toThrow("tokens.apiList needs the admin role; you are operator");
  });

  it("creates an API token (shown once, usable with its role), then revokes it", async () => {
    await withScreenshotOnFailure(admin, "admin-api-token", async () => {
      await admin.goto("/admin");
      await admin.getByTestId("api-token-label").fill("ci pipeline");
      await admin.getByTestId("api-token-role").selectOption("viewer");
      await admin.getByTestId("api-token-expiry").selectOption("7d");
      await admin.getByTestId("api-token-submit").click();
      const value = admin.getByTestId("api-token-created-value");
      await value.waitFor();
      const token = (await value.textContent()) ?? "";
      const me = await meWithToken(token);
      expect(me.status).toBe(200);
      expect(JSON.parse(me.body).result.data).toMatchObject({ kind: "token", role: "viewer" });
      const id = /token (\S+) \(ci pipeline\)/.exec(JSON.parse(me.body).result.data.name)?.[1] ?? "";
      const row = admin.locator(`[data-testid="api-token-row"][data-id="${id}"]`);
      await row.waitFor();
      expect(await row.getByTestId("token-status").textContent()).toBe("active");
      await screenshot(admin, "admin-api-token-created");

      await admin.reload();
      await row.waitFor();
      expect(await row.getByTestId("token-last-used").textContent()).toMatch(/^(just now|\d+ s ago)$/);
      await row.getByTestId("api-token-revoke").click();
      await expect.poll(() => row.getAttribute("data-revoked")).toBe("true");
      expect(await row.getByTestId("token-status").textContent()).toBe("revoked");
      const after = await meWithToken(token);
      expect(after.status).toBe(401);
      expect(after.body).toContain(`API token ${id} was revoked`);
    });
  });

  it("creates a fleet agent token, shown once, and revokes it", async () => {
    await withScreenshotOnFailure(admin, "admin-agent-token", async () => {
      await admin.getByTestId("agent-token-label").fill("payments fleet");
      await admin.getByTestId("agent-token-fleet").check();
      // A fleet token serves only the names matching its pattern.
      await admin.getByTestId("agent-token-fleet-pattern").fill("payments_*@*");
      await admin.getByTestId("agent-token-submit").click();
      const created = admin.getByTestId("agent-token-created");
      await created.waitFor();
      expect(await created.textContent()).toMatch(/Agent token \S+ \(fleet\)/);
      const row = admin.locator('[data-testid="agent-token-row"][data-fleet="true"]');
      await row.waitFor();
      expect(await row.getByTestId("agent-token-scope").textContent()).toBe("fleet payments_*@*");
      await screenshot(admin, "admin-agent-token-created", true);
      await row.getByTestId("agent-token-revoke").click();
      await expect.poll(() => row.getAttribute("data-revoked")).toBe("true");
    });
    const listed = await httpClient(bd.url, { token: bd.apiToken }).tokens.agentList.query();
    expect(listed.find((t) => t.label === "payments fleet")).toMatchObject({ fleet: true, fleetPattern: "payments_*@*", boundNode: null });
    expect(listed.find((t) => t.label === "payments fleet")?.revokedAt).not.toBeNull();
  });

  it("changes a role, resets a password and disables a user", async () => {
    await withScreenshotOnFailure(admin, "admin-user-changes", async () => {
      await admin.goto("/admin");
      const otto = admin.locator(`[data-testid="user-row"][data-username="${OPERATOR}"]`);
      await otto.getByTestId("user-role-select").selectOption("viewer");
      await expect.poll(() => otto.getAttribute("data-role")).toBe("viewer");
      await otto.getByTestId("user-role-select").selectOption("operator");
      await expect.poll(() => otto.getAttribute("data-role")).toBe("operator");

      await otto.getByTestId("user-reset").click();
      const fresh = admin.getByTestId("user-reset-password-value");
      await fresh.waitFor();
      const newPassword = (await fresh.textContent()) ?? "";
      expect(newPassword).not.toBe(passwords[OPERATOR]);
      await expect(loginCookie(bd.url, OPERATOR, passwords[OPERATOR])).rejects.toThrow(/login failed/);
      passwords[OPERATOR] = newPassword;
      expect(await loginCookie(bd.url, OPERATOR, newPassword)).toMatch(/^beamdeck_session=/);

      const vera = admin.locator(`[data-testid="user-row"][data-username="${VIEWER}"]`);
      await vera.getByTestId("user-disable").click();
      await expect.poll(() => vera.getAttribute("data-disabled")).toBe("true");
      expect(await vera.getByTestId("user-status").textContent()).toBe("disabled");
      await expect(loginCookie(bd.url, VIEWER, passwords[VIEWER])).rejects.toThrow(/login failed/);
      await vera.getByTestId("user-disable").click();
      await expect.poll(() => vera.getAttribute("data-disabled")).toBe("false");
      expect(await loginCookie(bd.url, VIEWER, passwords[VIEWER])).toMatch(/^beamdeck_session=/);
      // The admin cannot disable themself: no button on their own row.
      expect(await admin.locator(`[data-testid="user-row"][data-username="${ADMIN}"]`).getByTestId("user-disable").count()).toBe(0);
    });
  });

  it("edits an alert rule threshold; the default stays shown", async () => {
    await withScreenshotOnFailure(admin, "admin-rule", async () => {
      await admin.goto("/alerts/rules");
      const rule = admin.locator('[data-testid="rule"][data-kind="mailbox"]');
      await rule.waitFor();
      await rule.getByTestId("rule-param-threshold").fill("5000");
      expect(await rule.getByTestId("rule-updated").textContent()).toBe("defaults, never changed");
      await rule.getByTestId("rule-save").click();
      await rule.getByTestId("rule-saved").waitFor();
      expect(await rule.getByTestId("rule-updated").textContent()).toMatch(new RegExp(`^changed \\d{4}-\\d\\d-\\d\\d \\d\\d:\\d\\d:\\d\\d by user:${ADMIN}$`));
      expect(await rule.getByTestId("rule-param-threshold-default").textContent()).toBe("default 10000 · changed");
      expect((await httpClient(bd.url, { token: bd.apiToken }).alerts.rules.query()).find((r) => r.kind === "mailbox")?.params).toEqual({ threshold: 5000, forSeconds: 30 });
      await screenshot(admin, "rules-as-admin", true);
    });
  });
});

describe("the audit page", () => {
  it("shows the user.add entries, filters by actor, and the chain is intact", async () => {
    await withScreenshotOnFailure(admin, "audit-list", async () => {
      await admin.goto("/audit");
      const chain = admin.locator('[data-testid="chain-status"][data-state="intact"]');
      await chain.waitFor();
      expect(await admin.getByTestId("chain-status-text").textContent()).toBe("Audit chain intact");
      await admin.locator('[data-testid="audit-row"][data-action="user.add"]').first().waitFor();
      const adds = await admin.locator('[data-testid="audit-row"][data-action="user.add"]').evaluateAll((els) => els.map((e) => e.getAttribute("data-actor")));
      expect(adds.filter((a) => a === `user:${ADMIN}`)).toHaveLength(2);
      await screenshot(admin, "audit-all");

      await admin.getByTestId("audit-filter-actor").fill(`user:${OPERATOR}`);
      await expect.poll(async () => [...new Set(await admin.locator('[data-testid="audit-row"]').evaluateAll((els) => els.map((e) => e.getAttribute("data-actor"))))]).toEqual([`user:${OPERATOR}`]);
      // The operator's two logins (the second after the password reset)… and the failed one.
      const logins = await admin.locator('[data-testid="audit-row"][data-action="auth.login"]').evaluateAll((els) => els.map((e) => e.getAttribute("data-outcome")));
      expect(logins.filter((o) => o === "denied").length).toBe(1);
      expect(new URL(admin.url()).searchParams.get("actor")).toBe(`user:${OPERATOR}`);
      await screenshot(admin, "audit-filter-actor");

      await admin.getByTestId("audit-filter-actor").fill(`user:${ADMIN}`);
      await admin.getByTestId("audit-filter-action").fill("user.add");
      await expect.poll(() => admin.locator('[data-testid="audit-row"]').count()).toBe(2);
      for (const row of await admin.locator('[data-testid="audit-row"]').all()) {
        expect(await row.getAttribute("data-action")).toBe("user.add");
        expect(await row.getAttribute("data-actor")).toBe(`user:${ADMIN}`);
      }
      const targets = await admin.locator('[data-testid="audit-row"] td.target').allTextContents();
      expect(targets.sort()).toEqual([`user:${OPERATOR}`, `user:${VIEWER}`]);
    });
  });

  it("exports the filtered rows as CSV and JSON", async () => {
    await withScreenshotOnFailure(admin, "audit-export", async () => {
      // Still filtered: actor user:admin, action user.add.
      expect(await admin.getByTestId("export-csv").getAttribute("href")).toBe(`/api/audit/export?format=csv&actor=user%3A${ADMIN}&action=user.add`);
      const [csv] = await Promise.all([admin.waitForEvent("download"), admin.getByTestId("export-csv").click()]);
      expect(csv.suggestedFilename()).toMatch(/^beamdeck-audit-.*\.csv$/);
      const rows = parseCsv(fs.readFileSync(await csv.path(), "utf8"));
      expect(rows[0]).toEqual(["id", "at", "actor", "action", "node", "target", "intentId", "outcome", "data", "hash", "prevHash"]);
      const body = rows.slice(1).filter((r) => r.length > 1);
      expect(body).toHaveLength(2);
      for (const r of body) {
        expect(r[2]).toBe(`user:${ADMIN}`);
        expect(r[3]).toBe("user.add");
        expect(r[7]).toBe("ok");
      }
      expect(body.map((r) => r[5]).sort()).toEqual([`user:${OPERATOR}`, `user:${VIEWER}`]);
      expect(body.map((r) => JSON.parse(r[8]).role).sort()).toEqual(["operator", "viewer"]);

      const [json] = await Promise.all([admin.waitForEvent("download"), admin.getByTestId("export-json").click()]);
      const entries = JSON.parse(fs.readFileSync(await json.path(), "utf8")) as { action: string; target: string }[];
      expect(entries.map((e) => e.target).sort()).toEqual([`user:${OPERATOR}`, `user:${VIEWER}`]);
    });
  });

  it("shows a rule change and a role change as field diffs", async () => {
    await withScreenshotOnFailure(admin, "audit-diff", async () => {
      await admin.goto("/audit?action=alert_rule.update");
      const row = admin.locator('[data-testid="audit-row"][data-action="alert_rule.update"]');
      await row.first().waitFor();
      expect(await row.count()).toBe(1);
      await row.first().click();
      const diff = admin.getByTestId("audit-diff");
      await diff.waitFor();
      const changed = diff.locator('[data-testid="diff-row"][data-change="changed"]');
      expect(await changed.count()).toBe(1);
      expect(await changed.getAttribute("data-path")).toBe("params.threshold");
      expect(await changed.locator("td").allTextContents()).toEqual(["params.threshold", "10000", "5000"]);
      await screenshot(admin, "audit-rule-diff");

      await admin.goto("/audit?action=user.set_role");
      await admin.locator('[data-testid="audit-row"]').nth(1).click();
      const first = admin.getByTestId("audit-diff").locator('[data-testid="diff-row"]');
      await first.first().waitFor();
      expect(await first.first().locator("td").allTextContents()).toEqual(["(value)", "operator", "viewer"]);
    });
  });
});
