// Hard limits: what they cost and how fast they bite.
//
// 1. The cost of memory and CPU accounting on the call path, in this thread through the same
//    ServiceSandbox a scheduler uses: the patched engine (every allocation sized and checked) with
//    the budget on the thread's CPU time, against the unpatched engine with the wall clock (how
//    services ran before), in alternating rounds, for a trivial handler and one that allocates.
// 2. Time from a breach to the culprit's crash, through the kernel: an interruptible loop (the
//    interrupt handler), one built-in call QuickJS cannot interrupt (the watchdog), a service
//    over its own memory limit and a tenant over its cap (the engine's refusals).
// 3. A neighbour tenant's call latency while another tenant sends messages stuck in one heavy
//    built-in, against the same neighbour alone: on its own scheduler and on a shared one.
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { type Kernel, openKernel, SoloError } from "../../src/index.ts";
import { DEFAULT_LIMITS } from "../../src/kernel/limits.ts";
import { type CpuClock, threadClock } from "../../src/sandbox/cpu-clock.ts";
import { compileEngine, instantiateEngine, type TenantEngine } from "../../src/sandbox/engine.ts";
import { ServiceSandbox } from "../../src/sandbox/service.ts";
import { STUCK_SERVICE as STUCK } from "../../test/support/services.ts";
import { fmtMs, fmtRatio, median, percentile, printTable, sleep, verdict } from "../stats.ts";

const COUNTER = `export default {
  init() { return { count: 0 }; },
  handleCall(req, state) { state.count++; return { reply: state.count, state }; },
};`;
// Builds 200 small objects and a string per call, and keeps none: allocation-heavy work.
const ALLOCATING = `export default {
  init() { return 0; },
  handleCall(req, n) {
    const items = [];
    for (let i = 0; i < 200; i++) items.push({ i, name: "item" + i, tags: [i, i + 1] });
    return { reply: JSON.stringify(items).length, state: n + 1 };
  },
};`;

// ---- 1. accounting's cost per message --------------------------------------------------------

const ROUNDS = 15;
const CALLS_PER_ROUND = { trivial: 20_000, allocating: 2_000 } as const;
const noHost = (): string => {
  throw new SoloError("SOLO_ERR_INTERNAL", "these services make no host calls");
};
const image = await compileEngine();

interface Variant {
  readonly name: string;
  readonly engine: TenantEngine;
  readonly clock: CpuClock;
}
const wallClock: CpuClock = { read: () => performance.now(), recent: () => performance.now() };
const variants: Variant[] = [
  {
    name: "unpatched engine, wall clock (before)",
    engine: await instantiateEngine(image, 256 << 20, false),
    clock: wallClock,
  },
  { name: "patched engine, thread CPU time (now)", engine: await instantiateEngine(image, 256 << 20), clock: threadClock },
  { name: "patched engine, wall clock", engine: await instantiateEngine(image, 256 << 20), clock: wallClock },
  { name: "unpatched engine, thread CPU time", engine: await instantiateEngine(image, 256 << 20, false), clock: threadClock },
];

function perCallNs(sb: ServiceSandbox, calls: number): number {
  const started = performance.now();
  for (let i = 0; i < calls; i++) {
    const o = sb.begin("call", "");
    sb.endMessage();
    if (o.t !== "reply") throw new Error(`the call failed: ${JSON.stringify(o)}`);
  }
  return ((performance.now() - started) * 1e6) / calls;
}

const costRows: string[][] = [["workload", "variant", "per call (median)", "vs before"]];
for (const workload of ["trivial", "allocating"] as const) {
  const code = workload === "trivial" ? COUNTER : ALLOCATING;
  const boxes = variants.map((v, i) => {
    const sb = new ServiceSandbox(
      v.engine,
      { tenant: "bench", service: `s${i}`, version: 1, filename: "s.js", limits: { ...DEFAULT_LIMITS, cpuMsPerMessage: 60_000 } },
      noHost,
      { cpuClock: v.clock },
    );
    sb.load(code);
    sb.begin("init", "");
    sb.endMessage();
    perCallNs(sb, CALLS_PER_ROUND[workload]); // warm-up
    return sb;
  });
  const samples = variants.map(() => [] as number[]);
  for (let r = 0; r < ROUNDS; r++) {
    for (let i = 0; i < boxes.length; i++) {
      const k = (i + r) % boxes.length; // rotate the order, so no variant always runs first
      samples[k]?.push(perCallNs(boxes[k] as ServiceSandbox, CALLS_PER_ROUND[workload]));
    }
  }
  const base = median(samples[0] ?? []);
  variants.forEach((v, i) => {
    const m = median(samples[i] ?? []);
    costRows.push([workload, v.name, `${(m / 1000).toFixed(2)} µs`, fmtRatio(m / base)]);
  });
  for (const sb of boxes) sb.dispose();
}
console.log("\nmemory and CPU accounting on the call path (one thread, no scheduler hop)");
printTable(costRows);

// ---- 2. from a breach to the culprit's crash --------------------------------------------------

const dirs: string[] = [];
async function kernelWith(schedulers: number, restart: "temporary" | "permanent"): Promise<Kernel> {
  const dataDir = mkdtempSync(join(tmpdir(), "solo-bench-limits-"));
  dirs.push(dataDir);
  return openKernel({ dataDir, schedulers, supervision: { restart }, analyzer: "warn", memoryBudgetBytes: 8 * 1024 ** 3 });
}

const LOOP = `export default { init() { return 0 }, handleCall() { while (true) {} } };`;
const ROPE = `export default {
  init() { return 0 },
  handleCall(req, n) { let s = ""; for (let i = 0; i < 64; i++) s += String(i).repeat(1 << 20); return { reply: s.length, state: n } },
};`;

