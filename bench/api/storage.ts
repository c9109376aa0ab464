// A service's durable key-value storage: solo.storage.put and .get latency (median, p99) and
// throughput, with 1 caller and with 64 concurrent callers, each call doing one put or one get,
// on SQLite and on PostgreSQL. Measured from the embedder as kernel.call round trips. A service
// handles one message at a time, so the 64 callers each call a service of their own (kv0..kv63),
// whose writes the event log may commit together.
//
// Baselines in the same run, rounds alternating with ours: the same single-row upsert (one
// transaction per put, autocommit) and point select on a table of the store's own schema, done
// directly: node:sqlite DatabaseSync (exclusive locking, WAL, synchronous=FULL, as the store
// configures its file) in a separate file, and pg on a scratch database. node:sqlite is
// synchronous, so its 64 callers take turns on the one connection; pg's share a pool of 16.
// For context, a call that does no storage operation at all (the call's own cost).
import { mkdtempSync, rmSync } from "node:fs";
import { availableParallelism, loadavg, tmpdir } from "node:os";
import { join } from "node:path";
import { DatabaseSync } from "node:sqlite";
import pg from "pg";
import { type Kernel, openKernel } from "../../src/index.ts";
import { POSTGRES_MIGRATIONS } from "../../src/store/postgres/schema.ts";
import { SQLITE_MIGRATIONS } from "../../src/store/sqlite/schema.ts";
import { BENCH_POSTGRES_URL, createBenchDatabase, postgresUnreachable, redactUrl } from "../internals/store-fixtures.ts";
import { fmtMs, fmtRate, fmtRatio, median, percentile, pooled, printTable } from "../stats.ts";

// Without an explicit database the kernel would use $SOLO_DATABASE_URL: the SQLite rows are SQLite's.
delete process.env.SOLO_DATABASE_URL;

const TENANT = "bench";
const SERVICES = 64;
// Per service; few enough that the puts before the gets write every one of them.
const KEYS = 64;
const CALLERS = [1, 64] as const;
const RAW_PG_POOL = 16;
const ROUNDS = 5;
// Each measured round is sized from the warm-up rate to last about this long, within the bounds.
const ROUND_MS = 250;
const WARMUP_MS = 150;
const MIN_ROUND_OPS = 100;
const MAX_ROUND_OPS = 50_000;

const SERVICE = `export default {
  init() { return 0; },
  async handleCall(req, n) {
    if (req[0] === "put") { await solo.storage.put(req[1], req[2]); return { reply: null, state: n + 1 }; }
    if (req[0] === "get") return { reply: (await solo.storage.get(req[1])) ?? null, state: n + 1 };
    return { reply: null, state: n + 1 };
  },
};`;

type Op = "put" | "get" | "noop";
type Backend = "sqlite" | "postgres";

/** One operation of caller `caller` (0..63), the `i`-th it makes. */
type Subject = (op: Op, caller: number, i: number) => Promise<unknown>;

interface Round {
  readonly rate: number;
  readonly latencies: Float64Array;
}

const keyOf = (i: number): string => `key-${i % KEYS}`;
const valueFor = (caller: number, i: number): { n: number; by: string; note: string } => ({
  n: i,
  by: `caller-${caller}`,
  note: "a small JSON value, about 70 bytes",
});

/** `count` operations spread over `callers` lanes, each awaiting one at a time. */
async function round(subject: Subject, op: Op, callers: number, count: number): Promise<Round> {
  const latencies = new Float64Array(count);
  const perCaller = Math.ceil(count / callers);
  let done = 0;
  const lane = async (caller: number): Promise<void> => {
    for (let j = 0; j < perCaller; j++) {
      const at = done++;
      if (at >= count) return;
      const i = (counters[caller] ?? 0) + 1;
      counters[caller] = i;
      const started = performance.now();
      await subject(op, caller, i);
      latencies[at] = performance.now() - started;
    }
  };
  const started = performance.now();
  await Promise.all(Array.from({ length: callers }, (_, c) => lane(c)));
  return { rate: count / ((performance.now() - started) / 1000), latencies };
}
// Per caller, the number of its operations so far: puts cycle through its keys.
const counters: number[] = [];

// ---- ours ----------------------------------------------------------------------------------

/** Per service: the value each key must hold (the last put that resolved), to check every get. */
const expected: Map<string, number>[] = Array.from({ length: SERVICES }, () => new Map());
let mismatches = 0;
let unwritten = 0;
let gets = 0;

