/**
 * The CLI's edges: bad arguments, unreachable servers, refused tokens and
 * the embedded database held by a running server each give one clear line
 * and the documented exit code.
 */
import fs from "node:fs";
import net from "node:net";
import os from "node:os";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { freePort } from "../support/ports";
import { runCli, startServer, type TestServer } from "../support/server";

let server: TestServer;

async function run(args: string[], env: Record<string, string | undefined> = {}) {
  const r = await runCli(args, { ...process.env, ...env });
  return { code: r.code, stdout: r.stdout, stderr: r.stderr.trim() };
}

beforeAll(async () => {
  server = await startServer();
});
afterAll(async () => {
  await server?.stop();
});

describe("the CLI", () => {
  it("says what is wrong with its arguments, exit 2", async () => {
    const cases: [string[], RegExp][] = [
      [["frobnicate"], /^beamdeck: unknown command "frobnicate" \(see: beamdeck help\)$/],
      [["procs"], /missing <node>/],
      [["procs", "n@h", "--sort", "size"], /--sort: .*mailbox.*memory.*reductions/],
      [["procs", "n@h", "--limit", "0"], /--limit: /],
      [["proc", "n@h", "not-a-pid"], /pid: not a pid; expected a pid like <0\.116\.0> \(got "not-a-pid"\)/],
      [["procs", "n@h", "--limit", "abc"], /--limit: not a whole number; expected a whole number from 1 to 1000 \(got "abc"\)/],
      [["upgrade", "plan", "n@h", "0.1.1", "--purge", "TestListener"], /--purge takes Module=soft or Module=brutal, not "TestListener"/],
      [["upgrade", "plan", "n@h", "0.1.1", "--pre-purge", "TestListener=gentle"], /--pre-purge takes Module=soft or Module=brutal/],
      [["upgrade", "install", "n@h", "0.1.1"], /changes the node: add --yes to confirm/],
      [["upgrade", "install", "n@h", "0.1.1", "--yes", "--max-kills", "many"], /--max-kills: /],
      [["upgrade", "permanent", "n@h", "0.1.1", "--yes", "--accept-plan", "abc"], /--accept-plan: a plan digest/],
      [["token", "create"], /needs --role/],
      [["events", "n@h", "--since", "yesterday"], /--since: not a time; expected an ISO 8601 date or time .* \(got "yesterday"\)/],
      [["nodes", "--timeout", "soon"], /--timeout takes a duration like 30s, 5m or 1h, not "soon"/],
      [["nodes", "--timeout"], /--timeout needs a duration/],
    ];
    for (const [args, re] of cases) {
      const r = await run(args, server.env);
      expect(r.stderr.split("\n"), args.join(" ")).toHaveLength(1);
      expect(r.stderr, args.join(" ")).toMatch(re);
      expect(r.code, args.join(" ")).toBe(2);
    }
  });

  it("says it cannot reach the server, exit 1", async () => {
    const port = await freePort();
    const r = await run(["nodes"], { BEAMDECK_URL: `http://127.0.0.1:${port}`, BEAMDECK_API_TOKEN: server.apiToken });
    expect(r.code).toBe(1);
    expect(r.stderr).toBe(`beamdeck: cannot reach the beamdeck server at http://127.0.0.1:${port} (ECONNREFUSED); is it running? (BEAMDECK_URL)`);
    const bad = await run(["nodes"], { BEAMDECK_URL: "ftp://x", BEAMDECK_API_TOKEN: server.apiToken });
    expect(bad.stderr).toBe('beamdeck: BEAMDECK_URL must be http(s)://HOST:PORT, not "ftp://x"');
    const none = await run(["nodes"], { ...server.env, BEAMDECK_API_TOKEN: "" });
    expect(none.stderr).toMatch(/BEAMDECK_API_TOKEN is not set/);
  });

  it("gives up at its deadline on a server that accepts but never answers: one line saying what it waited for, exit 6", async () => {
    // Accepts connections and reads requests, never replies: a hung server.
    const sockets: net.Socket[] = [];
    const silent = net.createServer((s) => {
      sockets.push(s);
      s.on("error", () => {});
    });
    await new Promise<void>((r) => silent.listen(0, "127.0.0.1", r));
    const port = (silent.address() as net.AddressInfo).port;
    try {
      const t0 = Date.now();
      const r = await run(["nodes", "--timeout", "2s"], { BEAMDECK_URL: `http://127.0.0.1:${port}`, BEAMDECK_API_TOKEN: server.apiToken });
      expect(r.stderr).toBe("beamdeck: the server's reply to nodes.list: no answer within 2 s (--timeout to wait longer)");
      expect(r.code).toBe(6);
      // Its own deadline ended it (the per-request limit is 30 s), start-up included.
      expect(Date.now() - t0).toBeLessThan(25_000);
    } finally {
      for (const s of sockets) s.destroy();
      silent.close();
    }
  });

  it("refuses a wrong token and a missing node clearly", async () => {
    expect((await run(["nodes"], { ...server.env, BEAMDECK_API_TOKEN: `bdapi_aaaaaaaaaa_${"b".repeat(43)}` })).stderr).toBe("beamdeck: API token not recognised");
    const r = await run(["procs", "ghost@nowhere"], server.env);
    expect(r.code).toBe(1);
    expect(r.stderr).toBe("beamdeck: no node named ghost@nowhere has ever connected");
  });

  it("init and agent-token refuse, saying why, while a server holds the embedded database", async () => {
    const env = { ...server.env, BEAMDECK_API_TOKEN: undefined };
    const init = await run(["init"], env);
    expect(init.code).toBe(1);
    expect(init.stderr).toMatch(/^beamdeck: the embedded database is in use by a running beamdeck server \(pid \d+, since .*\); stop it, or run this command through the server/);
    // Through the server it works.
    const viaServer = await run(["agent-token", "create", "x", "--json"], server.env);
    expect(viaServer.code, viaServer.stderr).toBe(0);
    expect(JSON.parse(viaServer.stdout).token).toMatch(/^bdagt_/);
  });

  it("a second server on the same embedded database refuses, pointing at PostgreSQL for several instances", async () => {
    const second = await run(["server"], { ...server.env, PORT: String(await freePort()), BEAMDECK_API_TOKEN: undefined });
    expect(second.code).toBe(1);
    expect(second.stderr).toMatch(
      /^beamdeck: the embedded database is in use by a running beamdeck server \(pid \d+, since .*\); the embedded database serves one server instance: .*PostgreSQL \(DATABASE_URL/m,
    );
    // The first one still serves.
    expect((await fetch(`${server.url}/healthz`)).ok).toBe(true);
  });

  it("init a second time changes nothing and never reprints a password", async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), "beamdeck-init-"));
    const first = await run(["init"], { BEAMDECK_DATA_DIR: dir, DATABASE_URL: undefined });
    expect(first.code, first.stderr).toBe(0);
    const password = /password:\s+(\S+)/.exec(first.stdout)?.[1] as string;
    expect(password.length).toBeGreaterThan(10);
    const second = await run(["init"], { BEAMDECK_DATA_DIR: dir, DATABASE_URL: undefined });
    expect(second.code).toBe(0);
    expect(second.stdout).toMatch(/already initialised .* nothing changed/);
    expect(second.stdout).toContain(path.join(dir, "initial-admin.txt"));
    expect(second.stdout).not.toContain(password);
  }, 300_000); // two inits each create and migrate a database: most of a minute each on a loaded machine
});
