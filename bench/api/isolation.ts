// Isolation between tenants: a neighbour tenant's call latency (1 in flight) while another tenant
// runs services stuck in `while (true) {}`, each message stopped by its CPU budget, against the
// same measurement with the loopers idle. Measured with the two tenants on different schedulers
// (`schedulers: 2`) and on one shared scheduler (`schedulers: 1`).
import { mkdtempSync, rmSync } from "node:fs";
import { availableParallelism, tmpdir } from "node:os";
import { join } from "node:path";
import { type Kernel, openKernel, SoloError } from "../../src/index.ts";
import { fmtMs, fmtRatio, median, percentile, printTable, sleep, verdict } from "../stats.ts";

const COUNTER = `export default {
  init() { return { count: 0 }; },
  handleCall(req, state) { state.count++; return { reply: state.count, state }; },
};`;
const LOOPER = `export default {
  init() { return null; },
  handleCast(msg, state) { while (true) {} },
};`;

const LOOPERS = 4;
const CPU_MS = 50;
const CAST_EVERY_MS = 5;
const WARMUP_CALLS = 300;
const CALLS = 10_000;
// On a shared scheduler each call can wait behind every looper's budget, so that case stops at
// this deadline if the count is not reached first.
const DEADLINE_MS = 20_000;
const LOOPER_MAX_ITERATIONS = 1_000_000;

interface Latency {
  readonly samples: Float64Array;
  readonly stoppedEarly: boolean;
}

/** Sequential calls to the neighbour; at most `count`, and none started after `deadlineMs`. */
async function measure(kernel: Kernel, count: number, deadlineMs: number): Promise<Latency> {
  const samples: number[] = [];
  const stopAt = performance.now() + deadlineMs;
  for (let i = 0; i < count && performance.now() < stopAt; i++) {
    const started = performance.now();
    await kernel.call("neighbour", "counter", undefined, { timeoutMs: 10_000 });
    samples.push(performance.now() - started);
  }
  return { samples: Float64Array.from(samples), stoppedEarly: samples.length < count };
}

/** Keeps the looper services busy: casts to each every few ms, redeploying any that crashed. */
class LooperPump {
  private running = true;
  private readonly lanes: Promise<void>[];
  readonly crashKinds = new Map<string, number>();
  redeploys = 0;
  casts = 0;
  failedRedeploys = 0;
  started = performance.now();
  stopped = 0;

  private readonly kernel: Kernel;

  constructor(kernel: Kernel) {
    this.kernel = kernel;
    this.lanes = Array.from({ length: LOOPERS }, (_, i) => this.lane(`loop${i}`));
  }

  private async lane(service: string): Promise<void> {
    for (let n = 0; this.running && n < LOOPER_MAX_ITERATIONS; n++) {
      try {
        await this.kernel.cast("looper", service, n);
        this.casts++;
      } catch (err) {
        if (!(err instanceof SoloError) || err.reason !== "SOLO_ERR_SERVICE_CRASHED") throw err;
        const kind = this.kernel.list("looper").find((s) => s.service === service)?.crash?.kind ?? "unknown";
        this.crashKinds.set(kind, (this.crashKinds.get(kind) ?? 0) + 1);
        // A crashed service is stopped; deploying the same name again starts its next version.
        try {
          await this.kernel.deploy({ tenant: "looper", service, code: LOOPER, limits: { cpuMsPerMessage: CPU_MS } });
          this.redeploys++;
        } catch {
          this.failedRedeploys++;
        }
      }
      await sleep(CAST_EVERY_MS);
    }
  }

  get crashes(): number {
    let n = 0;
    for (const c of this.crashKinds.values()) n += c;
    return n;
  }

  async stop(): Promise<void> {
    this.running = false;
    await Promise.all(this.lanes);
    this.stopped = performance.now();
  }
}

/** Which scheduler a tenant is on, read from the kernel's private placement map if it has one. */
function placementOf(kernel: Kernel, tenant: string): number | undefined {
  // Not public API: a best-effort confirmation of the placement rule; undefined if it changed.
  const placement = (kernel as unknown as { placement?: unknown }).placement;
  return placement instanceof Map ? (placement.get(tenant) as number | undefined) : undefined;
}

interface CaseResult {
  readonly schedulers: number;
  readonly quiet: Latency;
  readonly loaded: Latency;
  readonly pump: LooperPump;
  readonly placement: string;
}

