import { loadavg } from "node:os";
// Shared helpers of the benchmarks: order statistics, number formatting and a plain-text table.

/** The p-th percentile (0..100) of `xs` by nearest rank; NaN for no samples. */
export function percentile(xs: ArrayLike<number>, p: number): number {
  if (xs.length === 0) return Number.NaN;
  const sorted = Float64Array.from(xs).sort();
  const rank = Math.ceil((p / 100) * sorted.length);
  return sorted[Math.min(sorted.length - 1, Math.max(0, rank - 1))] ?? Number.NaN;
}

/** The median of `xs` (the mean of the two middle values for an even count). */
export function median(xs: ArrayLike<number>): number {
  if (xs.length === 0) return Number.NaN;
  const sorted = Float64Array.from(xs).sort();
  const mid = sorted.length >> 1;
  return sorted.length % 2 === 1 ? (sorted[mid] ?? Number.NaN) : ((sorted[mid - 1] ?? 0) + (sorted[mid] ?? 0)) / 2;
}

/** A duration given in milliseconds, in the unit that reads best (µs, ms or s). */
export function fmtMs(ms: number): string {
  if (!Number.isFinite(ms)) return "-";
  if (ms < 1) return `${(ms * 1000).toFixed(1)} µs`;
  if (ms < 1000) return `${ms.toFixed(ms < 10 ? 2 : 1)} ms`;
  return `${(ms / 1000).toFixed(2)} s`;
}

/** A byte count in KiB or MiB. */
export function fmtBytes(bytes: number): string {
  if (!Number.isFinite(bytes)) return "-";
  if (Math.abs(bytes) < 1024 * 1024) return `${(bytes / 1024).toFixed(1)} KiB`;
  return `${(bytes / 1024 / 1024).toFixed(1)} MiB`;
}

/** A rate, with thousands separators. */
export function fmtRate(perSecond: number, unit = "/s"): string {
  return Number.isFinite(perSecond) ? `${Math.round(perSecond).toLocaleString("en-US")}${unit}` : "-";
}

/** A ratio such as `0.42x`. */
export function fmtRatio(r: number): string {
  return Number.isFinite(r) ? `${r.toFixed(r < 10 ? 2 : 1)}x` : "-";
}

/** Prints rows as a left-aligned table; the first row is the header. */
export function printTable(rows: readonly (readonly string[])[]): void {
  const widths: number[] = [];
  for (const row of rows) {
    for (const [i, cell] of row.entries()) widths[i] = Math.max(widths[i] ?? 0, cell.length);
  }
  const line = (row: readonly string[]): string =>
    row
      .map((cell, i) => cell.padEnd(widths[i] ?? 0))
      .join("  ")
      .trimEnd();
  for (const [i, row] of rows.entries()) {
    console.log(line(row));
    if (i === 0) console.log(widths.map((w) => "-".repeat(w)).join("  "));
  }
}

/** "met" or "MISSED", for a figure against its target. */
export function verdict(ok: boolean): string {
  return ok ? "met" : "MISSED";
}

/** Resolves after `ms` milliseconds. */
export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** Runs `task(0..total-1)` with at most `inFlight` running at once; resolves when all are done. */
export async function runInFlight(total: number, inFlight: number, task: (i: number) => Promise<unknown>): Promise<void> {
  let next = 0;
  const lane = async (): Promise<void> => {
    while (next < total) await task(next++);
  };
  await Promise.all(Array.from({ length: Math.min(inFlight, total) }, lane));
}

/** One asynchronous operation to time. */
export type Call = () => Promise<unknown>;

/** A measured round: its rate and each operation's latency (ms). */
export interface Round {
  readonly rate: number;
  readonly latencies: Float64Array;
}

/** Makes `count` calls with `inFlight` outstanding at a time; returns calls/s and each call's latency. */
export async function round(call: Call, inFlight: number, count: number): Promise<Round> {
  const latencies = new Float64Array(count);
  let next = 0;
  const lane = async (): Promise<void> => {
    while (next < count) {
      const i = next++;
      const started = performance.now();
      await call();
      latencies[i] = performance.now() - started;
    }
  };
  const started = performance.now();
  await Promise.all(Array.from({ length: Math.min(inFlight, count) }, lane));
  return { rate: count / ((performance.now() - started) / 1000), latencies };
}

/** The latencies of several rounds as one array. */
export function pooled(rounds: readonly { readonly latencies: Float64Array }[]): Float64Array {
  const all = new Float64Array(rounds.reduce((n, r) => n + r.latencies.length, 0));
  let at = 0;
  for (const r of rounds) {
    all.set(r.latencies, at);
    at += r.latencies.length;
  }
  return all;
}

/**
 * Runs every subject at each number of calls in flight, a warm-up round first, then `rounds`
 * rounds in which the subjects take turns (each round starting with the next one), and tabulates
 * each subject's median rate and latency against the `baseline` subject's of the same run.
 */
export async function alternating(
  subjects: Readonly<Record<string, Call>>,
  o: { readonly baseline: string; readonly rounds: number; readonly warmup: number; readonly calls: Readonly<Record<number, number>> },
): Promise<string[][]> {
  const names = Object.keys(subjects);
  const load = loadavg()
    .map((l) => l.toFixed(2))
    .join(" ");
  console.log(`load average ${load}; ${o.rounds} rounds per subject, alternating`);
  const rows: string[][] = [["subject", "in flight", "calls/s", "p50", "p99", `p50 / ${o.baseline}'s`, `calls/s / ${o.baseline}'s`]];
  for (const [inFlight, calls] of Object.entries(o.calls).map(([k, v]) => [Number(k), v] as const)) {
    const rounds = new Map<string, Round[]>(names.map((n) => [n, []]));
    for (const n of names) await round(subjects[n] as Call, inFlight, o.warmup);
    for (let r = 0; r < o.rounds; r++) {
      for (let i = 0; i < names.length; i++) {
        const n = names[(r + i) % names.length] as string;
        rounds.get(n)?.push(await round(subjects[n] as Call, inFlight, calls));
      }
    }
    const base = rounds.get(o.baseline) ?? [];
    const baseP50 = median(pooled(base));
    const baseRate = median(base.map((x) => x.rate));
    for (const n of names) {
      const rs = rounds.get(n) ?? [];
      const all = pooled(rs);
      const rate = median(rs.map((x) => x.rate));
      rows.push([
        n,
        String(inFlight),
        fmtRate(rate),
        fmtMs(median(all)),
        fmtMs(percentile(all, 99)),
        fmtRatio(median(all) / baseP50),
        fmtRatio(rate / baseRate),
      ]);
    }
  }
  return rows;
}
