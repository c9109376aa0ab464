// Service spawn cost: (b) idle memory per service with 10,000 services across 10 tenants, then
// (a) deploy latency, sequential and with 64 in flight, against the raw cost of one QuickJS
// runtime + context created directly in this thread.
//
// The baselines and the memory phase run first, so their RSS growth is not mixed with what the
// latency phases allocate and free.
import { mkdtempSync, rmSync } from "node:fs";
import { availableParallelism, tmpdir } from "node:os";
import { join } from "node:path";
import type { QuickJSContext, QuickJSRuntime } from "quickjs-emscripten-core";
import { type Kernel, openKernel } from "../../src/index.ts";
import { compileEngine, instantiateEngine, RuntimeMemory } from "../../src/sandbox/engine.ts";
import { fmtBytes, fmtMs, fmtRatio, median, percentile, printTable, runInFlight, sleep, verdict } from "../stats.ts";

const COUNTER = `export default {
  init() { return { count: 0 }; },
  handleCall(req, state) { state.count++; return { reply: state.count, state }; },
};`;

const MEM_TENANTS = 10;
const MEM_PER_TENANT = 1000;
const RAW_RUNTIMES = 2000;
const RAW_WARMUP = 200;
const WARMUP_DEPLOYS = 50;
const SEQ_DEPLOYS = 2000;
const PAR_DEPLOYS = 2000;
const IN_FLIGHT = 64;
const SETTLE_MS = 1500; // > 2 usage samples (every 500 ms) after the last deploy
const TARGET_DEPLOY_MS = 0.3;
const TARGET_IDLE_BYTES = 100 * 1024;

// --expose-gc makes `gc` a global; without it the figures are taken without a forced collection.
const gc = (globalThis as { gc?: () => void }).gc;

async function settledRss(ms: number): Promise<number> {
  await sleep(ms);
  gc?.();
  await sleep(50);
  return process.memoryUsage().rss;
}

const dirs: string[] = [];
async function freshKernel(): Promise<Kernel> {
  const dataDir = mkdtempSync(join(tmpdir(), "solo-bench-"));
  dirs.push(dataDir);
  return openKernel({ dataDir });
}

console.log(
  `spawn: ${availableParallelism()} cores, default schedulers (one per core), gc ${gc ? "exposed" : "NOT exposed (run with --expose-gc)"}`,
);

// ---- baseline: bare QuickJS runtimes + contexts in this thread --------------------------------

// One QuickJS runtime + context each, created directly in this thread from the same compiled
// engine the kernel uses, after a warm-up, kept alive like services are, freed at the end.
// Measured first, in a process that has done nothing else yet.
const engine = await instantiateEngine(await compileEngine(), 2 * 1024 * 1024 * 1024);
for (let i = 0; i < RAW_WARMUP; i++) {
  const rt = engine.quickjs.newRuntime();
  rt.newContext().dispose();
  rt.dispose();
}
const rawRssBefore = await settledRss(0);
const rawTimes = new Float64Array(RAW_RUNTIMES);
const kept: { rt: QuickJSRuntime; ctx: QuickJSContext }[] = [];
for (let i = 0; i < RAW_RUNTIMES; i++) {
  const started = performance.now();
  const rt = engine.quickjs.newRuntime();
  const ctx = rt.newContext();
  rawTimes[i] = performance.now() - started;
  kept.push({ rt, ctx });
}
const rawRssPer = ((await settledRss(200)) - rawRssBefore) / RAW_RUNTIMES;
// The same reading the schedulers take for usage.memoryBytes (the bytes the engine's allocator
// counts for the runtime).
const rawHeap = median(
  kept.slice(0, 20).map(({ rt }) => {
    const m = new RuntimeMemory(engine.quickjs, rt, 1024 * 1024 * 1024);
    const bytes = m.bytes();
    m.dispose();
    return bytes;
  }),
);
for (const { rt, ctx } of kept) {
  ctx.dispose();
  rt.dispose();
}
const rawMedian = median(rawTimes);

// ---- (b) idle memory ------------------------------------------------------------------------

const rssEmpty = await settledRss(0);
const memKernel = await freshKernel();
const rssBefore = await settledRss(200);
const memTotal = MEM_TENANTS * MEM_PER_TENANT;
// Interleaved so the ten tenants are spread over the schedulers as they are placed.
const memStarted = performance.now();
await runInFlight(memTotal, IN_FLIGHT, (i) =>
  memKernel.deploy({ tenant: `tenant${i % MEM_TENANTS}`, service: `svc${Math.floor(i / MEM_TENANTS)}`, code: COUNTER }),
);
const memDeployMs = performance.now() - memStarted;
const rssAfter = await settledRss(SETTLE_MS);
let heapSum = 0;
let unsampled = 0;
let listed = 0;
for (let t = 0; t < MEM_TENANTS; t++) {
  for (const info of memKernel.list(`tenant${t}`)) {
    listed++;
    heapSum += info.usage.memoryBytes;
    if (info.usage.memoryBytes === 0) unsampled++;
  }
}
await memKernel.close();
const rssClosed = await settledRss(200);

