// Durable append throughput and acknowledgement latency through EventLog.append (validation,
// group commit, hash chain, fsync) with 1, 16 and 256 concurrent appenders, on SQLite and on
// PostgreSQL, against the engine's own limit measured in the same run: the same events inserted in
// one bulk transaction with no hashing, directly with node:sqlite / pg, into a table of the same
// schema in a separate file / database. Also measured, for context: those raw inserts with as many
// rows per transaction as there are appenders (the best group commit could turn them into).
//
// Each configuration runs after its own warm-up, in rounds that alternate ours and the raw
// same-size inserts; a bulk baseline round follows each configuration. All appends go into one
// growing log per backend, whose hash chain is verified at the end.
import { mkdtempSync, rmSync } from "node:fs";
import { availableParallelism, tmpdir } from "node:os";
import { join } from "node:path";
import { performance } from "node:perf_hooks";
import { type EventInput, EventLog } from "../../src/kernel/log/event-log.ts";
import { openPostgresStore } from "../../src/store/postgres/postgres-store.ts";
import { openSqliteStore } from "../../src/store/sqlite/sqlite-store.ts";
import type { EventDraft, Store } from "../../src/store/store.ts";
import { fmtMs, fmtRate, fmtRatio, median, percentile, printTable, verdict } from "../stats.ts";
import {
  BENCH_POSTGRES_URL,
  type CommitSample,
  createBenchDatabase,
  draftsOf,
  eventInputs,
  meanPayloadBytes,
  postgresRawInsert,
  postgresUnreachable,
  recordingStore,
  redactUrl,
  sqliteRawInsert,
  TENANTS,
} from "./store-fixtures.ts";

const ROUNDS = 3;
const TARGET_SQLITE_RATE = 200_000;
const TARGET_SQLITE_RATIO = 0.3;
const TARGET_SQLITE_P99_MS = 5;
const TARGET_POSTGRES_RATE = 30_000;
// The configuration the targets apply to; the bulk baseline inserts exactly its events.
const TARGET_APPENDERS = 256;
const TARGET_PER_ROUND = 33_000;
const CONFIGS = [
  { appenders: 1, warmup: 1000, perRound: 3500 },
  { appenders: 16, warmup: 4000, perRound: 16_000 },
  { appenders: TARGET_APPENDERS, warmup: 20_000, perRound: TARGET_PER_ROUND },
] as const;

type Backend = "sqlite" | "postgres";

/** Raw inserts of `drafts` into fresh storage, `perTx` rows per transaction (all in one if omitted); returns ms. */
type RawInsert = (drafts: readonly EventDraft[], perTx?: number) => Promise<number>;

interface Round {
  readonly rate: number;
  readonly latencies: Float64Array;
  readonly commits: readonly CommitSample[];
  readonly wallMs: number;
  /** Fraction of the wall time the main thread's event loop was busy. */
  readonly mainBusy: number;
  /** CPU time of the whole process (every thread) / wall time. */
  readonly cores: number;
}

interface Config {
  readonly appenders: number;
  readonly ours: Round[];
  /** Events/s of raw inserts of the same events, `appenders` rows per transaction. */
  readonly rawSameTx: number[];
}

interface BackendResult {
  readonly backend: Backend;
  readonly configs: Config[];
  /** Events/s of each bulk baseline round. */
  readonly baseline: number[];
  readonly baselineEvents: number;
  readonly verified: string;
  readonly verifiedOk: boolean;
}

/** The inputs of one round: a deterministic, distinct set per configuration and round. */
function roundInputs(appenders: number, round: number, count: number): EventInput[] {
  return eventInputs(count, 1000 * appenders + round + 1);
}

/** `appenders` loops, each awaiting one append at a time, over `inputs`; returns each append's latency. */
async function appendAll(
  log: EventLog,
  inputs: readonly EventInput[],
  appenders: number,
): Promise<{ ms: number; latencies: Float64Array }> {
  const latencies = new Float64Array(inputs.length);
  let next = 0;
  const lane = async (): Promise<void> => {
    while (next < inputs.length) {
      const i = next++;
      const started = performance.now();
      await log.append(inputs[i] as EventInput);
      latencies[i] = performance.now() - started;
    }
  };
  const started = performance.now();
  await Promise.all(Array.from({ length: Math.min(appenders, inputs.length) }, lane));
  return { ms: performance.now() - started, latencies };
}

