import { describe, expect, it } from "vitest";
import { newToken, tokenId, tokenMatches } from "../../server/auth/secrets";
import { hasRole } from "../../server/auth/roles";
import { splitSqlStatements } from "../../server/storage/sql-split";
import { chooseDatabase, PGLITE_PLACEHOLDER_URL } from "../../server/storage/database-url";

describe("tokens", () => {
  it("carry their id and match only their own hash", () => {
    const a = newToken("api");
    const b = newToken("api");
    expect(a.token.startsWith(`bdapi_${a.id}_`)).toBe(true);
    expect(tokenId("api", a.token)).toBe(a.id);
    expect(tokenId("agent", a.token)).toBeNull();
    expect(tokenMatches(a.token, a.hash)).toBe(true);
    expect(tokenMatches(b.token, a.hash)).toBe(false);
    expect(tokenId("api", `${a.token}x`)).toBeNull();
  });
});

describe("roles nest", () => {
  it("admin ⊇ operator ⊇ viewer", () => {
    expect(hasRole("admin", "operator")).toBe(true);
    expect(hasRole("operator", "viewer")).toBe(true);
    expect(hasRole("viewer", "operator")).toBe(false);
    expect(hasRole("operator", "admin")).toBe(false);
  });
});

describe("migration statement splitter", () => {
  it("splits on semicolons outside quotes, dollar quotes and comments", () => {
    const sql = `-- CreateTable\nCREATE TABLE "a" ("x" TEXT DEFAULT ';');\n/* ; */\nCREATE FUNCTION f() RETURNS int AS $$ SELECT 1; $$ LANGUAGE sql;\n-- trailing ;\n`;
    const out = splitSqlStatements(sql);
    expect(out).toHaveLength(2);
    expect(out[0]).toContain(`DEFAULT ';'`);
    expect(out[1]).toContain("SELECT 1; $$");
  });
});

describe("database choice", () => {
  it("uses PostgreSQL only for a postgres URL the user set", () => {
    expect(chooseDatabase({ DATABASE_URL: "postgres://u@h/db" }).kind).toBe("postgres");
    expect(chooseDatabase({ DATABASE_URL: "postgresql://u@h/db" }).kind).toBe("postgres");
    expect(chooseDatabase({ DATABASE_URL: PGLITE_PLACEHOLDER_URL }).kind).toBe("pglite");
    expect(chooseDatabase({ DATABASE_URL: "file:./x.db" }).kind).toBe("pglite");
    const c = chooseDatabase({ BEAMDECK_DATA_DIR: "/tmp/bd-x" });
    expect(c).toEqual({ kind: "pglite", dataDir: "/tmp/bd-x/db" });
  });
});
