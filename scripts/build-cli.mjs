// Compiles the CLI (server/cli/main.ts and what it imports from this repo)
// into one ES module, dist/cli/main.mjs, so that `beamdeck` starts without a
// TypeScript loader (decisions.md: the test suite calls it hundreds of
// times). npm packages stay imports. The bundle sits two directories deep,
// like server/*/, so paths made from import.meta.dirname still point at the
// repository (prisma/migrations). `beamdeck server` is not in it: bin/beamdeck.js
// runs the server from the sources (Next, Prisma), so that import stays out.
import { build } from "esbuild";
import fs from "node:fs";
import path from "node:path";

const root = path.resolve(import.meta.dirname, "..");
// Chunk names carry hashes: start empty so no stale chunk stays behind.
fs.rmSync(path.join(root, "dist/cli"), { recursive: true, force: true });
await build({
  entryPoints: [path.join(root, "server/cli/main.ts")],
  outdir: path.join(root, "dist/cli"),
  outExtension: { ".js": ".mjs" },
  entryNames: "[name]",
  // Commands that open the database load Prisma on demand, in their own chunk (same directory depth).
  splitting: true,
  chunkNames: "[name]-[hash]",
  bundle: true,
  platform: "node",
  format: "esm",
  target: "node20",
  // Small pure-JS packages are bundled: zod alone is ~80 ES modules, and
  // resolving and loading each file at every start cost more than the code
  // (npm run bench -- cli). Native, WASM and large ones stay imports, loaded
  // by the commands that need them.
  external: ["@prisma/*", "@electric-sql/pglite", "pglite-prisma-adapter", "pg", "@node-rs/argon2", "ws"],
  sourcemap: "linked",
  logLevel: "warning",
  plugins: [
    {
      name: "server-stays-out",
      setup(b) {
        b.onResolve({ filter: /\/gateway\/main$/ }, (args) => ({ path: args.path, external: true }));
      },
    },
  ],
});