function ours(kernel: Kernel): Subject {
  return async (op, caller, i) => {
    const service = `kv${caller}`;
    const key = keyOf(i);
    if (op === "put") {
      const value = valueFor(caller, i);
      await kernel.call(TENANT, service, ["put", key, value]);
      expected[caller]?.set(key, value.n);
    } else if (op === "get") {
      const got = (await kernel.call(TENANT, service, ["get", key])) as { n: number } | null;
      const want = expected[caller]?.get(key);
      gets++;
      if (want === undefined) unwritten++;
      else if (got?.n !== want) mismatches++;
    } else await kernel.call(TENANT, service, ["noop"]);
  };
}

async function openOurs(backend: Backend, database?: string): Promise<{ kernel: Kernel; dataDir: string }> {
  const dataDir = mkdtempSync(join(tmpdir(), "solo-bench-"));
  const kernel = await openKernel(database ? { dataDir, database } : { dataDir });
  if (kernel.store.kind !== backend) throw new Error(`expected a ${backend} store, got ${kernel.store.kind}`);
  await kernel.tenants.create(TENANT, { limits: { maxServices: SERVICES + 1 } });
  for (let at = 0; at < SERVICES; at += 8) {
    await Promise.all(
      Array.from({ length: Math.min(8, SERVICES - at) }, (_, k) =>
        kernel.deploy({ tenant: TENANT, service: `kv${at + k}`, code: SERVICE, grants: { storage: true } }),
      ),
    );
  }
  for (const e of expected) e.clear();
  return { kernel, dataDir };
}

// ---- the raw baselines ----------------------------------------------------------------------

const UPSERT_SQLITE =
  "INSERT INTO kv (tenant, service, key, value) VALUES (?, ?, ?, ?) ON CONFLICT (tenant, service, key) DO UPDATE SET value = excluded.value";
const SELECT_SQLITE = "SELECT value FROM kv WHERE tenant = ? AND service = ? AND key = ?";
const UPSERT_PG =
  "INSERT INTO kv (tenant, service, key, value) VALUES ($1, $2, $3, $4) ON CONFLICT (tenant, service, key) DO UPDATE SET value = excluded.value";
const SELECT_PG = "SELECT value FROM kv WHERE tenant = $1 AND service = $2 AND key = $3";

function rawSqlite(path: string): { subject: Subject; close: () => void } {
  const db = new DatabaseSync(path);
  db.exec("PRAGMA locking_mode = EXCLUSIVE");
  db.exec("PRAGMA journal_mode = WAL");
  db.exec("PRAGMA synchronous = FULL");
  db.exec("PRAGMA wal_autocheckpoint = 4000");
  db.exec(SQLITE_MIGRATIONS[0] as string);
  const put = db.prepare(UPSERT_SQLITE);
  const get = db.prepare(SELECT_SQLITE);
  const subject: Subject = async (op, caller, i) => {
    if (op === "put") put.run(TENANT, `kv${caller}`, keyOf(i), JSON.stringify(valueFor(caller, i)));
    else if (op === "get") {
      const row = get.get(TENANT, `kv${caller}`, keyOf(i)) as { value: string } | undefined;
      if (row) JSON.parse(row.value);
    }
  };
  return { subject, close: () => db.close() };
}

async function rawPostgres(url: string): Promise<{ subjects: Map<number, Subject>; close: () => Promise<void> }> {
  const setup = new pg.Client({ connectionString: url });
  setup.on("error", () => undefined);
  await setup.connect();
  await setup.query(POSTGRES_MIGRATIONS[0] as string);
  await setup.end();
  const pools: pg.Pool[] = [];
  const subjects = new Map<number, Subject>();
  for (const callers of CALLERS) {
    const pool = new pg.Pool({ connectionString: url, max: Math.min(callers, RAW_PG_POOL), application_name: "solo-bench-raw" });
    pool.on("error", () => undefined);
    pools.push(pool);
    subjects.set(callers, async (op, caller, i) => {
      if (op === "put") {
        await pool.query({ name: "put", text: UPSERT_PG, values: [TENANT, `kv${caller}`, keyOf(i), JSON.stringify(valueFor(caller, i))] });
      } else if (op === "get") {
        const r = await pool.query<{ value: string }>({ name: "get", text: SELECT_PG, values: [TENANT, `kv${caller}`, keyOf(i)] });
        const row = r.rows[0];
        if (row) JSON.parse(row.value);
      }
    });
  }
  return { subjects, close: async () => void (await Promise.all(pools.map((p) => p.end()))) };
}

