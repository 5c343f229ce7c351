/**
 * Issue 16: the durable facts several instances share. Three real
 * `beamdeck server` processes (A, B, C) on one real PostgreSQL, synthetic
 * agents (tools/loadgen, the real agent protocol) spread over them, and a
 * local HTTP server as the webhook receiver.
 *
 * - Nodes of one group on three instances run different releases: each
 *   instance's drift rule notices it at about the same time, and the three
 *   raises land in one alert (its count says all three raised) with one
 *   webhook delivery, POSTed once.
 * - The instance sending a delivery is killed (SIGKILL) while the receiver
 *   holds its POST: another instance sends it again once the claim runs out,
 *   with the same delivery id, and the row records it delivered. Paused
 *   (SIGSTOP) instead, then resumed after the resend: its stale attempt's
 *   outcome is not recorded over the resend's.
 * - Audited actions sent through the three instances at once make one chain
 *   that verifies on every instance, with no fork (no two entries after the
 *   same one).
 * - Revoking a fleet token through A counts and closes the sockets on A, B
 *   and C.
 * - `/healthz` answers while the database is blocked (a held table lock).
 * Facts come from the database rows and the receiver, not the servers' claims.
 */
import crypto from "node:crypto";
import fs from "node:fs";
import http from "node:http";
import type { AddressInfo } from "node:net";
import os from "node:os";
import path from "node:path";
import pg from "pg";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { SyntheticAgent } from "../../tools/loadgen/agent";
import { waitFor } from "../support/ports";
import { startPostgres, type TestPostgres } from "../support/postgres";
import { startServer, type TestServer } from "../support/server";
import { httpClient } from "../support/trpc-clients";

const SECRET = crypto.randomBytes(32).toString("base64url");
let pgServer: TestPostgres;
let db: pg.Client;
let dbUrl = "";
let A: TestServer;
let B: TestServer;
let C: TestServer;
const servers = () => [A, B, C];
const agents: SyntheticAgent[] = [];

/** What the webhook receiver got: one entry per POST. */
interface Received {
  delivery: string;
  alertId: string;
  remotePort: number;
}
const received: Received[] = [];
let receiver: http.Server;
let hookUrl = "";
/** When set, the next POST is held unanswered and its client port handed over (the sender is then killed). */
let holdNext: ((port: number) => void) | null = null;
const held: http.ServerResponse[] = [];

function startReceiver(): Promise<void> {
  receiver = http.createServer((req, res) => {
    let body = "";
    req.on("data", (d) => (body += d));
    req.on("end", () => {
      const alertId = (JSON.parse(body) as { alert: { id: string } }).alert.id;
      received.push({ delivery: String(req.headers["x-beamdeck-delivery"] ?? ""), alertId, remotePort: req.socket.remotePort ?? 0 });
      const hold = holdNext;
      if (hold) {
        holdNext = null;
        held.push(res);
        hold(req.socket.remotePort ?? 0);
        return;
      }
      res.writeHead(200).end("ok");
    });
  });
  return new Promise((r) => receiver.listen(0, "127.0.0.1", () => r()));
}

/** Which of our servers owns the TCP connection whose client port is `port` (/proc/net/tcp inode → the process's fds). */
function serverOwningPort(port: number): TestServer | null {
  const hex = `:${port.toString(16).toUpperCase().padStart(4, "0")}`;
  const inodes = new Set(
    fs
      .readFileSync("/proc/net/tcp", "utf8")
      .split("\n")
      .slice(1)
      .map((l) => l.trim().split(/\s+/))
      .filter((f) => f[1]?.endsWith(hex))
      .map((f) => f[9]),
  );
  for (const s of servers()) {
    const pid = s.pid();
    if (pid === null) continue;
    for (const fd of fs.readdirSync(`/proc/${pid}/fd`)) {
      const link = (() => {
        try {
          return fs.readlinkSync(`/proc/${pid}/fd/${fd}`);
        } catch {
          return "";
        }
      })();
      const m = /^socket:\[(\d+)\]$/.exec(link);
      if (m && inodes.has(m[1] ?? "")) return s;
    }
  }
  return null;
}