async function runCase(schedulers: number): Promise<CaseResult> {
  const dataDir = mkdtempSync(join(tmpdir(), "solo-bench-"));
  const kernel = await openKernel({ dataDir, schedulers });
  try {
    // The looper tenant deploys first, so it is placed first (on scheduler 0); the neighbour then
    // goes to the scheduler with the fewest services: scheduler 1 when there are two.
    for (let i = 0; i < LOOPERS; i++) {
      await kernel.deploy({ tenant: "looper", service: `loop${i}`, code: LOOPER, limits: { cpuMsPerMessage: CPU_MS } });
    }
    await kernel.deploy({ tenant: "neighbour", service: "counter", code: COUNTER });
    const expected = { looper: 0, neighbour: schedulers > 1 ? 1 : 0 };
    const seen = { looper: placementOf(kernel, "looper"), neighbour: placementOf(kernel, "neighbour") };
    const confirmed = seen.looper === expected.looper && seen.neighbour === expected.neighbour;
    const placement =
      `looper on scheduler ${seen.looper ?? expected.looper}, neighbour on scheduler ${seen.neighbour ?? expected.neighbour}` +
      (seen.looper === undefined
        ? " (inferred from the placement rule)"
        : confirmed
          ? " (placement rule, confirmed)"
          : " (NOT as the rule predicts)");

    await measure(kernel, WARMUP_CALLS, DEADLINE_MS);
    const quiet = await measure(kernel, CALLS, DEADLINE_MS);

    const pump = new LooperPump(kernel);
    await sleep(3 * CPU_MS); // let every looper start spinning
    let loaded: Latency;
    try {
      loaded = await measure(kernel, CALLS, DEADLINE_MS);
    } finally {
      await pump.stop();
    }
    return { schedulers, quiet, loaded, pump, placement };
  } finally {
    await kernel.close();
    rmSync(dataDir, { recursive: true, force: true });
  }
}

console.log(
  `isolation: ${availableParallelism()} cores; tenant "looper" runs ${LOOPERS} services whose handleCast is while(true){} (cpuMsPerMessage ${CPU_MS}), ` +
    `cast to every ${CAST_EVERY_MS} ms and redeployed whenever they crash; tenant "neighbour" is called 1 in flight, ` +
    `${CALLS} calls (or ${DEADLINE_MS / 1000} s) per measurement after ${WARMUP_CALLS} warm-up calls`,
);
const separate = await runCase(2);
const shared = await runCase(1);

const rows: string[][] = [["case", "calls", "median", "p99", "max", "median ratio", `p99 < ${CPU_MS} ms (one message's budget)`]];
for (const c of [separate, shared]) {
  const where = c.schedulers > 1 ? "different schedulers" : "one shared scheduler";
  const quietMedian = median(c.quiet.samples);
  for (const [label, l] of [
    ["loopers idle (baseline)", c.quiet],
    ["loopers spinning", c.loaded],
  ] as const) {
    const p99 = percentile(l.samples, 99);
    const baseline = l === c.quiet;
    rows.push([
      `schedulers: ${c.schedulers}, ${where}, ${label}`,
      `${l.samples.length}${l.stoppedEarly ? " (deadline)" : ""}`,
      fmtMs(median(l.samples)),
      fmtMs(p99),
      fmtMs(percentile(l.samples, 100)),
      baseline ? "-" : fmtRatio(median(l.samples) / quietMedian),
      baseline ? "-" : c.schedulers > 1 ? verdict(p99 < CPU_MS) : `${p99 < CPU_MS ? "yes" : "no"} (no target when co-located)`,
    ]);
  }
}
console.log("");
printTable(rows);
console.log("median ratio = neighbour median with loopers spinning / with loopers idle, same kernel");
for (const c of [separate, shared]) {
  const p = c.pump;
  const seconds = (p.stopped - p.started) / 1000;
  const kinds = [...p.crashKinds].map(([k, n]) => `${n} ${k}`).join(", ") || "none";
  const busy = (p.crashes * CPU_MS) / (p.stopped - p.started);
  console.log(
    `schedulers: ${c.schedulers}: ${c.placement}; over ${seconds.toFixed(1)} s the loopers had ${p.casts} casts accepted, ` +
      `crashed ${p.crashes} times (${kinds}), ${p.redeploys} redeploys${p.failedRedeploys ? `, ${p.failedRedeploys} FAILED` : ""}; ` +
      `looper messages kept their scheduler about ${Math.round(Math.min(1, busy) * 100)}% busy`,
  );
}
