/**
 * The whole server on both databases: it starts and migrates on its own,
 * records the audit log, exports it, and `beamdeck audit verify` names a row
 * tampered with directly in the database.
 */
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import pg from "pg";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { openDatabase } from "../../server/storage/db";
import { startPostgres, type TestPostgres } from "../support/postgres";
import { startServer, type TestServer } from "../support/server";
import { httpClient } from "../support/trpc-clients";

let pgServer: TestPostgres;
beforeAll(async () => {
  pgServer = await startPostgres();
});
afterAll(() => pgServer?.stop());

type Backend = {
  name: string;
  start(): Promise<TestServer>;
  tamper(server: TestServer, sql: string, id: string): Promise<void>;
};

const backends: Backend[] = [
  {
    name: "PostgreSQL",
    start: async () => startServer({ databaseUrl: await pgServer.createDatabase(`srv_${Date.now()}`) }),
    async tamper(server, sql, id) {
      const client = new pg.Client({ connectionString: server.env.DATABASE_URL });
      await client.connect();
      await client.query(sql, [id]);
      await client.end();
    },
  },
  {
    name: "PGlite",
    start: () => startServer({ dataDir: fs.mkdtempSync(path.join(os.tmpdir(), "beamdeck-audit-")) }),
    // The embedded database has one user at a time: stop, tamper, start.
    async tamper(server, sql, id) {
      await server.stop();
      const db = await openDatabase("test", { BEAMDECK_DATA_DIR: server.dataDir });
      await db.prisma.$executeRawUnsafe(sql, BigInt(id));
      await db.close();
      await server.restart();
    },
  },
];

describe.each(backends)("audit log on $name", (backend) => {
  let server: TestServer;
  let tampered: { id: string; actor: string } | null = null;
  beforeAll(async () => {
    server = await backend.start();
  });
  afterAll(async () => {
    await server?.stop();
  });

  it("records actions, exports CSV and JSON, and verifies", async () => {
    const admin = httpClient(server.url, { token: server.apiToken });
    await admin.users.add.mutate({ username: "aud", role: "viewer", password: "auditor-password" });
    await admin.tokens.agentCreate.mutate({ label: "n1" });
    const csv = await fetch(`${server.url}/api/audit/export?format=csv&action=user.`, { headers: { authorization: `Bearer ${server.apiToken}` } });
    expect(csv.status).toBe(200);
    expect(csv.headers.get("content-disposition")).toMatch(/attachment; filename="beamdeck-audit-.*\.csv"/);
    const lines = (await csv.text()).trim().split("\n");
    expect(lines[0]).toBe("id,at,actor,action,node,target,intentId,outcome,data,hash,prevHash");
    expect(lines.slice(1).every((l) => l.includes(",user.add,"))).toBe(true);
    expect(lines.some((l) => l.includes("user:aud"))).toBe(true);
    const js = await fetch(`${server.url}/api/audit/export?format=json`, { headers: { authorization: `Bearer ${server.apiToken}` } });
    const entries = (await js.json()) as { action: string }[];
    expect(entries.map((e) => e.action)).toEqual(expect.arrayContaining(["user.add", "agent_token.create", "token.create"]));
    const anon = await fetch(`${server.url}/api/audit/export?format=csv`);
    expect(anon.status).toBe(401);
    const ok = await server.cli(["audit", "verify"]);
    expect(ok.code, ok.stderr).toBe(0);
    expect(ok.stdout).toMatch(/audit chain intact: \d+ entries/);
  });

  it("names the first entry tampered with in the database", async () => {
    const list = JSON.parse((await server.cli(["audit", "--json", "--action", "agent_token.create"])).stdout) as { id: string; actor: string }[];
    const victim = list[0].id;
    tampered = { id: victim, actor: list[0].actor };
    await backend.tamper(server, `UPDATE "AuditEntry" SET actor = 'user:mallory' WHERE id = $1`, victim);
    const bad = await server.cli(["audit", "verify"]);
    expect(bad.code).toBe(1);
    expect(bad.stderr).toContain(`audit chain BROKEN at entry ${victim}`);
    const json = await server.cli(["audit", "verify", "--json"]);
    expect(JSON.parse(json.stdout)).toMatchObject({ ok: false, firstBad: { id: victim } });
  });

  it("names the newest entries deleted in the database (the signed head), in `audit verify`", async () => {
    const admin = httpClient(server.url, { token: server.apiToken });
    await admin.users.add.mutate({ username: "tail", role: "viewer", password: "tail-password-1" });
    const newest = (await admin.audit.list.query({ limit: 1 })).entries[0];
    expect(newest.action).toBe("user.add");
    // Deleting the tail leaves a chain that links perfectly: only the head can tell.
    // (The same statement undoes the test above's edit, so the tail is the only damage.)
    const undo = tampered ? `WITH undo AS (UPDATE "AuditEntry" SET actor = '${tampered.actor.replace(/'/g, "''")}' WHERE id = ${BigInt(tampered.id)}) ` : "";
    await backend.tamper(server, `${undo}DELETE FROM "AuditEntry" WHERE id >= $1`, newest.id);
    const bad = await server.cli(["audit", "verify", "--json"]);
    expect(bad.code).toBe(1);
    const status = JSON.parse(bad.stdout) as { ok: boolean; firstBad: { id: string; reason: string } };
    expect(status.firstBad.id).toBe(newest.id);
    expect(status.firstBad.reason).toMatch(/the newest 1 entry was deleted: the signed head names #\d+/);
  }, 240_000);
});
