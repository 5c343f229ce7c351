/** The one key source (decisions.md): environment, else a 0600 key file; sealing; subkeys. */
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { describe, expect, it } from "vitest";
import { keyedMac, loadSecretKey, seal, unseal } from "../../server/storage/secret-key";

const tmp = () => fs.mkdtempSync(path.join(os.tmpdir(), "beamdeck-key-"));

describe("secret key", () => {
  it("is made once as a 0600 file, then read back; a missing key without create is an error naming both sources", () => {
    const dir = tmp();
    expect(() => loadSecretKey({ BEAMDECK_DATA_DIR: dir })).toThrow(/set BEAMDECK_SECRET_KEY or run `beamdeck init`/);
    const made = loadSecretKey({ BEAMDECK_DATA_DIR: dir }, { create: true });
    expect(made.created).toBe(true);
    expect(fs.statSync(path.join(dir, "secret.key")).mode & 0o777).toBe(0o600);
    const again = loadSecretKey({ BEAMDECK_DATA_DIR: dir }, { create: true });
    expect(again.created).toBe(false);
    expect(keyedMac(again, "audit-head", "x")).toBe(keyedMac(made, "audit-head", "x"));
  });

  it("prefers BEAMDECK_SECRET_KEY, refuses a short one, and derives separate subkeys per purpose", () => {
    const dir = tmp();
    expect(() => loadSecretKey({ BEAMDECK_DATA_DIR: dir, BEAMDECK_SECRET_KEY: "short" })).toThrow(/too short/);
    const k = loadSecretKey({ BEAMDECK_DATA_DIR: dir, BEAMDECK_SECRET_KEY: "x".repeat(40) });
    expect(k.source).toBe("BEAMDECK_SECRET_KEY");
    expect(fs.existsSync(path.join(dir, "secret.key"))).toBe(false);
    expect(k.derive("audit-head").equals(k.derive("webhook-secret"))).toBe(false);
  });

  it("seals with AES-GCM: the plaintext is not in the sealed text, and another key cannot open it", () => {
    const a = loadSecretKey({ BEAMDECK_SECRET_KEY: "a".repeat(40) });
    const b = loadSecretKey({ BEAMDECK_SECRET_KEY: "b".repeat(40) });
    const sealed = seal(a, "webhook-secret", "hunter2-webhook-secret");
    expect(sealed).toMatch(/^sealed:v1:/);
    expect(sealed).not.toContain("hunter2");
    expect(unseal(a, "webhook-secret", sealed)).toBe("hunter2-webhook-secret");
    expect(() => unseal(b, "webhook-secret", sealed)).toThrow(/cannot decrypt a stored secret/);
    expect(() => unseal(a, "audit-head", sealed)).toThrow(/cannot decrypt/);
  });
});