/** The instance id a test server wrote in its heartbeat row. */
async function instanceIdOf(s: TestServer): Promise<string> {
  // A restarted server is a new instance on the same URL: the one beating now.
  const r = await db.query<{ id: string }>(`SELECT id FROM "Instance" WHERE "internalUrl" = $1 ORDER BY "heartbeatAt" DESC LIMIT 1`, [s.url]);
  const id = r.rows[0]?.id;
  if (!id) throw new Error(`no Instance row for ${s.url}`);
  return id;
}

/** A synthetic node on `first` (the others listed after it, as a fleet configured in different orders). */
async function agentOn(first: TestServer, o: { token: string; node: string; group?: string; releaseVsn?: string; reconnect?: boolean }): Promise<SyntheticAgent> {
  const list = servers();
  const agent = new SyntheticAgent({
    url: list.map((s) => s.agentUrl),
    firstEndpoint: list.indexOf(first),
    token: o.token,
    node: o.node,
    processCount: 20,
    group: o.group,
    releaseVsn: o.releaseVsn,
    reconnect: o.reconnect ?? true,
  });
  agents.push(agent);
  if (o.reconnect === false) await agent.connect();
  else agent.start();
  return agent;
}

async function nodeHeldBy(node: string): Promise<string | null> {
  const r = await db.query<{ instanceId: string | null }>(`SELECT "instanceId" FROM "Node" WHERE name = $1 AND "connectedAt" IS NOT NULL`, [node]);
  return r.rows[0]?.instanceId ?? null;
}

async function alertsOf(groupKey: string) {
  return (await db.query<{ id: string; count: number }>(`SELECT id, count FROM "Alert" WHERE "groupKey" = $1`, [groupKey])).rows;
}

beforeAll(async () => {
  pgServer = await startPostgres();
  const url = await pgServer.createDatabase(`shared_${Date.now()}`);
  dbUrl = url;
  db = new pg.Client({ connectionString: url });
  await db.connect();
  const shared = { databaseUrl: url, dataDir: fs.mkdtempSync(path.join(os.tmpdir(), "beamdeck-shared-")), env: { BEAMDECK_SECRET_KEY: SECRET } };
  A = await startServer(shared);
  [B, C] = await Promise.all([startServer(shared), startServer(shared)]);
  await startReceiver();
  hookUrl = `http://127.0.0.1:${(receiver.address() as AddressInfo).port}/hook`;
  const admin = httpClient(B.url, { token: B.apiToken });
  await admin.alerts.setWebhookSettings.mutate({ allowPrivateTargets: true });
  await admin.alerts.addWebhook.mutate({ url: hookUrl });
}, 600_000);

afterAll(async () => {
  await Promise.all(agents.map((a) => a.disconnect()));
  for (const r of held) r.destroy();
  receiver?.close();
  for (const s of servers()) await s?.stop();
  await db?.end();
  await pgServer?.stop();
});