async function oursRound(log: EventLog, samples: CommitSample[], inputs: readonly EventInput[], appenders: number): Promise<Round> {
  samples.length = 0;
  const elu = performance.eventLoopUtilization();
  const cpu = process.cpuUsage();
  const { ms, latencies } = await appendAll(log, inputs, appenders);
  const used = process.cpuUsage(cpu);
  return {
    rate: inputs.length / (ms / 1000),
    latencies,
    commits: [...samples],
    wallMs: ms,
    mainBusy: performance.eventLoopUtilization(elu).utilization,
    cores: (used.user + used.system) / 1000 / ms,
  };
}

async function measureBackend(backend: Backend, open: () => Promise<Store>, raw: RawInsert): Promise<BackendResult> {
  const { store, samples } = recordingStore(await open());
  const log = await EventLog.open(store);
  const bulkDrafts = draftsOf(Array.from({ length: ROUNDS }, (_, r) => roundInputs(TARGET_APPENDERS, r, TARGET_PER_ROUND)).flat());
  const configs: Config[] = [];
  const baseline: number[] = [];
  try {
    for (const c of CONFIGS) {
      await appendAll(log, eventInputs(c.warmup, c.appenders), c.appenders);
      const config: Config = { appenders: c.appenders, ours: [], rawSameTx: [] };
      for (let r = 0; r < ROUNDS; r++) {
        const inputs = roundInputs(c.appenders, r, c.perRound);
        config.ours.push(await oursRound(log, samples, inputs, c.appenders));
        config.rawSameTx.push(c.perRound / ((await raw(draftsOf(inputs), c.appenders)) / 1000));
      }
      configs.push(config);
      baseline.push(bulkDrafts.length / ((await raw(bulkDrafts)) / 1000));
      const ms = config.ours.reduce((sum, x) => sum + x.wallMs, 0);
      console.log(`  ${backend}: ${c.appenders} appenders, ${ROUNDS} x ${c.perRound} events in ${fmtMs(ms)}`);
    }
    const report = await log.verify();
    const verified = report.ok
      ? `the hash chain of all ${report.events} events verifies`
      : `CHAIN BROKEN at event ${report.at}: ${report.problem}: ${report.message}`;
    return { backend, configs, baseline, baselineEvents: bulkDrafts.length, verified, verifiedOk: report.ok };
  } finally {
    await log.close();
    await store.close();
  }
}

// ---- the two backends -----------------------------------------------------------------------

const sample = draftsOf(eventInputs(10_000, 1));
console.log(
  `store-append: ${availableParallelism()} cores; events over ${TENANTS} tenants, half service_deployed and half svc.counter.counted, payload ${Math.round(meanPayloadBytes(sample))} bytes of JSON on average; ${ROUNDS} rounds per configuration after a warm-up`,
);

const results: BackendResult[] = [];
const skipped = new Map<Backend, string>();

const dir = mkdtempSync(join(tmpdir(), "solo-bench-"));
try {
  let files = 0;
  results.push(
    await measureBackend(
      "sqlite",
      () => openSqliteStore(join(dir, "solo.db")),
      async (drafts, perTx) => {
        const path = join(dir, `raw-${files++}.db`);
        const ms = sqliteRawInsert(path, drafts, perTx);
        rmSync(path, { force: true });
        rmSync(`${path}-wal`, { force: true });
        rmSync(`${path}-shm`, { force: true });
        return ms;
      },
    ),
  );
} finally {
  rmSync(dir, { recursive: true, force: true });
}

const unreachable = await postgresUnreachable();
if (unreachable !== undefined) skipped.set("postgres", unreachable);
else {
  const ours = await createBenchDatabase();
  const base = await createBenchDatabase();
  try {
    console.log(`  postgres: databases ${ours.name} (ours) and ${base.name} (raw inserts) on ${redactUrl(BENCH_POSTGRES_URL)}`);
    results.push(
      await measureBackend(
        "postgres",
        () => openPostgresStore(ours.url),
        (drafts, perTx) => postgresRawInsert(base.url, drafts, perTx),
      ),
    );
  } finally {
    await ours.drop();
    await base.drop();
  }
}

// ---- report ---------------------------------------------------------------------------------

function targetsOf(backend: Backend, appenders: number): { rate?: number; ratio?: number; p99?: number } {
  if (appenders !== TARGET_APPENDERS) return {};
  return backend === "sqlite"
    ? { rate: TARGET_SQLITE_RATE, ratio: TARGET_SQLITE_RATIO, p99: TARGET_SQLITE_P99_MS }
    : { rate: TARGET_POSTGRES_RATE };
}

function pooled(arrays: readonly Float64Array[]): Float64Array {
  const all = new Float64Array(arrays.reduce((n, a) => n + a.length, 0));
  let at = 0;
  for (const a of arrays) {
    all.set(a, at);
    at += a.length;
  }
  return all;
}

