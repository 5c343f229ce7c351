/**
 * A node's agent token against the fallback history (issue 15): the first
 * outcome of an install's fallback counts, however often the node sends one
 * again (a restarted node replays its journal) or forges others. The real
 * server on a real PostgreSQL; the install is written directly into the
 * database (what a real install with --fallback records: its params and the
 * agent's fallback record in its result) and the agent is a protocol-level
 * client, since the attack is frames a node's token may send, not BEAM
 * behaviour (the real agent's journal is tests/integration/upgrade-fallback).
 */
import crypto from "node:crypto";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import pg from "pg";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { waitFor } from "../support/ports";
import { startPostgres, type TestPostgres } from "../support/postgres";
import { connectRaw, helloFrame, isRefusal, type RawAgent } from "../support/raw-agent";
import { startServer, type TestServer } from "../support/server";
import { httpClient } from "../support/trpc-clients";

const NODE = "replayer@host";
const COMMAND = "c-fallback-install-1";
const BOOT = helloFrame(NODE).bootId;
/** More forged events than any window of recent events a reader might take. */
const FORGED = 150;

let pgServer: TestPostgres;
let db: pg.Client;
let server: TestServer;
let agent: RawAgent;

const record = (commandId: string) => ({ vsn: "0.1.1", from: "0.1.0", deadline: Date.now() + 60_000, durationMs: 60_000, commandId, rollbackDigest: null, maxKills: null, acceptFindings: [] });
const fallbackEvent = (seq: number, context: string, commandId: string) => ({
  type: "event",
  seq,
  bootId: BOOT,
  at: Date.now(),
  kind: "fallback",
  context,
  reason: { text: `fallback ${context} #${seq}`, truncated: false },
  fallback: record(commandId),
  rollbackCommandId: null,
});

beforeAll(async () => {
  pgServer = await startPostgres();
  const url = await pgServer.createDatabase(`fbreplay_${Date.now()}`);
  db = new pg.Client({ connectionString: url });
  await db.connect();
  server = await startServer({ databaseUrl: url, dataDir: fs.mkdtempSync(path.join(os.tmpdir(), "beamdeck-fbr-")), env: { BEAMDECK_SECRET_KEY: crypto.randomBytes(32).toString("base64url") } });
  await db.query(
    `INSERT INTO "Upgrade" (id, node, "fromVsn", "toVsn", status, purge, "prePurge", "createdBy", "createdAt", "updatedAt") VALUES ('u-fb-1', $1, '0.1.0', '0.1.1', 'installed', '{}', '{}', 'user:admin', now(), now())`,
    [NODE],
  );
  await db.query(
    `INSERT INTO "UpgradeCommand" (id, "upgradeId", node, action, status, "requestedBy", params, result, "createdAt") VALUES ($1, 'u-fb-1', $2, 'install', 'ok', 'user:admin', $3, $4, now())`,
    [COMMAND, NODE, JSON.stringify({ vsn: "0.1.1", fallbackMs: 60_000 }), JSON.stringify({ ok: true, result: { fallback: record(COMMAND) } })],
  );
  const token = await server.agentToken("fallback replayer");
  const a = await connectRaw(server.agentUrl, token, NODE);
  if (isRefusal(a)) throw new Error(`the agent connection was refused: ${a.status} ${a.body}`);
  agent = a;
  await agent.hello();
}, 600_000);

afterAll(async () => {
  agent?.close();
  await server?.stop();
  await db?.end();
  await pgServer?.stop();
});

describe("a node replaying or forging fallback outcomes", () => {
  it("the first outcome of the install's fallback stays its outcome", async () => {
    agent.send(fallbackEvent(1, "rolled_back", COMMAND));
    // Forged outcomes for commands this node never had (refused, but stored as its events), then a replay that says otherwise.
    for (let seq = 2; seq <= FORGED + 1; seq++) agent.send(fallbackEvent(seq, "cleared", `c-forged-${seq}`));
    const last = FORGED + 2;
    agent.send(fallbackEvent(last, "cleared", COMMAND));
    await waitFor("all acked", async () => (agent.received.some((f) => f.type === "ack" && f.eventSeq === last) ? true : null), 30_000, 200);
    const stored = await db.query<{ n: string }>(`SELECT count(*) AS n FROM "Event" WHERE node = $1 AND kind = 'fallback'`, [NODE]);
    expect(Number(stored.rows[0]?.n)).toBe(last);

    const audited = await db.query<{ outcome: string }>(`SELECT data->>'outcome' AS outcome FROM "AuditEntry" WHERE action = 'upgrade.fallback' AND node = $1`, [NODE]);
    expect(audited.rows.map((r) => r.outcome)).toEqual(["rolled_back"]);
    const history = await httpClient(server.url, { token: server.apiToken }).upgrades.history.query({ node: NODE });
    const fb = history.find((u) => u.id === "u-fb-1")?.fallback;
    expect(fb).toMatchObject({ commandId: COMMAND, outcome: "rolled_back", message: "fallback rolled_back #1", line: null });
  });
});
