import type { SecretInfo, VaultStatus } from "../../api/secrets.ts";
import { SoloError } from "../../lib/errors/errors.ts";
import { words } from "../../lib/errors/transport.ts";
import { describeType } from "../../lib/names.ts";
import type { SecretRow, Store } from "../../store/store.ts";
import type { EventLog } from "../log/event-log.ts";
import { type MasterKey, type MasterKeySource, newDataKey, newMasterKey, parseMasterKey, seal, unseal } from "./cipher.ts";

/** A secret's name: letters, digits, `_ . -`, starting with a letter or `_`, 1-128 characters. */
export const SECRET_NAME_PATTERN = /^[A-Za-z_][A-Za-z0-9_.-]{0,127}$/;
/** The largest secret value, in bytes of UTF-8. */
export const MAX_SECRET_BYTES = 64 * 1024;
const RESEAL_BATCH = 100;

/** Who reads a secret, for its audit record. */
export type Accessor = { readonly service: string; readonly version: number } | { readonly principal: string };

const secretAad = (tenant: string, name: string, keyId: number): string => `solo/secret/v1\0${tenant}\0${name}\0${keyId}`;
const keyAad = (id: number, masterKeyId: string): string => `solo/vault-key/v1\0${id}\0${masterKeyId}`;

/**
 * Secrets per tenant, encrypted at rest. Each secret is sealed with AES-256-GCM under the vault's
 * active data key, with a fresh nonce per write and its tenant, name and key id as associated
 * data (so a ciphertext moved to another name or tenant fails authentication). Data keys are
 * stored wrapped under the master key. Rotation makes a new data key and re-seals every secret in
 * the background; the old key is deleted only once nothing is sealed under it.
 */
export class Vault {
  private readonly store: Store;
  private readonly log: EventLog;
  private readonly source: MasterKeySource;
  private master: MasterKey | undefined;
  private readonly keys: Map<number, Buffer>;
  private active: number;
  private rotation: Promise<void> | undefined;
  private starting: Promise<void> | undefined;
  private keyChange: Promise<void> | undefined;
  private closed = false;

  private constructor(store: Store, log: EventLog, source: MasterKeySource, master: MasterKey | undefined, keys: Map<number, Buffer>) {
    this.store = store;
    this.log = log;
    this.source = source;
    this.master = master;
    this.keys = keys;
    this.active = Math.max(0, ...keys.keys());
  }

  /**
   * Opens the vault: unwraps every data key with the master key (a store whose keys were wrapped
   * under another master key is refused) and resumes a rotation that was under way. A store with
   * no secrets yet needs no master key: the key (and, by default, its file) is made at the first
   * secret.
   */
  static async open(store: Store, log: EventLog, source: MasterKeySource): Promise<Vault> {
    const rows = await store.vaultKeys();
    const keys = new Map<number, Buffer>();
    if (rows.length === 0) return new Vault(store, log, source, undefined, keys);
    const master = await source.load(false, rows[0]?.masterKeyId);
    if (!master) {
      const wanted = rows[0]?.masterKeyId ?? "";
      throw new SoloError(
        "SOLO_ERR_VAULT_MASTER_KEY",
        `the store's secrets are sealed under master key ${wanted}, and no master key was found`,
        {
          expected: wanted,
          hint: "restore the data directory's master.key from your backup, or set SOLO_MASTER_KEY",
        },
      );
    }
    for (const r of rows) {
      if (r.masterKeyId !== master.id) {
        throw new SoloError(
          "SOLO_ERR_VAULT_MASTER_KEY",
          `vault key ${r.id} was wrapped under master key ${r.masterKeyId}, but the master key given (${master.source}) is ${master.id}`,
          { expected: r.masterKeyId, found: master.id, hint: "use the master key this store was created with" },
        );
      }
      const key = unseal(master.key, keyAad(r.id, r.masterKeyId), r.wrapped);
      if (!key) {
        throw new SoloError("SOLO_ERR_STORE_CORRUPT", `vault key ${r.id} fails authentication: its stored form was altered`, {
          keyId: r.id,
          hint: "restore the store from a backup",
        });
      }
      keys.set(r.id, key);
    }
    const vault = new Vault(store, log, source, master, keys);
    if (keys.size > 1) vault.startReseal();
    return vault;
  }

  // The first data key (and master key), made when the first secret is stored.
  private async ready(at: number): Promise<void> {
    if (this.keys.size > 0) return;
    this.starting ??= (async () => {
      this.master ??= await this.source.load(true);
      await this.addKey(1, at);
    })().finally(() => {
      this.starting = undefined;
    });
    await this.starting;
  }

  private async addKey(id: number, at: number): Promise<void> {
    const master = this.master as MasterKey;
    const key = newDataKey();
    const wrapped = seal(master.key, keyAad(id, master.id), key);
    await this.log.write(
      [{ t: "vault.key", key: { id, masterKeyId: master.id, wrapped, createdAt: at } }],
      [{ tenant: null, type: "vault_key_created", subject: String(id), payload: { keyId: id, masterKeyId: master.id } }],
    );
    this.keys.set(id, key);
    this.active = id;
  }