describe("durable facts shared by three instances", () => {
  it("a group drifting across three instances: each raises it, one alert, one webhook POST", async () => {
    const token = await A.agentToken("drift", "drift_*");
    const spread = [
      [A, "drift_a@h", "1.0.0"],
      [B, "drift_b@h", "1.0.1"],
      [C, "drift_c@h", "1.0.1"],
    ] as const;
    for (const [s, node, vsn] of spread) await agentOn(s, { token, node, group: "g-drift", releaseVsn: vsn });
    const ids = await Promise.all(servers().map(instanceIdOf));
    await waitFor("each drift node on its own instance", async () => (await Promise.all(spread.map(([, node]) => nodeHeldBy(node)))).every((held, i) => held === ids[i]), 60_000, 300);
    // Through C only: A and B must hear of the rule change (their engines cache the rules).
    await httpClient(C.url, { token: C.apiToken }).alerts.updateRule.mutate({ kind: "version_drift", enabled: true, params: { forSeconds: 0 } });
    // The drift rule runs every 5 s on each instance: all three raise within a few ticks.
    const rows = await waitFor(
      "three raises of the drift alert",
      async () => {
        const r = await alertsOf("version_drift|g-drift");
        return r.length > 1 || (r[0]?.count ?? 0) >= 3 ? r : null;
      },
      30_000,
      250,
    );
    expect(rows).toHaveLength(1);
    const alertId = rows[0]?.id ?? "";
    await waitFor("the delivery POSTed", async () => received.some((r) => r.alertId === alertId), 20_000, 200);
    // A second POST, or a later raise on a fourth tick, would show by now.
    await new Promise((r) => setTimeout(r, 6000));
    expect(await alertsOf("version_drift|g-drift")).toEqual([{ id: alertId, count: 3 }]);
    const deliveries = await db.query<{ status: string; attempts: number }>(`SELECT status, attempts FROM "WebhookDelivery" WHERE "alertId" = $1`, [alertId]);
    expect(deliveries.rows).toEqual([{ status: "delivered", attempts: 1 }]);
    expect(received.filter((r) => r.alertId === alertId)).toHaveLength(1);
  });

  it("the instance sending a webhook is killed mid-POST: another sends it again, same delivery id, recorded once", async () => {
    const token = await A.agentToken("kill", "kill_*");
    const sender = new Promise<number>((r) => (holdNext = r));
    await agentOn(A, { token, node: "kill_a@h", group: "g-kill", releaseVsn: "2.0.0" });
    await agentOn(B, { token, node: "kill_b@h", group: "g-kill", releaseVsn: "2.0.1" });
    const port = await Promise.race([sender, new Promise<number>((_, no) => setTimeout(() => no(new Error("no webhook POST within 60 s")), 60_000))]);
    // The sender's POST times out after 5 s: kill it before.
    const owner = serverOwningPort(port);
    if (!owner) throw new Error(`no server owns the client port ${port}`);
    await owner.kill();
    const first = received.at(-1);
    if (!first) throw new Error("the held POST was not recorded");
    const t0 = Date.now();
    try {
      // Its claim runs out 6 s after it was taken (5 s timeout + 1 s): one of the others sends it again.
      const again = await waitFor("the same delivery sent again", async () => received.filter((r) => r.delivery === first.delivery).length >= 2, 30_000, 200);
      expect(again).toBe(true);
      console.log(`[scale-out-shared] delivery resent ${Date.now() - t0} ms after its sender was killed`);
      const row = await waitFor(
        "the delivery recorded as delivered",
        async () => {
          const r = await db.query<{ id: string; status: string; attempts: number }>(`SELECT id, status, attempts FROM "WebhookDelivery" WHERE "alertId" = $1`, [first.alertId]);
          return r.rows[0]?.status === "delivered" ? r.rows : null;
        },
        10_000,
        200,
      );
      expect(row).toEqual([{ id: first.delivery, status: "delivered", attempts: 2 }]);
      await new Promise((r) => setTimeout(r, 3000));
      // Two POSTs of one delivery (the first one's outcome died with its sender), no third; one id for the receiver to keep.
      const forAlert = received.filter((r) => r.alertId === first.alertId);
      expect(forAlert.map((r) => r.delivery)).toEqual([first.delivery, first.delivery]);
      expect(serverOwningPort(forAlert[1]?.remotePort ?? 0)).not.toBe(owner);
    } finally {
      await owner.restart();
    }
  });

  it("an instance paused mid-POST (not killed) comes back after the resend: its stale attempt does not overwrite the outcome", async () => {
    const token = await A.agentToken("pause", "pause_*");
    const sender = new Promise<number>((r) => (holdNext = r));
    await agentOn(B, { token, node: "pause_b@h", group: "g-pause", releaseVsn: "3.0.0" });
    await agentOn(C, { token, node: "pause_c@h", group: "g-pause", releaseVsn: "3.0.1" });
    const port = await Promise.race([sender, new Promise<number>((_, no) => setTimeout(() => no(new Error("no webhook POST within 60 s")), 60_000))]);
    const paused = serverOwningPort(port);
    const pid = paused?.pid();
    if (!paused || !pid) throw new Error(`no server owns the client port ${port}`);
    // A stop-the-world pause (GC, a starved VM): the process keeps its sockets and resumes later.
    process.kill(pid, "SIGSTOP");
    const first = received.at(-1);
    let resumed = false;
    try {
      if (!first) throw new Error("the held POST was not recorded");
      await waitFor("the same delivery sent again", async () => received.filter((r) => r.delivery === first.delivery).length >= 2, 30_000, 200);
      await waitFor(
        "the resend recorded",
        async () => (await db.query<{ status: string }>(`SELECT status FROM "WebhookDelivery" WHERE id = $1`, [first.delivery])).rows[0]?.status === "delivered",
        10_000,
        200,
      );
      process.kill(pid, "SIGCONT");
      resumed = true;
      // Its own attempt now times out (5 s passed while it was stopped) and reports an error: not recorded.
      await new Promise((r) => setTimeout(r, 4000));
      const row = await db.query<{ status: string; attempts: number; lastError: string | null }>(`SELECT status, attempts, "lastError" FROM "WebhookDelivery" WHERE id = $1`, [first.delivery]);
      expect(row.rows).toEqual([{ status: "delivered", attempts: 2, lastError: null }]);
      expect(received.filter((r) => r.delivery === first.delivery)).toHaveLength(2);
    } finally {
      if (!resumed) process.kill(pid, "SIGCONT");
    }
  });

  it("audited actions through the three instances at once make one chain, with no fork, that verifies everywhere", async () => {
    const clients = servers().map((s) => httpClient(s.url, { token: s.apiToken }));
    const before = Number((await db.query<{ n: string }>(`SELECT count(*) AS n FROM "AuditEntry"`)).rows[0]?.n);
    const PER = 15;
    await Promise.all(clients.flatMap((c, i) => Array.from({ length: PER }, (_, k) => c.tokens.agentCreate.mutate({ label: `chain ${i}-${k}` }))));
    const rows = (await db.query<{ id: string; prevHash: string; hash: string }>(`SELECT id::text AS id, "prevHash", hash FROM "AuditEntry" ORDER BY "AuditEntry".id`)).rows;
    expect(rows.length).toBe(before + 3 * PER);
    // One chain: each entry follows the one before it by id, and no entry is followed twice.
    rows.forEach((r, i) => {
      if (i > 0) expect(r.prevHash).toBe(rows[i - 1]?.hash);
    });
    expect(new Set(rows.map((r) => r.prevHash)).size).toBe(rows.length);
    for (const c of clients) expect(await c.audit.verify.query()).toMatchObject({ ok: true, checked: rows.length, firstBad: null });
    const cli = await C.cli(["audit", "verify", "--json"], {}, { timeoutMs: 60_000 });
    expect(cli.code, cli.stderr).toBe(0);
    expect(JSON.parse(cli.stdout)).toMatchObject({ ok: true, checked: rows.length });
  });

  it("revoking a fleet token through A counts and closes its sockets on A, B and C", async () => {
    const admin = httpClient(A.url, { token: A.apiToken });
    const t = await admin.tokens.agentCreate.mutate({ label: "revoke across", fleetPattern: "rv_*" });
    const nodes = ["rv_a@h", "rv_b@h", "rv_c@h"];
    // Not reconnecting: each agent's last close is the revocation's.
    const spread = await Promise.all(servers().map((s, i) => agentOn(s, { token: t.token, node: nodes[i] ?? "", reconnect: false })));
    const ids = await Promise.all(servers().map(instanceIdOf));
    await waitFor("one node on each instance", async () => (await Promise.all(nodes.map(nodeHeldBy))).every((held, i) => held === ids[i]), 60_000, 300);
    const r = await admin.tokens.agentRevoke.mutate({ id: t.id });
    expect(r).toMatchObject({ revoked: true, disconnected: 3, here: 1 });
    await waitFor("all three sockets closed", async () => (await Promise.all(nodes.map(nodeHeldBy))).every((held) => held === null), 10_000, 100);
    for (const a of spread) expect(a.lastClose?.code).toBe(4401);
  });

  it("/healthz answers while the database is blocked", async () => {
    const blocker = new pg.Client({ connectionString: dbUrl });
    await blocker.connect();
    try {
      await blocker.query("BEGIN");
      await blocker.query(`LOCK TABLE "Node", "Instance", "AgentToken", "AuditEntry" IN ACCESS EXCLUSIVE MODE`);
      // The database is really blocked for the instance: a node listing does not come back.
      const listing = httpClient(A.url, { token: A.apiToken })
        .nodes.list.query()
        .then(() => "answered")
        .catch(() => "failed");
      const raced = await Promise.race([listing, new Promise((r) => setTimeout(() => r("blocked"), 1500))]);
      expect(raced).toBe("blocked");
      for (const s of servers()) {
        const t0 = Date.now();
        const res = await fetch(`${s.url}/healthz`, { signal: AbortSignal.timeout(2000) });
        expect(res.status).toBe(200);
        expect(Date.now() - t0).toBeLessThan(2000);
      }
      await blocker.query("ROLLBACK");
      expect(await listing).toBe("answered");
    } finally {
      await blocker.end();
    }
  });
});
