// Query latency: the last 100 events of one tenant out of 1,000,000 events across 100 tenants, on
// SQLite and on PostgreSQL, through EventLog.query and through store.queryEvents, against the same
// query with no tenant filter (the last 100 events overall) measured alternately in the same run.
//
// The log is seeded through store.commit, one operation of 10,000 events per commit, so every
// event has its real id, timestamp and hash chain. Each answer is checked (100 events, all of the
// tenant, newest first); the query plan and the time to reopen the store over the seeded log are
// printed for context.
import { mkdtempSync, rmSync } from "node:fs";
import { availableParallelism, tmpdir } from "node:os";
import { join } from "node:path";
import { DatabaseSync } from "node:sqlite";
import pg from "pg";
import { EventLog } from "../../src/kernel/log/event-log.ts";
import { openPostgresStore } from "../../src/store/postgres/postgres-store.ts";
import { eventQuery } from "../../src/store/sql.ts";
import { openSqliteStore } from "../../src/store/sqlite/sqlite-store.ts";
import type { EventFilter, Store } from "../../src/store/store.ts";
import { fmtMs, fmtRate, fmtRatio, median, percentile, printTable } from "../stats.ts";
import {
  BENCH_POSTGRES_URL,
  createBenchDatabase,
  draftsOf,
  eventInputs,
  postgresUnreachable,
  prng,
  redactUrl,
  TENANTS,
} from "./store-fixtures.ts";

const TOTAL_EVENTS = 1_000_000;
const EVENTS_PER_COMMIT = 10_000;
const LIMIT = 100;
const WARMUP_QUERIES = 20;
const QUERIES = 200;

type Backend = "sqlite" | "postgres";

interface Seeded {
  readonly ms: number;
  readonly commitMs: number;
}

interface Timings {
  readonly tenant: Float64Array;
  readonly overall: Float64Array;
}

interface BackendResult {
  readonly backend: Backend;
  readonly seeded: Seeded;
  readonly log: Timings;
  readonly store: Timings;
  readonly wrongAnswers: number;
  readonly plan: string;
  readonly reopenMs: number;
}

/** Appends TOTAL_EVENTS events, one operation of EVENTS_PER_COMMIT events per store.commit. */
async function seed(store: Store, backend: Backend): Promise<Seeded> {
  let commitMs = 0;
  const started = performance.now();
  for (let c = 0; c < TOTAL_EVENTS / EVENTS_PER_COMMIT; c++) {
    const events = draftsOf(eventInputs(EVENTS_PER_COMMIT, c + 1));
    const t = performance.now();
    const [result] = await store.commit([{ mutations: [], events }]);
    commitMs += performance.now() - t;
    if (!result?.ok) throw new Error(`seeding commit ${c} failed: ${JSON.stringify(result)}`);
  }
  const ms = performance.now() - started;
  console.log(`  ${backend}: seeded ${TOTAL_EVENTS} events in ${fmtMs(ms)}`);
  return { ms, commitMs };
}

const tenantFilter = (tenant: string): EventFilter => ({ tenant, order: "desc", limit: LIMIT });
const OVERALL: EventFilter = { order: "desc", limit: LIMIT };

/** Whether rows are LIMIT events, all of `tenant` (when given), ids strictly descending. */
function rightAnswer(rows: ReadonlyArray<{ id: number; tenant: string | null }>, tenant: string | undefined): boolean {
  if (rows.length !== LIMIT) return false;
  for (let i = 0; i < rows.length; i++) {
    const r = rows[i] as { id: number; tenant: string | null };
    if (tenant !== undefined && r.tenant !== tenant) return false;
    if (i > 0 && r.id >= (rows[i - 1] as { id: number }).id) return false;
  }
  return true;
}

/** Queries random tenants, alternating the tenant query and the overall one (which goes first alternates too). */
async function measure(
  run: (filter: EventFilter) => Promise<ReadonlyArray<{ id: number; tenant: string | null }>>,
  count: number,
  seedValue: number,
): Promise<Timings & { wrong: number }> {
  const rand = prng(seedValue);
  const tenant = new Float64Array(count);
  const overall = new Float64Array(count);
  let wrong = 0;
  const timed = async (filter: EventFilter, into: Float64Array, i: number): Promise<void> => {
    const started = performance.now();
    const rows = await run(filter);
    into[i] = performance.now() - started;
    if (!rightAnswer(rows, filter.tenant ?? undefined)) wrong++;
  };
  for (let i = 0; i < count; i++) {
    const t = `tenant${Math.floor(rand() * TENANTS)}`;
    if (i % 2 === 0) {
      await timed(tenantFilter(t), tenant, i);
      await timed(OVERALL, overall, i);
    } else {
      await timed(OVERALL, overall, i);
      await timed(tenantFilter(t), tenant, i);
    }
  }
  return { tenant, overall, wrong };
}

async function queries(store: Store): Promise<{ log: Timings; store: Timings; wrong: number }> {
  const log = await EventLog.open(store);
  try {
    await measure((f) => log.query(f), WARMUP_QUERIES, 1);
    await measure((f) => store.queryEvents(f), WARMUP_QUERIES, 2);
    const viaLog = await measure((f) => log.query(f), QUERIES, 3);
    const viaStore = await measure((f) => store.queryEvents(f), QUERIES, 4);
    return { log: viaLog, store: viaStore, wrong: viaLog.wrong + viaStore.wrong };
  } finally {
    await log.close();
  }
}

