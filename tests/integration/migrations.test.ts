/**
 * The schema and the migrations folder agree: applying every migration
 * yields exactly prisma/schema.prisma (diffed by Prisma itself, with an
 * in-memory PGlite as the shadow database).
 */
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { describe, expect, it } from "vitest";
import { run } from "../support/run";
import { ROOT } from "../support/server";

describe("migrations", () => {
  it("have no drift from the schema", async () => {
    const env = { ...process.env, BEAMDECK_DATA_DIR: fs.mkdtempSync(path.join(os.tmpdir(), "beamdeck-drift-")) } as NodeJS.ProcessEnv;
    delete env.DATABASE_URL;
    const r = await run("npx", ["--no-install", "prisma", "migrate", "diff", "--from-migrations", "prisma/migrations", "--to-schema-datamodel", "prisma/schema.prisma", "--script", "--exit-code"], {
      cwd: ROOT,
      env,
      timeoutMs: 120_000,
      what: "prisma migrate diff",
    });
    // --exit-code: 0 = no difference, 2 = difference, 1 = error.
    expect(r.stdout.replace(/--.*\n/g, "").trim(), r.stderr).toBe("");
    expect(r.code, r.stderr).toBe(0);
  }, 150_000);
});
