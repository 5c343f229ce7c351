/**
 * The one key source (decisions.md) for secrets at rest, the audit head's
 * HMAC and instance-to-instance requests: `BEAMDECK_SECRET_KEY`, else the
 * 0600 file `secret.key` in the data directory, made by `beamdeck init` (or
 * by the first start of a server whose data directory predates it).
 * Instances sharing one PostgreSQL must share the key: set the variable.
 *
 * Each use gets its own subkey (HKDF), so a leak of one derived key (a
 * webhook secret's ciphertext key, say) says nothing about another.
 */
import crypto from "node:crypto";
import fs from "node:fs";
import path from "node:path";
import { dataDir, type Env } from "./database-url";
import { FILE_MODE, restrictUmask } from "./file-modes";

export const SECRET_KEY_FILE = "secret.key";
export const SECRET_KEY_ENV = "BEAMDECK_SECRET_KEY";
const MIN_ENV_KEY_LENGTH = 32;

export type KeyPurpose = "audit-head" | "webhook-secret" | "instance-request";

export interface SecretKey {
  source: string;
  /** A 32-byte subkey for one purpose. */
  derive(purpose: KeyPurpose): Buffer;
}

export class SecretKeyError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "SecretKeyError";
  }
}

export function secretKeyFile(env: Env = process.env): string {
  return path.join(dataDir(env), SECRET_KEY_FILE);
}

function fromMaterial(material: Buffer, source: string): SecretKey {
  return {
    source,
    derive: (purpose) => Buffer.from(crypto.hkdfSync("sha256", material, Buffer.alloc(0), `beamdeck ${purpose}`, 32)),
  };
}

function readKeyFile(file: string): Buffer {
  const st = fs.statSync(file);
  if ((st.mode & 0o077) !== 0) {
    // The data directory check repairs this at start; a key found open here was exposed.
    fs.chmodSync(file, FILE_MODE);
    console.error(`[beamdeck] WARNING: ${file} was readable by other users (mode ${(st.mode & 0o777).toString(8)}); now 600`);
  }
  const text = fs.readFileSync(file, "utf8").trim();
  if (!/^[A-Za-z0-9_-]{43,}$/.test(text)) throw new SecretKeyError(`${file} does not hold a beamdeck secret key (expected one base64url line)`);
  return Buffer.from(text, "base64url");
}

/**
 * The key: from the environment, else the key file. With `create`, a missing
 * key file is made (0600); without it, a missing key is an error naming both
 * ways to provide one.
 */
export function loadSecretKey(env: Env = process.env, opts: { create: boolean } = { create: false }): SecretKey & { created: boolean } {
  const fromEnv = env[SECRET_KEY_ENV];
  if (fromEnv !== undefined && fromEnv !== "") {
    if (fromEnv.length < MIN_ENV_KEY_LENGTH) throw new SecretKeyError(`${SECRET_KEY_ENV} is too short: use at least ${MIN_ENV_KEY_LENGTH} random characters (e.g. \`openssl rand -base64 32\`)`);
    return { ...fromMaterial(Buffer.from(fromEnv, "utf8"), SECRET_KEY_ENV), created: false };
  }
  const file = secretKeyFile(env);
  if (fs.existsSync(file)) return { ...fromMaterial(readKeyFile(file), file), created: false };
  if (!opts.create) throw new SecretKeyError(`no secret key: set ${SECRET_KEY_ENV} or run \`beamdeck init\` to create ${file}`);
  restrictUmask();
  fs.mkdirSync(path.dirname(file), { recursive: true, mode: 0o700 });
  const material = crypto.randomBytes(32);
  // "wx": two processes racing to create it must not overwrite each other's key.
  try {
    fs.writeFileSync(file, `${material.toString("base64url")}\n`, { mode: FILE_MODE, flag: "wx" });
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === "EEXIST") return { ...fromMaterial(readKeyFile(file), file), created: false };
    throw e;
  }
  return { ...fromMaterial(material, file), created: true };
}

/** HMAC-SHA256 (hex) under the subkey for `purpose`. */
export function keyedMac(key: SecretKey, purpose: KeyPurpose, message: string): string {
  return crypto.createHmac("sha256", key.derive(purpose)).update(message).digest("hex");
}

const SEALED_PREFIX = "sealed:v1:";

/** AES-256-GCM under the subkey for `purpose`: `sealed:v1:<iv>.<tag>.<ciphertext>` (base64url). */
export function seal(key: SecretKey, purpose: KeyPurpose, plaintext: string): string {
  const iv = crypto.randomBytes(12);
  const cipher = crypto.createCipheriv("aes-256-gcm", key.derive(purpose), iv);
  const ct = Buffer.concat([cipher.update(plaintext, "utf8"), cipher.final()]);
  return `${SEALED_PREFIX}${iv.toString("base64url")}.${cipher.getAuthTag().toString("base64url")}.${ct.toString("base64url")}`;
}

export function isSealed(value: string): boolean {
  return value.startsWith(SEALED_PREFIX);
}

/** The plaintext of a sealed value; throws SecretKeyError when the key is not the one that sealed it. */
export function unseal(key: SecretKey, purpose: KeyPurpose, sealed: string): string {
  if (!isSealed(sealed)) throw new SecretKeyError("not a sealed value");
  const [iv, tag, ct] = sealed.slice(SEALED_PREFIX.length).split(".");
  try {
    const decipher = crypto.createDecipheriv("aes-256-gcm", key.derive(purpose), Buffer.from(iv, "base64url"));
    decipher.setAuthTag(Buffer.from(tag, "base64url"));
    return Buffer.concat([decipher.update(Buffer.from(ct, "base64url")), decipher.final()]).toString("utf8");
  } catch {
    throw new SecretKeyError(`cannot decrypt a stored secret with the key from ${key.source}: was ${SECRET_KEY_ENV} or ${SECRET_KEY_FILE} changed?`);
  }
}

// The key of the open database (openDatabase sets it): one per process, as
// the database is, and on globalThis for the same reason (separately bundled code).
const ACTIVE_KEY = Symbol.for("beamdeck.secretKey");
type KeyHolder = { [ACTIVE_KEY]?: SecretKey };

export function setActiveSecretKey(key: SecretKey | null): void {
  if (key) (globalThis as KeyHolder)[ACTIVE_KEY] = key;
  else delete (globalThis as KeyHolder)[ACTIVE_KEY];
}

/** The key loaded when the database was opened. */
export function activeSecretKey(): SecretKey {
  const key = (globalThis as KeyHolder)[ACTIVE_KEY];
  if (!key) throw new SecretKeyError("no secret key loaded: openDatabase() must run first");
  return key;
}