  status(): VaultStatus {
    return {
      masterKeyId: this.master?.id ?? null,
      activeKeyId: this.active,
      keyIds: [...this.keys.keys()].sort((a, b) => a - b),
      rotating: this.rotation !== undefined,
    };
  }

  /** Stores (or replaces) a secret; durable, with its `secret_stored` event, before it resolves. */
  async put(tenant: string, nameInput: unknown, valueInput: unknown, by: string, at: number): Promise<SecretInfo> {
    const name = checkSecretName(nameInput);
    if (typeof valueInput !== "string") {
      throw new SoloError("SOLO_ERR_SECRET_INVALID", `the value of secret ${name} must be a string, got ${describeType(valueInput)}`, {
        field: "value",
      });
    }
    const bytes = Buffer.byteLength(valueInput, "utf8");
    if (bytes > MAX_SECRET_BYTES) {
      throw new SoloError("SOLO_ERR_SECRET_INVALID", `the value of secret ${name} is ${bytes} bytes, over ${MAX_SECRET_BYTES}`, {
        field: "value",
        limit: MAX_SECRET_BYTES,
      });
    }
    await this.ready(at);
    const keyId = this.active;
    const key = this.keys.get(keyId) as Buffer;
    const sealed = seal(key, secretAad(tenant, name, keyId), Buffer.from(valueInput, "utf8"));
    await this.log.write(
      [{ t: "secret.put", secret: { tenant, name, keyId, sealed, updatedAt: at } }],
      [{ tenant, type: "secret_stored", subject: name, payload: { name, keyId, by } }],
    );
    return { name, updatedAt: new Date(at).toISOString(), keyId };
  }

  /**
   * A secret's value, after its `secret_accessed` record is durable (a secret is never read
   * unaudited). A ciphertext that fails authentication is reported (`secret_tampered`) and never
   * returned.
   */
  async get(tenant: string, nameInput: unknown, who: Accessor): Promise<string> {
    const name = checkSecretName(nameInput);
    const row = await this.store.secret(tenant, name);
    if (!row) {
      throw new SoloError("SOLO_ERR_SECRET_NOT_FOUND", `tenant ${tenant} has no secret named ${name}`, {
        tenant,
        name,
        hint: `${words("secret.put", { tenant, name })} stores one`,
      });
    }
    const value = this.open(row);
    if (value === undefined) {
      await this.log
        .append({ tenant, type: "secret_tampered", subject: name, payload: { name, keyId: row.keyId, ...who } })
        .catch((err: unknown) => console.error("solo: recording secret_tampered failed:", err));
      throw new SoloError(
        "SOLO_ERR_SECRET_TAMPERED",
        `secret ${name} of tenant ${tenant} failed authentication: its stored ciphertext was altered`,
        {
          tenant,
          name,
          hint: "store the secret again, or restore the store from a backup",
        },
      );
    }
    await this.log.append({ tenant, type: "secret_accessed", subject: name, payload: { name, ...who } });
    return value;
  }

  private open(row: SecretRow): string | undefined {
    const key = this.keys.get(row.keyId);
    if (!key) return undefined;
    return unseal(key, secretAad(row.tenant, row.name, row.keyId), row.sealed)?.toString("utf8");
  }

  /** Deletes a secret; false if there was none. */
  async delete(tenant: string, nameInput: unknown, by: string): Promise<boolean> {
    const name = checkSecretName(nameInput);
    // Deleting nothing records nothing.
    if (!(await this.store.secret(tenant, name))) return false;
    const { changed } = await this.log.write(
      [{ t: "secret.delete", tenant, name }],
      [{ tenant, type: "secret_revoked", subject: name, payload: { name, by } }],
    );
    return changed;
  }

  /** A tenant's secrets: names and dates, never values. */
  async list(tenant: string): Promise<SecretInfo[]> {
    return (await this.store.secrets(tenant)).map((r) => ({
      name: r.name,
      updatedAt: new Date(r.updatedAt).toISOString(),
      keyId: r.keyId,
    }));
  }

  /**
   * Makes a new data key the active one (durably), then re-seals every secret under it in the
   * background and deletes the old keys once nothing uses them. With `wait`, resolves when done.
   */
  async rotate(at: number, wait: boolean): Promise<VaultStatus> {
    if (this.rotation) await this.rotation;
    await this.keyChange;
    if (this.keys.size === 0) {
      await this.ready(at);
      return this.status();
    }
    await this.addKey(this.active + 1, at);
    this.startReseal();
    if (wait) await this.rotation;
    return this.status();
  }