const rssPer = (rssAfter - rssBefore) / memTotal;
const heapPer = heapSum / memTotal;
console.log(
  `\n(b) idle memory: ${memTotal} counter services, ${MEM_TENANTS} tenants x ${MEM_PER_TENANT}, deployed ${IN_FLIGHT} in flight in ${fmtMs(memDeployMs)} (${fmtMs(memDeployMs / memTotal)} per service amortised)`,
);
console.log(
  `    RSS: ${fmtBytes(rssEmpty)} before the kernel, ${fmtBytes(rssBefore)} with the kernel open, ${fmtBytes(rssAfter)} with ${memTotal} services (after ${SETTLE_MS} ms${gc ? " and gc" : ""}), ${fmtBytes(rssClosed)} after close`,
);
if (listed !== memTotal || unsampled > 0) console.log(`    note: list() showed ${listed} services, ${unsampled} not yet sampled`);
printTable([
  ["measure", "per service", "total", "baseline (bare runtime+context)", "ratio", "target", "verdict"],
  [
    "process RSS growth",
    fmtBytes(rssPer),
    fmtBytes(rssAfter - rssBefore),
    `${fmtBytes(rawRssPer)} RSS`,
    fmtRatio(rssPer / rawRssPer),
    `<= ${fmtBytes(TARGET_IDLE_BYTES)}`,
    verdict(rssPer <= TARGET_IDLE_BYTES),
  ],
  [
    "sum of list() usage.memoryBytes",
    fmtBytes(heapPer),
    fmtBytes(heapSum),
    `${fmtBytes(rawHeap)} heap`,
    fmtRatio(heapPer / rawHeap),
    `<= ${fmtBytes(TARGET_IDLE_BYTES)}`,
    verdict(heapPer <= TARGET_IDLE_BYTES),
  ],
]);
console.log(`baseline = ${RAW_RUNTIMES} bare QuickJS runtimes + contexts in one engine instance in this thread, per runtime`);

// ---- (a) deploy latency ---------------------------------------------------------------------

// Sequential deploys into one tenant, after a warm-up that instantiates the tenant's engine.
const seqKernel = await freshKernel();
for (let i = 0; i < WARMUP_DEPLOYS; i++) await seqKernel.deploy({ tenant: "seq", service: `warm${i}`, code: COUNTER });
const seqTimes = new Float64Array(SEQ_DEPLOYS);
for (let i = 0; i < SEQ_DEPLOYS; i++) {
  const started = performance.now();
  await seqKernel.deploy({ tenant: "seq", service: `svc${i}`, code: COUNTER });
  seqTimes[i] = performance.now() - started;
}
await seqKernel.close();
const seqMedian = median(seqTimes);

// 64 in flight: into one tenant (one scheduler), then into one tenant per scheduler.
async function amortised(tenants: number): Promise<{ ms: number; schedulers: number }> {
  const kernel = await freshKernel();
  for (let t = 0; t < tenants; t++) {
    for (let i = 0; i < WARMUP_DEPLOYS; i++) await kernel.deploy({ tenant: `par${t}`, service: `warm${i}`, code: COUNTER });
  }
  const started = performance.now();
  await runInFlight(PAR_DEPLOYS, IN_FLIGHT, (i) => kernel.deploy({ tenant: `par${i % tenants}`, service: `svc${i}`, code: COUNTER }));
  const ms = (performance.now() - started) / PAR_DEPLOYS;
  const schedulers = kernel.schedulers;
  await kernel.close();
  return { ms, schedulers };
}
const parOne = await amortised(1);
const parAll = await amortised(Math.max(1, parOne.schedulers));

console.log(
  `\n(a) deploy latency: counter service; ${SEQ_DEPLOYS} sequential deploys and ${PAR_DEPLOYS} with ${IN_FLIGHT} in flight, each after ${WARMUP_DEPLOYS} warm-up deploys per tenant`,
);
const target = `<= ${fmtMs(TARGET_DEPLOY_MS)}`;
printTable([
  ["measure", "median", "p90", "p99", "baseline", "ratio", "target", "verdict"],
  [
    "raw QuickJS runtime+context (main thread)",
    fmtMs(rawMedian),
    fmtMs(percentile(rawTimes, 90)),
    fmtMs(percentile(rawTimes, 99)),
    "-",
    "-",
    "-",
    "",
  ],
  [
    "deploy, sequential",
    fmtMs(seqMedian),
    fmtMs(percentile(seqTimes, 90)),
    fmtMs(percentile(seqTimes, 99)),
    fmtMs(rawMedian),
    fmtRatio(seqMedian / rawMedian),
    target,
    verdict(seqMedian <= TARGET_DEPLOY_MS),
  ],
  [
    `deploy, ${IN_FLIGHT} in flight, 1 tenant (amortised)`,
    fmtMs(parOne.ms),
    "-",
    "-",
    fmtMs(rawMedian),
    fmtRatio(parOne.ms / rawMedian),
    target,
    verdict(parOne.ms <= TARGET_DEPLOY_MS),
  ],
  [
    `deploy, ${IN_FLIGHT} in flight, ${parAll.schedulers} tenants on ${parAll.schedulers} schedulers (amortised)`,
    fmtMs(parAll.ms),
    "-",
    "-",
    fmtMs(rawMedian),
    fmtRatio(parAll.ms / rawMedian),
    target,
    verdict(parAll.ms <= TARGET_DEPLOY_MS),
  ],
]);
console.log("ratio = ours / baseline (lower is better; 1.00x would be the bare runtime+context cost)");

for (const dir of dirs) rmSync(dir, { recursive: true, force: true });