// ---- the two backends -----------------------------------------------------------------------

console.log(
  `store-query: ${availableParallelism()} cores; ${TOTAL_EVENTS} events over ${TENANTS} tenants seeded through store.commit (${EVENTS_PER_COMMIT} events per commit); ${QUERIES} queries of the last ${LIMIT} events per path after ${WARMUP_QUERIES} warm-up, random tenants, the tenant query and the overall one alternating`,
);

const results: BackendResult[] = [];
const skipped = new Map<Backend, string>();
const sample = eventQuery(tenantFilter("tenant0"), () => "?");

const dir = mkdtempSync(join(tmpdir(), "solo-bench-"));
try {
  const path = join(dir, "solo.db");
  const store = await openSqliteStore(path);
  let seeded: Seeded;
  let measured: Awaited<ReturnType<typeof queries>>;
  try {
    seeded = await seed(store, "sqlite");
    measured = await queries(store);
  } finally {
    await store.close();
  }
  // The store holds its file exclusively while open, so the plan is read after it closes.
  const db = new DatabaseSync(path, { readOnly: true });
  const plan = (db.prepare(`EXPLAIN QUERY PLAN ${sample.text}`).all(...sample.values) as Array<{ detail: string }>)
    .map((r) => r.detail)
    .join("; ");
  db.close();
  const reopenStarted = performance.now();
  const reopened = await openSqliteStore(path);
  const reopenMs = performance.now() - reopenStarted;
  await reopened.close();
  results.push({
    backend: "sqlite",
    seeded,
    log: measured.log,
    store: measured.store,
    wrongAnswers: measured.wrong,
    plan,
    reopenMs,
  });
} finally {
  rmSync(dir, { recursive: true, force: true });
}

const unreachable = await postgresUnreachable();
if (unreachable !== undefined) skipped.set("postgres", unreachable);
else {
  const database = await createBenchDatabase();
  try {
    console.log(`  postgres: database ${database.name} on ${redactUrl(BENCH_POSTGRES_URL)}`);
    const store = await openPostgresStore(database.url);
    let seeded: Seeded;
    let measured: Awaited<ReturnType<typeof queries>>;
    let plan: string;
    try {
      seeded = await seed(store, "postgres");
      measured = await queries(store);
      const client = new pg.Client({ connectionString: database.url });
      await client.connect();
      try {
        const pgSample = eventQuery(tenantFilter("tenant0"), (n) => `$${n}`);
        const rows = (await client.query(`EXPLAIN ${pgSample.text}`, pgSample.values)).rows as Array<Record<string, string>>;
        plan = rows.map((r) => String(Object.values(r)[0]).trim()).join("; ");
      } finally {
        await client.end();
      }
    } finally {
      await store.close();
    }
    const reopenStarted = performance.now();
    const reopened = await openPostgresStore(database.url);
    const reopenMs = performance.now() - reopenStarted;
    await reopened.close();
    results.push({
      backend: "postgres",
      seeded,
      log: measured.log,
      store: measured.store,
      wrongAnswers: measured.wrong,
      plan,
      reopenMs,
    });
  } finally {
    await database.drop();
  }
}

// ---- report ---------------------------------------------------------------------------------

const rows: string[][] = [["backend", "path", "query", "median", "p99", "baseline median", "baseline p99", "ratio", "target", "verdict"]];
for (const r of results) {
  for (const [path, t] of [
    ["EventLog.query", r.log],
    ["store.queryEvents", r.store],
  ] as const) {
    const m = median(t.tenant);
    const b = median(t.overall);
    rows.push([
      r.backend,
      path,
      `one tenant, last ${LIMIT}`,
      fmtMs(m),
      fmtMs(percentile(t.tenant, 99)),
      fmtMs(b),
      fmtMs(percentile(t.overall, 99)),
      fmtRatio(m / b),
      "-",
      "",
    ]);
  }
}
for (const [backend, reason] of skipped) rows.push([backend, `skipped: ${reason}`, "", "", "", "", "", "", "", ""]);

console.log("");
printTable(rows);
console.log(
  `baseline = the same path and query with no tenant filter (the last ${LIMIT} events overall), measured alternately with it; ratio = median / baseline median (1.00x: the tenant filter costs nothing)`,
);
console.log("");
printTable([
  ["backend", "seeded", "events/s", "of which in store.commit", "reopen over the seeded log"],
  ...results.map((r) => [
    r.backend,
    `${TOTAL_EVENTS} in ${fmtMs(r.seeded.ms)}`,
    fmtRate(TOTAL_EVENTS / (r.seeded.ms / 1000)),
    fmtMs(r.seeded.commitMs),
    fmtMs(r.reopenMs),
  ]),
]);
console.log("seeding time includes building and validating the drafts; reopen = open*Store() on the seeded data, closed again");
for (const r of results) console.log(`plan (${r.backend}): ${r.plan}`);
for (const r of results) {
  console.log(
    r.wrongAnswers === 0
      ? `check (${r.backend}): every answer had ${LIMIT} events of the right tenant, newest first`
      : `CHECK FAILED (${r.backend}): ${r.wrongAnswers} answers were not ${LIMIT} events of the right tenant, newest first`,
  );
}
if (results.some((r) => r.wrongAnswers > 0)) process.exitCode = 1;