// ---- measurement ----------------------------------------------------------------------------

interface Config {
  readonly op: Op;
  readonly callers: number;
  readonly ours: Round[];
  readonly raw: Round[];
}

interface BackendResult {
  readonly backend: Backend;
  readonly configs: Config[];
}

/** Puts every key of every service, one lane per service. */
async function fill(subject: Subject): Promise<void> {
  await Promise.all(
    Array.from({ length: SERVICES }, async (_, caller) => {
      for (let i = 0; i < KEYS; i++) await subject("put", caller, i);
    }),
  );
}

/** Rounds of `count` operations sized to last about `ms`, from a measured rate. */
const sized = (rate: number, ms: number): number => Math.min(MAX_ROUND_OPS, Math.max(MIN_ROUND_OPS, Math.round((rate * ms) / 1000)));

async function measure(backend: Backend, ourSubject: Subject, rawSubject: (callers: number) => Subject): Promise<BackendResult> {
  const configs: Config[] = [];
  for (const op of ["put", "get", "noop"] as const) {
    // Before the gets, every key of every service is written (untimed), so each get finds a value.
    if (op === "get") {
      await fill(ourSubject);
      await fill(rawSubject(SERVICES));
    }
    for (const callers of CALLERS) {
      const raw = op === "noop" ? undefined : rawSubject(callers);
      // A short probe for the rate, then a warm-up of about WARMUP_MS, then the rounds.
      const probe = await round(ourSubject, op, callers, Math.max(callers * 2, 50));
      const ourWarm = await round(ourSubject, op, callers, sized(probe.rate, WARMUP_MS));
      const rawWarm = raw ? await round(raw, op, callers, sized((await round(raw, op, callers, 200)).rate, WARMUP_MS)) : undefined;
      const config: Config = { op, callers, ours: [], raw: [] };
      for (let r = 0; r < ROUNDS; r++) {
        // Which goes first alternates, so neither always follows the other's (checkpoint, GC) debris.
        if (raw && rawWarm && r % 2 === 1) config.raw.push(await round(raw, op, callers, sized(rawWarm.rate, ROUND_MS)));
        config.ours.push(await round(ourSubject, op, callers, sized(ourWarm.rate, ROUND_MS)));
        if (raw && rawWarm && r % 2 === 0) config.raw.push(await round(raw, op, callers, sized(rawWarm.rate, ROUND_MS)));
      }
      configs.push(config);
    }
  }
  const line = configs.map((c) => `${c.op}/${c.callers}: ${fmtRate(median(c.ours.map((x) => x.rate)))}`).join(", ");
  console.log(`  ${backend}: ${line}`);
  return { backend, configs };
}

console.log(
  `storage: ${availableParallelism()} cores (load average ${loadavg()[0]?.toFixed(2)}); ${SERVICES} services of one tenant, ${KEYS} keys each, values of about ${JSON.stringify(valueFor(63, 999)).length} bytes of JSON; per configuration ${ROUNDS} rounds of about ${ROUND_MS} ms after a warm-up, ours and raw alternating`,
);

const results: BackendResult[] = [];
const skipped = new Map<Backend, string>();

{
  const { kernel, dataDir } = await openOurs("sqlite");
  const raw = rawSqlite(join(dataDir, "raw-baseline.db"));
  try {
    results.push(await measure("sqlite", ours(kernel), () => raw.subject));
  } finally {
    raw.close();
    await kernel.close();
    rmSync(dataDir, { recursive: true, force: true });
  }
}

const unreachable = await postgresUnreachable();
if (unreachable !== undefined) {
  skipped.set("postgres", unreachable);
  console.log(`  postgres: SKIPPED, ${unreachable}`);
} else {
  const oursDb = await createBenchDatabase();
  const rawDb = await createBenchDatabase();
  try {
    console.log(`  postgres: databases ${oursDb.name} (ours) and ${rawDb.name} (raw) on ${redactUrl(BENCH_POSTGRES_URL)}`);
    const { kernel, dataDir } = await openOurs("postgres", oursDb.url);
    const raw = await rawPostgres(rawDb.url);
    try {
      results.push(await measure("postgres", ours(kernel), (callers) => raw.subjects.get(callers) as Subject));
    } finally {
      await raw.close();
      await kernel.close();
      rmSync(dataDir, { recursive: true, force: true });
    }
  } finally {
    await oursDb.drop();
    await rawDb.drop();
  }
}

