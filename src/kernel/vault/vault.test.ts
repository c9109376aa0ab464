import assert from "node:assert/strict";
import { createHash, randomBytes } from "node:crypto";
import { chmodSync, existsSync, readdirSync, readFileSync, statSync, unlinkSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { DatabaseSync } from "node:sqlite";
import { before, describe, it } from "node:test";
import { rejection, until } from "../../../test/support/helpers.ts";
import { allEvents, payloadOf, testKernels } from "../../../test/support/kernels.ts";
import { type Kernel, openKernel, type SoloError } from "../../index.ts";
import { openStore, SQLITE_FILE } from "../../store/open.ts";
import { lockDataDir } from "../data-dir.ts";
import { EventLog } from "../log/event-log.ts";
import { MASTER_KEY_FILE, masterKeyFile } from "./cipher.ts";
import { type Accessor, Vault } from "./vault.ts";

const PLAINTEXT = "correct horse battery staple";
const READER: Accessor = { principal: "vault-test" };

const { freshDir, start } = testKernels("vault");

/** Runs `fn` on the data directory's SQLite file (the kernel must be closed: it holds the file exclusively). */
function withDb<T>(dir: string, fn: (db: DatabaseSync) => T): T {
  const db = new DatabaseSync(join(dir, SQLITE_FILE));
  try {
    return fn(db);
  } finally {
    db.close();
  }
}

interface SecretColumns {
  tenant: string;
  name: string;
  key_id: number;
  sealed: string;
}

function secretRow(dir: string, tenant: string, name: string): SecretColumns {
  const row = withDb(dir, (db) =>
    db.prepare("SELECT tenant, name, key_id, sealed FROM secrets WHERE tenant = ? AND name = ?").get(tenant, name),
  );
  assert.ok(row, `a stored row for ${tenant}/${name}`);
  return row as unknown as SecretColumns;
}

/**
 * There is no public way to read a secret's value yet (services will, through their grants), so
 * reads go through the Vault itself, over the closed kernel's real store and event log.
 */
async function withVault<T>(dir: string, fn: (vault: Vault) => Promise<T>): Promise<T> {
  const lock = await lockDataDir(dir);
  try {
    const store = await openStore(dir, undefined);
    try {
      const log = await EventLog.open(store);
      try {
        const vault = await Vault.open(store, log, masterKeyFile(dir));
        try {
          return await fn(vault);
        } finally {
          await vault.close();
        }
      } finally {
        await log.close();
      }
    } finally {
      await store.close();
    }
  } finally {
    await lock.release();
  }
}

/** Every file under `dir`, as raw bytes. */
function filesUnder(dir: string): Array<{ path: string; bytes: Buffer }> {
  const out: Array<{ path: string; bytes: Buffer }> = [];
  for (const entry of readdirSync(dir, { withFileTypes: true, recursive: true })) {
    if (!entry.isFile()) continue;
    const path = join(entry.parentPath, entry.name);
    out.push({ path, bytes: readFileSync(path) });
  }
  return out;
}

/** The id the docs promise for a master key: `mk_` and the first 16 hex digits of its SHA-256. */
function masterKeyId(key: Buffer): string {
  return `mk_${createHash("sha256").update(key).digest("hex").slice(0, 16)}`;
}

/** An error's whole text: message and details. */
function errorText(err: SoloError): string {
  return `${err.message} ${JSON.stringify(err.details)}`;
}

describe("secrets: put, list, delete", () => {
  let kernel: Kernel;

  before(async () => {
    kernel = await start(freshDir());
    await kernel.tenants.create("acme");
    await kernel.tenants.create("globex");
  });

  it("stores, lists and deletes a secret; the list shows names, dates and key ids, never values", async () => {
    const stored = await kernel.secrets.put("acme", "STRIPE_KEY", "sk_live_first");
    assert.deepEqual(Object.keys(stored).sort(), ["keyId", "name", "updatedAt"]);
    assert.equal(stored.name, "STRIPE_KEY");
    assert.equal(stored.keyId, 1);
    assert.ok(!Number.isNaN(Date.parse(stored.updatedAt)));
    await kernel.secrets.put("acme", "AWS.secret-key_2", "aws-value");
    const listed = await kernel.secrets.list("acme");
    assert.deepEqual(
      listed.map((s) => s.name),
      ["AWS.secret-key_2", "STRIPE_KEY"],
    );
    for (const s of listed) assert.deepEqual(Object.keys(s).sort(), ["keyId", "name", "updatedAt"]);
    assert.ok(!JSON.stringify(listed).includes("sk_live_first") && !JSON.stringify(listed).includes("aws-value"));
    assert.deepEqual(await kernel.secrets.list("globex"), []);
  });

  it("replaces a secret under the same name", async () => {
    await kernel.secrets.put("acme", "STRIPE_KEY", "sk_live_second");
    assert.equal((await kernel.secrets.list("acme")).filter((s) => s.name === "STRIPE_KEY").length, 1);
  });

  it("deletes: true once, then false; other tenants' secrets of the same name stay", async () => {
    await kernel.secrets.put("globex", "STRIPE_KEY", "globex-value");
    assert.equal(await kernel.secrets.delete("acme", "STRIPE_KEY"), true);
    assert.equal(await kernel.secrets.delete("acme", "STRIPE_KEY"), false);
    assert.deepEqual(
      (await kernel.secrets.list("acme")).map((s) => s.name),
      ["AWS.secret-key_2"],
    );
    assert.deepEqual(
      (await kernel.secrets.list("globex")).map((s) => s.name),
      ["STRIPE_KEY"],
    );
  });

  it("records secret_stored and secret_revoked with names and who, never values", async () => {
    const stored = await allEvents(kernel, { tenant: "acme", types: ["secret_stored"] });
    assert.deepEqual(stored[0]?.payload, { name: "STRIPE_KEY", keyId: 1, by: "system" });
    assert.equal(stored[0]?.subject, "STRIPE_KEY");
    const revoked = await allEvents(kernel, { tenant: "acme", types: ["secret_revoked"] });
    assert.deepEqual(revoked[0]?.payload, { name: "STRIPE_KEY", by: "system" });
  });

  it("refuses invalid secret names with SOLO_ERR_SECRET_INVALID and stores nothing", async () => {
    const before = await kernel.secrets.list("acme");
    const bad: unknown[] = [
      "",
      " ",
      "has space",
      "TRAILING ",
      "a".repeat(129),
      "../x",
      "x/y",
      "..",
      ".hidden",
      "-dash",
      "1DIGIT",
      "KEY\n",
      "KEY\u0000",
      "ключ",
      "KEY🔑",
      42,
      null,
      undefined,
      {},
      ["KEY"],
      { toString: () => "KEY" },
    ];
    for (const name of bad) {
      const shown = typeof name === "string" ? JSON.stringify(name.slice(0, 20)) : String(name);
      for (const attempt of [() => kernel.secrets.put("acme", name as string, "v"), () => kernel.secrets.delete("acme", name as string)]) {
        const err = await rejection(attempt());
        assert.equal(err.reason, "SOLO_ERR_SECRET_INVALID", `${shown}: ${err.message}`);
        assert.equal(err.code, "invalid_argument");
      }
    }
    assert.deepEqual(await kernel.secrets.list("acme"), before);
    const longest = "K".repeat(128);
    await kernel.secrets.put("acme", longest, "v");
    assert.equal(await kernel.secrets.delete("acme", longest), true);
  });

  it("takes string values of up to 64 KiB of UTF-8 and refuses the rest, storing nothing", async () => {
    const before = await kernel.secrets.list("acme");
    const storedBefore = (await allEvents(kernel, { types: ["secret_stored"] })).length;
    for (const value of [42, null, undefined, {}, ["v"], true, Buffer.from("v")]) {
      const err = await rejection(kernel.secrets.put("acme", "VALUE", value as never));
      assert.equal(err.reason, "SOLO_ERR_SECRET_INVALID", `value ${String(value)}`);
      assert.equal(err.details.field, "value");
    }
    for (const value of ["x".repeat(64 * 1024 + 1), "é".repeat(32 * 1024 + 1), `${"x".repeat(64 * 1024 - 1)}é`]) {
      const err = await rejection(kernel.secrets.put("acme", "VALUE", value));
      assert.equal(err.reason, "SOLO_ERR_SECRET_INVALID");
      assert.equal(err.details.limit, 64 * 1024);
    }
    assert.deepEqual(await kernel.secrets.list("acme"), before);
    assert.equal((await allEvents(kernel, { types: ["secret_stored"] })).length, storedBefore);
    // Exactly 64 KiB is fine, counted in bytes: 32768 two-byte characters too.
    await kernel.secrets.put("acme", "BIG", "x".repeat(64 * 1024));
    await kernel.secrets.put("acme", "BIG_UTF8", "é".repeat(32 * 1024));
    await kernel.secrets.put("acme", "EMPTY", "");
    assert.deepEqual(
      (await kernel.secrets.list("acme")).map((s) => s.name),
      ["AWS.secret-key_2", "BIG", "BIG_UTF8", "EMPTY"],
    );
  });

  it("refuses unknown and invalid tenants without creating them", async () => {
    assert.equal((await rejection(kernel.secrets.put("ghost", "K", "v"))).reason, "SOLO_ERR_TENANT_NOT_FOUND");
    assert.equal((await rejection(kernel.secrets.list("ghost"))).reason, "SOLO_ERR_TENANT_NOT_FOUND");
    assert.equal((await rejection(kernel.secrets.delete("ghost", "K"))).reason, "SOLO_ERR_TENANT_NOT_FOUND");
    assert.ok(!(await kernel.tenants.list()).some((t) => t.name === "ghost"));
    for (const tenant of ["", "Acme", "../acme", 7, null]) {
      assert.equal((await rejection(kernel.secrets.put(tenant as string, "K", "v"))).reason, "SOLO_ERR_NAME_INVALID");
    }
  });
});

describe("secrets: encryption at rest", () => {
  let kernel: Kernel;
  let dir: string;

  before(async () => {
    dir = freshDir();
    kernel = await start(dir);
    await kernel.tenants.create("acme");
    await kernel.secrets.put("acme", "PASSPHRASE", PLAINTEXT);
  });

  const needles = [
    Buffer.from(PLAINTEXT, "utf8"),
    Buffer.from(PLAINTEXT, "utf16le"),
    Buffer.from(Buffer.from(PLAINTEXT).toString("base64")),
  ];

  const assertNowhere = (what: string): void => {
    const files = filesUnder(dir);
    assert.ok(
      files.some((f) => f.path.endsWith(SQLITE_FILE)),
      "the database file is among those scanned",
    );
    for (const { path, bytes } of files) {
      for (const needle of needles) assert.equal(bytes.indexOf(needle), -1, `${what}: the plaintext is in ${path}`);
    }
  };

  it("never writes the plaintext to any file of the data directory, WAL included", async () => {
    assert.ok(existsSync(join(dir, `${SQLITE_FILE}-wal`)), "the WAL is there to scan while the kernel is open");
    assertNowhere("while open");
    await kernel.close();
    assertNowhere("after close");
    kernel = await start(dir);
  });

  it("stores base64 that differs for the same value stored twice (a fresh nonce each time)", async () => {
    // The kernel holds the database exclusively: its rows are read between runs.
    await kernel.close();
    const first = secretRow(dir, "acme", "PASSPHRASE").sealed;
    kernel = await start(dir);
    await kernel.secrets.put("acme", "PASSPHRASE", PLAINTEXT);
    await kernel.secrets.put("acme", "OTHER", PLAINTEXT);
    await kernel.close();
    const second = secretRow(dir, "acme", "PASSPHRASE").sealed;
    const other = secretRow(dir, "acme", "OTHER").sealed;
    for (const sealed of [first, second, other]) {
      assert.match(sealed, /^[A-Za-z0-9+/]+={0,2}$/);
      assert.equal(Buffer.from(sealed, "base64").toString("base64"), sealed);
      assert.ok(Buffer.from(sealed, "base64").length >= Buffer.byteLength(PLAINTEXT) + 16, "room for a nonce and a tag");
    }
    assert.notEqual(first, second);
    assert.notEqual(second, other);
    assertNowhere("after storing it again");
  });
});

describe("secrets: values never leak", () => {
  let kernel: Kernel;
  let dir: string;
  const VALUE = "leak-canary-7f3a9c";

  before(async () => {
    dir = freshDir();
    kernel = await start(dir);
    await kernel.tenants.create("acme");
    const writer = (await kernel.tokens.grant({ tenant: "acme", permissions: ["secrets:write"] })).token;
    const outsider = (await kernel.tokens.grant({ tenant: "acme", permissions: ["services:read"] })).token;
    await kernel.secrets.put("acme", "CANARY", VALUE);
    await kernel.as(writer).secrets.put("acme", "CANARY2", VALUE);
    await rejection(kernel.as(outsider).secrets.put("acme", "CANARY3", VALUE));
    await kernel.vault.rotate({ wait: true });
    await kernel.secrets.delete("acme", "CANARY2");
  });

  it("no event payload, subject or any other field holds a value", async () => {
    const events = await allEvents(kernel);
    assert.ok(events.some((e) => e.type === "secret_stored"));
    assert.ok(events.some((e) => e.type === "capability_denied"));
    assert.ok(events.some((e) => e.type === "vault_key_rotated"));
    for (const e of events) assert.ok(!JSON.stringify(e).includes(VALUE), `event ${e.id} (${e.type}) holds the value`);
  });

  it("no event holds the master key or a data key", async () => {
    const file = readFileSync(join(dir, MASTER_KEY_FILE), "utf8").trim();
    const key = Buffer.from(file, "base64");
    assert.equal(key.length, 32);
    const text = JSON.stringify(await allEvents(kernel));
    for (const form of [file, key.toString("hex"), key.toString("base64url")]) assert.ok(!text.includes(form));
    await kernel.close();
    const wrapped = withDb(dir, (db) => db.prepare("SELECT wrapped FROM vault_keys").all()).map((r) => String(r.wrapped));
    for (const w of wrapped) assert.ok(!text.includes(w), "a wrapped data key in an event");
  });

  it("vault.status() and errors hold no value", async () => {
    kernel = await start(dir);
    const status = await kernel.vault.status();
    assert.ok(!JSON.stringify(status).includes(VALUE));
    const errors = [
      await rejection(kernel.secrets.put("acme", "CANARY", `${VALUE}${"x".repeat(64 * 1024)}`)),
      await rejection(kernel.secrets.put("acme", "bad name", VALUE)),
      await rejection(kernel.secrets.put("ghost", "CANARY", VALUE)),
      await rejection(kernel.secrets.put("Bad", "CANARY", VALUE)),
    ];
    for (const err of errors) assert.ok(!errorText(err).includes(VALUE), `${err.reason} holds the value`);
  });
});

describe("secrets: tamper detection", () => {
  let dir: string;

  before(async () => {
    dir = freshDir();
    const kernel = await start(dir);
    await kernel.tenants.create("acme");
    await kernel.tenants.create("globex");
    await kernel.secrets.put("acme", "FLIPPED", "flipped-value");
    await kernel.secrets.put("acme", "SOURCE", "source-value");
    await kernel.secrets.put("acme", "TARGET", "target-value");
    await kernel.secrets.put("acme", "SHARED", "acme-shared-value");
    await kernel.secrets.put("globex", "SHARED", "globex-shared-value");
    await kernel.secrets.put("acme", "REKEYED", "rekeyed-value");
    await kernel.secrets.put("acme", "INTACT", "intact-value");
    await kernel.close();
    withDb(dir, (db) => {
      const update = db.prepare("UPDATE secrets SET sealed = ? WHERE tenant = ? AND name = ?");
      const raw = Buffer.from(secretRow(dir, "acme", "FLIPPED").sealed, "base64");
      raw[20] = (raw[20] as number) ^ 0x01;
      update.run(raw.toString("base64"), "acme", "FLIPPED");
      update.run(secretRow(dir, "acme", "SOURCE").sealed, "acme", "TARGET");
      update.run(secretRow(dir, "acme", "SHARED").sealed, "globex", "SHARED");
      db.prepare("UPDATE secrets SET key_id = 7 WHERE tenant = ? AND name = ?").run("acme", "REKEYED");
    });
  });

  it("reads an untouched secret, recording secret_accessed", async () => {
    await withVault(dir, async (vault) => {
      assert.equal(await vault.get("acme", "INTACT", READER), "intact-value");
      assert.equal(await vault.get("acme", "SOURCE", READER), "source-value");
      assert.equal(await vault.get("acme", "SHARED", READER), "acme-shared-value");
      assert.equal((await rejection(vault.get("acme", "MISSING", READER))).reason, "SOLO_ERR_SECRET_NOT_FOUND");
      assert.equal((await rejection(vault.get("acme", "../x", READER))).reason, "SOLO_ERR_SECRET_INVALID");
    });
  });

  it("refuses a flipped byte, a ciphertext moved to another name or tenant, and a changed key id", async () => {
    const cases: Array<[string, string, string]> = [
      ["acme", "FLIPPED", "flipped-value"],
      ["acme", "TARGET", "source-value"],
      ["globex", "SHARED", "acme-shared-value"],
      ["acme", "REKEYED", "rekeyed-value"],
    ];
    await withVault(dir, async (vault) => {
      for (const [tenant, name, plaintext] of cases) {
        const err = await rejection(vault.get(tenant, name, READER));
        assert.equal(err.reason, "SOLO_ERR_SECRET_TAMPERED", `${tenant}/${name}`);
        assert.equal(err.code, "data_loss");
        assert.equal(err.details.name, name);
        assert.ok(!errorText(err).includes(plaintext));
        assert.ok(!errorText(err).includes("target-value") && !errorText(err).includes("globex-shared-value"));
      }
    });
  });

  it("records secret_tampered for each, and never secret_accessed for them", async () => {
    const kernel = await start(dir);
    try {
      const tampered = await allEvents(kernel, { types: ["secret_tampered"] });
      assert.deepEqual(
        tampered.map((e) => `${e.tenant}/${e.subject}`),
        ["acme/FLIPPED", "acme/TARGET", "globex/SHARED", "acme/REKEYED"],
      );
      assert.deepEqual(tampered[0]?.payload, { name: "FLIPPED", keyId: 1, principal: "vault-test" });
      assert.equal(payloadOf<{ keyId: number }>(tampered[3]).keyId, 7);
      const accessed = await allEvents(kernel, { types: ["secret_accessed"] });
      assert.deepEqual(accessed.map((e) => `${e.tenant}/${e.subject}`).sort(), ["acme/INTACT", "acme/SHARED", "acme/SOURCE"]);
      assert.deepEqual(accessed.find((e) => e.subject === "INTACT")?.payload, { name: "INTACT", principal: "vault-test" });
      for (const e of await allEvents(kernel)) {
        const text = JSON.stringify(e);
        for (const v of ["flipped-value", "source-value", "target-value", "acme-shared-value", "intact-value"]) {
          assert.ok(!text.includes(v), `event ${e.id} (${e.type}) holds ${v}`);
        }
      }
      assert.ok((await kernel.verify()).ok);
      // The tampered secrets are still listed (and can be stored again).
      assert.ok((await kernel.secrets.list("acme")).some((s) => s.name === "FLIPPED"));
    } finally {
      await kernel.close();
    }
  });

  it("rotation leaves a tampered secret as it was, keeping its key, and re-seals the rest", async () => {
    const kernel = await start(dir);
    let status: Awaited<ReturnType<Kernel["vault"]["rotate"]>>;
    try {
      status = await kernel.vault.rotate({ wait: true });
      const rotated = await allEvents(kernel, { types: ["vault_key_rotated"] });
      assert.equal(rotated.length, 1);
      // REKEYED points at a key that does not exist; the other three tampered rows are under key 1.
      assert.deepEqual(rotated[0]?.payload, { keyId: 2, retired: [], resealed: 3, kept: 4 });
      assert.deepEqual(status.keyIds, [1, 2]);
      assert.equal(status.activeKeyId, 2);
    } finally {
      await kernel.close();
    }
    await withVault(dir, async (vault) => {
      assert.equal(await vault.get("acme", "INTACT", READER), "intact-value");
      assert.equal((await rejection(vault.get("acme", "FLIPPED", READER))).reason, "SOLO_ERR_SECRET_TAMPERED");
    });
  });
});

describe("vault: the master key", () => {
  it("has no key file until the first secret, then one made 0600", async () => {
    const dir = freshDir();
    const kernel = await start(dir);
    await kernel.tenants.create("acme");
    await kernel.deploy({ tenant: "acme", service: "svc", code: "export default { handleCall(r, s) { return { reply: r, state: s } } }" });
    assert.equal(existsSync(join(dir, MASTER_KEY_FILE)), false);
    assert.deepEqual(await kernel.vault.status(), { masterKeyId: null, activeKeyId: 0, keyIds: [], rotating: false });
    await kernel.close();
    const reopened = await start(dir);
    assert.equal(existsSync(join(dir, MASTER_KEY_FILE)), false);
    await reopened.secrets.put("acme", "FIRST", "v");
    const path = join(dir, MASTER_KEY_FILE);
    assert.equal(statSync(path).mode & 0o777, 0o600);
    const key = Buffer.from(readFileSync(path, "utf8").trim(), "base64");
    assert.equal(key.length, 32);
    const status = await reopened.vault.status();
    assert.deepEqual(status, { masterKeyId: masterKeyId(key), activeKeyId: 1, keyIds: [1], rotating: false });
    const created = await allEvents(reopened, { types: ["vault_key_created"] });
    assert.deepEqual(
      created.map((e) => e.payload),
      [{ keyId: 1, masterKeyId: masterKeyId(key) }],
    );
    await reopened.close();
  });

  it("refuses a key file others can read (0644), with the chmod hint, once the store has secrets", async () => {
    const dir = freshDir();
    const kernel = await start(dir);
    await kernel.tenants.create("acme");
    await kernel.secrets.put("acme", "K", "v");
    await kernel.close();
    const path = join(dir, MASTER_KEY_FILE);
    chmodSync(path, 0o644);
    const err = await rejection(start(dir));
    assert.equal(err.reason, "SOLO_ERR_VAULT_MASTER_KEY");
    assert.match(String(err.details.hint), new RegExp(`chmod 600 .*${MASTER_KEY_FILE}`));
    assert.ok(!errorText(err).includes(readFileSync(path, "utf8").trim()));
    chmodSync(path, 0o600);
    const reopened = await start(dir);
    assert.deepEqual(
      (await reopened.secrets.list("acme")).map((s) => s.name),
      ["K"],
    );
    await reopened.close();
  });

  it("with no secrets, a loose key file does not stop the kernel, but the first secret is refused", async () => {
    const dir = freshDir();
    const path = join(dir, MASTER_KEY_FILE);
    writeFileSync(path, `${randomBytes(32).toString("base64")}\n`, { mode: 0o644 });
    chmodSync(path, 0o644);
    const kernel = await start(dir);
    await kernel.tenants.create("acme");
    const err = await rejection(kernel.secrets.put("acme", "K", "v"));
    assert.equal(err.reason, "SOLO_ERR_VAULT_MASTER_KEY");
    assert.match(String(err.details.hint), /chmod 600/);
    assert.deepEqual(await kernel.secrets.list("acme"), []);
    assert.equal((await kernel.vault.status()).activeKeyId, 0);
    await kernel.close();
  });

  it("refuses another masterKey, naming both key ids and never a key", async () => {
    const dir = freshDir();
    const k1 = randomBytes(32);
    const k2 = randomBytes(32);
    const kernel = await start(dir, { masterKey: k1.toString("hex") });
    await kernel.tenants.create("acme");
    await kernel.secrets.put("acme", "K", "v");
    assert.equal((await kernel.vault.status()).masterKeyId, masterKeyId(k1));
    await kernel.close();
    assert.equal(existsSync(join(dir, MASTER_KEY_FILE)), false, "a given key is never written to a file");
    const err = await rejection(start(dir, { masterKey: k2.toString("hex") }));
    assert.equal(err.reason, "SOLO_ERR_VAULT_MASTER_KEY");
    assert.equal(err.code, "failed_precondition");
    assert.equal(err.details.expected, masterKeyId(k1));
    assert.equal(err.details.found, masterKeyId(k2));
    const text = errorText(err) + String(err.stack);
    for (const k of [k1, k2])
      for (const form of [k.toString("hex"), k.toString("base64"), k.toString("base64url")]) assert.ok(!text.includes(form));
    // The same key in base64 is the same key.
    const again = await start(dir, { masterKey: k1.toString("base64") });
    assert.equal((await again.vault.status()).masterKeyId, masterKeyId(k1));
    await again.close();
  });

  it("refuses to open when the key file is gone after secrets exist, and does not make a new one", async () => {
    const dir = freshDir();
    const kernel = await start(dir);
    await kernel.tenants.create("acme");
    await kernel.secrets.put("acme", "K", "v");
    const expected = (await kernel.vault.status()).masterKeyId;
    await kernel.close();
    unlinkSync(join(dir, MASTER_KEY_FILE));
    const err = await rejection(start(dir));
    assert.equal(err.reason, "SOLO_ERR_VAULT_MASTER_KEY");
    assert.equal(err.details.expected, expected);
    assert.match(err.message, new RegExp(String(expected)));
    assert.match(String(err.details.hint), /master\.key|SOLO_MASTER_KEY/);
    assert.equal(existsSync(join(dir, MASTER_KEY_FILE)), false);
  });

  it("refuses a key file that does not hold a key, without echoing what it holds", async () => {
    const dir = freshDir();
    const kernel = await start(dir);
    await kernel.tenants.create("acme");
    await kernel.secrets.put("acme", "K", "v");
    await kernel.close();
    const path = join(dir, MASTER_KEY_FILE);
    const truncated = readFileSync(path, "utf8").trim().slice(0, 30);
    writeFileSync(path, `${truncated}\n`);
    const err = await rejection(start(dir));
    assert.equal(err.reason, "SOLO_ERR_VAULT_MASTER_KEY");
    assert.ok(!errorText(err).includes(truncated));
  });

  it("refuses a store whose wrapped data key was altered", async () => {
    const dir = freshDir();
    const kernel = await start(dir);
    await kernel.tenants.create("acme");
    await kernel.secrets.put("acme", "K", "v");
    await kernel.close();
    withDb(dir, (db) => {
      const row = db.prepare("SELECT wrapped FROM vault_keys WHERE id = 1").get() as { wrapped: string };
      const raw = Buffer.from(row.wrapped, "base64");
      raw[raw.length - 1] = (raw[raw.length - 1] as number) ^ 0x80;
      db.prepare("UPDATE vault_keys SET wrapped = ? WHERE id = 1").run(raw.toString("base64"));
    });
    const err = await rejection(start(dir));
    assert.equal(err.reason, "SOLO_ERR_STORE_CORRUPT");
    assert.equal(err.details.keyId, 1);
  });

  it("takes 32 bytes as 64 hex digits or base64 (padded or url-safe)", async () => {
    const key = randomBytes(32);
    const forms = [
      key.toString("hex"),
      key.toString("hex").toUpperCase(),
      key.toString("base64"),
      key.toString("base64url"),
      ` ${key.toString("hex")}\n`,
    ];
    const dir = freshDir();
    for (const masterKey of forms) {
      const kernel = await start(dir, { masterKey });
      if ((await kernel.tenants.list()).length === 0) await kernel.tenants.create("acme");
      await kernel.secrets.put("acme", "K", "v");
      assert.equal((await kernel.vault.status()).masterKeyId, masterKeyId(key), JSON.stringify(masterKey));
      await kernel.close();
    }
  });

  it("refuses a key of the wrong size or format, without echoing it, and stores nothing", async () => {
    const bad = [
      randomBytes(31).toString("hex"),
      randomBytes(33).toString("hex"),
      randomBytes(31).toString("base64"),
      randomBytes(33).toString("base64"),
      "correct-horse-battery-staple-passphrase",
      `${randomBytes(32).toString("hex").slice(0, 63)}g`,
      "",
    ];
    for (const masterKey of bad) {
      const dir = freshDir();
      let err: SoloError | undefined;
      let kernel: Kernel | undefined;
      try {
        kernel = await start(dir, { masterKey });
      } catch (e) {
        err = e as SoloError;
      }
      // Refused at open, or at the latest when the first secret needs the key.
      if (kernel) {
        await kernel.tenants.create("acme");
        err = await rejection(kernel.secrets.put("acme", "K", "v"));
        assert.deepEqual(await kernel.secrets.list("acme"), []);
        await kernel.close();
      }
      assert.ok(err);
      const e = err;
      assert.equal(e.reason, "SOLO_ERR_VAULT_MASTER_KEY", `${JSON.stringify(masterKey)}: ${e.message}`);
      if (masterKey !== "") assert.ok(!errorText(e).includes(masterKey), "the error echoes the key");
      assert.equal(existsSync(join(dir, MASTER_KEY_FILE)), false);
    }
    assert.equal(
      (await rejection(openKernel({ dataDir: freshDir(), schedulers: 1, masterKey: 42 as never }))).reason,
      "SOLO_ERR_KERNEL_OPTIONS_INVALID",
    );
  });

  it("takes the key from SOLO_MASTER_KEY when no masterKey option is given", async () => {
    const dir = freshDir();
    const key = randomBytes(32);
    const saved = process.env.SOLO_MASTER_KEY;
    process.env.SOLO_MASTER_KEY = key.toString("base64");
    try {
      const kernel = await start(dir);
      await kernel.tenants.create("acme");
      await kernel.secrets.put("acme", "K", "v");
      assert.equal((await kernel.vault.status()).masterKeyId, masterKeyId(key));
      await kernel.close();
      assert.equal(existsSync(join(dir, MASTER_KEY_FILE)), false);
      process.env.SOLO_MASTER_KEY = randomBytes(31).toString("hex");
      const err = await rejection(start(dir));
      assert.equal(err.reason, "SOLO_ERR_VAULT_MASTER_KEY");
      assert.ok(!errorText(err).includes(process.env.SOLO_MASTER_KEY));
      delete process.env.SOLO_MASTER_KEY;
      assert.equal((await rejection(start(dir))).reason, "SOLO_ERR_VAULT_MASTER_KEY");
    } finally {
      if (saved === undefined) delete process.env.SOLO_MASTER_KEY;
      else process.env.SOLO_MASTER_KEY = saved;
    }
  });
});

describe("vault: rotation", () => {
  it("re-seals every secret under a new key, retires the old one, and keeps every value", async () => {
    const dir = freshDir();
    const kernel = await start(dir);
    const values = new Map<string, string>();
    for (const tenant of ["acme", "globex"]) {
      await kernel.tenants.create(tenant);
      for (let i = 0; i < 5; i++) {
        values.set(`${tenant}/S${i}`, `${tenant}-value-${i}`);
        await kernel.secrets.put(tenant, `S${i}`, `${tenant}-value-${i}`);
      }
    }
    const before = await kernel.vault.status();
    const status = await kernel.vault.rotate({ wait: true });
    assert.deepEqual(status, { masterKeyId: before.masterKeyId, activeKeyId: 2, keyIds: [2], rotating: false });
    assert.deepEqual(await kernel.vault.status(), status);
    for (const tenant of ["acme", "globex"]) {
      assert.ok((await kernel.secrets.list(tenant)).every((s) => s.keyId === 2));
    }
    const created = await allEvents(kernel, { types: ["vault_key_created"] });
    assert.deepEqual(
      created.map((e) => e.payload),
      [
        { keyId: 1, masterKeyId: before.masterKeyId },
        { keyId: 2, masterKeyId: before.masterKeyId },
      ],
    );
    const rotated = await allEvents(kernel, { types: ["vault_key_rotated"] });
    assert.deepEqual(
      rotated.map((e) => e.payload),
      [{ keyId: 2, retired: [1], resealed: 10, kept: 0 }],
    );
    // A secret stored after the rotation is under the new key; rotating again moves on to key 3.
    assert.equal((await kernel.secrets.put("acme", "LATE", "late-value")).keyId, 2);
    values.set("acme/LATE", "late-value");
    assert.deepEqual((await kernel.vault.rotate({ wait: true })).keyIds, [3]);
    assert.equal((await rejection(kernel.vault.rotate({ wait: "yes" } as never))).reason, "SOLO_ERR_REQUEST_INVALID");
    await kernel.close();
    assert.deepEqual(
      withDb(dir, (db) => db.prepare("SELECT id FROM vault_keys").all()).map((r) => r.id),
      [3],
    );
    await withVault(dir, async (vault) => {
      for (const [id, value] of values) {
        const [tenant, name] = id.split("/") as [string, string];
        assert.equal(await vault.get(tenant, name, READER), value);
      }
    });
  });

  it("resumes an interrupted rotation at the next open and completes it", async () => {
    const dir = freshDir();
    const kernel = await start(dir);
    await kernel.tenants.create("acme");
    const count = 300;
    await Promise.all(Array.from({ length: count }, (_, i) => kernel.secrets.put("acme", `S${String(i).padStart(3, "0")}`, `value-${i}`)));
    // Concurrent first secrets make one data key between them.
    assert.equal((await allEvents(kernel, { types: ["vault_key_created"] })).length, 1);
    const started = await kernel.vault.rotate();
    assert.equal(started.activeKeyId, 2);
    await kernel.close();
    const underOld = withDb(dir, (db) => db.prepare("SELECT COUNT(*) AS n FROM secrets WHERE key_id = 1").get()) as { n: number };
    assert.ok(underOld.n > 0, "the close interrupted the re-sealing");
    assert.deepEqual(
      withDb(dir, (db) => db.prepare("SELECT id FROM vault_keys ORDER BY id").all()).map((r) => r.id),
      [1, 2],
    );
    const reopened = await start(dir);
    await until("the rotation to finish", async () => {
      const s = await reopened.vault.status();
      return !s.rotating && s.keyIds.length === 1;
    });
    assert.deepEqual(await reopened.vault.status(), { ...(await reopened.vault.status()), activeKeyId: 2, keyIds: [2] });
    const listed = await reopened.secrets.list("acme");
    assert.equal(listed.length, count);
    assert.ok(listed.every((s) => s.keyId === 2));
    const rotated = await allEvents(reopened, { types: ["vault_key_rotated"] });
    assert.equal(rotated.length, 1);
    assert.deepEqual(payloadOf<{ retired: number[] }>(rotated[0]).retired, [1]);
    assert.equal(payloadOf<{ resealed: number }>(rotated[0]).resealed, underOld.n);
    await reopened.close();
    await withVault(dir, async (vault) => {
      for (const i of [0, 1, 150, 298, 299]) assert.equal(await vault.get("acme", `S${String(i).padStart(3, "0")}`, READER), `value-${i}`);
    });
  });
});

describe("secrets and vault through sessions", () => {
  let kernel: Kernel;
  let writer: string;
  let reader: string;
  let other: string;
  let admin: string;

  before(async () => {
    kernel = await start(freshDir());
    await kernel.tenants.create("acme");
    await kernel.tenants.create("globex");
    writer = (await kernel.tokens.grant({ tenant: "acme", permissions: ["secrets:write"] })).token;
    reader = (await kernel.tokens.grant({ tenant: "acme", permissions: ["secrets:read"] })).token;
    other = (await kernel.tokens.grant({ tenant: "globex", permissions: ["secrets:read", "secrets:write"] })).token;
    admin = (await kernel.tokens.grant({ tenant: null, permissions: ["vault:rotate", "secrets:read"] })).token;
  });

  it("secrets:write may put and delete, recorded as the token, but not list", async () => {
    const session = kernel.as(writer);
    const id = (await session.whoami()).id;
    assert.equal((await session.secrets.put("acme", "TOKEN_MADE", "v1")).name, "TOKEN_MADE");
    const stored = await allEvents(kernel, { tenant: "acme", types: ["secret_stored"] });
    assert.equal(payloadOf<{ by: string }>(stored.at(-1)).by, id);
    const err = await rejection(session.secrets.list("acme"));
    assert.equal(err.reason, "SOLO_ERR_PERMISSION_DENIED");
    assert.equal(err.details.required, "secrets:read");
    await session.secrets.put("acme", "GOING", "v2");
    assert.equal(await session.secrets.delete("acme", "GOING"), true);
    const revoked = await allEvents(kernel, { tenant: "acme", types: ["secret_revoked"] });
    assert.equal(payloadOf<{ by: string }>(revoked.at(-1)).by, id);
  });

  it("secrets:read may list but not put or delete", async () => {
    const session = kernel.as(reader);
    assert.deepEqual(
      (await session.secrets.list("acme")).map((s) => s.name),
      ["TOKEN_MADE"],
    );
    assert.equal((await rejection(session.secrets.put("acme", "NOPE", "v"))).reason, "SOLO_ERR_PERMISSION_DENIED");
    assert.equal((await rejection(session.secrets.delete("acme", "TOKEN_MADE"))).reason, "SOLO_ERR_PERMISSION_DENIED");
    assert.deepEqual(
      (await kernel.secrets.list("acme")).map((s) => s.name),
      ["TOKEN_MADE"],
    );
  });

  it("another tenant's token is denied, audited, and changes nothing", async () => {
    const session = kernel.as(other);
    const mark = (await kernel.events({ order: "desc", limit: 1 })).events[0]?.id ?? 0;
    for (const attempt of [
      () => session.secrets.put("acme", "INTRUDER", "other-value"),
      () => session.secrets.delete("acme", "TOKEN_MADE"),
      () => session.secrets.list("acme"),
    ]) {
      assert.equal((await rejection(attempt())).reason, "SOLO_ERR_PERMISSION_DENIED");
    }
    const denials = (await kernel.events({ afterId: mark, types: ["capability_denied"], limit: 100 })).events;
    assert.deepEqual(
      denials.map((e) => [e.tenant, (e.payload as { operation: string }).operation]),
      // Filed in the requester's own tenant's chain, not in the chain of the tenant it could not act for.
      [
        ["globex", "secrets.put"],
        ["globex", "secrets.delete"],
        ["globex", "secrets.list"],
      ],
    );
    assert.ok(!JSON.stringify(denials).includes("other-value"));
    assert.deepEqual(
      (await kernel.secrets.list("acme")).map((s) => s.name),
      ["TOKEN_MADE"],
    );
    // Its own tenant is fine.
    await session.secrets.put("globex", "OWN", "v");
    assert.deepEqual(
      (await session.secrets.list("globex")).map((s) => s.name),
      ["OWN"],
    );
  });

  it("vault status and rotation need an unscoped token with vault:rotate", async () => {
    for (const token of [writer, reader, other]) {
      assert.equal((await rejection(kernel.as(token).vault.status())).reason, "SOLO_ERR_PERMISSION_DENIED");
      assert.equal((await rejection(kernel.as(token).vault.rotate({ wait: true }))).reason, "SOLO_ERR_PERMISSION_DENIED");
    }
    assert.equal((await kernel.vault.status()).activeKeyId, 1);
    const status = await kernel.as(admin).vault.rotate({ wait: true });
    assert.deepEqual(status.keyIds, [2]);
    assert.deepEqual(await kernel.as(admin).vault.status(), status);
    // An unscoped token reaches every tenant's list.
    assert.deepEqual(
      (await kernel.as(admin).secrets.list("globex")).map((s) => s.name),
      ["OWN"],
    );
  });
});

describe("vault: master key rotation", () => {
  // A service granted the secret reads it back: the path a value really leaves the vault by.
  const READ = `export default {
    init() { return null },
    async handleCall(name, s) { return { reply: await solo.secrets.get(name), state: s } },
  };`;

  async function withSecret(kernel: Kernel): Promise<void> {
    await kernel.tenants.create("acme");
    await kernel.secrets.put("acme", "API_KEY", PLAINTEXT);
    await kernel.deploy({ tenant: "acme", service: "reader", code: READ, grants: { secrets: ["API_KEY"] } });
  }

  it("re-wraps every data key under a new key file, durably; the secrets read the same before and after a restart", async () => {
    const dir = freshDir();
    let kernel = await start(dir);
    await withSecret(kernel);
    await kernel.vault.rotate({ wait: true }); // two key changes in a row, the second of the master
    const before = await kernel.vault.status();
    const oldFile = readFileSync(join(dir, MASTER_KEY_FILE), "utf8");
    const after = await kernel.vault.rotateMasterKey();
    assert.notEqual(after.masterKeyId, before.masterKeyId);
    assert.deepEqual(after.keyIds, before.keyIds, "the data keys stay; only their wrapping changes");
    assert.notEqual(readFileSync(join(dir, MASTER_KEY_FILE), "utf8"), oldFile);
    assert.equal(statSync(join(dir, MASTER_KEY_FILE)).mode & 0o777, 0o600);
    assert.equal(existsSync(join(dir, `${MASTER_KEY_FILE}.next`)), false);
    assert.equal(await kernel.call("acme", "reader", "API_KEY"), PLAINTEXT);
    const [rotated] = await allEvents(kernel, { types: ["vault_master_rotated"] });
    assert.deepEqual(payloadOf(rotated), { from: before.masterKeyId, to: after.masterKeyId, keys: before.keyIds.length });
    assert.ok(!JSON.stringify(rotated).includes(readFileSync(join(dir, MASTER_KEY_FILE), "utf8").trim()));
    await kernel.close();
    kernel = await start(dir);
    assert.equal((await kernel.vault.status()).masterKeyId, after.masterKeyId);
    assert.equal(await kernel.call("acme", "reader", "API_KEY"), PLAINTEXT);
  });

  it("finishes a rotation that committed before its key file was renamed, and drops a staged key that never committed", async () => {
    const dir = freshDir();
    let kernel = await start(dir);
    await withSecret(kernel);
    const oldFile = readFileSync(join(dir, MASTER_KEY_FILE), "utf8");
    const { masterKeyId } = await kernel.vault.rotateMasterKey();
    await kernel.close();
    // As if the process died between the store's commit and the rename: the old key is still
    // master.key and the new one waits in master.key.next.
    const newFile = readFileSync(join(dir, MASTER_KEY_FILE), "utf8");
    unlinkSync(join(dir, MASTER_KEY_FILE));
    writeFileSync(join(dir, MASTER_KEY_FILE), oldFile, { mode: 0o600 });
    writeFileSync(join(dir, `${MASTER_KEY_FILE}.next`), newFile, { mode: 0o600 });
    kernel = await start(dir);
    assert.equal((await kernel.vault.status()).masterKeyId, masterKeyId);
    assert.equal(readFileSync(join(dir, MASTER_KEY_FILE), "utf8"), newFile);
    assert.equal(existsSync(join(dir, `${MASTER_KEY_FILE}.next`)), false);
    assert.equal(await kernel.call("acme", "reader", "API_KEY"), PLAINTEXT);
    await kernel.close();
    // As if it died after staging but before the commit: the staged key is dropped.
    writeFileSync(join(dir, `${MASTER_KEY_FILE}.next`), `${randomBytes(32).toString("base64")}\n`, { mode: 0o600 });
    kernel = await start(dir);
    assert.equal((await kernel.vault.status()).masterKeyId, masterKeyId);
    assert.equal(existsSync(join(dir, `${MASTER_KEY_FILE}.next`)), false);
    assert.equal(await kernel.call("acme", "reader", "API_KEY"), PLAINTEXT);
  });

  it("with a key the operator gives, takes the new key from the operator, and the next start needs it", async () => {
    const dir = freshDir();
    const first = randomBytes(32).toString("hex");
    const second = randomBytes(32).toString("base64");
    let kernel = await start(dir, { masterKey: first });
    await withSecret(kernel);
    const refused = await rejection(kernel.vault.rotateMasterKey());
    assert.equal(refused.reason, "SOLO_ERR_VAULT_MASTER_KEY");
    assert.equal(refused.details.field, "newKey");
    const same = await rejection(kernel.vault.rotateMasterKey({ newKey: first }));
    assert.equal(same.reason, "SOLO_ERR_VAULT_MASTER_KEY");
    const garbage = await rejection(kernel.vault.rotateMasterKey({ newKey: "not a key" }));
    assert.equal(garbage.reason, "SOLO_ERR_VAULT_MASTER_KEY");
    assert.ok(!garbage.message.includes("not a key"), "the error does not echo the key");
    const bad = await rejection(kernel.vault.rotateMasterKey({ newKey: second, extra: 1 } as never));
    assert.equal(bad.reason, "SOLO_ERR_REQUEST_INVALID");
    const { masterKeyId } = await kernel.vault.rotateMasterKey({ newKey: second });
    assert.equal(await kernel.call("acme", "reader", "API_KEY"), PLAINTEXT);
    assert.equal(existsSync(join(dir, MASTER_KEY_FILE)), false, "a given key is never written to the data directory");
    await kernel.close();
    const err = await rejection(start(dir, { masterKey: first }));
    assert.equal(err.reason, "SOLO_ERR_VAULT_MASTER_KEY");
    assert.equal(err.details.expected, masterKeyId);
    kernel = await start(dir, { masterKey: second });
    assert.equal(await kernel.call("acme", "reader", "API_KEY"), PLAINTEXT);
  });

  it("refuses a rotation before the vault has keys, and needs vault:rotate through a session", async () => {
    const kernel = await start(freshDir());
    assert.equal((await rejection(kernel.vault.rotateMasterKey())).reason, "SOLO_ERR_REQUEST_INVALID");
    await kernel.tenants.create("acme");
    const scoped = await kernel.tokens.grant({ tenant: "acme", permissions: ["*"] });
    assert.equal((await rejection(kernel.as(scoped.token).vault.rotateMasterKey())).reason, "SOLO_ERR_PERMISSION_DENIED");
    const admin = await kernel.tokens.grant({ tenant: null, permissions: ["vault:rotate"] });
    await kernel.secrets.put("acme", "K", "v");
    const before = (await kernel.vault.status()).masterKeyId;
    assert.notEqual((await kernel.as(admin.token).vault.rotateMasterKey()).masterKeyId, before);
  });
});
