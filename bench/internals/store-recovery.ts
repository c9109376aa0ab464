// Recovery: the time from openKernel to every service running again, with 10,000 deployed counter
// services across 10 tenants, on SQLite and on PostgreSQL, against openKernel on an empty data
// directory (and, for PostgreSQL, an empty database) measured alternately in the same run.
//
// The services are deployed through the kernel (64 deploys in flight), then the kernel is closed;
// each round opens a kernel on that data, checks that list() shows every service running and that
// kernel_started says it recovered them all, and closes it again.
import { mkdtempSync, rmSync } from "node:fs";
import { availableParallelism, tmpdir } from "node:os";
import { join } from "node:path";
import { type Kernel, openKernel } from "../../src/index.ts";
import { SQLITE_FILE } from "../../src/store/open.ts";
import { openPostgresStore } from "../../src/store/postgres/postgres-store.ts";
import { openSqliteStore } from "../../src/store/sqlite/sqlite-store.ts";
import type { Store } from "../../src/store/store.ts";
import { fmtMs, fmtRatio, median, printTable, runInFlight, verdict } from "../stats.ts";
import { BENCH_POSTGRES_URL, type BenchDatabase, createBenchDatabase, postgresUnreachable, redactUrl } from "./store-fixtures.ts";

const COUNTER = `export default {
  init() { return { count: 0 }; },
  handleCall(req, state) { state.count++; return { reply: state.count, state }; },
};`;

const TENANTS = 10;
const SERVICES = 10_000;
const IN_FLIGHT = 64;
// Each round of 10,000 services costs about half a minute here: PostgreSQL gets one round so the
// whole benchmark stays within a few minutes.
const ROUNDS = { sqlite: 2, postgres: 1 } as const;
const TARGET_RECOVERY_MS = 5000;

type Backend = "sqlite" | "postgres";

interface Opened {
  readonly openMs: number;
  /** CPU time of the whole process (every thread) during the open / its wall time. */
  readonly openCores: number;
  readonly closeMs: number;
  readonly running: number;
  readonly recovered: number;
  /** kernel_started's durationMs: reading the deployments and starting the services. */
  readonly kernelRecoveryMs: number;
}

interface BackendResult {
  readonly backend: Backend;
  readonly seedMs: number;
  readonly seedCores: number;
  readonly ours: Opened[];
  readonly empty: Opened[];
  /** Opening the store alone and reading the active deployments, outside a kernel. */
  readonly storeOpenMs: number;
  readonly activeDeploymentsMs: number;
}

const dirs: string[] = [];
function freshDir(): string {
  const dir = mkdtempSync(join(tmpdir(), "solo-bench-"));
  dirs.push(dir);
  return dir;
}

/** Opens a kernel, reads what it recovered, and closes it; times the open and the close. */
async function openAndCheck(dataDir: string, database: string | undefined): Promise<Opened> {
  const cpu = process.cpuUsage();
  const started = performance.now();
  const kernel: Kernel = await openKernel({ dataDir, ...(database ? { database } : {}) });
  const openMs = performance.now() - started;
  const used = process.cpuUsage(cpu);
  let running = 0;
  for (let t = 0; t < TENANTS; t++) for (const s of kernel.list(`tenant${t}`)) if (s.state === "running") running++;
  const page = await kernel.events({ types: ["kernel_started"], order: "desc", limit: 1 });
  const payload = (page.events[0]?.payload ?? {}) as { recovered?: number; durationMs?: number };
  const closing = performance.now();
  await kernel.close();
  return {
    openMs,
    openCores: (used.user + used.system) / 1000 / openMs,
    closeMs: performance.now() - closing,
    running,
    recovered: payload.recovered ?? Number.NaN,
    kernelRecoveryMs: payload.durationMs ?? Number.NaN,
  };
}

async function seed(dataDir: string, database: string | undefined): Promise<{ ms: number; cores: number }> {
  const kernel = await openKernel({ dataDir, ...(database ? { database } : {}) });
  const cpu = process.cpuUsage();
  const started = performance.now();
  // Interleaved, so the ten tenants are spread over the schedulers as they are placed.
  await runInFlight(SERVICES, IN_FLIGHT, (i) =>
    kernel.deploy({ tenant: `tenant${i % TENANTS}`, service: `svc${Math.floor(i / TENANTS)}`, code: COUNTER }),
  );
  const ms = performance.now() - started;
  const used = process.cpuUsage(cpu);
  await kernel.close();
  return { ms, cores: (used.user + used.system) / 1000 / ms };
}

/** Opens the store alone on the seeded data and reads the active deployments, as recovery does first. */
async function storeRead(open: () => Promise<Store>): Promise<{ openMs: number; readMs: number }> {
  const started = performance.now();
  const store = await open();
  const openMs = performance.now() - started;
  try {
    const reading = performance.now();
    const deployments = await store.activeDeployments();
    const readMs = performance.now() - reading;
    if (deployments.length !== SERVICES) console.log(`  note: activeDeployments() returned ${deployments.length} deployments`);
    return { openMs, readMs };
  } finally {
    await store.close();
  }
}

