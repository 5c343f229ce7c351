/**
 * The storage suite, run unchanged on both databases: embedded PGlite and a
 * real PostgreSQL server started for the test.
 */
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { appendAudit, recordIntent, recordOutcome, verifyAuditChain } from "../../server/audit/log";
import { checkAgentToken, createAgentToken, revokeAgentToken } from "../../server/auth/agent-tokens";
import { apiTokenPrincipal, createApiToken, revokeApiToken } from "../../server/auth/api-tokens";
import { THROTTLE } from "../../server/auth/login-throttle";
import { login, logoutEverywhere, sessionPrincipal } from "../../server/auth/sessions";
import { createUser } from "../../server/auth/users";
import { EventStore } from "../../server/events/store";
import { LocalHub } from "../../server/live/hub";
import { openDatabase, type OpenDatabase } from "../../server/storage/db";
import { startPostgres, type TestPostgres } from "../support/postgres";

let pg: TestPostgres;
beforeAll(async () => {
  pg = await startPostgres();
});
afterAll(() => pg?.stop());

const backends: [string, () => Promise<Record<string, string>>][] = [
  ["PGlite", async () => ({ BEAMDECK_DATA_DIR: fs.mkdtempSync(path.join(os.tmpdir(), "beamdeck-store-")) })],
  ["PostgreSQL", async () => ({ DATABASE_URL: await pg.createDatabase(`store_${Date.now()}`), BEAMDECK_DATA_DIR: fs.mkdtempSync(path.join(os.tmpdir(), "beamdeck-store-")) })],
];