const range = (xs: readonly number[]): string => `${fmtRate(Math.min(...xs), "")}..${fmtRate(Math.max(...xs), "")}`;

const rows: string[][] = [
  ["backend", "measure", "appenders", "events", "median events/s", "rounds min..max", "ack median", "ack p99", "target", "verdict"],
];
const ratios: string[][] = [
  ["backend", "appenders", "ours (events/s)", "baseline (events/s)", "ratio", "target", "verdict", "raw, same rows/tx", "ours / that"],
];
const batches: string[][] = [
  [
    "backend",
    "appenders",
    "commits",
    "events/commit median",
    "p99",
    "max",
    "commit median",
    "commit p99",
    "store busy",
    "main thread busy",
    "process CPU",
  ],
];
for (const r of results) {
  const base = median(r.baseline);
  for (const c of r.configs) {
    const t = targetsOf(r.backend, c.appenders);
    const rates = c.ours.map((x) => x.rate);
    const rate = median(rates);
    const latencies = pooled(c.ours.map((x) => x.latencies));
    const p99 = percentile(latencies, 99);
    const targetText = [t.rate ? `>= ${fmtRate(t.rate)}` : "", t.p99 ? `p99 <= ${fmtMs(t.p99)}` : ""].filter(Boolean).join(", ") || "-";
    const judged = t.rate !== undefined || t.p99 !== undefined;
    const ok = (t.rate === undefined || rate >= t.rate) && (t.p99 === undefined || p99 <= t.p99);
    rows.push([
      r.backend,
      "EventLog.append (chain, group commit)",
      String(c.appenders),
      `${ROUNDS} x ${latencies.length / ROUNDS}`,
      fmtRate(rate),
      range(rates),
      fmtMs(median(latencies)),
      fmtMs(p99),
      targetText,
      judged ? verdict(ok) : "",
    ]);
    const ratio = rate / base;
    const sameTx = median(c.rawSameTx);
    ratios.push([
      r.backend,
      String(c.appenders),
      fmtRate(rate),
      fmtRate(base),
      fmtRatio(ratio),
      t.ratio ? `>= ${fmtRatio(t.ratio)}` : "-",
      t.ratio ? verdict(ratio >= t.ratio) : "",
      `${fmtRate(sameTx)} (${c.appenders}/tx)`,
      fmtRatio(rate / sameTx),
    ]);
    const commits = c.ours.flatMap((x) => x.commits);
    const sizes = commits.map((x) => x.events);
    const times = commits.map((x) => x.ms);
    const busy = times.reduce((a, b) => a + b, 0);
    const wall = c.ours.reduce((a, x) => a + x.wallMs, 0);
    batches.push([
      r.backend,
      String(c.appenders),
      String(commits.length),
      String(median(sizes)),
      String(percentile(sizes, 99)),
      String(Math.max(...sizes)),
      fmtMs(median(times)),
      fmtMs(percentile(times, 99)),
      `${((busy / wall) * 100).toFixed(0)}%`,
      `${((c.ours.reduce((a, x) => a + x.mainBusy * x.wallMs, 0) / wall) * 100).toFixed(0)}%`,
      `${(c.ours.reduce((a, x) => a + x.cores * x.wallMs, 0) / wall).toFixed(2)} cores`,
    ]);
  }
  rows.push([
    r.backend,
    "raw bulk insert, 1 tx, no hashing (baseline)",
    "-",
    `${r.baseline.length} x ${r.baselineEvents}`,
    fmtRate(base),
    range(r.baseline),
    "-",
    "-",
    "-",
    "",
  ]);
}
for (const [backend, reason] of skipped) {
  rows.push([backend, `skipped: ${reason}`, "", "", "", "", "", "", "", ""]);
  ratios.push([backend, `skipped: ${reason}`, "", "", "", "", "", "", ""]);
}

console.log("");
printTable(rows);
console.log("ack = from calling append to its promise resolving (durable); percentiles over all rounds' appends");
console.log("");
printTable(ratios);
console.log(
  "ratio = ours / baseline, median events/s; baseline = the 256-appender events in one transaction of fresh tables (same schema and indexes), no hashing, one round after each configuration; raw, same rows/tx = the round's events inserted raw with as many rows per transaction as there are appenders",
);
console.log("");
printTable(batches);
console.log(
  "a commit = one store.commit as the event log sees it (sent to durable reply); store busy = time with a commit in flight / wall time; main thread busy = event loop utilization; process CPU = CPU time of all threads / wall time",
);
for (const r of results) console.log(`check (${r.backend}): ${r.verified}`);
if (results.some((r) => !r.verifiedOk)) process.exitCode = 1;
