// Prisma CLI configuration (generate, migrate diff). The running server does
// not use the CLI: it applies prisma/migrations itself (server/storage/migrate.ts).
import path from "node:path";
import { defineConfig } from "prisma/config";
import { chooseDatabase, PGLITE_PLACEHOLDER_URL } from "./server/storage/database-url";
import { PGliteAdapterFactory } from "./server/storage/pglite-adapter";
import { pgAdapter } from "./server/storage/pg-adapter";

const choice = chooseDatabase();
// The schema's `url = env("DATABASE_URL")` must resolve, or the CLI tries to
// download a native engine; decided above, so this never switches adapters.
process.env.DATABASE_URL ??= PGLITE_PLACEHOLDER_URL;

export default defineConfig({
  experimental: { adapter: true },
  engine: "js",
  schema: path.join("prisma", "schema.prisma"),
  migrations: { path: path.join("prisma", "migrations") },
  async adapter() {
    return choice.kind === "postgres" ? pgAdapter(choice.url) : new PGliteAdapterFactory(choice.dataDir);
  },
});
