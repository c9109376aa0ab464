// Shared fixtures of the store benchmarks: realistic small events, a throwaway PostgreSQL database,
// a pass-through store that records the size and duration of every commit, and the baselines'
// direct inserts (node:sqlite / pg, same schema, one transaction, no hashing).
import { DatabaseSync } from "node:sqlite";
import pg from "pg";
import { draft, type EventInput } from "../../src/kernel/log/event-log.ts";
import { redact } from "../../src/store/postgres/postgres-store.ts";
import { POSTGRES_MIGRATIONS } from "../../src/store/postgres/schema.ts";
import { createScratchDatabase, type ScratchDatabase, unreachable } from "../../src/store/postgres/scratch-database.ts";
import { EVENT_COLUMNS } from "../../src/store/sql.ts";
import { SQLITE_MIGRATIONS } from "../../src/store/sqlite/schema.ts";
import type { EventDraft, Store } from "../../src/store/store.ts";
import { prng } from "../../test/support/helpers.ts";

/** The server the benchmarks create their databases on. */
export const BENCH_POSTGRES_URL = process.env.SOLO_BENCH_POSTGRES_URL ?? "postgres://postgres@127.0.0.1:5432/postgres";

/** The URL without its password, for printing. */
export const redactUrl = redact;

// ---- events ---------------------------------------------------------------------------------

export const TENANTS = 100;
const SERVICES_PER_TENANT = 50;

export { prng };

/**
 * `count` events as services append them: a tenant among {@link TENANTS}, half `service_deployed`
 * and half `svc.counter.counted`, a service name as subject, a payload of about 100 bytes of JSON.
 */
export function eventInputs(count: number, seed: number): EventInput[] {
  const rand = prng(seed);
  const out: EventInput[] = [];
  for (let i = 0; i < count; i++) {
    const tenant = `tenant${Math.floor(rand() * TENANTS)}`;
    const service = `svc${Math.floor(rand() * SERVICES_PER_TENANT)}`;
    const n = Math.floor(rand() * 1_000_000);
    out.push(
      i % 2 === 0
        ? {
            tenant,
            type: "service_deployed",
            subject: service,
            payload: { version: 1 + (n % 20), codeBytes: 800 + (n % 4000), codeSha256: hex64(n), handlers: ["handleCall"] },
          }
        : {
            tenant,
            type: "svc.counter.counted",
            subject: "counter",
            payload: { count: n, by: `client-${n % 997}`, note: "incremented from the benchmark", window: [n, n + 60_000] },
          },
    );
  }
  return out;
}

function hex64(n: number): string {
  return `${n.toString(16).padStart(8, "0")}9e3779b97f4a7c15`.repeat(4).slice(0, 64);
}

/** The drafts an appender's inputs become (validated, payload canonical), for the baselines. */
export function draftsOf(inputs: readonly EventInput[]): EventDraft[] {
  const wallTime = Date.now();
  return inputs.map((e) => draft(e, wallTime));
}

/** Average payload bytes of canonical JSON. */
export function meanPayloadBytes(drafts: readonly EventDraft[]): number {
  let sum = 0;
  for (const d of drafts) sum += Buffer.byteLength(d.payload);
  return sum / Math.max(1, drafts.length);
}

// ---- a store that records its commits --------------------------------------------------------

/** What one commit carried and how long it took, as the event log saw it (send to durable reply). */
export interface CommitSample {
  readonly ops: number;
  readonly events: number;
  readonly ms: number;
}

/**
 * Wraps a store, recording every commit's size and duration; everything else passes through.
 * Costs two performance.now() calls per commit, not per event.
 */
export function recordingStore(inner: Store): { store: Store; samples: CommitSample[] } {
  const samples: CommitSample[] = [];
  const store: Store = {
    kind: inner.kind,
    location: inner.location,
    async commit(ops) {
      const started = performance.now();
      const results = await inner.commit(ops);
      let events = 0;
      for (const op of ops) events += op.events.length;
      samples.push({ ops: ops.length, events, ms: performance.now() - started });
      return results;
    },
    head: () => inner.head(),
    queryEvents: (filter) => inner.queryEvents(filter),
    activeDeployments: () => inner.activeDeployments(),
    deploymentHistory: (tenant, service) => inner.deploymentHistory(tenant, service),
    latestVersions: () => inner.latestVersions(),
    kvGet: (tenant, service, key) => inner.kvGet(tenant, service, key),
    kvList: (tenant, service, prefix, after, limit) => inner.kvList(tenant, service, prefix, after, limit),
    kvUsage: (tenant, service) => inner.kvUsage(tenant, service),
    tenants: () => inner.tenants(),
    logLines: () => inner.logLines(),
    tokens: () => inner.tokens(),
    vaultKeys: () => inner.vaultKeys(),
    secret: (tenant, name) => inner.secret(tenant, name),
    secrets: (tenant) => inner.secrets(tenant),
    secretsNotUnder: (keyId, limit) => inner.secretsNotUnder(keyId, limit),
    close: () => inner.close(),
  };
  return { store, samples };
}

