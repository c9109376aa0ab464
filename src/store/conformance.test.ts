/**
 * The store's conformance suite: the same cases, run against the SQLite file and a real
 * PostgreSQL database, so the two backends behave alike for everything above them.
 *
 * Cases only one backend runs, and why:
 * - SQLite only: "a file that is not a database" and "a path in a missing directory" (a
 *   PostgreSQL store has no file; its counterpart is "an unreachable server").
 * - PostgreSQL only: "an unreachable server" (no server behind a file path) and
 *   "SOLO_ERR_STORE_LOCKED for a second store" (the SQLite store leaves exclusion to the data
 *   directory's lock in src/kernel/data-dir.ts and takes no lock of its own).
 * Every other case runs on both. Without PostgreSQL its cases skip with the reason, except with
 * CI=true, where they fail.
 *
 * Each case gets fresh storage: a new SQLite file in a temp directory, or, for PostgreSQL, the
 * backend's one test database emptied (its schema dropped) before the case.
 */
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { DatabaseSync } from "node:sqlite";
import { after, afterEach, before, beforeEach, describe, it } from "node:test";
import pg from "pg";
import { rejection } from "../test-support.ts";
import { eventHash } from "./chain.ts";
import { openStore } from "./open.ts";
import { openPostgresStore } from "./postgres/postgres-store.ts";
import { openSqliteStore } from "./sqlite/sqlite-store.ts";
import {
  type DeploymentRecord,
  type EventDraft,
  GENESIS_HASH,
  type Mutation,
  type OpResult,
  type Store,
  type StoredEventRow,
  type StoreKind,
  type WriteOp,
} from "./store.ts";
import { createTestDatabase, postgresSkipReason, type TestDatabase } from "./test-support.ts";

/** One store on fresh storage, as a backend's factory hands it to the shared cases. */
interface Harness {
  /** The store, open on storage no other test uses. */
  readonly store: Store;
  /** Opens another store on the same storage (close the previous one first, except to test locking). */
  reopen(): Promise<Store>;
  /** Runs SQL directly on the storage while no store has it open, as an operator (or a bug) could. */
  exec(sql: string): Promise<void>;
  /** Closes every store this harness opened and deletes the storage. */
  cleanup(): Promise<void>;
}

type Factory = () => Promise<Harness>;

// ---------------------------------------------------------------------------------------------
// Fixtures

const WALL = 1_760_000_000_000;
const ALL = { order: "asc", limit: 100_000 } as const;

function draft(fields: Partial<EventDraft> = {}): EventDraft {
  return {
    tenant: "acme",
    type: "service.called",
    subject: "counter",
    payload: "{}",
    causationId: null,
    correlationId: null,
    wallTime: WALL,
    ...fields,
  };
}

function eventsOp(...drafts: EventDraft[]): WriteOp {
  return { mutations: [], events: drafts };
}

function deployment(service: string, version: number, tenant = "acme"): DeploymentRecord {
  return {
    tenant,
    service,
    version,
    code: `export default { handleCall() { return { reply: "v${version} ✓ 日本" } } }`,
    args: version === 1 ? "" : `{"v":${version}}`,
    limits: `{"memoryBytes":${version * 1_048_576}}`,
    deployedAt: WALL + version,
  };
}

function deployOp(d: DeploymentRecord): WriteOp {
  return {
    mutations: [{ t: "deployment.put", deployment: d }],
    events: [draft({ tenant: d.tenant, type: "service.deployed", subject: d.service, payload: `{"version":${d.version}}` })],
  };
}

function killOp(tenant: string, service: string): WriteOp {
  return { mutations: [{ t: "deployment.kill", tenant, service }], events: [draft({ tenant, type: "service.killed", subject: service })] };
}

const ROOMY = { maxBytes: 1_000_000, maxKeys: 1_000 };

function kvPut(key: string, value: string, quota = ROOMY, service = "counter", tenant = "acme"): Mutation {
  return { t: "kv.put", tenant, service, key, value, ...quota };
}

function kvDelete(key: string, service = "counter", tenant = "acme"): Mutation {
  return { t: "kv.delete", tenant, service, key };
}

/** Commits one operation made of `mutations` (and no events) and returns its result. */
async function apply(store: Store, ...mutations: Mutation[]): Promise<OpResult> {
  const [result] = await store.commit([{ mutations, events: [] }]);
  assert.ok(result);
  return result;
}

/** The events of a successful operation's result. */
function okEvents(result: OpResult | undefined): StoredEventRow[] {
  assert.ok(result?.ok, `expected the operation to succeed, got ${JSON.stringify(result)}`);
  return result.events;
}

function ids(rows: readonly { id: number }[]): number[] {
  return rows.map((r) => r.id);
}

function range(from: number, to: number): number[] {
  return Array.from({ length: to - from + 1 }, (_, i) => from + i);
}

/** Asserts that `rows` continue the chain from `from`: next ids, linked hashes, rising timestamps. */
function assertChain(rows: readonly StoredEventRow[], from = { id: 0, timestamp: 0, hash: GENESIS_HASH }): void {
  let prev = from;
  for (const e of rows) {
    assert.equal(e.id, prev.id + 1, `event ${e.id} should follow event ${prev.id}`);
    assert.equal(e.prevHash, prev.hash, `event ${e.id} should link to event ${prev.id}'s hash`);
    const { hash, ...unsealed } = e;
    assert.equal(hash, eventHash(unsealed), `event ${e.id} should hash to its hash`);
    assert.ok(Number.isSafeInteger(e.timestamp), `event ${e.id}'s timestamp should be an integer`);
    assert.ok(e.timestamp > prev.timestamp, `event ${e.id}'s timestamp should be after event ${prev.id}'s`);
    prev = e;
  }
}

