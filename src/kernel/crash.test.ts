import assert from "node:assert/strict";
import { type ChildProcess, spawn } from "node:child_process";
import { randomInt } from "node:crypto";
import { existsSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, describe, it, type TestContext } from "node:test";
import { prng, rejection } from "../../test/support/helpers.ts";
import { createTestDatabase, postgresSkipReason, type TestDatabase } from "../../test/support/postgres.ts";
import type { SoloEvent } from "../api/events.ts";
import { CHURN, CRASH_TENANT, WRITER_CODE, WRITERS } from "./crash-child.ts";
import { lockDataDir } from "./data-dir.ts";
import { type Kernel, openKernel } from "./index.ts";

/*
 * Fault tests with real processes: a kernel child is SIGKILLed while it writes, and a kernel in
 * this process must then find every write the child acknowledged. The kill moments come from a
 * seeded PRNG; set SOLO_CRASH_SEED to replay a failing run (the seed is in every failure message).
 */

const CHILD = new URL("./crash-child.ts", import.meta.url).pathname;
const ROUNDS = 8;
const MIN_ACKS = 20;
const MAX_ACKS = 300;
const SEED = process.env.SOLO_CRASH_SEED === undefined ? randomInt(2 ** 31) : Number(process.env.SOLO_CRASH_SEED);
const PG_SKIP = await postgresSkipReason();

// Everything a test starts is ended here too, whether the test passed or not.
const children = new Set<ChildProcess>();
const kernels = new Set<Kernel>();
const dirs: string[] = [];
const databases: TestDatabase[] = [];

