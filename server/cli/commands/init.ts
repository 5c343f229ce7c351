/**
 * `beamdeck init`: create the database and the first admin login and API
 * token. Idempotent: a second run changes nothing and says where the
 * existing login came from; it never prints a password again.
 */
import type { Env } from "../../storage/database-url";
import fs from "node:fs";
import path from "node:path";
import { appendAudit } from "../../audit/log";
import { createApiToken } from "../../auth/api-tokens";
import { createUser } from "../../auth/users";
import { dataDir } from "../../storage/database-url";
import { parse } from "../args";
import { json } from "../format";
import { withLocalDatabase } from "../local";

export const INITIAL_ADMIN_FILE = "initial-admin.txt";

export async function init(argv: string[], env: Env): Promise<number> {
  const { values } = parse(argv, { json: { type: "boolean" }, username: { type: "string" } }, []);
  const username = (values.username as string | undefined) ?? "admin";
  const file = path.join(dataDir(env), INITIAL_ADMIN_FILE);
  return withLocalDatabase(env, async (db) => {
    const prisma = db.prisma;
    const first = await prisma.user.findFirst({ where: { role: "admin" }, orderBy: { createdAt: "asc" } });
    if (first) {
      const where = fs.existsSync(file) ? `its first password and API token are in ${file}` : `the password was printed when it was created; reset it with \`beamdeck user passwd ${first.username}\``;
      const out = {
        created: false,
        database: db.description,
        admin: first.username,
        createdAt: first.createdAt.toISOString(),
        createdBy: first.createdBy,
        credentialsFile: fs.existsSync(file) ? file : null,
      };
      if (values.json) console.log(json(out));
      else {
        console.log(`beamdeck is already initialised (${db.description}); nothing changed.`);
        console.log(
          `admin login "${first.username}" was created ${first.createdBy === "init" ? "by beamdeck init" : `by ${first.createdBy ?? "unknown"}`} on ${first.createdAt.toISOString()}; ${where}.`,
        );
      }
      return 0;
    }
    const user = await createUser(prisma, { username, role: "admin", createdBy: "init" });
    const token = await createApiToken(prisma, { label: "init (admin)", role: "admin", userId: user.id, createdBy: "init" });
    await appendAudit(prisma, { actor: "init", action: "user.add", target: `user:${user.username}`, outcome: "ok", data: { role: "admin" } });
    await appendAudit(prisma, { actor: "init", action: "token.create", target: `api:${token.id}`, outcome: "ok", data: { role: "admin", label: "init (admin)" } });
    fs.mkdirSync(path.dirname(file), { recursive: true });
    fs.writeFileSync(
      file,
      `# Written once by \`beamdeck init\` on ${new Date().toISOString()}. Keep it secret; delete it when stored elsewhere.\n` +
        `username=${user.username}\npassword=${user.password}\nBEAMDECK_API_TOKEN=${token.token}\n`,
      { mode: 0o600 },
    );
    const out = { created: true, database: db.description, username: user.username, password: user.password, apiToken: token.token, credentialsFile: file };
    if (values.json) console.log(json(out));
    else {
      console.log(`initialised ${db.description}`);
      console.log(`admin login:   ${user.username}`);
      console.log(`password:      ${user.password}`);
      console.log(`API token:     ${token.token}   (export BEAMDECK_API_TOKEN=...)`);
      console.log(`(also written to ${file}, mode 600)`);
    }
    return 0;
  });
}