async function timeToCrash(
  k: Kernel,
  tenant: string,
  code: string,
  limits: object,
  request: unknown,
  runs: number,
): Promise<{ ms: number[]; reasons: Set<string> }> {
  const ms: number[] = [];
  const reasons = new Set<string>();
  for (let i = 0; i < runs; i++) {
    const service = `c${i}`;
    // A tenant whose service stalled its scheduler cools down: each stall gets a tenant of its own.
    const t = tenant === "stuck" ? `stuck${i}` : tenant;
    await k.deploy({ tenant: t, service, code, limits });
    const started = performance.now();
    const reason = await k.call(t, service, request, { timeoutMs: 60_000 }).then(
      () => "answered",
      (e: unknown) => (e instanceof SoloError ? e.reason : String(e)),
    );
    ms.push(performance.now() - started);
    reasons.add(reason);
  }
  return { ms, reasons };
}

const breachRows: string[][] = [["breach", "limit", "time to the crash (median)", "error"]];
{
  const k = await kernelWith(2, "temporary");
  const loop = await timeToCrash(k, "loop", LOOP, { cpuMsPerMessage: 100 }, null, 5);
  breachRows.push(["loop (interrupt handler)", "100 ms CPU", fmtMs(median(loop.ms)), [...loop.reasons].join(",")]);
  const stuck = await timeToCrash(k, "stuck", STUCK, { cpuMsPerMessage: 20 }, "stuck", 3);
  breachRows.push(["one heavy built-in (watchdog)", "hard limit 1000 ms CPU", fmtMs(median(stuck.ms)), [...stuck.reasons].join(",")]);
  const rope = await timeToCrash(k, "rope", ROPE, { memoryBytes: 4 << 20 }, null, 5);
  breachRows.push(["rope past the service's memory", "4 MiB", fmtMs(median(rope.ms)), [...rope.reasons].join(",")]);
  await k.tenants.create("capped", { limits: { memoryBytes: 32 << 20 } });
  const cap = await timeToCrash(k, "capped", ROPE, { memoryBytes: 1 << 30 }, null, 5);
  breachRows.push(["rope past the tenant's memory", "32 MiB tenant", fmtMs(median(cap.ms)), [...cap.reasons].join(",")]);
  await k.close();
}
console.log("\nfrom a breach to the culprit's crash");
printTable(breachRows);

// ---- 3. a neighbour's latency during a heavy built-in attack ----------------------------------

const WINDOW_MS = 6000;

async function neighbourLatencies(k: Kernel, ms: number): Promise<Float64Array> {
  const out: number[] = [];
  const stopAt = performance.now() + ms;
  while (performance.now() < stopAt) {
    const started = performance.now();
    await k.call("neighbour", "counter", null, { timeoutMs: 30_000 });
    out.push(performance.now() - started);
  }
  return Float64Array.from(out);
}

// Deploys a fresh stuck service and sends it its message, again and again; while its tenant cools
// down (SOLO_ERR_TENANT_COOLDOWN) it waits as long as it is told and tries again.
async function attack(k: Kernel, until: () => boolean): Promise<number> {
  let stopped = 0;
  for (let i = 0; !until(); i++) {
    const service = `a${i}`;
    try {
      await k.deploy({ tenant: "attacker", service, code: STUCK, limits: { cpuMsPerMessage: 20 } });
      await k.call("attacker", service, "stuck", { timeoutMs: 60_000 });
    } catch (err) {
      if (err instanceof SoloError && err.reason === "SOLO_ERR_TENANT_COOLDOWN") await sleep(Number(err.details.retryAfterMs));
      else if (err instanceof SoloError && err.reason === "SOLO_ERR_LIMIT_CPU") stopped++;
    }
  }
  return stopped;
}

const attackRows: string[][] = [
  ["placement", "alone p50 / p99 / max", "under attack p50 / p99 / max", "p99 ratio", "calls over 100 ms", "attacks stopped"],
];
for (const schedulers of [2, 1]) {
  // The neighbour is supervised as usual: on a shared scheduler it comes back after each attack.
  const k = await kernelWith(schedulers, "permanent");
  await k.deploy({ tenant: "neighbour", service: "counter", code: COUNTER });
  // The neighbour's tenant is placed first; the attacker's goes to the least loaded scheduler:
  // the other one (with 2) or the same one (with 1).
  await k.deploy({ tenant: "attacker", service: "probe", code: STUCK });
  await neighbourLatencies(k, 500); // warm-up
  const alone = await neighbourLatencies(k, WINDOW_MS / 2);
  let done = false;
  const attacking = attack(k, () => done);
  const under = await neighbourLatencies(k, WINDOW_MS);
  done = true;
  const stopped = await attacking;
  attackRows.push([
    schedulers === 2 ? "own scheduler" : "shared scheduler",
    `${fmtMs(percentile(alone, 50))} / ${fmtMs(percentile(alone, 99))} / ${fmtMs(Math.max(...alone))}`,
    `${fmtMs(percentile(under, 50))} / ${fmtMs(percentile(under, 99))} / ${fmtMs(Math.max(...under))}`,
    fmtRatio(percentile(under, 99) / percentile(alone, 99)),
    `${under.filter((ms) => ms > 100).length} of ${under.length}`,
    String(stopped),
  ]);
  await k.close();
}
console.log(`\na neighbour's sequential calls for ${WINDOW_MS / 1000} s while another tenant's messages each sit in one heavy built-in`);
printTable(attackRows);
console.log(verdict(breachRows.slice(1).every((r) => !(r[3] ?? "").includes("answered"))));

for (const d of dirs) rmSync(d, { recursive: true, force: true });
