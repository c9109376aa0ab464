// kernel.call round trips per second on a counter service, with 1 and 64 calls in flight, against
// a raw worker_threads postMessage echo measured the same way in the same run.
import { mkdtempSync, rmSync } from "node:fs";
import { availableParallelism, tmpdir } from "node:os";
import { join } from "node:path";
import { Worker } from "node:worker_threads";
import { openKernel } from "../../src/index.ts";
import { type Call, fmtMs, fmtRate, fmtRatio, median, percentile, printTable, type Round, round, verdict } from "../stats.ts";

const COUNTER = `export default {
  init() { return { count: 0 }; },
  handleCall(req, state) { state.count++; return { reply: state.count, state }; },
};`;

const IN_FLIGHT = [1, 64] as const;
const ROUNDS = 5;
const WARMUP_CALLS = { 1: 3000, 64: 30_000 } as const;
// Each measured round is sized from the warm-up rate to last about this long, within the bounds.
const ROUND_MS = 700;
const MIN_ROUND_CALLS = 1000;
const MAX_ROUND_CALLS = 400_000;
const TARGET_RATE_64 = 100_000;
const TARGET_RATIO = 0.2;

// ---- the two subjects -----------------------------------------------------------------------

const dataDir = mkdtempSync(join(tmpdir(), "solo-bench-"));
const kernel = await openKernel({ dataDir });
await kernel.deploy({ tenant: "bench", service: "counter", code: COUNTER });
const ours: Call = () => kernel.call("bench", "counter");

// The baseline: a worker that posts back every message, with requests matched to replies by id
// on this side, one postMessage per request (no batching).
const ECHO = `const { parentPort } = require("node:worker_threads");
parentPort.on("message", (m) => parentPort.postMessage(m));`;
const echo = new Worker(ECHO, { eval: true });
const waiting = new Map<number, (payload: string) => void>();
let lastId = 0;
echo.on("message", (m: { id: number; payload: string }) => {
  const resolve = waiting.get(m.id);
  waiting.delete(m.id);
  resolve?.(m.payload);
});
const raw: Call = () =>
  new Promise<string>((resolve) => {
    const id = ++lastId;
    waiting.set(id, resolve);
    echo.postMessage({ id, payload: "" });
  });

// ---- measurement ----------------------------------------------------------------------------

console.log(
  `calls: ${availableParallelism()} cores, ${kernel.schedulers} schedulers (the counter service runs on one); ${ROUNDS} rounds of about ${ROUND_MS} ms after a warm-up, ours and raw alternating`,
);

interface Result {
  readonly inFlight: number;
  readonly ours: Round[];
  readonly raw: Round[];
}
const results: Result[] = [];
let ourCalls = 0;
for (const inFlight of IN_FLIGHT) {
  const warm = WARMUP_CALLS[inFlight];
  const ourWarm = await round(ours, inFlight, warm);
  const rawWarm = await round(raw, inFlight, warm);
  ourCalls += warm;
  const size = (rate: number): number => Math.min(MAX_ROUND_CALLS, Math.max(MIN_ROUND_CALLS, Math.round((rate * ROUND_MS) / 1000)));
  const result: Result = { inFlight, ours: [], raw: [] };
  for (let r = 0; r < ROUNDS; r++) {
    const n = size(ourWarm.rate);
    result.ours.push(await round(ours, inFlight, n));
    ourCalls += n;
    result.raw.push(await round(raw, inFlight, size(rawWarm.rate)));
  }
  results.push(result);
}

// Every call must have reached the service exactly once.
const count = await kernel.call("bench", "counter");
const counted = count === ourCalls + 1;

await kernel.close();
await echo.terminate();
rmSync(dataDir, { recursive: true, force: true });

// ---- report ---------------------------------------------------------------------------------

const rows: string[][] = [
  ["measure", "in flight", "median calls/s", "rounds min..max", "latency median", "latency p99", "target", "verdict"],
];
const ratios: string[][] = [["ratio", "in flight", "ours (median calls/s)", "baseline (raw echo)", "ratio", "target", "verdict"]];
for (const r of results) {
  const summary = (rounds: Round[]): { rate: number; range: string; latMedian: number; latP99: number } => {
    const rates = rounds.map((x) => x.rate);
    const lat = rounds.map((x) => x.latencies);
    const all = new Float64Array(lat.reduce((n, l) => n + l.length, 0));
    let at = 0;
    for (const l of lat) {
      all.set(l, at);
      at += l.length;
    }
    return {
      rate: median(rates),
      range: `${fmtRate(Math.min(...rates), "")}..${fmtRate(Math.max(...rates), "")}`,
      latMedian: median(all),
      latP99: percentile(all, 99),
    };
  };
  const o = summary(r.ours);
  const w = summary(r.raw);
  const rateTarget = r.inFlight === 64 ? `>= ${fmtRate(TARGET_RATE_64)}` : "-";
  rows.push([
    "kernel.call (counter)",
    String(r.inFlight),
    fmtRate(o.rate),
    o.range,
    fmtMs(o.latMedian),
    fmtMs(o.latP99),
    rateTarget,
    r.inFlight === 64 ? verdict(o.rate >= TARGET_RATE_64) : "",
  ]);
  rows.push([
    "raw postMessage echo (baseline)",
    String(r.inFlight),
    fmtRate(w.rate),
    w.range,
    fmtMs(w.latMedian),
    fmtMs(w.latP99),
    "-",
    "",
  ]);
  const ratio = o.rate / w.rate;
  ratios.push([
    "kernel.call / raw echo",
    String(r.inFlight),
    fmtRate(o.rate),
    fmtRate(w.rate),
    fmtRatio(ratio),
    `>= ${fmtRatio(TARGET_RATIO)}`,
    verdict(ratio >= TARGET_RATIO),
  ]);
}
console.log("");
printTable(rows);
console.log("");
printTable(ratios);
console.log(
  counted
    ? `\ncheck: the counter saw each of the ${ourCalls} calls exactly once`
    : `\nCHECK FAILED: the counter is at ${String(count)} after ${ourCalls} calls (expected ${ourCalls + 1})`,
);
if (!counted) process.exitCode = 1;