async function measureBackend(
  backend: Backend,
  rounds: number,
  database: string | undefined,
  emptyDatabase: () => Promise<string | undefined>,
  openStoreAlone: (dataDir: string) => Promise<Store>,
): Promise<BackendResult> {
  const dataDir = freshDir();
  const seeded = await seed(dataDir, database);
  console.log(`  ${backend}: deployed ${SERVICES} services (${IN_FLIGHT} in flight) in ${fmtMs(seeded.ms)}`);
  const ours: Opened[] = [];
  const empty: Opened[] = [];
  for (let r = 0; r < rounds; r++) {
    // Which goes first alternates, so a drift over the run weighs on both.
    if (r % 2 === 0) {
      ours.push(await openAndCheck(dataDir, database));
      empty.push(await openAndCheck(freshDir(), await emptyDatabase()));
    } else {
      empty.push(await openAndCheck(freshDir(), await emptyDatabase()));
      ours.push(await openAndCheck(dataDir, database));
    }
    console.log(`  ${backend}: round ${r + 1}: recovered in ${fmtMs(ours[ours.length - 1]?.openMs ?? Number.NaN)}`);
  }
  const read = await storeRead(() => openStoreAlone(dataDir));
  return { backend, seedMs: seeded.ms, seedCores: seeded.cores, ours, empty, storeOpenMs: read.openMs, activeDeploymentsMs: read.readMs };
}

// ---- the two backends -----------------------------------------------------------------------

console.log(
  `store-recovery: ${availableParallelism()} cores, default schedulers (one per core); ${SERVICES} counter services across ${TENANTS} tenants; ${ROUNDS.sqlite} rounds on SQLite and ${ROUNDS.postgres} on PostgreSQL, each one open of the seeded data and one of an empty data directory, alternating`,
);

const results: BackendResult[] = [];
const skipped = new Map<Backend, string>();
const databases: BenchDatabase[] = [];

try {
  results.push(
    await measureBackend(
      "sqlite",
      ROUNDS.sqlite,
      undefined,
      async () => undefined,
      (dataDir) => openSqliteStore(join(dataDir, SQLITE_FILE)),
    ),
  );

  const unreachable = await postgresUnreachable();
  if (unreachable !== undefined) skipped.set("postgres", unreachable);
  else {
    const fresh = async (): Promise<string> => {
      const db = await createBenchDatabase();
      databases.push(db);
      return db.url;
    };
    const url = await fresh();
    console.log(
      `  postgres: database ${databases[0]?.name} (and one empty database per baseline round) on ${redactUrl(BENCH_POSTGRES_URL)}`,
    );
    results.push(await measureBackend("postgres", ROUNDS.postgres, url, fresh, () => openPostgresStore(url)));
  }
} finally {
  for (const db of databases) await db.drop();
  for (const dir of dirs) rmSync(dir, { recursive: true, force: true });
}

// ---- report ---------------------------------------------------------------------------------

const rows: string[][] = [["backend", "measure", "median", "rounds min..max", "baseline (empty) median", "ratio", "target", "verdict"]];
const detail: string[][] = [
  [
    "backend",
    "seeding (deploys)",
    "store open + activeDeployments()",
    "kernel_started durationMs",
    "rest of openKernel",
    "process CPU: seeding / recovery",
    "close with all running",
    "close, empty",
  ],
];
let allChecked = true;
const checks: string[] = [];
for (const r of results) {
  const opens = r.ours.map((o) => o.openMs);
  const m = median(opens);
  const b = median(r.empty.map((o) => o.openMs));
  rows.push([
    r.backend,
    `openKernel until ${SERVICES} services run`,
    fmtMs(m),
    `${fmtMs(Math.min(...opens))}..${fmtMs(Math.max(...opens))}`,
    fmtMs(b),
    fmtRatio(m / b),
    `<= ${fmtMs(TARGET_RECOVERY_MS)}`,
    verdict(m <= TARGET_RECOVERY_MS),
  ]);
  const kernelRecovery = median(r.ours.map((o) => o.kernelRecoveryMs));
  detail.push([
    r.backend,
    fmtMs(r.seedMs),
    `${fmtMs(r.storeOpenMs)} + ${fmtMs(r.activeDeploymentsMs)}`,
    fmtMs(kernelRecovery),
    fmtMs(m - kernelRecovery),
    `${r.seedCores.toFixed(2)} / ${median(r.ours.map((o) => o.openCores)).toFixed(2)} cores`,
    fmtMs(median(r.ours.map((o) => o.closeMs))),
    fmtMs(median(r.empty.map((o) => o.closeMs))),
  ]);
  const bad = r.ours.filter((o) => o.running !== SERVICES || o.recovered !== SERVICES);
  if (bad.length > 0) {
    allChecked = false;
    for (const o of bad) {
      checks.push(
        `CHECK FAILED (${r.backend}): list() showed ${o.running} running and kernel_started said recovered ${o.recovered}, not ${SERVICES}`,
      );
    }
  } else {
    checks.push(
      `check (${r.backend}): every round, list() showed all ${SERVICES} services running and kernel_started said recovered ${SERVICES}`,
    );
  }
}
for (const [backend, reason] of skipped) rows.push([backend, `skipped: ${reason}`, "", "", "", "", "", ""]);

console.log("");
printTable(rows);
console.log(
  "baseline = openKernel on an empty data directory (PostgreSQL: and an empty database); ratio = ours / baseline (lower is better)",
);
console.log("");
printTable(detail);
console.log(
  "kernel_started durationMs = the kernel's own measure of reading the deployments and starting every service (64 at a time); rest = store open, migrations check, schedulers ready, and writing the kernel_started and service_started events; process CPU = CPU time of all threads / wall time; medians over the rounds",
);
for (const line of checks) console.log(line);
if (!allChecked) process.exitCode = 1;
