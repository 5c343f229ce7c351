/**
 * Alerts grouped once when three instances raise the same condition at the
 * same moment (issue 16): three Prisma clients on one real PostgreSQL (one
 * per instance, as three servers hold them) raise one group key 30 times
 * at once. The instance-level test (scale-out-shared.test.ts) cannot make
 * three servers' rule ticks coincide; this makes the race certain.
 */
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { afterAll, beforeAll, expect, it } from "vitest";
import { PrismaClient } from "../../generated/prisma/client";
import { raiseAlert } from "../../server/alerts/store";
import { openDatabase } from "../../server/storage/db";
import { pgAdapter } from "../../server/storage/pg-adapter";
import { startPostgres, type TestPostgres } from "../support/postgres";

let pgServer: TestPostgres;
let first: Awaited<ReturnType<typeof openDatabase>>;
let others: PrismaClient[] = [];

beforeAll(async () => {
  pgServer = await startPostgres();
  const url = await pgServer.createDatabase(`grouping_${Date.now()}`);
  // The first client migrates (as the first server does); the others are the other instances'.
  first = await openDatabase("test", { DATABASE_URL: url, BEAMDECK_DATA_DIR: fs.mkdtempSync(path.join(os.tmpdir(), "beamdeck-grouping-")) });
  others = [new PrismaClient({ adapter: pgAdapter(url) }), new PrismaClient({ adapter: pgAdapter(url) })];
}, 240_000);

afterAll(async () => {
  for (const p of others) await p.$disconnect();
  await first?.close();
  await pgServer?.stop();
});

it("30 raises of one group through three instances' clients at once make one alert counting 30, created once", async () => {
  const clients = [first.prisma, ...others];
  const draft = { kind: "version_drift" as const, node: "n@h", groupKey: "version_drift|race", title: "race", detail: { group: "race" } };
  const results = await Promise.all(Array.from({ length: 30 }, (_, i) => raiseAlert(clients[i % 3] as PrismaClient, draft, null)));
  expect(results.filter((r) => r.created)).toHaveLength(1);
  expect(new Set(results.map((r) => r.alert.id)).size).toBe(1);
  const rows = await first.prisma.alert.findMany({ where: { groupKey: "version_drift|race" } });
  expect(rows.map((r) => ({ status: r.status, count: r.count }))).toEqual([{ status: "open", count: 30 }]);
});