function headOf(e: StoredEventRow): { id: number; timestamp: number; hash: string } {
  return { id: e.id, timestamp: e.timestamp, hash: e.hash };
}

function utf8(s: string): number {
  return Buffer.byteLength(s, "utf8");
}

/** SQL that marks each backend's storage as written by a schema from the future. */
const FUTURE_SCHEMA: Record<StoreKind, string> = {
  sqlite: "PRAGMA user_version = 99",
  postgres: "INSERT INTO solo_schema (version, applied_at) VALUES (99, 0)",
};

// ---------------------------------------------------------------------------------------------
// The shared cases

function storeConformance(kind: StoreKind, factory: Factory): void {
  describe("the Store contract", () => {
    let h: Harness;
    let store: Store;
    beforeEach(async () => {
      h = await factory();
      store = h.store;
    });
    afterEach(async () => {
      await h.cleanup();
    });

    describe("an empty store", () => {
      it("has the genesis head and no events, deployments or keys", async () => {
        assert.equal(store.kind, kind);
        assert.deepEqual(await store.head(), { id: 0, timestamp: 0, hash: GENESIS_HASH });
        assert.deepEqual(await store.queryEvents(ALL), []);
        assert.deepEqual(await store.queryEvents({ tenant: null, order: "desc", limit: 10 }), []);
        assert.deepEqual(await store.activeDeployments(), []);
        assert.deepEqual(await store.deploymentHistory("acme", "counter"), []);
        assert.deepEqual(await store.latestVersions(), []);
        assert.equal(await store.kvGet("acme", "counter", "k"), undefined);
        assert.deepEqual(await store.kvList("acme", "counter", "", "", 10), []);
        assert.deepEqual(await store.kvUsage("acme", "counter"), { bytes: 0, keys: 0 });
      });
    });

    describe("commit()", () => {
      it("gives a batch's events ids 1..n in batch order, chained by hash, with rising timestamps", async () => {
        const results = await store.commit([
          eventsOp(draft({ payload: '{"n":1}' }), draft({ payload: '{"n":2}' })),
          eventsOp(),
          eventsOp(draft({ payload: '{"n":3}' })),
          eventsOp(draft({ payload: '{"n":4}' }), draft({ payload: '{"n":5}' }), draft({ payload: '{"n":6}' })),
        ]);
        assert.deepEqual(
          results.map((r) => ids(okEvents(r))),
          [[1, 2], [], [3], [4, 5, 6]],
        );
        assert.deepEqual(
          results.map((r) => r.ok && r.changed),
          [false, false, false, false],
        );
        const written = results.flatMap(okEvents);
        assert.deepEqual(
          written.map((e) => e.payload),
          ['{"n":1}', '{"n":2}', '{"n":3}', '{"n":4}', '{"n":5}', '{"n":6}'],
        );
        assertChain(written);
        assert.deepEqual(await store.queryEvents(ALL), written);
        assert.deepEqual(await store.head(), headOf(written[5] as StoredEventRow));
      });

      it("stores every field of a draft exactly, including nulls and unicode payload text", async () => {
        const drafts: EventDraft[] = [
          draft({ tenant: null, type: "kernel.started", subject: null, payload: '{"pid":42}', wallTime: WALL - 5 }),
          draft({
            tenant: "acme",
            type: "service.called",
            subject: "cart",
            payload: '{"emoji":"😀","escaped":"\\u0000\\"\\n","text":"naïve — 日本語 Ω"}',
            causationId: 1,
            correlationId: "req-7f3a ✓",
            wallTime: WALL + 123,
          }),
        ];
        const [result] = await store.commit([eventsOp(...drafts)]);
        const stored = await store.queryEvents(ALL);
        assert.deepEqual(stored, okEvents(result));
        assert.deepEqual(
          stored.map(({ id: _id, timestamp: _ts, prevHash: _prev, hash: _hash, ...rest }) => rest),
          drafts,
        );
        assertChain(stored);
      });

      it("continues the chain from the head in a later commit", async () => {
        const first = okEvents((await store.commit([eventsOp(draft(), draft())]))[0]);
        const head = await store.head();
        assert.deepEqual(head, headOf(first[1] as StoredEventRow));
        const second = okEvents((await store.commit([eventsOp(draft(), draft(), draft())]))[0]);
        assert.deepEqual(ids(second), [3, 4, 5]);
        assertChain(second, head);
        assertChain(await store.queryEvents(ALL));
        assert.deepEqual(await store.head(), headOf(second[2] as StoredEventRow));
      });

      it("gives 50 concurrent commits gap-free ids, each commit's events together, and one valid chain", async () => {
        const sizes = Array.from({ length: 50 }, (_, i) => ((i * 7) % 20) + 1);
        const results = await Promise.all(
          sizes.map((n, c) => store.commit([eventsOp(...Array.from({ length: n }, (_, k) => draft({ payload: `{"c":${c},"k":${k}}` })))])),
        );
        const total = sizes.reduce((a, b) => a + b, 0);
        for (const [c, r] of results.entries()) {
          const evs = okEvents(r[0]);
          assert.equal(evs.length, sizes[c]);
          assert.deepEqual(ids(evs), range(evs[0]?.id ?? 0, (evs[0]?.id ?? 0) + evs.length - 1), `commit ${c}'s events are consecutive`);
        }
        const stored = await store.queryEvents(ALL);
        assert.deepEqual(ids(stored), range(1, total));
        assertChain(stored);
        const byId = results.flatMap((r) => okEvents(r[0])).sort((a, b) => a.id - b.id);
        assert.deepEqual(stored, byId);
        assert.equal((await store.head()).id, total);
      });
    });

    describe("queryEvents()", () => {
      // 1 kernel-wide, 2 acme/counter deployed, 3 globex/counter deployed, 4 acme/counter called,
      // 5 acme/cart deployed, 6 globex/counter called, 7 kernel-wide.
      let log: StoredEventRow[];
      beforeEach(async () => {
        const results = await store.commit([
          eventsOp(draft({ tenant: null, type: "kernel.started", subject: null })),
          eventsOp(draft({ tenant: "acme", type: "service.deployed", subject: "counter" })),
          eventsOp(draft({ tenant: "globex", type: "service.deployed", subject: "counter" })),
          eventsOp(draft({ tenant: "acme", type: "service.called", subject: "counter" })),
          eventsOp(draft({ tenant: "acme", type: "service.deployed", subject: "cart" })),
          eventsOp(draft({ tenant: "globex", type: "service.called", subject: "counter" })),
          eventsOp(draft({ tenant: null, type: "kernel.stopped", subject: null })),
        ]);
        log = results.flatMap(okEvents);
        assert.deepEqual(ids(log), range(1, 7));
      });

      it("narrows by tenant: a name for that tenant's events, null for kernel-wide ones, omitted for all", async () => {
        assert.deepEqual(ids(await store.queryEvents(ALL)), [1, 2, 3, 4, 5, 6, 7]);
        assert.deepEqual(ids(await store.queryEvents({ ...ALL, tenant: "acme" })), [2, 4, 5]);
        assert.deepEqual(ids(await store.queryEvents({ ...ALL, tenant: "globex" })), [3, 6]);
        assert.deepEqual(ids(await store.queryEvents({ ...ALL, tenant: null })), [1, 7]);
        assert.deepEqual(ids(await store.queryEvents({ ...ALL, tenant: "initech" })), []);
      });

      it("never returns another tenant's events, even when type and subject match", async () => {
        const q = { ...ALL, types: ["service.deployed", "service.called"], subject: "counter" };
        assert.deepEqual(ids(await store.queryEvents({ ...q, tenant: "acme" })), [2, 4]);
        assert.deepEqual(ids(await store.queryEvents({ ...q, tenant: "globex" })), [3, 6]);
        assert.deepEqual(ids(await store.queryEvents({ ...q, tenant: null })), []);
        assert.deepEqual(ids(await store.queryEvents({ ...q, tenant: "initech" })), []);
      });

      it("filters by a list of types and by subject", async () => {
        assert.deepEqual(ids(await store.queryEvents({ ...ALL, types: ["service.deployed"] })), [2, 3, 5]);
        assert.deepEqual(ids(await store.queryEvents({ ...ALL, types: ["kernel.started", "kernel.stopped"] })), [1, 7]);
        assert.deepEqual(ids(await store.queryEvents({ ...ALL, types: ["no.such.type"] })), []);
        assert.deepEqual(ids(await store.queryEvents({ ...ALL, subject: "counter" })), [2, 3, 4, 6]);
        assert.deepEqual(ids(await store.queryEvents({ ...ALL, subject: "cart" })), [5]);
        assert.deepEqual(ids(await store.queryEvents({ ...ALL, tenant: "acme", types: ["service.deployed"], subject: "counter" })), [2]);
      });

      it("bounds ids with afterId and beforeId (both exclusive)", async () => {
        assert.deepEqual(ids(await store.queryEvents({ ...ALL, afterId: 2, beforeId: 6 })), [3, 4, 5]);
        assert.deepEqual(ids(await store.queryEvents({ ...ALL, afterId: 5 })), [6, 7]);
        assert.deepEqual(ids(await store.queryEvents({ ...ALL, beforeId: 3 })), [1, 2]);
        assert.deepEqual(ids(await store.queryEvents({ ...ALL, afterId: 7 })), []);
        assert.deepEqual(ids(await store.queryEvents({ ...ALL, tenant: "acme", afterId: 2 })), [4, 5]);
      });

      it("bounds timestamps with since (inclusive) and until (exclusive)", async () => {
        const ts = log.map((e) => e.timestamp);
        assert.deepEqual(ids(await store.queryEvents({ ...ALL, since: ts[2], until: ts[5] })), [3, 4, 5]);
        assert.deepEqual(ids(await store.queryEvents({ ...ALL, since: ts[6] })), [7]);
        assert.deepEqual(ids(await store.queryEvents({ ...ALL, until: ts[1] })), [1]);
        assert.deepEqual(ids(await store.queryEvents({ ...ALL, since: (ts[6] ?? 0) + 1 })), []);
        assert.deepEqual(ids(await store.queryEvents({ ...ALL, tenant: "globex", since: ts[3] })), [6]);
      });

      it("returns ascending or descending id order and stops at limit", async () => {
        assert.deepEqual(ids(await store.queryEvents({ order: "desc", limit: 100 })), [7, 6, 5, 4, 3, 2, 1]);
        assert.deepEqual(ids(await store.queryEvents({ order: "desc", limit: 3 })), [7, 6, 5]);
        assert.deepEqual(ids(await store.queryEvents({ order: "asc", limit: 3 })), [1, 2, 3]);
        assert.deepEqual(ids(await store.queryEvents({ order: "desc", limit: 2, tenant: "acme" })), [5, 4]);
        assert.deepEqual(ids(await store.queryEvents({ order: "desc", limit: 100, beforeId: 4 })), [3, 2, 1]);
        assert.deepEqual(ids(await store.queryEvents({ order: "asc", limit: 1, afterId: 3, tenant: "globex" })), [6]);
        assert.deepEqual(await store.queryEvents({ order: "asc", limit: 2, afterId: 5 }), log.slice(5));
      });
    });

    describe("reopening", () => {
      it("finds every event, deployment and key after close, with the same head", async () => {
        await store.commit([
          eventsOp(draft({ tenant: null, type: "kernel.started", subject: null, payload: '{"é":"😀"}' })),
          deployOp(deployment("counter", 1)),
          deployOp(deployment("counter", 2)),
          { mutations: [kvPut("k/ü", "värde ✓")], events: [draft({ type: "storage.put" })] },
        ]);
        const events = await store.queryEvents(ALL);
        const head = await store.head();
        assert.equal(head.id, 4);
        await store.close();

        const again = await h.reopen();
        assert.deepEqual(await again.head(), head);
        assert.deepEqual(await again.queryEvents(ALL), events);
        assert.deepEqual(await again.activeDeployments(), [deployment("counter", 2)]);
        assert.deepEqual(await again.deploymentHistory("acme", "counter"), [deployment("counter", 1), deployment("counter", 2)]);
        assert.deepEqual(await again.latestVersions(), [{ tenant: "acme", service: "counter", version: 2 }]);
        assert.equal(await again.kvGet("acme", "counter", "k/ü"), "värde ✓");
        assert.deepEqual(await again.kvUsage("acme", "counter"), { bytes: utf8("k/ü") + utf8("värde ✓"), keys: 1 });
      });

      it("continues the chain after reopen: the next ids and prevHash follow the old head", async () => {
        await store.commit([eventsOp(draft(), draft(), draft())]);
        const head = await store.head();
        await store.close();

        const again = await h.reopen();
        const next = okEvents((await again.commit([eventsOp(draft({ payload: '{"after":"reopen"}' }), draft())]))[0]);
        assert.deepEqual(ids(next), [4, 5]);
        assert.equal(next[0]?.prevHash, head.hash);
        assertChain(next, head);
        assertChain(await again.queryEvents(ALL));
        await again.close();

        const third = await h.reopen();
        assert.deepEqual(await third.head(), headOf(next[1] as StoredEventRow));
      });
    });

    describe("deployments", () => {
      it("lists a put deployment as active with its latest version, and keeps every version in history", async () => {
        const [first] = await store.commit([deployOp(deployment("counter", 1))]);
        assert.deepEqual(first, { ok: true, changed: true, events: okEvents(first) });
        assert.deepEqual(ids(okEvents(first)), [1]);
        assert.deepEqual(await store.activeDeployments(), [deployment("counter", 1)]);

        await store.commit([deployOp(deployment("counter", 2)), deployOp(deployment("cart", 1, "globex"))]);
        // The contract promises no order for these lists, so they are compared sorted.
        const active = await store.activeDeployments();
        assert.deepEqual(
          [...active].sort((a, b) => a.tenant.localeCompare(b.tenant)),
          [deployment("counter", 2), deployment("cart", 1, "globex")],
        );
        assert.deepEqual(await store.deploymentHistory("acme", "counter"), [deployment("counter", 1), deployment("counter", 2)]);
        assert.deepEqual(await store.deploymentHistory("globex", "cart"), [deployment("cart", 1, "globex")]);
        assert.deepEqual(await store.deploymentHistory("globex", "counter"), []);
        const latest = await store.latestVersions();
        assert.deepEqual(
          [...latest].sort((a, b) => a.tenant.localeCompare(b.tenant)),
          [
            { tenant: "acme", service: "counter", version: 2 },
            { tenant: "globex", service: "cart", version: 1 },
          ],
        );
      });

      it("kill removes a service from the active list but keeps its history and latest version", async () => {
        await store.commit([deployOp(deployment("counter", 1)), deployOp(deployment("counter", 2)), deployOp(deployment("cart", 1))]);
        const [killed] = await store.commit([killOp("acme", "counter")]);
        assert.equal(killed?.ok && killed.changed, true);
        assert.deepEqual(ids(okEvents(killed)), [4]);
        assert.deepEqual(await store.activeDeployments(), [deployment("cart", 1)]);
        assert.deepEqual(await store.deploymentHistory("acme", "counter"), [deployment("counter", 1), deployment("counter", 2)]);
        assert.deepEqual(
          (await store.latestVersions()).find((v) => v.service === "counter"),
          { tenant: "acme", service: "counter", version: 2 },
        );
      });

      it("reports changed: false when killing a service that is already killed or was never deployed", async () => {
        await store.commit([deployOp(deployment("counter", 1)), killOp("acme", "counter")]);
        const [again, never] = await store.commit([killOp("acme", "counter"), killOp("acme", "ghost")]);
        assert.equal(again?.ok && again.changed, false);
        assert.equal(never?.ok && never.changed, false);
        // The events still go in: the store records what the kernel says happened.
        assert.deepEqual(
          [...okEvents(again), ...okEvents(never)].map((e) => e.id),
          [3, 4],
        );
        assert.deepEqual(await store.activeDeployments(), []);
      });

      it("makes a killed service active again when a new version is put", async () => {
        await store.commit([deployOp(deployment("counter", 1)), killOp("acme", "counter")]);
        await store.commit([deployOp(deployment("counter", 2))]);
        assert.deepEqual(await store.activeDeployments(), [deployment("counter", 2)]);
        assert.deepEqual(await store.deploymentHistory("acme", "counter"), [deployment("counter", 1), deployment("counter", 2)]);
      });
    });

    describe("key-value storage", () => {
      it("puts, gets, overwrites and deletes a key", async () => {
        assert.deepEqual(await apply(store, kvPut("a/1", "x")), { ok: true, changed: true, events: [] });
        assert.equal(await store.kvGet("acme", "counter", "a/1"), "x");
        await apply(store, kvPut("a/1", "xyz"));
        assert.equal(await store.kvGet("acme", "counter", "a/1"), "xyz");
        assert.deepEqual(await apply(store, kvDelete("a/1")), { ok: true, changed: true, events: [] });
        assert.equal(await store.kvGet("acme", "counter", "a/1"), undefined);
        assert.deepEqual(await store.kvList("acme", "counter", "", "", 10), []);
      });

      it("reports changed: false when deleting a missing key, and leaves usage alone", async () => {
        await apply(store, kvPut("kept", "1"));
        assert.deepEqual(await apply(store, kvDelete("missing")), { ok: true, changed: false, events: [] });
        assert.deepEqual(await store.kvUsage("acme", "counter"), { bytes: 5, keys: 1 });
      });

      it("counts usage as the UTF-8 bytes of keys and values, updated on overwrite and delete", async () => {
        await apply(store, kvPut("a/1", "x"));
        assert.deepEqual(await store.kvUsage("acme", "counter"), { bytes: 4, keys: 1 });
        await apply(store, kvPut("a/1", "xyz"));
        assert.deepEqual(await store.kvUsage("acme", "counter"), { bytes: 6, keys: 1 });
        await apply(store, kvPut("ключ", "值😀"));
        // "ключ" is 8 bytes, "值" 3 and "😀" 4.
        assert.deepEqual(await store.kvUsage("acme", "counter"), { bytes: 6 + 8 + 7, keys: 2 });
        await apply(store, kvPut("ключ", "v"));
        assert.deepEqual(await store.kvUsage("acme", "counter"), { bytes: 6 + 9, keys: 2 });
        await apply(store, kvDelete("a/1"));
        assert.deepEqual(await store.kvUsage("acme", "counter"), { bytes: 9, keys: 1 });
        await apply(store, kvDelete("ключ"));
        assert.deepEqual(await store.kvUsage("acme", "counter"), { bytes: 0, keys: 0 });
      });

      it("keeps each service's keys and usage apart", async () => {
        await apply(
          store,
          kvPut("k", "acme-counter"),
          kvPut("k", "acme-cart", ROOMY, "cart"),
          kvPut("k", "globex", ROOMY, "counter", "globex"),
        );
        assert.equal(await store.kvGet("acme", "counter", "k"), "acme-counter");
        assert.equal(await store.kvGet("acme", "cart", "k"), "acme-cart");
        assert.equal(await store.kvGet("globex", "counter", "k"), "globex");
        assert.deepEqual(await store.kvList("globex", "counter", "", "", 10), [["k", "globex"]]);
        assert.deepEqual(await store.kvUsage("acme", "cart"), { bytes: 10, keys: 1 });
        await apply(store, kvDelete("k", "cart"));
        assert.equal(await store.kvGet("acme", "counter", "k"), "acme-counter");
        assert.deepEqual(await store.kvUsage("acme", "counter"), { bytes: 13, keys: 1 });
        assert.deepEqual(await store.kvUsage("acme", "cart"), { bytes: 0, keys: 0 });
      });

      describe("kvList()", () => {
        const KEYS = ["b", "a0", "a/3", "a/1", "a/", "a", "a/2"];
        const entry = (k: string): [string, string] => [k, `v:${k}`];
        beforeEach(async () => {
          await apply(store, ...KEYS.map((k) => kvPut(k, `v:${k}`)));
        });

        it("lists the keys under a prefix in byte order, leaving out neighbours like a0 and b", async () => {
          assert.deepEqual(await store.kvList("acme", "counter", "a/", "", 100), ["a/", "a/1", "a/2", "a/3"].map(entry));
          assert.deepEqual(await store.kvList("acme", "counter", "a", "", 100), ["a", "a/", "a/1", "a/2", "a/3", "a0"].map(entry));
          assert.deepEqual(await store.kvList("acme", "counter", "", "", 100), ["a", "a/", "a/1", "a/2", "a/3", "a0", "b"].map(entry));
          assert.deepEqual(await store.kvList("acme", "counter", "c", "", 100), []);
          assert.deepEqual(await store.kvList("acme", "counter", "a/", "", 2), ["a/", "a/1"].map(entry));
        });

        it("starts strictly after the after cursor, whether it is inside, before or beyond the prefix", async () => {
          assert.deepEqual(await store.kvList("acme", "counter", "a/", "a/1", 100), ["a/2", "a/3"].map(entry));
          assert.deepEqual(await store.kvList("acme", "counter", "a/", "a/10", 100), ["a/2", "a/3"].map(entry));
          assert.deepEqual(await store.kvList("acme", "counter", "a/", "a", 100), ["a/", "a/1", "a/2", "a/3"].map(entry));
          assert.deepEqual(await store.kvList("acme", "counter", "a/", "a/3", 100), []);
          assert.deepEqual(await store.kvList("acme", "counter", "a/", "a0", 100), []);
        });

        it("pages through a prefix with after and limit", async () => {
          const pages: string[][] = [];
          let after = "";
          for (let i = 0; i < 10; i++) {
            const page = await store.kvList("acme", "counter", "a/", after, 2);
            pages.push(page.map(([k]) => k));
            if (page.length === 0) break;
            after = page[page.length - 1]?.[0] ?? "";
          }
          assert.deepEqual(pages, [["a/", "a/1"], ["a/2", "a/3"], []]);
        });

        it("pages past a key equal to the prefix instead of returning it again", async () => {
          // The first page of prefix "a" is the key "a" itself; the next page starts after it.
          assert.deepEqual(await store.kvList("acme", "counter", "a", "", 1), [entry("a")]);
          assert.deepEqual(await store.kvList("acme", "counter", "a", "a", 1), [entry("a/")]);
          assert.deepEqual(await store.kvList("acme", "counter", "a/", "a/", 100), ["a/1", "a/2", "a/3"].map(entry));
        });
      });

      describe("unicode keys", () => {
        // UTF-8 byte order: "z" 7a < "é" c3 a9 < "日" e6 97 a5 < "～" ef bd 9e < "😀" f0 9f 98 80.
        // UTF-16 order (JavaScript's <) puts "😀" (d83d de00) before "～" (ff5e).
        const KEYS = ["😀/x", "～/x", "z", "日本/x", "é"];
        beforeEach(async () => {
          await apply(store, ...KEYS.map((k) => kvPut(k, `${k}=值`)));
        });

        it("round-trips unicode keys and values and lists them in UTF-8 byte order", async () => {
          assert.equal(await store.kvGet("acme", "counter", "日本/x"), "日本/x=值");
          assert.deepEqual(
            (await store.kvList("acme", "counter", "", "", 100)).map(([k]) => k),
            ["z", "é", "日本/x", "～/x", "😀/x"],
          );
          assert.deepEqual(await store.kvList("acme", "counter", "～", "", 100), [["～/x", "～/x=值"]]);
          assert.deepEqual(await store.kvList("acme", "counter", "", "～/x", 100), [["😀/x", "😀/x=值"]]);
          const bytes = KEYS.reduce((sum, k) => sum + utf8(k) + utf8(`${k}=值`), 0);
          assert.deepEqual(await store.kvUsage("acme", "counter"), { bytes, keys: 5 });
        });

        it("compares the after cursor with the prefix in byte order, not UTF-16 order", async () => {
          // Every key under "～" sorts before "😀" in byte order, so nothing is after the cursor.
          assert.deepEqual(await store.kvList("acme", "counter", "～", "😀", 100), []);
        });
      });
    });

    describe("storage quota", () => {
      it("fails only the operation over maxBytes: its events take no id and the batch's other ids stay gap-free", async () => {
        const quota = { maxBytes: 20, maxKeys: 10 };
        await store.commit([{ mutations: [kvPut("k", "v0", quota)], events: [draft({ type: "storage.put", payload: '{"key":"k"}' })] }]);
        const results = await store.commit([
          { mutations: [kvPut("a", "1", quota)], events: [draft({ type: "storage.put", payload: '{"key":"a"}' })] },
          {
            mutations: [kvPut("k", "x".repeat(30), quota)],
            events: [draft({ type: "storage.rejected", payload: "{}" }), draft({ type: "storage.rejected", payload: "{}" })],
          },
          { mutations: [kvPut("c", "3", quota)], events: [draft({ type: "storage.put", payload: '{"key":"c"}' })] },
          eventsOp(draft({ type: "service.called" })),
        ]);
        assert.deepEqual(ids(okEvents(results[0])), [2]);
        const failed = results[1];
        assert.ok(failed && !failed.ok, "the operation over quota fails");
        assert.equal(failed.error.reason, "SOLO_ERR_STORAGE_QUOTA");
        assert.equal(failed.error.code, "resource_exhausted");
        // Usage before: k=v0 (3) + a=1 (2) = 5; replacing v0 with 30 bytes would make 5 - 3 + 31.
        assert.equal(failed.error.details.limit, 20);
        assert.equal(failed.error.details.would, 33);
        assert.deepEqual(ids(okEvents(results[2])), [3]);
        assert.deepEqual(ids(okEvents(results[3])), [4]);

        const stored = await store.queryEvents(ALL);
        assert.deepEqual(ids(stored), [1, 2, 3, 4]);
        assert.deepEqual(
          stored.filter((e) => e.type === "storage.rejected"),
          [],
        );
        assertChain(stored);
        assert.equal((await store.head()).id, 4);
        assert.equal(await store.kvGet("acme", "counter", "k"), "v0");
        assert.equal(await store.kvGet("acme", "counter", "a"), "1");
        assert.equal(await store.kvGet("acme", "counter", "c"), "3");
        assert.deepEqual(await store.kvUsage("acme", "counter"), { bytes: 7, keys: 3 });
      });

      it("keeps a write the database itself refuses to its own operation: the batch around it commits", async () => {
        // PostgreSQL text cannot hold U+0000 (the kernel refuses such keys at its edge too); SQLite
        // stores it. Either way, no other operation of the batch may fail with it.
        const results = await store.commit([
          { mutations: [kvPut("a", "1", ROOMY, "counter", "other")], events: [draft({ type: "storage.put" })] },
          { mutations: [kvPut("nul\u0000key", "2")], events: [draft({ type: "storage.put" })] },
          { mutations: [kvPut("c", "3", ROOMY, "counter", "third")], events: [draft({ type: "storage.put" })] },
        ]);
        assert.equal(results[0]?.ok, true);
        assert.equal(results[2]?.ok, true);
        const odd = results[1];
        if (odd && !odd.ok) assert.equal(odd.error.reason, "SOLO_ERR_STORE_UNAVAILABLE");
        assert.equal(await store.kvGet("other", "counter", "a"), "1");
        assert.equal(await store.kvGet("third", "counter", "c"), "3");
        const stored = await store.queryEvents(ALL);
        assert.deepEqual(ids(stored), odd?.ok ? [1, 2, 3] : [1, 2]);
        assertChain(stored);
      });

      it("allows filling to exactly maxBytes and rejects one byte more", async () => {
        const quota = { maxBytes: 10, maxKeys: 10 };
        assert.equal((await apply(store, kvPut("k", "123456789", quota))).ok, true);
        const over = await apply(store, kvPut("k", "1234567890", quota));
        assert.equal(over.ok ? "ok" : over.error.reason, "SOLO_ERR_STORAGE_QUOTA");
        assert.equal(await store.kvGet("acme", "counter", "k"), "123456789");
        assert.deepEqual(await store.kvUsage("acme", "counter"), { bytes: 10, keys: 1 });
      });

      it("rejects a new key beyond maxKeys but allows overwriting an existing one", async () => {
        const quota = { maxBytes: 1_000, maxKeys: 2 };
        await apply(store, kvPut("a", "1", quota), kvPut("b", "2", quota));
        const third = await apply(store, kvPut("c", "3", quota));
        assert.ok(!third.ok);
        assert.equal(third.error.reason, "SOLO_ERR_STORAGE_QUOTA");
        assert.equal(third.error.details.limit, 2);
        assert.equal(await store.kvGet("acme", "counter", "c"), undefined);
        assert.deepEqual(await apply(store, kvPut("a", "11", quota)), { ok: true, changed: true, events: [] });
        assert.deepEqual(await store.kvUsage("acme", "counter"), { bytes: 5, keys: 2 });
      });

      it("undoes every mutation of an operation when one of them is over quota", async () => {
        const quota = { maxBytes: 20, maxKeys: 10 };
        const [result] = await store.commit([
          {
            mutations: [
              { t: "deployment.put", deployment: deployment("counter", 1) },
              kvPut("x", "1", quota),
              kvPut("y", "z".repeat(40), quota),
            ],
            events: [draft({ type: "service.deployed" })],
          },
        ]);
        assert.equal(result?.ok ? "ok" : result?.error.reason, "SOLO_ERR_STORAGE_QUOTA");
        assert.equal(await store.kvGet("acme", "counter", "x"), undefined);
        assert.deepEqual(await store.kvUsage("acme", "counter"), { bytes: 0, keys: 0 });
        assert.deepEqual(await store.activeDeployments(), []);
        assert.deepEqual(await store.deploymentHistory("acme", "counter"), []);
        assert.deepEqual(await store.queryEvents(ALL), []);
        assert.deepEqual(await store.head(), { id: 0, timestamp: 0, hash: GENESIS_HASH });
      });
    });

    describe("opening", () => {
      it("rejects a store written by a newer schema with SOLO_ERR_STORE_SCHEMA_NEWER", async () => {
        const location = store.location;
        await store.close();
        await h.exec(FUTURE_SCHEMA[kind]);
        const err = await rejection(h.reopen());
        assert.equal(err.reason, "SOLO_ERR_STORE_SCHEMA_NEWER");
        assert.equal(err.code, "failed_precondition");
        assert.equal(err.details.found, 99);
        assert.ok(Number(err.details.supported) < 99, `supported: ${err.details.supported}`);
        assert.ok(err.message.includes(location), `the message names ${location}: ${err.message}`);
      });

      it("rejects a log whose last event was deleted with SOLO_ERR_STORE_CORRUPT (check log_head)", async () => {
        await store.commit([eventsOp(draft(), draft(), draft())]);
        const location = store.location;
        await store.close();
        await h.exec("DELETE FROM events WHERE id = 3");
        const err = await rejection(h.reopen());
        assert.equal(err.reason, "SOLO_ERR_STORE_CORRUPT");
        assert.equal(err.code, "data_loss");
        assert.equal(err.details.check, "log_head");
        assert.ok(err.message.includes(location), `the message names ${location}: ${err.message}`);
      });

      it("rejects a log whose last event was edited with SOLO_ERR_STORE_CORRUPT (check event_hash)", async () => {
        await store.commit([eventsOp(draft({ payload: '{"n":1}' }), draft({ payload: '{"n":2}' }))]);
        const location = store.location;
        await store.close();
        await h.exec(`UPDATE events SET payload = '{"n":3}' WHERE id = 2`);
        const err = await rejection(h.reopen());
        assert.equal(err.reason, "SOLO_ERR_STORE_CORRUPT");
        assert.equal(err.details.check, "event_hash");
        assert.ok(err.message.includes(location), `the message names ${location}: ${err.message}`);
      });
    });

    describe("close()", () => {
      it("rejects every later call with SOLO_ERR_STORE_CLOSED", async () => {
        await store.commit([eventsOp(draft())]);
        await store.close();
        const calls: Array<[string, Promise<unknown>]> = [
          ["commit", store.commit([eventsOp(draft())])],
          ["head", store.head()],
          ["queryEvents", store.queryEvents(ALL)],
          ["activeDeployments", store.activeDeployments()],
          ["deploymentHistory", store.deploymentHistory("acme", "counter")],
          ["latestVersions", store.latestVersions()],
          ["kvGet", store.kvGet("acme", "counter", "k")],
          ["kvList", store.kvList("acme", "counter", "", "", 10)],
          ["kvUsage", store.kvUsage("acme", "counter")],
        ];
        for (const [name, call] of calls) {
          const err = await rejection(call);
          assert.equal(err.reason, "SOLO_ERR_STORE_CLOSED", `${name}() after close: ${err.message}`);
          assert.equal(err.code, "unavailable");
        }
        // A second close is harmless, and the closed store's data is intact.
        await store.close();
        assert.equal((await (await h.reopen()).head()).id, 1);
      });

      it("lets commits already in flight finish before it resolves", async () => {
        const commits = Array.from({ length: 12 }, (_, i) => store.commit([eventsOp(draft({ payload: `{"i":${i}}` }))]));
        const states = commits.map(() => "pending");
        for (const [i, c] of commits.entries()) {
          c.then(
            () => {
              states[i] = "fulfilled";
            },
            (err: { reason?: string }) => {
              states[i] = `rejected ${err.reason}`;
            },
          );
        }
        await store.close();
        assert.deepEqual(states, Array(12).fill("fulfilled"));
        const again = await h.reopen();
        const stored = await again.queryEvents(ALL);
        assert.deepEqual(ids(stored), range(1, 12));
        assertChain(stored);
      });
    });
  });
}

