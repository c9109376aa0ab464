import { createCipheriv, createDecipheriv, createHash, randomBytes } from "node:crypto";
import { constants } from "node:fs";
import { open, readFile, rename, rm, stat } from "node:fs/promises";
import { join } from "node:path";
import { SoloError } from "../../lib/errors/errors.ts";
import { syncDir } from "../../lib/lock-file.ts";

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
 * Where the master key lives. A key file in the data directory can be rotated by the kernel
 * itself; a key given by the operator (`masterKey`, `SOLO_MASTER_KEY`) is replaced by the
 * operator, who passes the new one to the rotation and then to the next start.
 */
export interface MasterKeySource {
  /** Whether a rotation may make the new key itself (it can store it). */
  readonly canGenerate: boolean;
  /**
   * The key; with `create`, a missing one is made. With `expectedId` (what the store's data keys
   * were wrapped under), a rotation interrupted after its commit is finished first.
   */
  load(create: boolean, expectedId?: string): Promise<MasterKey | undefined>;
  /** Keeps a new key beside the current one, durably, before the store is re-wrapped under it. */
  stage(next: MasterKey): Promise<void>;
  /** Makes the staged key the current one, once the store is re-wrapped. */
  commit(): Promise<void>;
  /** Drops a staged key (the re-wrap did not happen). */
  discard(): Promise<void>;
}

/** A key given by the operator: loaded as given; its rotation is the operator's to carry on. */
export function givenMasterKey(text: string): MasterKeySource {
  const key = parseMasterKey(text, "SOLO_MASTER_KEY (or the masterKey option)");
  return {
    canGenerate: false,
    load: async () => key,
    stage: async () => undefined,
    commit: async () => undefined,
    discard: async () => undefined,
  };
}

/**
 * The data directory's `master.key`, readable by its owner only (0600). A rotation writes the new
 * key to `master.key.next` first, re-wraps the store, then renames it over `master.key`: at every
 * instant one of the two files holds the key the store needs, and the next open finishes the
 * rename (or drops a `next` whose re-wrap never committed).
 */
export function masterKeyFile(dataDir: string): MasterKeySource {
  const path = join(dataDir, MASTER_KEY_FILE);
  const next = `${path}.next`;
  return {
    canGenerate: true,
    async load(create, expectedId) {
      const current = await readKeyFile(path);
      if (expectedId !== undefined && current?.id !== expectedId) {
        const staged = await readKeyFile(next);
        if (staged?.id === expectedId) {
          await rename(next, path);
          await syncDir(dataDir);
          return { ...staged, source: path };
        }
      } else if (current) {
        await rm(next, { force: true });
      }
      if (current || !create) return current;
      const key = randomBytes(KEY_BYTES);
      try {
        await writeKeyFile(path, key);
      } catch (err) {
        // Another opener made it first (the data directory's lock makes this unlikely): use theirs.
        if ((err as NodeJS.ErrnoException).code === "EEXIST") return readKeyFile(path);
        throw new SoloError("SOLO_ERR_VAULT_MASTER_KEY", `cannot create the master key file ${path}: ${(err as Error).message}`, {
          file: path,
        });
      }
      return { id: keyId(key), key, source: path };
    },
    async stage(key) {
      await rm(next, { force: true });
      await writeKeyFile(next, key.key);
      await syncDir(dataDir);
    },
    async commit() {
      await rename(next, path);
      await syncDir(dataDir);
    },
    async discard() {
      await rm(next, { force: true });
    },
  };
}

async function readKeyFile(path: string): Promise<MasterKey | undefined> {
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
    if ((err as NodeJS.ErrnoException).code === "ENOENT") return undefined;
    throw SoloError.from(err);
  }
}

// Created exclusively, 0600 from its first byte, and on disk before it is used.
async function writeKeyFile(path: string, key: Buffer): Promise<void> {
  const fh = await open(path, constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL, 0o600);
  try {
    await fh.writeFile(`${key.toString("base64")}\n`);
    await fh.sync();
  } finally {
    await fh.close();
  }
}

/** A new random master key (for a rotation). */
export function newMasterKey(): MasterKey {
  const key = randomBytes(KEY_BYTES);
  return { id: keyId(key), key, source: "a new key" };
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