// ---- PostgreSQL ----------------------------------------------------------------------------

/** A database created for one benchmark run. */
export type BenchDatabase = ScratchDatabase;

/** Undefined when the server answers, otherwise why the PostgreSQL rows are skipped. */
export function postgresUnreachable(): Promise<string | undefined> {
  return unreachable(BENCH_POSTGRES_URL, "SOLO_BENCH_POSTGRES_URL");
}

/** Creates a fresh, empty database `solo_bench_<pid>_<random hex>`. */
export function createBenchDatabase(): Promise<BenchDatabase> {
  return createScratchDatabase(BENCH_POSTGRES_URL, "solo_bench");
}

// ---- baselines: the engine's own limit ------------------------------------------------------

// Stands in for prev_hash and hash, so baseline rows are as wide as ours without hashing anything.
const FAKE_HASH = "f".repeat(64);

/** The i-th draft as a baseline row (event i + 1), in EVENT_COLUMNS order. */
function rawRow(d: EventDraft, i: number, micros: number): Array<string | number | null> {
  return [i + 1, micros + i, d.wallTime, d.tenant, d.type, d.subject, d.payload, d.causationId, d.correlationId, FAKE_HASH, FAKE_HASH];
}

/**
 * Inserts `drafts` as events 1..n into a fresh SQLite file at `path` (configured as the store
 * configures its file: exclusive locking, WAL, synchronous=FULL; the store's own schema and indexes) with one prepared statement, `perTx` rows per transaction (all
 * of them in one by default), no hashing. Returns the milliseconds from the first BEGIN to the end
 * of the last COMMIT.
 */
export function sqliteRawInsert(path: string, drafts: readonly EventDraft[], perTx = drafts.length): number {
  const db = new DatabaseSync(path);
  try {
    db.exec("PRAGMA locking_mode = EXCLUSIVE");
    db.exec("PRAGMA journal_mode = WAL");
    db.exec("PRAGMA synchronous = FULL");
    db.exec("PRAGMA wal_autocheckpoint = 4000");
    db.exec(SQLITE_MIGRATIONS[0] as string);
    const insert = db.prepare(`INSERT INTO events (${EVENT_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`);
    const micros = Date.now() * 1000;
    const started = performance.now();
    for (let from = 0; from < drafts.length; from += perTx) {
      db.exec("BEGIN IMMEDIATE");
      for (let i = from; i < Math.min(from + perTx, drafts.length); i++) {
        insert.run(...rawRow(drafts[i] as EventDraft, i, micros));
      }
      db.exec("COMMIT");
    }
    return performance.now() - started;
  } finally {
    db.close();
  }
}

// Rows per INSERT statement of the PostgreSQL baseline: the statement size the store itself uses.
const ROWS_PER_STATEMENT = 5000;

/**
 * Inserts `drafts` as events 1..n into the database at `url`, on tables freshly made with the
 * store's own schema and indexes, `perTx` rows per transaction (all of them in one by default),
 * as INSERT ... SELECT FROM unnest of eleven column arrays of at most 5000 rows each,
 * synchronous_commit on, no hashing. Returns the milliseconds from building the first arrays to
 * the end of the last COMMIT.
 */
export async function postgresRawInsert(url: string, drafts: readonly EventDraft[], perTx = drafts.length): Promise<number> {
  const client = new pg.Client({ connectionString: url });
  client.on("error", () => undefined);
  await client.connect();
  try {
    await client.query("SET synchronous_commit = on");
    await client.query("DROP TABLE IF EXISTS events, log_head, deployment_versions, deployments, kv, kv_usage");
    await client.query(POSTGRES_MIGRATIONS[0] as string);
    const insert = `INSERT INTO events (${EVENT_COLUMNS}) SELECT * FROM unnest($1::bigint[], $2::bigint[], $3::bigint[], $4::text[], $5::text[], $6::text[], $7::text[], $8::bigint[], $9::text[], $10::text[], $11::text[])`;
    const micros = Date.now() * 1000;
    const started = performance.now();
    for (let tx = 0; tx < drafts.length; tx += perTx) {
      const txEnd = Math.min(tx + perTx, drafts.length);
      await client.query("BEGIN");
      for (let from = tx; from < txEnd; from += ROWS_PER_STATEMENT) {
        const n = Math.min(ROWS_PER_STATEMENT, txEnd - from);
        const cols: unknown[][] = Array.from({ length: 11 }, () => new Array<unknown>(n));
        for (let k = 0; k < n; k++) {
          const i = from + k;
          const row = rawRow(drafts[i] as EventDraft, i, micros);
          for (let c = 0; c < 11; c++) (cols[c] as unknown[])[k] = row[c];
        }
        await client.query(insert, cols);
      }
      await client.query("COMMIT");
    }
    return performance.now() - started;
  } finally {
    await client.end();
  }
}
