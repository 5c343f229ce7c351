/**
 * Debian's Chromium through playwright-core, for e2e tests and screenshots:
 * a fresh profile per launch, a login helper, and screenshots of failed
 * tests in tests/.out/.
 *
 * @module
 */
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { chromium, type Browser, type BrowserContext, type Page } from "playwright-core";

export const OUT_DIR = path.resolve(import.meta.dirname, "../.out");

/** Flags that keep Chromium quiet and offline-friendly (stack-recipe.md). */
export const CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-quic"];

export interface BrowserSession {
  context: BrowserContext;
  page: Page;
  /** Closes the browser and removes its profile directory. */
  close(): Promise<void>;
}

export interface LaunchOptions {
  /** Origin pages are opened against, e.g. http://127.0.0.1:4123. */
  baseURL: string;
  viewport?: { width: number; height: number };
  executablePath?: string;
  /** The browser's time zone (IANA name); the host's when absent. */
  timezoneId?: string;
}

/**
 * Launches Chromium with its own fresh user-data-dir (a persistent context,
 * so nothing leaks between launches) and opens one page.
 */
export async function launchBrowser(opts: LaunchOptions): Promise<BrowserSession> {
  const profile = fs.mkdtempSync(path.join(os.tmpdir(), "beamdeck-chromium-"));
  const context = await chromium.launchPersistentContext(profile, {
    executablePath: opts.executablePath ?? process.env.CHROMIUM_PATH ?? "/usr/bin/chromium",
    args: CHROMIUM_ARGS,
    headless: true,
    baseURL: opts.baseURL,
    viewport: opts.viewport ?? { width: 1440, height: 900 },
    timezoneId: opts.timezoneId,
    timeout: 30_000,
  });
  context.setDefaultTimeout(15_000);
  const page = context.pages()[0] ?? (await context.newPage());
  return {
    context,
    page,
    async close() {
      await context.close().catch(() => {});
      fs.rmSync(profile, { recursive: true, force: true });
    },
  };
}

/** Launches a plain (non-persistent) browser, for callers that want several contexts. */
export async function launchChromium(executablePath = process.env.CHROMIUM_PATH ?? "/usr/bin/chromium"): Promise<Browser> {
  return chromium.launch({ executablePath, args: CHROMIUM_ARGS, headless: true });
}

/**
 * Logs in through the login form and waits until the browser has left the
 * login page. `next` is where to go afterwards (default "/").
 */
export async function login(page: Page, username: string, password: string, next = "/"): Promise<void> {
  await page.goto(`/login?next=${encodeURIComponent(next)}`);
  await page.getByTestId("login-username").fill(username);
  await page.getByTestId("login-password").fill(password);
  await page.getByTestId("login-submit").click();
  await page.waitForURL((u) => u.pathname !== "/login", { timeout: 15_000 });
}

/** A screenshot in tests/.out/NAME.png; returns its path. */
export async function screenshot(page: Page, name: string, fullPage = false): Promise<string> {
  fs.mkdirSync(OUT_DIR, { recursive: true });
  const file = path.join(OUT_DIR, `${name.replace(/[^a-z0-9._-]+/gi, "_")}.png`);
  await page.screenshot({ path: file, fullPage });
  return file;
}

/**
 * Runs a test body; when it throws, saves a screenshot and the page's URL
 * in tests/.out/ before rethrowing.
 */
export async function withScreenshotOnFailure<T>(page: Page, name: string, body: () => Promise<T>): Promise<T> {
  try {
    return await body();
  } catch (err) {
    const file = await screenshot(page, `FAILED-${name}`, true).catch(() => null);
    if (err instanceof Error && file) err.message += `\n(screenshot: ${file}; url: ${page.url()})`;
    throw err;
  }
}
