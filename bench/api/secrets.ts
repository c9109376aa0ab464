// What reading a secret costs a service, on SQLite (a data directory in a tmp dir). A service's
// solo.secrets.get reads the sealed row, opens it (AES-256-GCM), and appends a durable
// `secret_accessed` event before the value comes back; the baselines, in the same run and the same
// service: solo.storage.put (one durable write), solo.storage.get (one read) and a call that does
// neither. All sequential (1 call in flight), round by round in turn.
//
// Measured from outside, as kernel.call latency: calls doing one operation (median and p99 of the
// whole call), and calls doing 20 in a row inside the handler, whose latency less a no-op call's,
// divided by 20, is the operation's own cost inside the service. Also kernel.secrets.put (seal +
// durable write with its `secret_stored` event), sequential.
import { mkdtempSync, rmSync } from "node:fs";
import { availableParallelism, loadavg, tmpdir } from "node:os";
import { join } from "node:path";
import { openKernel } from "../../src/index.ts";
import { fmtRate, fmtRatio, median, percentile, printTable } from "../stats.ts";

// The kernel's store comes from $SOLO_DATABASE_URL when it is set: this benchmark is SQLite's.
delete process.env.SOLO_DATABASE_URL;

const TENANT = "bench";
const SECRET = "API_KEY";
const SECRET_VALUE = "sk_live_4f9a1c7e2b8d6053a1e9c4b7f2d8a6e3c5b1";
const SERVICE = `export default {
  init() { return 0; },
  async handleCall(req, n) {
    let out = 0;
    for (let i = 0; i < req.k; i++) {
      if (req.op === "secret") out += (await solo.secrets.get("${SECRET}")).length;
      else if (req.op === "put") await solo.storage.put("k" + (i % 16), { n, i, note: "a small durable value" });
      else if (req.op === "get") out += (await solo.storage.get("k" + (i % 16))).i;
    }
    return { reply: out, state: n + 1 };
  },
};`;

type Op = "noop" | "get" | "put" | "secret";
const OPS: readonly Op[] = ["noop", "get", "put", "secret"];
const LABEL: Record<Op, string> = {
  noop: "call doing nothing (call overhead)",
  get: "solo.storage.get (one read)",
  put: "solo.storage.put (one durable write, baseline)",
  secret: "solo.secrets.get (read + durable secret_accessed)",
};
const BATCH = 20;
const ROUNDS = 16;
const CALLS_PER_ROUND = 150; // of one operation each, per kind
const BATCH_CALLS_PER_ROUND = 15; // of BATCH operations each, per kind
const WARMUP_CALLS = 200;
const PUT_ROUNDS = 10;
const PUTS_PER_ROUND = 100;

const dataDir = mkdtempSync(join(tmpdir(), "solo-bench-"));
const kernel = await openKernel({ dataDir });
await kernel.tenants.create(TENANT);
await kernel.secrets.put(TENANT, SECRET, SECRET_VALUE);
await kernel.deploy({ tenant: TENANT, service: "svc", code: SERVICE, grants: { secrets: [SECRET], storage: true } });

console.log(
  `secrets: ${availableParallelism()} cores (load average ${loadavg()[0]?.toFixed(2)}), store ${kernel.store.kind}; ${ROUNDS} rounds, each ${CALLS_PER_ROUND} calls of 1 operation and ${BATCH_CALLS_PER_ROUND} of ${BATCH} per kind, kinds in turn, 1 call in flight; then ${PUT_ROUNDS} x ${PUTS_PER_ROUND} kernel.secrets.put`,
);

async function calls(op: Op, k: number, count: number, into: number[]): Promise<void> {
  const req = { op, k };
  for (let i = 0; i < count; i++) {
    const started = performance.now();
    await kernel.call(TENANT, "svc", req);
    into.push(performance.now() - started);
  }
}

let secretReads = 0;
const readsOf = (op: Op, k: number, count: number): number => (op === "secret" ? k * count : 0);
// The puts go first, so every get finds its key.
for (const op of ["put", "noop", "get", "secret"] as const) {
  await calls(op, 1, WARMUP_CALLS, []);
  await calls(op, BATCH, WARMUP_CALLS / 10, []);
  secretReads += readsOf(op, 1, WARMUP_CALLS) + readsOf(op, BATCH, WARMUP_CALLS / 10);
}

const single = new Map<Op, number[]>(OPS.map((op) => [op, []]));
const batched = new Map<Op, number[]>(OPS.map((op) => [op, []]));
const singleMedians = new Map<Op, number[]>(OPS.map((op) => [op, []]));
const batchMedians = new Map<Op, number[]>(OPS.map((op) => [op, []]));
for (let r = 0; r < ROUNDS; r++) {
  // A different kind starts each round, so none always follows the same one.
  for (let j = 0; j < OPS.length; j++) {
    const op = OPS[(r + j) % OPS.length] as Op;
    const one: number[] = [];
    await calls(op, 1, CALLS_PER_ROUND, one);
    const many: number[] = [];
    await calls(op, BATCH, BATCH_CALLS_PER_ROUND, many);
    single.get(op)?.push(...one);
    batched.get(op)?.push(...many);
    singleMedians.get(op)?.push(median(one));
    batchMedians.get(op)?.push(median(many));
    secretReads += readsOf(op, 1, CALLS_PER_ROUND) + readsOf(op, BATCH, BATCH_CALLS_PER_ROUND);
  }
}