after(async () => {
  for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill("SIGKILL");
  for (const k of kernels) await k.close().catch(() => undefined);
  for (const d of databases) await d.drop();
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

function tempDir(): string {
  const d = mkdtempSync(join(tmpdir(), "solo-crash-"));
  dirs.push(d);
  return d;
}

async function testDatabase(): Promise<string> {
  const db = await createTestDatabase();
  databases.push(db);
  return db.url;
}

async function open(dataDir: string, database: string | undefined): Promise<Kernel> {
  const k = await openKernel({ dataDir, schedulers: 1, ...(database === undefined ? {} : { database }) });
  kernels.add(k);
  return k;
}

async function close(k: Kernel): Promise<void> {
  await k.close();
  kernels.delete(k);
}

/** What a child printed before it ended, and how it ended. */
interface ChildRun {
  readonly pid: number;
  readonly lines: string[];
  readonly stderr: string;
  readonly code: number | null;
  readonly signal: NodeJS.Signals | null;
}

/**
 * Runs the child until it has printed `killAfterAcks` ack lines, then SIGKILLs it (or, with no
 * count, until it exits). Resolves once it has exited and its stdout is drained: every complete
 * line it wrote, including those after the kill point, is in `lines`.
 */
function runChild(args: readonly string[], killAfterAcks?: number): Promise<ChildRun> {
  const child = spawn(process.execPath, ["--disable-warning=ExperimentalWarning", CHILD, ...args], {
    stdio: ["ignore", "pipe", "pipe"],
  });
  children.add(child);
  const lines: string[] = [];
  let partial = "";
  let stderr = "";
  let acks = 0;
  child.stdout?.setEncoding("utf8");
  child.stderr?.setEncoding("utf8");
  child.stdout?.on("data", (chunk: string) => {
    const parts = (partial + chunk).split("\n");
    // A line is only complete with its newline; a child killed mid-write leaves no half line.
    partial = parts.pop() ?? "";
    for (const l of parts) {
      lines.push(l);
      if (l.startsWith("ack ")) acks++;
    }
    if (killAfterAcks !== undefined && acks >= killAfterAcks && child.signalCode === null) child.kill("SIGKILL");
  });
  child.stderr?.on("data", (chunk: string) => {
    stderr += chunk;
  });
  return new Promise((resolve, reject) => {
    child.on("error", reject);
    // "close" comes after the exit and after stdout and stderr have ended.
    child.on("close", (code, signal) => {
      children.delete(child);
      resolve({ pid: child.pid ?? -1, lines, stderr, code, signal });
    });
  });
}

/** The churn service as the test models it: running or not, and the latest version it had. */
interface ChurnState {
  readonly running: boolean;
  readonly version: number;
}

function churnAfter(s: ChurnState): ChurnState {
  return s.running ? { running: false, version: s.version } : { running: true, version: s.version + 1 };
}

/** What every round so far has been told is durable. */
interface Acknowledged {
  /** n -> the writer and the event id of its acknowledgement. */
  readonly writes: Map<number, { service: string; eventId: number }>;
  churn: ChurnState;
}

/** Applies one killed child's lines to the model, checking they are well-formed and in order. */
function takeLines(run: ChildRun, known: Acknowledged): { firstN: number; acks: number } {
  assert.equal(run.signal, "SIGKILL", `the child ended by itself (code ${run.code}):\n${run.stderr}`);
  const [ready, ...rest] = run.lines;
  const m = /^ready (\d+)$/.exec(ready ?? "");
  assert.ok(m, `the child's first line should be "ready <n>", got ${JSON.stringify(ready)}\n${run.stderr}`);
  const firstN = Number(m[1]);
  let acks = 0;
  for (const l of rest) {
    const ack = /^ack (\d+) (w\d+) (\d+)$/.exec(l);
    const churn = /^(deployed|killed) (\d+)$/.exec(l);
    if (ack) {
      const n = Number(ack[1]);
      assert.ok(n >= firstN, `ack ${n} is below the child's first n ${firstN}`);
      assert.equal(known.writes.has(n), false, `n ${n} was acknowledged twice`);
      known.writes.set(n, { service: ack[2] as string, eventId: Number(ack[3]) });
      acks++;
    } else if (churn) {
      const expected = churnAfter(known.churn);
      assert.deepEqual({ running: churn[1] === "deployed", version: Number(churn[2]) }, expected, `unexpected churn line ${l}`);
      known.churn = expected;
    } else {
      assert.fail(`unexpected line from the child: ${JSON.stringify(l)}`);
    }
  }
  return { firstN, acks };
}

/** The whole log, oldest first, through the public paging API. */
async function allEvents(k: Kernel): Promise<SoloEvent[]> {
  const out: SoloEvent[] = [];
  let cursor: string | undefined;
  for (;;) {
    const page = await k.events({ limit: 1000, ...(cursor === undefined ? {} : { cursor }) });
    out.push(...page.events);
    if (page.cursor === null) return out;
    cursor = page.cursor;
  }
}

/** A writer's whole storage, read through its own solo.storage. */
async function storageOf(k: Kernel, service: string): Promise<Map<string, unknown>> {
  const out = new Map<string, unknown>();
  let after = "";
  for (;;) {
    const page = (await k.call(CRASH_TENANT, service, { op: "list", after })) as Array<{ key: string; value: unknown }>;
    for (const { key, value } of page) out.set(key, value);
    const last = page[page.length - 1];
    if (!last) return out;
    after = last.key;
  }
}

/** Checks a freshly recovered kernel against everything acknowledged so far. */
async function checkRecovered(k: Kernel, known: Acknowledged, churnBefore: ChurnState): Promise<void> {
  const report = await k.verify();
  assert.equal(report.ok, true, `verify() after recovery: ${JSON.stringify(report)}`);

  const events = await allEvents(k);
  for (const [i, e] of events.entries()) assert.equal(e.id, i + 1, `the log has a gap or disorder at position ${i + 1}`);
  assert.equal(report.ok && report.events, events.length, "verify() and events() disagree on the log's length");
  const byId = new Map(events.map((e) => [e.id, e]));

  const services = new Map(k.list(CRASH_TENANT).map((s) => [s.service, s]));
  for (const w of WRITERS) assert.equal(services.get(w)?.state, "running", `writer ${w} did not come back running`);
  const storage = new Map<string, Map<string, unknown>>();
  for (const w of WRITERS) storage.set(w, await storageOf(k, w));

  const ids = new Set<number>();
  for (const [n, { service, eventId }] of known.writes) {
    assert.equal(service, WRITERS[n % WRITERS.length], `ack ${n} came from the wrong writer`);
    assert.equal(ids.has(eventId), false, `event id ${eventId} was acknowledged for two writes`);
    ids.add(eventId);
    const e = byId.get(eventId);
    assert.ok(e, `acknowledged event ${eventId} (n ${n}) is missing from a log of ${events.length} events`);
    assert.deepEqual(
      { tenant: e.tenant, type: e.type, subject: e.subject, payload: e.payload },
      { tenant: CRASH_TENANT, type: `svc.${service}.wrote`, subject: service, payload: { n } },
      `event ${eventId} is not the acknowledged write of n ${n}`,
    );
    assert.deepEqual(storage.get(service)?.get(`k${n}`), { n }, `acknowledged key k${n} of ${service} is missing or wrong`);
  }
  // The put is awaited before the emit, so a durable event implies a durable key, acknowledged or not.
  for (const e of events) {
    const m = /^svc\.(w\d+)\.wrote$/.exec(e.type);
    if (!m) continue;
    const { n } = e.payload as { n: number };
    assert.deepEqual(storage.get(m[1] as string)?.get(`k${n}`), { n }, `event ${e.id} records k${n}, which is not stored`);
  }
  for (const [service, kv] of storage) {
    for (const [key, value] of kv)
      assert.deepEqual(value, { n: Number(key.slice(1)) }, `${service} holds ${key} = ${JSON.stringify(value)}`);
  }

  // The churn service is where its last acknowledged operation left it, or one operation further.
  const churn = services.get(CHURN);
  const seen = churn ? { running: churn.state === "running", version: churn.version } : undefined;
  const allowed = [known.churn, churnAfter(known.churn)];
  const match = allowed.find((s) => (seen ? s.running && s.version === seen.version : !s.running));
  assert.ok(
    match,
    `churn came back ${JSON.stringify(seen ?? "absent")}; allowed ${JSON.stringify(allowed)} (round start ${JSON.stringify(churnBefore)})`,
  );
  known.churn = match;
}

async function crashRounds(t: TestContext, database: string | undefined, seed: number): Promise<void> {
  const random = prng(seed);
  const dataDir = tempDir();
  const known: Acknowledged = { writes: new Map(), churn: { running: false, version: 0 } };
  let total = 0;
  for (let round = 1; round <= ROUNDS; round++) {
    const target = MIN_ACKS + Math.floor(random() * (MAX_ACKS - MIN_ACKS + 1));
    try {
      const churnBefore = known.churn;
      const highest = Math.max(0, ...known.writes.keys());
      const run = await runChild(database === undefined ? [dataDir] : [dataDir, database], target);
      const { firstN, acks } = takeLines(run, known);
      assert.ok(firstN > highest, `the child started at n ${firstN}, not past the acknowledged ${highest}`);
      assert.ok(acks >= target, `the child was killed after ${target} acks but ${acks} were read`);
      total += acks;
      // The killed child's lock is still on disk; opening takes it over.
      assert.equal(readFileSync(join(dataDir, "kernel.lock"), "utf8").split("\n")[0], String(run.pid));
      const k = await open(dataDir, database);
      assert.equal(readFileSync(join(dataDir, "kernel.lock"), "utf8").split("\n")[0], String(process.pid));
      try {
        await checkRecovered(k, known, churnBefore);
      } finally {
        await close(k);
      }
    } catch (err) {
      // The reporter prints the stack, which carries the message as it was when thrown.
      if (err instanceof Error) {
        const where = `[SOLO_CRASH_SEED=${SEED}, round ${round}, killed after ${target} acks] ${err.message}`;
        err.stack = err.stack?.replace(err.message, where);
        err.message = where;
      }
      throw err;
    }
  }
  t.diagnostic(`seed ${SEED}: ${ROUNDS} kills, ${total} acknowledged writes, all recovered`);
}

describe("Kernel crash recovery", () => {
  it(`keeps every acknowledged write and event through ${ROUNDS} SIGKILLs of the kernel (SQLite)`, { timeout: 120_000 }, async (t) => {
    await crashRounds(t, undefined, SEED);
  });

  it(`keeps every acknowledged write and event through ${ROUNDS} SIGKILLs of the kernel (PostgreSQL)`, {
    skip: PG_SKIP ?? false,
    timeout: 120_000,
  }, async (t) => {
    await crashRounds(t, await testDatabase(), SEED + 1);
  });
});

/** Runs the child in probe mode and returns the error it was refused with. */
async function probeRefusal(args: readonly string[]): Promise<{ code: string; reason: string; details: Record<string, unknown> }> {
  const run = await runChild(["--probe", ...args]);
  assert.equal(run.code, 0, `the probe failed:\n${run.stderr}`);
  assert.equal(run.lines.length, 1, `the probe printed ${JSON.stringify(run.lines)}`);
  const m = /^refused (.*)$/.exec(run.lines[0] ?? "");
  assert.ok(m, `a second kernel opened: the probe printed ${JSON.stringify(run.lines[0])}`);
  return JSON.parse(m[1] as string) as { code: string; reason: string; details: Record<string, unknown> };
}

async function write(k: Kernel, n: number): Promise<number> {
  const service = WRITERS[n % WRITERS.length] as string;
  return Number(await k.call(CRASH_TENANT, service, { op: "write", n }));
}

describe("Two kernels on one store", () => {
  it("refuses a second kernel process on an open SQLite data directory and leaves the first one's log intact", async () => {
    const dataDir = tempDir();
    const first = await open(dataDir, undefined);
    await first.deploy({ tenant: CRASH_TENANT, service: "w0", code: WRITER_CODE });
    const before = await write(first, 8);

    const err = await probeRefusal([dataDir]);
    assert.equal(err.reason, "SOLO_ERR_KERNEL_DATA_DIR_LOCKED");
    assert.equal(err.code, "failed_precondition");
    assert.equal(err.details.pid, process.pid);
    assert.equal(
      readFileSync(join(dataDir, "kernel.lock"), "utf8").split("\n")[0],
      String(process.pid),
      "the refused kernel touched the lock",
    );

    const later = await write(first, 16);
    assert.ok(later > before);
    const report = await first.verify();
    assert.deepEqual(report.ok && report.events, (await allEvents(first)).length);
    await close(first);

    const reopened = await open(dataDir, undefined);
    assert.equal((await reopened.verify()).ok, true);
    const kv = await storageOf(reopened, "w0");
    assert.deepEqual([kv.get("k8"), kv.get("k16")], [{ n: 8 }, { n: 16 }]);
    const events = await allEvents(reopened);
    assert.deepEqual(
      [before, later].map((id) => events.find((e) => e.id === id)?.payload),
      [{ n: 8 }, { n: 16 }],
    );
    await close(reopened);
  });

  it("refuses a second kernel on an open PostgreSQL database with SOLO_ERR_STORE_LOCKED, in this process and in another", {
    skip: PG_SKIP ?? false,
  }, async () => {
    const database = await testDatabase();
    const first = await open(tempDir(), database);
    await first.deploy({ tenant: CRASH_TENANT, service: "w0", code: WRITER_CODE });
    const before = await write(first, 8);

    const otherDir = tempDir();
    const err = await rejection(open(otherDir, database));
    assert.equal(err.reason, "SOLO_ERR_STORE_LOCKED");
    assert.equal(err.code, "failed_precondition");
    assert.equal(existsSync(join(otherDir, "kernel.lock")), false, "the refused kernel kept its data directory locked");
    const probed = await probeRefusal([tempDir(), database]);
    assert.deepEqual([probed.reason, probed.code], ["SOLO_ERR_STORE_LOCKED", "failed_precondition"]);

    const later = await write(first, 16);
    assert.ok(later > before);
    assert.equal((await first.verify()).ok, true);
    await close(first);

    // Once the first has closed, the second opens and finds the first one's service and writes.
    const second = await open(otherDir, database);
    assert.equal((await second.verify()).ok, true);
    const kv = await storageOf(second, "w0");
    assert.deepEqual([kv.get("k8"), kv.get("k16")], [{ n: 8 }, { n: 16 }]);
    await close(second);
  });

  // Regression: kernel.lock used to be created empty and filled in a second step, so a locker that
  // read it in between took it for stale and both held "the" lock (two kernels on one SQLite file).
  // Two lockers in one process interleave the same file operations as two processes would, only
  // far more often.
  it("grants a data directory to exactly one of two lockers that arrive at the same moment", async () => {
    for (let trial = 0; trial < 200; trial++) {
      const dataDir = tempDir();
      const results = await Promise.allSettled([lockDataDir(dataDir), lockDataDir(dataDir)]);
      const held = results.flatMap((r) => (r.status === "fulfilled" ? [r.value] : []));
      const refused = results.flatMap((r) => (r.status === "rejected" ? [r.reason as { reason?: string }] : []));
      for (const lock of held) await lock.release();
      assert.equal(held.length, 1, `trial ${trial}: ${held.length} lockers got ${dataDir}`);
      assert.equal(refused[0]?.reason, "SOLO_ERR_KERNEL_DATA_DIR_LOCKED");
    }
  });
});