describe.each(backends)("storage on %s", (_name, envOf) => {
  let db: OpenDatabase;
  let env: Record<string, string>;

  beforeAll(async () => {
    env = await envOf();
    db = await openDatabase("test", env);
  });
  afterAll(async () => {
    await db?.close();
  });

  it("applies the migrations once; reopening applies nothing", async () => {
    expect(db.migrationsApplied.length).toBeGreaterThan(0);
    await db.close();
    db = await openDatabase("test", env);
    expect(db.migrationsApplied).toEqual([]);
    const rows = await db.prisma.$queryRawUnsafe<{ n: number }[]>(`SELECT count(*)::int AS n FROM "_prisma_migrations" WHERE finished_at IS NOT NULL`);
    expect(rows[0].n).toBe(fs.readdirSync(path.resolve("prisma/migrations"), { withFileTypes: true }).filter((d) => d.isDirectory()).length);
  });

  it("logs users in with argon2id, throttles repeated failures per account and address", async () => {
    const u = await createUser(db.prisma, { username: "alice", role: "operator", password: "correct horse battery" });
    expect((await db.prisma.user.findUniqueOrThrow({ where: { id: u.id } })).passwordHash).toMatch(/^\$argon2id\$/);
    await expect(createUser(db.prisma, { username: "alice", role: "viewer" })).rejects.toThrow(/already exists/);
    const s = await login(db.prisma, { username: "alice", password: "correct horse battery" });
    const p = await sessionPrincipal(db.prisma, s.cookie);
    expect(p).toMatchObject({ kind: "user", username: "alice", role: "operator" });
    await expect(login(db.prisma, { username: "alice", password: "nope" })).rejects.toThrow(/wrong username or password/);
    await expect(login(db.prisma, { username: "nobody", password: "nope" })).rejects.toThrow(/wrong username or password/);
    // Five password checks per (account, address) and window; then the same refusal for a real user and an unknown one.
    for (let i = 1; i < THROTTLE.pair.checks; i += 1) {
      await expect(login(db.prisma, { username: "alice", password: "nope" })).rejects.toThrow(/wrong username or password/);
      await expect(login(db.prisma, { username: "nobody", password: "nope" })).rejects.toThrow(/wrong username or password/);
    }
    const refusal = /^too many failed logins for this account from this address; try again after \d{4}-\d\d-\d\dT[\d:.]+Z$/;
    await expect(login(db.prisma, { username: "alice", password: "correct horse battery" })).rejects.toThrow(refusal);
    await expect(login(db.prisma, { username: "nobody", password: "nope" })).rejects.toThrow(refusal);
    // From another address the account is not locked: nobody can lock it out from theirs. A new
    // address only waits out the account's short, growing delay (a second here), then gets in.
    const other = { username: "alice", password: "correct horse battery", ip: "192.0.2.7" };
    const gaveUpAt = Date.now() + 15_000;
    for (;;) {
      const r = await login(db.prisma, other).catch((e: Error) => e);
      if (!(r instanceof Error)) {
        expect(r.principal.username).toBe("alice");
        break;
      }
      expect(r.message).toMatch(/^repeated failed logins for this account; next attempt allowed after /);
      if (Date.now() > gaveUpAt) throw r;
      await new Promise((done) => setTimeout(done, 250));
    }
    // An existing session survives the throttling but not "log out everywhere".
    expect(await sessionPrincipal(db.prisma, s.cookie)).not.toBeNull();
    await logoutEverywhere(db.prisma, u.id);
    expect(await sessionPrincipal(db.prisma, s.cookie)).toBeNull();
  });

  it("resolves API tokens and refuses revoked or expired ones, saying which", async () => {
    const t = await createApiToken(db.prisma, { label: "ci", role: "viewer" });
    expect(await apiTokenPrincipal(db.prisma, t.token)).toMatchObject({ kind: "token", role: "viewer", tokenId: t.id });
    const stored = await db.prisma.apiToken.findUniqueOrThrow({ where: { id: t.id } });
    expect(stored.hash).not.toContain(t.token.slice(-20));
    await revokeApiToken(db.prisma, t.id);
    await expect(apiTokenPrincipal(db.prisma, t.token)).rejects.toThrow(/revoked/);
    const old = await createApiToken(db.prisma, { label: "old", role: "admin", expiresAt: new Date(Date.now() - 1000) });
    await expect(apiTokenPrincipal(db.prisma, old.token)).rejects.toThrow(/expired/);
    await expect(apiTokenPrincipal(db.prisma, "bdapi_nonsense")).rejects.toThrow(/not recognised/);
  });

  it("binds agent tokens to their first node; fleet tokens serve many", async () => {
    const t = await createAgentToken(db.prisma, { label: "n1" });
    expect(await checkAgentToken(db.prisma, t.token, "n1@h")).toMatchObject({ ok: true });
    expect(await checkAgentToken(db.prisma, t.token, "n1@h")).toMatchObject({ ok: true });
    expect(await checkAgentToken(db.prisma, t.token, "n2@h")).toMatchObject({ ok: false, status: 403 });
    const f = await createAgentToken(db.prisma, { label: "fleet", fleetPattern: "*@h" });
    expect(await checkAgentToken(db.prisma, f.token, "a@h")).toMatchObject({ ok: true });
    expect(await checkAgentToken(db.prisma, f.token, "b@h")).toMatchObject({ ok: true });
    await revokeAgentToken(db.prisma, t.id);
    expect(await checkAgentToken(db.prisma, t.token, "n1@h")).toMatchObject({ ok: false, status: 401 });
  });

  it("keeps a verifiable audit chain and names the first tampered entry", async () => {
    const intent = await recordIntent(db.prisma, { actor: "user:alice", action: "upgrade.install", node: "n@h", data: { vsn: "0.1.1", purge: { "Elixir.TestListener": "soft" } } });
    await recordOutcome(db.prisma, intent, { actor: "user:alice", action: "upgrade.install", node: "n@h", outcome: "ok", data: { killed: [] } });
    const third = await appendAudit(db.prisma, { actor: "user:bob", action: "alert.ack", target: "alert:1" });
    await appendAudit(db.prisma, { actor: "user:bob", action: "alert.resolve", target: "alert:1" });
    const ok = await verifyAuditChain(db.prisma);
    expect(ok.ok).toBe(true);
    expect(ok.checked).toBeGreaterThanOrEqual(4);
    await db.prisma.$executeRawUnsafe(`UPDATE "AuditEntry" SET actor = 'user:mallory' WHERE id = $1`, third.id);
    const bad = await verifyAuditChain(db.prisma);
    expect(bad.ok).toBe(false);
    expect(bad.firstBad).toEqual({ id: third.id.toString(), reason: expect.stringMatching(/modified/) });
    await db.prisma.$executeRawUnsafe(`UPDATE "AuditEntry" SET actor = 'user:bob' WHERE id = $1`, third.id);
    expect((await verifyAuditChain(db.prisma)).ok).toBe(true);
    await db.prisma.$executeRawUnsafe(`DELETE FROM "AuditEntry" WHERE id = $1`, third.id);
    const gap = await verifyAuditChain(db.prisma);
    expect(gap.ok).toBe(false);
    expect(gap.firstBad?.reason).toMatch(/link broken/);
  });

  it("names deleted newest entries and truncation through the signed head, and a forged head", async () => {
    // A fresh log (the test above left a gap on purpose).
    await db.prisma.auditEntry.deleteMany({});
    await db.prisma.auditHead.deleteMany({});
    for (let i = 0; i < 5; i += 1) await appendAudit(db.prisma, { actor: "user:bob", action: `step${i}` });
    expect(await verifyAuditChain(db.prisma)).toMatchObject({ ok: true, checked: 5 });
    const last = await db.prisma.auditEntry.findFirstOrThrow({ orderBy: { id: "desc" } });
    await db.prisma.$executeRawUnsafe(`DELETE FROM "AuditEntry" WHERE id = $1`, last.id);
    const tail = await verifyAuditChain(db.prisma);
    expect(tail).toMatchObject({ ok: false, checked: 4, firstBad: { id: last.id.toString() } });
    expect(tail.firstBad?.reason).toMatch(/newest 1 entry was deleted/);
    await db.prisma.$executeRawUnsafe(`DELETE FROM "AuditEntry"`);
    const truncated = await verifyAuditChain(db.prisma);
    expect(truncated.ok).toBe(false);
    expect(truncated.firstBad?.reason).toMatch(/truncated: the signed head names 5 entries/);
    // Rewriting the head to match (without the key) is named too.
    await db.prisma.$executeRawUnsafe(`UPDATE "AuditHead" SET count = 0, "lastId" = 0, hash = $1`, "0".repeat(64));
    expect((await verifyAuditChain(db.prisma)).firstBad?.reason).toMatch(/signature does not match/);
    // Deleting the head itself with rows left is named as well.
    await db.prisma.auditHead.deleteMany({});
    await appendAudit(db.prisma, { actor: "user:bob", action: "after" });
    await db.prisma.auditHead.deleteMany({});
    expect((await verifyAuditChain(db.prisma)).firstBad?.reason).toMatch(/head record is missing/);
  });

  it("serialises concurrent audit appends into one linear chain", async () => {
    // A fresh log: the entries and the head that anchors them.
    await db.prisma.auditEntry.deleteMany({});
    await db.prisma.auditHead.deleteMany({});
    await Promise.all(Array.from({ length: 20 }, (_, i) => appendAudit(db.prisma, { actor: "load", action: `a${i}` })));
    const status = await verifyAuditChain(db.prisma);
    expect(status).toMatchObject({ ok: true, checked: 20 });
  });

  it("stores each event once per (node, boot, seq), however often it is replayed", async () => {
    const store = new EventStore(db.prisma, new LocalHub());
    const boot = "feedface".repeat(4);
    const ev = (seq: number) => ({
      type: "event" as const,
      seq,
      bootId: boot,
      at: Date.now(),
      kind: "supervisor_report",
      context: "child_terminated",
      supervisor: "sup",
      reason: { text: "killed", truncated: false, atom: "killed" },
      offender: { id: "Elixir.Task", pid: "<0.9.0>" },
    });
    expect(await store.ingest("e@h", [ev(1), ev(2), ev(3)])).toBe(3);
    expect(await store.ingest("e@h", [ev(2), ev(3), ev(4), ev(4)])).toBe(4);
    expect(await db.prisma.event.count({ where: { node: "e@h" } })).toBe(4);
    expect(await store.lastSeq("e@h", boot)).toBe(4);
    const row = await db.prisma.event.findFirstOrThrow({ where: { node: "e@h", seq: 1 } });
    expect(row).toMatchObject({ context: "child_terminated", reason: "killed", offenderId: "Elixir.Task", offenderPid: "<0.9.0>" });
  });
});