// kernel.secrets.put: sealed under the active data key, written with its secret_stored event.
const puts: number[] = [];
const putMedians: number[] = [];
for (let r = 0; r < PUT_ROUNDS; r++) {
  const round: number[] = [];
  for (let i = 0; i < PUTS_PER_ROUND; i++) {
    const value = `${SECRET_VALUE.slice(0, 30)}${String(r * PUTS_PER_ROUND + i).padStart(10, "0")}`;
    const started = performance.now();
    await kernel.secrets.put(TENANT, `ROTATED_${i % 8}`, value);
    round.push(performance.now() - started);
  }
  puts.push(...round);
  putMedians.push(median(round));
}

// The value still reads back intact after all those writes of other secrets.
const stillThere = await kernel.call(TENANT, "svc", { op: "secret", k: 1 });
secretReads += 1;
// Every read must have been audited, once, durably.
let accessed = 0;
let cursor: string | null = null;
do {
  const page = await kernel.events({ tenant: TENANT, types: ["secret_accessed"], limit: 1000, ...(cursor ? { cursor } : {}) });
  accessed += page.events.length;
  cursor = page.cursor;
} while (cursor !== null);
const report = await kernel.verify();
await kernel.close();
rmSync(dataDir, { recursive: true, force: true });

// ---- report ---------------------------------------------------------------------------------

const us = (ms: number): string => (Number.isFinite(ms) ? `${(ms * 1000).toFixed(1)} µs` : "-");
const range = (xs: readonly number[]): string => `${us(Math.min(...xs))}..${us(Math.max(...xs))}`;

const callRows: string[][] = [
  ["one operation per call", "calls", "call median", "call p99", "round medians min..max", "less a no-op call", "ops/s (1 in flight)"],
];
const noop = median(single.get("noop") ?? []);
for (const op of OPS) {
  const lat = single.get(op) ?? [];
  const m = median(lat);
  callRows.push([
    LABEL[op],
    String(lat.length),
    us(m),
    us(percentile(lat, 99)),
    range(singleMedians.get(op) ?? []),
    op === "noop" ? "-" : us(m - noop),
    fmtRate(1000 / m),
  ]);
}

const inside = new Map<Op, number>();
const batchNoop = median(batched.get("noop") ?? []);
const insideRows: string[][] = [
  ["inside the service", `calls of ${BATCH} ops`, "call median", "call p99", "per operation", "rounds min..max"],
];
for (const op of OPS) {
  if (op === "noop") continue;
  const lat = batched.get(op) ?? [];
  const per = (median(lat) - batchNoop) / BATCH;
  inside.set(op, per);
  const perRound = (batchMedians.get(op) ?? []).map((x, i) => (x - ((batchMedians.get("noop") ?? [])[i] ?? 0)) / BATCH);
  insideRows.push([LABEL[op], String(lat.length), us(median(lat)), us(percentile(lat, 99)), us(per), range(perRound)]);
}

const secretOne = median(single.get("secret") ?? []);
const putOne = median(single.get("put") ?? []);
const secretIn = inside.get("secret") ?? Number.NaN;
const putIn = inside.get("put") ?? Number.NaN;
const getIn = inside.get("get") ?? Number.NaN;
const ratioRows: string[][] = [
  ["ratio", "secrets.get", "baseline", "ratio"],
  ["whole call, median: secrets.get / storage.put", us(secretOne), us(putOne), fmtRatio(secretOne / putOne)],
  ["inside the service: secrets.get / storage.put", us(secretIn), us(putIn), fmtRatio(secretIn / putIn)],
  ["inside the service: secrets.get / (storage.put + storage.get)", us(secretIn), us(putIn + getIn), fmtRatio(secretIn / (putIn + getIn))],
];

const putRows: string[][] = [
  ["kernel API", "calls", "median", "p99", "round medians min..max", "ops/s (sequential)", "vs storage.put inside a service"],
  [
    "kernel.secrets.put (seal + durable write + secret_stored)",
    String(puts.length),
    us(median(puts)),
    us(percentile(puts, 99)),
    range(putMedians),
    fmtRate(1000 / median(puts)),
    fmtRatio(median(puts) / putIn),
  ],
];

console.log("");
printTable(callRows);
console.log("call = kernel.call round trip from the embedder, 1 in flight; percentiles over all rounds");
console.log("");
printTable(insideRows);
console.log(`per operation = (median call of ${BATCH} operations - median call of ${BATCH} no-op iterations) / ${BATCH}`);
console.log("");
printTable(ratioRows);
console.log("");
printTable(putRows);

const ok = report.ok && accessed === secretReads && stillThere === SECRET_VALUE.length;
console.log(
  ok
    ? `\ncheck: ${accessed} secret_accessed events for the ${secretReads} reads, each value intact; the hash chain of all ${report.events} events verifies`
    : `\nCHECK FAILED: ${accessed} secret_accessed events for ${secretReads} reads; chain ${report.ok ? "ok" : "BROKEN"}; last read gave ${String(stillThere)}`,
);
if (!ok) process.exitCode = 1;
