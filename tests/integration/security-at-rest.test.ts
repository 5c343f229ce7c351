/**
 * Issue 10, data at rest and tokens, against a real server: the data
 * directory's file modes after `init` and while a server runs (item 5), and
 * API tokens that follow their owner (item 12) over HTTP and WebSocket.
 */
import { spawnSync } from "node:child_process";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { TRPCClientError } from "@trpc/client";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ROOT, startServer, type TestServer } from "../support/server";
import { httpClient, loginCookie, wsClient } from "../support/trpc-clients";
import { codeOf } from "../support/calls";

/** Every entry under `dir` whose mode lets group or others in, with its mode. */
function openToOthers(dir: string): string[] {
  const found: string[] = [];
  const walk = (p: string) => {
    const st = fs.lstatSync(p);
    if ((st.mode & 0o077) !== 0) found.push(`${path.relative(dir, p) || "."} ${(st.mode & 0o777).toString(8)}`);
    if (st.isDirectory()) for (const n of fs.readdirSync(p)) walk(path.join(p, n));
  };
  walk(dir);
  return found;
}

function countEntries(dir: string): number {
  let n = 0;
  const walk = (p: string) => {
    n += 1;
    if (fs.lstatSync(p).isDirectory()) for (const c of fs.readdirSync(p)) walk(path.join(p, c));
  };
  walk(dir);
  return n;
}

async function messageOf(call: () => Promise<unknown>): Promise<string> {
  try {
    await call();
    return "OK";
  } catch (e) {
    if (e instanceof TRPCClientError) return e.message;
    throw e;
  }
}

describe("data directory modes (item 5)", () => {
  let server: TestServer | undefined;
  afterAll(async () => {
    await server?.stop();
  });

  it("init leaves the data directory 0700 and every file in it 0600, the key file included", () => {
    const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), "beamdeck-modes-"));
    fs.chmodSync(dataDir, 0o755); // as mkdir under a common umask would leave it
    const env = { ...process.env, BEAMDECK_DATA_DIR: dataDir } as NodeJS.ProcessEnv;
    delete env.DATABASE_URL;
    delete env.BEAMDECK_SECRET_KEY;
    // A permissive umask, as a shell might have: beamdeck must not depend on it.
    const r = spawnSync("sh", ["-c", `umask 000 && exec "${process.execPath}" bin/beamdeck.js init --json`], { env, cwd: ROOT, encoding: "utf8" });
    expect(r.status, r.stderr).toBe(0);
    expect(countEntries(dataDir)).toBeGreaterThan(500); // the whole PGlite cluster was walked
    expect(fs.existsSync(path.join(dataDir, "secret.key"))).toBe(true);
    expect(openToOthers(dataDir)).toEqual([]);
  }, 240_000);

  it("a server start repairs files left open, says so, and keeps its own files private while running", async () => {
    server = await startServer();
    await server.stop();
    // What an older version (or a copy with cp -r under umask 022) left behind.
    const leaked = path.join(server.dataDir, "db", "PG_VERSION");
    fs.chmodSync(leaked, 0o666);
    fs.chmodSync(path.join(server.dataDir, "db"), 0o755);
    await server.restart();
    expect(server.log()).toMatch(/WARNING: \d+ of \d+ entries in the data directory .* were readable or writable by other users; repaired/);
    expect(server.log()).toContain("PG_VERSION");
    const admin = httpClient(server.url, { token: server.apiToken });
    await admin.users.add.mutate({ username: "mode-check", role: "viewer" });
    expect(openToOthers(server.dataDir)).toEqual([]);
  }, 300_000);
});

describe("API tokens follow their owner (item 12)", () => {
  let server: TestServer;
  beforeAll(async () => {
    server = await startServer();
  });
  afterAll(async () => {
    await server?.stop();
  });

  async function ownedAdminToken(username: string) {
    const root = httpClient(server.url, { token: server.apiToken });
    await root.users.add.mutate({ username, role: "admin", password: `${username}-password-1` });
    const cookie = await loginCookie(server.url, username, `${username}-password-1`);
    const own = httpClient(server.url, { cookie });
    const t = await own.tokens.apiCreate.mutate({ label: `${username}-ci`, role: "admin" });
    return { root, token: t.token };
  }

  it("an admin token of a user demoted to viewer acts as a viewer, over HTTP and WebSocket", async () => {
    const { root, token } = await ownedAdminToken("dora");
    const http = httpClient(server.url, { token });
    expect(await codeOf(() => http.users.list.query())).toBe("OK");
    // A socket opened while still admin is closed when the owner is demoted.
    const before = wsClient(server.url, { token });
    const closed = new Promise<number | undefined>((resolve) => {
      const c = wsClient(server.url, { token }, (cause) => resolve(cause?.code));
      c.trpc.nodes.onNodes.subscribe(undefined, { onData: () => {} });
    });
    expect(await codeOf(() => before.trpc.users.list.query())).toBe("OK");
    before.close();
    await new Promise((r) => setTimeout(r, 300));

    await root.users.setRole.mutate({ username: "dora", role: "viewer" });
    expect(await closed).toBe(4401);
    expect(await codeOf(() => http.users.list.query())).toBe("FORBIDDEN");
    expect(await codeOf(() => http.tokens.apiCreate.mutate({ label: "escalate", role: "admin" }))).toBe("FORBIDDEN");
    expect(await http.auth.me.query()).toMatchObject({ role: "viewer" });
    const ws = wsClient(server.url, { token });
    try {
      expect(await codeOf(() => ws.trpc.users.list.query())).toBe("FORBIDDEN");
      expect(await codeOf(() => ws.trpc.nodes.list.query())).toBe("OK");
    } finally {
      ws.close();
    }
    expect(await messageOf(() => http.users.list.query())).toMatch(/needs the admin role; you are viewer/);
    // Promoted back, the token's own role (admin) applies again.
    await root.users.setRole.mutate({ username: "dora", role: "admin" });
    expect(await codeOf(() => http.users.list.query())).toBe("OK");
  }, 180_000);

  it("disabling the owner, their logout-everywhere and a password reset end the owner's tokens", async () => {
    const disabled = await ownedAdminToken("erin");
    await disabled.root.users.setDisabled.mutate({ username: "erin", disabled: true });
    expect(await messageOf(() => httpClient(server.url, { token: disabled.token }).nodes.list.query())).toMatch(/belongs to a disabled user \(erin\)/);

    const reset = await ownedAdminToken("fred");
    expect(await codeOf(() => httpClient(server.url, { token: reset.token }).nodes.list.query())).toBe("OK");
    await reset.root.users.resetPassword.mutate({ username: "fred" });
    expect(await messageOf(() => httpClient(server.url, { token: reset.token }).nodes.list.query())).toMatch(/was ended when fred logged out everywhere or had the password reset/);

    const everywhere = await ownedAdminToken("gina");
    await httpClient(server.url, { token: everywhere.token }).auth.logoutEverywhere.mutate();
    expect(await codeOf(() => httpClient(server.url, { token: everywhere.token }).nodes.list.query())).toBe("UNAUTHORIZED");
    // The server's own admin token (another owner) is untouched.
    expect(await codeOf(() => httpClient(server.url, { token: server.apiToken }).nodes.list.query())).toBe("OK");
  }, 180_000);
});