// ---- report ---------------------------------------------------------------------------------

interface Summary {
  readonly rate: number;
  readonly range: string;
  readonly latMedian: number;
  readonly latP99: number;
  readonly ops: number;
}
function summary(rounds: readonly Round[]): Summary {
  const rates = rounds.map((x) => x.rate);
  const lat = pooled(rounds);
  return {
    rate: median(rates),
    range: `${fmtRate(Math.min(...rates), "")}..${fmtRate(Math.max(...rates), "")}`,
    latMedian: median(lat),
    latP99: percentile(lat, 99),
    ops: lat.length,
  };
}

const OP_LABEL: Record<Op, string> = { put: "put", get: "get", noop: "call, no storage op" };
const rawLabel = (backend: Backend, op: Op, callers: number): string =>
  backend === "sqlite"
    ? `raw node:sqlite ${op === "put" ? "upsert (1 tx)" : "point select"}`
    : `raw pg ${op === "put" ? "upsert (1 tx)" : "point select"}, ${Math.min(callers, RAW_PG_POOL)} conn`;

const rows: string[][] = [
  ["backend", "op", "callers", "measure", "ops", "median ops/s", "rounds min..max", "latency median", "latency p99"],
];
const ratios: string[][] = [
  [
    "backend",
    "op",
    "callers",
    "ours ops/s",
    "raw ops/s",
    "throughput ours / raw",
    "ours latency median",
    "raw latency median",
    "latency ours / raw",
    "ours less a no-op call",
  ],
];
for (const r of results) {
  const noopMedian = new Map(r.configs.filter((c) => c.op === "noop").map((c) => [c.callers, summary(c.ours).latMedian]));
  for (const c of r.configs) {
    const o = summary(c.ours);
    const ourLabel = c.op === "noop" ? "kernel.call to a service doing nothing (context)" : `solo.storage.${c.op} via kernel.call`;
    rows.push([
      r.backend,
      OP_LABEL[c.op],
      String(c.callers),
      ourLabel,
      String(o.ops),
      fmtRate(o.rate),
      o.range,
      fmtMs(o.latMedian),
      fmtMs(o.latP99),
    ]);
    if (c.raw.length === 0) continue;
    const w = summary(c.raw);
    rows.push([
      r.backend,
      OP_LABEL[c.op],
      String(c.callers),
      rawLabel(r.backend, c.op, c.callers),
      String(w.ops),
      fmtRate(w.rate),
      w.range,
      fmtMs(w.latMedian),
      fmtMs(w.latP99),
    ]);
    ratios.push([
      r.backend,
      c.op,
      String(c.callers),
      fmtRate(o.rate),
      fmtRate(w.rate),
      fmtRatio(o.rate / w.rate),
      fmtMs(o.latMedian),
      fmtMs(w.latMedian),
      fmtRatio(o.latMedian / w.latMedian),
      c.callers === 1 ? fmtMs(o.latMedian - (noopMedian.get(1) ?? Number.NaN)) : "-",
    ]);
  }
}
for (const [backend, reason] of skipped) {
  rows.push([backend, `skipped: ${reason}`, "", "", "", "", "", "", ""]);
  ratios.push([backend, `skipped: ${reason}`, "", "", "", "", "", "", "", ""]);
}

console.log("");
printTable(rows);
console.log(
  "latency = one operation from its call to its resolution (ours: the kernel.call round trip, the put durable); percentiles over all rounds; with 64 callers ours go to 64 services, one each",
);
console.log("");
printTable(ratios);
console.log(
  "throughput ratio = ours / raw median ops/s (above 1x: ours is faster); latency ratio = ours / raw median latency; less a no-op call = ours median latency - the median latency of a call doing nothing (1 caller: the storage operation's own cost, thread hops included). node:sqlite is synchronous: its 64 callers run one at a time on the main thread",
);

const ok = mismatches === 0 && unwritten === 0 && gets > 0;
console.log(
  ok
    ? `\ncheck: each of the ${gets} gets returned the value of the last put of its key`
    : `\nCHECK FAILED: ${mismatches} of ${gets} gets returned something other than the last put of their key; ${unwritten} asked for a key never written`,
);
if (!ok) process.exitCode = 1;
