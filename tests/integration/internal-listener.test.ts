/**
 * The internal route on its own listener (docs/scale-out.md): two real
 * instances on one real PostgreSQL; B serves `/internal/call` only on
 * `BEAMDECK_INTERNAL_PORT` and advertises that address in its Instance row.
 * A real node held by B is read through A (forwarded to B's internal
 * listener); B's public port refuses the internal path, and the internal
 * listener serves nothing else. A, without the option, serves the route on
 * its public port as before.
 */
import crypto from "node:crypto";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import pg from "pg";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { INTERNAL_CALL_PATH, MAC_HEADER } from "../../server/gateway/internal-call";
import { stopAll } from "../../tools/beam/nodes";
import { freePort } from "../../tools/beam/tcp";
import { startAgentNode } from "../support/beam-node";
import { waitFor } from "../support/ports";
import { startPostgres, type TestPostgres } from "../support/postgres";
import { startServer, type TestServer } from "../support/server";

const SECRET = crypto.randomBytes(32).toString("base64url");
let pgServer: TestPostgres;
let db: pg.Client;
let A: TestServer;
let B: TestServer;
let internalPort: number;

beforeAll(async () => {
  pgServer = await startPostgres();
  const url = await pgServer.createDatabase(`ilisten_${Date.now()}`);
  db = new pg.Client({ connectionString: url });
  await db.connect();
  const shared = { databaseUrl: url, dataDir: fs.mkdtempSync(path.join(os.tmpdir(), "beamdeck-ilisten-")), env: { BEAMDECK_SECRET_KEY: SECRET } };
  internalPort = await freePort();
  A = await startServer(shared);
  B = await startServer({ ...shared, env: { ...shared.env, BEAMDECK_INTERNAL_PORT: String(internalPort) } });
}, 600_000);
afterAll(async () => {
  await stopAll();
  for (const s of [A, B]) await s?.stop();
  await db?.end();
  await pgServer?.stop();
});

/** A POST of an unsigned internal call: 401 where the route is served. */
async function postUnsigned(base: string): Promise<{ status: number; text: string }> {
  const res = await fetch(`${base}${INTERNAL_CALL_PATH}`, {
    method: "POST",
    headers: { "content-type": "application/json", [MAC_HEADER]: "sha256=00" },
    body: "{}",
    signal: AbortSignal.timeout(10_000),
  });
  return { status: res.status, text: await res.text() };
}

describe("BEAMDECK_INTERNAL_PORT", () => {
  it("serves the internal route on its own listener only, advertised in the heartbeat row; reads of its nodes through another instance go there", async () => {
    const internal = `http://127.0.0.1:${internalPort}`;
    const advertised = await db.query<{ internalUrl: string }>(`SELECT "internalUrl" FROM "Instance" WHERE "internalUrl" IN ($1, $2, $3)`, [A.url, B.url, internal]);
    expect(advertised.rows.map((r) => r.internalUrl).sort()).toEqual([A.url, internal].sort());

    // B's public port refuses the internal path; its internal listener serves it (the MAC is checked) and nothing else.
    expect(await postUnsigned(B.url)).toEqual({ status: 404, text: "the internal route is not served on this port (BEAMDECK_INTERNAL_PORT)\n" });
    const onListener = await postUnsigned(internal);
    expect(onListener.status).toBe(401);
    expect(onListener.text).toMatch(/bad or missing instance MAC/);
    const page = await fetch(`${internal}/api/trpc/nodes.list`, { signal: AbortSignal.timeout(10_000) });
    expect(page.status).toBe(404);
    expect((await fetch(`${internal}/healthz`, { signal: AbortSignal.timeout(10_000) })).status).toBe(200);
    // Default unchanged: A serves it on its public port.
    expect((await postUnsigned(A.url)).status).toBe(401);

    // A node held by B, read through A: forwarded to B's internal listener.
    const env = { BEAMDECK_URL: `${B.agentUrl},${A.agentUrl}`, REL_TEST_PORT: String(await freePort()) };
    const { node } = await startAgentNode(A, { sname: `il_${process.pid}`, env });
    await waitFor(
      "the node on B",
      async () =>
        (await db.query<{ internalUrl: string }>(`SELECT i."internalUrl" FROM "Node" n JOIN "Instance" i ON i.id = n."instanceId" WHERE n.name = $1 AND n."connectedAt" IS NOT NULL`, [node.name]))
          .rows[0]?.internalUrl === internal,
      60_000,
      300,
    );
    const sup = await node.rpc(`pid_to_list(whereis('Elixir.RelTest.Supervisor'))`);
    const procs = await A.cli(["procs", node.name, "--limit", "1000", "--json"]);
    expect(procs.code, procs.stderr).toBe(0);
    expect((JSON.parse(procs.stdout) as { pid: string }[]).map((p) => p.pid)).toContain(sup.replace(/"/g, ""));
  }, 300_000);
});
