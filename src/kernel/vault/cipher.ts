import { createCipheriv, createDecipheriv, createHash, randomBytes } from "node:crypto";
import { constants } from "node:fs";
import { open, readFile, stat } from "node:fs/promises";
import { join } from "node:path";
import { SoloError } from "../../errors.ts";

/** The key every vault data key is wrapped under. Never logged; its id is. */
export interface MasterKey {
  /** `mk_` and the first 16 hex digits of the key's SHA-256: names the key without revealing it. */
  readonly id: string;
  readonly key: Buffer;
  /** Where it came from, for messages. */
  readonly source: string;
}

/** The master key's file in the data directory. */
export const MASTER_KEY_FILE = "master.key";
const KEY_BYTES = 32;
const NONCE_BYTES = 12;
const TAG_BYTES = 16;
const FORMAT = 1;

/** The id of a key: a hash prefix, so it can be shown and compared safely. */
export function keyId(key: Buffer): string {
  return `mk_${createHash("sha256").update(key).digest("hex").slice(0, 16)}`;
}

/** Parses a master key given as 64 hex digits or base64 (url-safe or not) of 32 bytes. */
export function parseMasterKey(text: string, source: string): MasterKey {
  const t = text.trim();
  let key: Buffer | undefined;
  if (/^[0-9a-fA-F]{64}$/.test(t)) key = Buffer.from(t, "hex");
  else if (/^[A-Za-z0-9+/_-]{43}=?$/.test(t)) key = Buffer.from(t.replace(/-/g, "+").replace(/_/g, "/"), "base64");
  if (!key || key.length !== KEY_BYTES) {
    throw new SoloError(
      "SOLO_ERR_VAULT_MASTER_KEY",
      `the master key from ${source} is not 32 bytes in hex (64 digits) or base64 (44 characters)`,
      {
        source,
        length: t.length,
        hint: "make one with: node -e \"console.log(require('crypto').randomBytes(32).toString('base64'))\"",
      },
    );
  }
  return { id: keyId(key), key, source };
}

/**
 * Finds the master key: `given` (the `masterKey` option or `SOLO_MASTER_KEY`), else the data
 * directory's `master.key`, which must be readable by its owner only (0600). With `create`, a
 * missing file is made with a new random key, atomically and 0600 from its first byte.
 */
export async function loadMasterKey(dataDir: string, given: string | undefined, create: boolean): Promise<MasterKey | undefined> {
  if (given !== undefined) return parseMasterKey(given, "SOLO_MASTER_KEY (or the masterKey option)");
  const path = join(dataDir, MASTER_KEY_FILE);
  try {
    const st = await stat(path);
    if (process.platform !== "win32" && (st.mode & 0o077) !== 0) {
      throw new SoloError(
        "SOLO_ERR_VAULT_MASTER_KEY",
        `the master key file ${path} can be read by others (mode ${(st.mode & 0o777).toString(8)}); it must be 0600`,
        { file: path, hint: `chmod 600 ${path}` },
      );
    }
    return parseMasterKey(await readFile(path, "utf8"), path);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== "ENOENT") throw SoloError.from(err);
  }
  if (!create) return undefined;
  const key = randomBytes(KEY_BYTES);
  try {
    const fh = await open(path, constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL, 0o600);
    try {
      await fh.writeFile(`${key.toString("base64")}\n`);
      await fh.sync();
    } finally {
      await fh.close();
    }
  } catch (err) {
    // Another opener made it first (the data directory's lock makes this unlikely): use theirs.
    if ((err as NodeJS.ErrnoException).code === "EEXIST") return loadMasterKey(dataDir, undefined, false);
    throw new SoloError("SOLO_ERR_VAULT_MASTER_KEY", `cannot create the master key file ${path}: ${(err as Error).message}`, {
      file: path,
    });
  }
  return { id: keyId(key), key, source: path };
}

/** AES-256-GCM with a fresh random nonce; `aad` binds the ciphertext to where it belongs. Base64 of format, nonce, ciphertext, tag. */
export function seal(key: Buffer, aad: string, plaintext: Buffer): string {
  const nonce = randomBytes(NONCE_BYTES);
  const cipher = createCipheriv("aes-256-gcm", key, nonce);
  cipher.setAAD(Buffer.from(aad, "utf8"));
  const body = Buffer.concat([cipher.update(plaintext), cipher.final()]);
  return Buffer.concat([Buffer.from([FORMAT]), nonce, body, cipher.getAuthTag()]).toString("base64");
}

/** Opens what {@link seal} made with the same key and `aad`; undefined if it fails authentication. */
export function unseal(key: Buffer, aad: string, sealed: string): Buffer | undefined {
  const raw = Buffer.from(sealed, "base64");
  if (raw.length < 1 + NONCE_BYTES + TAG_BYTES || raw[0] !== FORMAT) return undefined;
  try {
    const decipher = createDecipheriv("aes-256-gcm", key, raw.subarray(1, 1 + NONCE_BYTES));
    decipher.setAAD(Buffer.from(aad, "utf8"));
    decipher.setAuthTag(raw.subarray(raw.length - TAG_BYTES));
    return Buffer.concat([decipher.update(raw.subarray(1 + NONCE_BYTES, raw.length - TAG_BYTES)), decipher.final()]);
  } catch {
    return undefined;
  }
}

/** A new random data key. */
export function newDataKey(): Buffer {
  return randomBytes(KEY_BYTES);
}