// ---------------------------------------------------------------------------------------------
// SQLite

async function sqliteHarness(): Promise<Harness> {
  const dir = await mkdtemp(join(tmpdir(), "solo-store-"));
  const opened: Store[] = [];
  const open = async (): Promise<Store> => {
    const s = await openStore(dir, undefined);
    opened.push(s);
    return s;
  };
  const cleanup = async (): Promise<void> => {
    await Promise.all(opened.map((s) => s.close()));
    await rm(dir, { recursive: true, force: true });
  };
  try {
    const store = await open();
    return {
      store,
      reopen: open,
      async exec(sql) {
        const db = new DatabaseSync(store.location);
        try {
          db.exec(sql);
        } finally {
          db.close();
        }
      },
      cleanup,
    };
  } catch (err) {
    await cleanup();
    throw err;
  }
}

// ---------------------------------------------------------------------------------------------
// PostgreSQL

/** Runs SQL on a database over a connection of its own, as an operator would. */
async function psql(url: string, sql: string): Promise<void> {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    await client.query(sql);
  } finally {
    await client.end();
  }
}

/**
 * A store on the PostgreSQL database at `url`, emptied first: creating a database per case costs
 * 100-300 ms, dropping the schema a few ms, so the backend's cases share one database.
 */
async function postgresHarness(url: string): Promise<Harness> {
  await psql(url, "DROP SCHEMA public CASCADE; CREATE SCHEMA public");
  const opened: Store[] = [];
  const open = async (): Promise<Store> => {
    const s = await openStore("unused", url);
    opened.push(s);
    return s;
  };
  const cleanup = async (): Promise<void> => {
    await Promise.all(opened.map((s) => s.close()));
  };
  return { store: await open(), reopen: open, exec: (sql) => psql(url, sql), cleanup };
}