  /**
   * Replaces the master key: every data key is re-wrapped under the new one in one transaction
   * (the secrets themselves are untouched). With the key file, the kernel makes the new key (or
   * takes `newKey`) and keeps it safe across a crash at any step; with a key given by the
   * operator, `newKey` is required and must be given at the next start.
   */
  async rotateMaster(newKey: unknown): Promise<VaultStatus> {
    const run = async (): Promise<VaultStatus> => {
      const current = this.master;
      if (!current || this.keys.size === 0) {
        throw new SoloError(
          "SOLO_ERR_REQUEST_INVALID",
          "vault.rotateMasterKey: the vault holds no keys yet (it makes them with the first secret)",
          {
            hint: "store a secret first; there is nothing to re-wrap",
          },
        );
      }
      let next: MasterKey;
      if (newKey !== undefined) {
        if (typeof newKey !== "string") {
          throw new SoloError("SOLO_ERR_VAULT_MASTER_KEY", `vault.rotateMasterKey: newKey must be a string, got ${describeType(newKey)}`, {
            field: "newKey",
          });
        }
        next = parseMasterKey(newKey, "newKey");
      } else if (this.source.canGenerate) {
        next = newMasterKey();
      } else {
        throw new SoloError(
          "SOLO_ERR_VAULT_MASTER_KEY",
          "vault.rotateMasterKey: the master key was given by the operator, so the new one must be too",
          {
            field: "newKey",
            hint: "pass { newKey }, then start the kernel with it (SOLO_MASTER_KEY or masterKey)",
          },
        );
      }
      if (next.id === current.id) {
        throw new SoloError("SOLO_ERR_VAULT_MASTER_KEY", "vault.rotateMasterKey: the new master key is the current one", {
          field: "newKey",
        });
      }
      const rewrapped = [...this.keys].map(([id, key]) => ({
        id,
        masterKeyId: next.id,
        wrapped: seal(next.key, keyAad(id, next.id), key),
      }));
      await this.source.stage(next);
      try {
        await this.log.write(
          [{ t: "vault.rewrap", keys: rewrapped }],
          [
            {
              tenant: null,
              type: "vault_master_rotated",
              subject: next.id,
              payload: { from: current.id, to: next.id, keys: rewrapped.length },
            },
          ],
        );
      } catch (err) {
        await this.source.discard().catch(() => undefined);
        throw err;
      }
      this.master = { ...next, source: current.source };
      await this.source.commit();
      return this.status();
    };
    // One key change at a time: a data-key rotation's new key is wrapped under the master key.
    const turn = (this.keyChange ?? Promise.resolve()).then(run, run);
    this.keyChange = turn.then(
      () => undefined,
      () => undefined,
    );
    return turn;
  }

  private startReseal(): void {
    const run = async (): Promise<void> => {
      const to = this.active;
      const from = [...this.keys.keys()].filter((k) => k !== to);
      let resealed = 0;
      let failed = 0;
      for (;;) {
        if (this.closed) return;
        const rows = await this.store.secretsNotUnder(to, RESEAL_BATCH + failed);
        const todo = rows.slice(failed);
        if (todo.length === 0) break;
        for (const row of todo) {
          const plain = this.open(row);
          // A tampered secret stays as it is (and keeps its key alive): reading it reports it.
          if (plain === undefined) {
            failed++;
            continue;
          }
          const key = this.keys.get(to) as Buffer;
          const sealed = seal(key, secretAad(row.tenant, row.name, to), Buffer.from(plain, "utf8"));
          await this.log.write([{ t: "secret.reseal", secret: { ...row, keyId: to, sealed }, fromKeyId: row.keyId }], []);
          resealed++;
        }
      }
      const retired: number[] = [];
      for (const id of from) {
        const { changed } = await this.log.write([{ t: "vault.retire", id }], []);
        if (changed) {
          this.keys.delete(id);
          retired.push(id);
        }
      }
      await this.log.append({
        tenant: null,
        type: "vault_key_rotated",
        subject: String(to),
        payload: { keyId: to, retired, resealed, kept: failed },
      });
    };
    this.rotation = run()
      .catch((err: unknown) => {
        if (!this.closed) console.error("solo: re-sealing secrets under the new vault key failed (it resumes at the next open):", err);
      })
      .finally(() => {
        this.rotation = undefined;
      });
  }

  /** Stops a rotation at its next step (it resumes at the next open). */
  async close(): Promise<void> {
    this.closed = true;
    await this.rotation;
  }
}

/** Checks a secret name. */
export function checkSecretName(value: unknown, field = "name"): string {
  if (typeof value !== "string" || !SECRET_NAME_PATTERN.test(value)) {
    throw new SoloError(
      "SOLO_ERR_SECRET_INVALID",
      `${field} must be a secret name (letters, digits, _ . -, starting with a letter or _, at most 128), got ${typeof value === "string" ? JSON.stringify(value.slice(0, 80)) : describeType(value)}`,
      { field, hint: 'e.g. "STRIPE_KEY"' },
    );
  }
  return value;
}