let postgresSkip: string | undefined;
let postgresMissingInCi: unknown;
try {
  postgresSkip = await postgresSkipReason();
} catch (err) {
  postgresMissingInCi = err;
}

// The two backends run side by side (each one's cases in order), which halves the suite's time.
const sideBySide = { concurrency: true };
const inOrder = { concurrency: 1 };

describe("Store", sideBySide, () => {
  describe("SQLite store", inOrder, () => {
    storeConformance("sqlite", sqliteHarness);

    describe("opening (SQLite only)", () => {
      for (const [what, bytes] of [
        ["a text file", Buffer.from("these are my notes, not a database\n".repeat(200))],
        ["random bytes", randomBytes(8192)],
      ] as const) {
        it(`rejects a file of ${what} with SOLO_ERR_STORE_CORRUPT naming the file`, async (t) => {
          const h = await sqliteHarness();
          t.after(h.cleanup);
          const file = h.store.location;
          await h.store.close();
          await rm(`${file}-wal`, { force: true });
          await rm(`${file}-shm`, { force: true });
          await writeFile(file, bytes);
          const err = await rejection(h.reopen());
          assert.equal(err.reason, "SOLO_ERR_STORE_CORRUPT");
          assert.equal(err.code, "data_loss");
          assert.equal(err.details.file, file);
          assert.ok(err.message.includes(file), `the message names ${file}: ${err.message}`);
        });
      }

      it("rejects a path in a missing directory with SOLO_ERR_STORE_OPEN", async () => {
        const file = join(tmpdir(), `solo-missing-${randomBytes(6).toString("hex")}`, "solo.db");
        const err = await rejection(openSqliteStore(file));
        assert.equal(err.reason, "SOLO_ERR_STORE_OPEN");
        assert.equal(err.details.file, file);
        assert.ok(err.message.includes(file), `the message names ${file}: ${err.message}`);
      });
    });
  });

  describe("PostgreSQL store", { ...inOrder, skip: postgresSkip ?? false }, () => {
    let db: TestDatabase | undefined;
    before(async () => {
      // With CI=true and no server, every case below fails with this error instead of skipping.
      if (postgresMissingInCi !== undefined) throw postgresMissingInCi;
      db = await createTestDatabase();
    });
    after(async () => {
      await db?.drop();
    });
    const harness = (): Promise<Harness> => {
      assert.ok(db, "the test database was created");
      return postgresHarness(db.url);
    };

    storeConformance("postgres", harness);

    describe("opening (PostgreSQL only)", () => {
      it("rejects an unreachable server with SOLO_ERR_STORE_OPEN", async () => {
        const err = await rejection(openPostgresStore("postgres://postgres@127.0.0.1:1/solo"));
        assert.equal(err.reason, "SOLO_ERR_STORE_OPEN");
        assert.equal(err.code, "failed_precondition");
        assert.equal(err.details.database, "postgres://postgres@127.0.0.1:1/solo");
        assert.ok(err.message.includes("127.0.0.1:1"), err.message);
      });

      it("rejects a second store on the same database with SOLO_ERR_STORE_LOCKED until the first closes", async (t) => {
        const h = await harness();
        t.after(h.cleanup);
        await h.store.commit([eventsOp(draft())]);
        const err = await rejection(h.reopen());
        assert.equal(err.reason, "SOLO_ERR_STORE_LOCKED");
        assert.equal(err.code, "failed_precondition");
        assert.equal(err.details.database, h.store.location);
        // The first store is unaffected by the refused second one.
        assert.equal(okEvents((await h.store.commit([eventsOp(draft())]))[0])[0]?.id, 2);
        await h.store.close();
        const second = await h.reopen();
        assert.equal((await second.head()).id, 2);
      });
    });
  });
});
