// What capability checks cost per call. (1) End to end: the same counter service called through
// kernel.call (the system principal: no token, the baseline) and through kernel.as(token).call
// with a tenant token holding `call:counter` (the token is hashed, looked up, checked for expiry
// and revocation, and its permissions matched, at every call), with 1 and with 64 calls in flight,
// rounds of the two alternating. (2) The check alone, without a service call: TokenTable.verify
// in a table of 10,000 tokens (against a table of 1, and against the SHA-256 it starts with), and
// Authority.authorize (verify + reach + permission check + the verification count), in tight
// loops; and the hash and verify timed one at a time between sequential calls, where they run cold.
import { createHash } from "node:crypto";
import { mkdtempSync, rmSync } from "node:fs";
import { availableParallelism, loadavg, tmpdir } from "node:os";
import { join } from "node:path";
import { openKernel } from "../../src/index.ts";
import { Authority, type Need, type Target } from "../../src/kernel/auth/authority.ts";
import { TokenTable } from "../../src/kernel/auth/tokens.ts";
import { EventLog } from "../../src/kernel/log/event-log.ts";
import { openSqliteStore } from "../../src/store/sqlite/sqlite-store.ts";
import { type Call, fmtRate, fmtRatio, median, percentile, pooled, printTable, type Round, round } from "../stats.ts";

const COUNTER = "export default { init(){return 0}, handleCall(r,s){ return { reply: s+1, state: s+1 } } }";
const TENANT = "bench";

const IN_FLIGHT = [1, 64] as const;
// Many short rounds, the two principals alternating round by round (which one goes first
// alternates too): the difference sought is a few µs, smaller than the drift between long rounds
// on a 2-core machine, so it is taken round by round (paired) and the median of those reported.
const ROUNDS = { 1: 40, 64: 30 } as const;
const WARMUP_CALLS = { 1: 3000, 64: 30_000 } as const;
// Each measured round is sized from the warm-up rate to last about this long, within the bounds.
const ROUND_MS = { 1: 100, 64: 150 } as const;
const MIN_ROUND_CALLS = 200;
const MAX_ROUND_CALLS = 100_000;

const TABLE_TOKENS = 10_000;
const MICRO_TENANTS = 100;
const MICRO_ROUNDS = 9;
const MICRO_OPS = 100_000;
const MICRO_WARMUP_OPS = 30_000;
const BETWEEN_CALLS = 5000;

const us = (ms: number): string => (Number.isFinite(ms) ? `${(ms * 1000).toFixed(1)} µs` : "-");
const ns = (n: number): string => (Number.isFinite(n) ? `${Math.round(n).toLocaleString("en-US")} ns` : "-");

// ---- the tokens of the microbenchmarks -----------------------------------------------------

const NOW = Date.now();
const clock = (): number => NOW;
function tableOf(n: number): { table: TokenTable; tokens: string[] } {
  const table = new TokenTable([]);
  const tokens: string[] = [];
  for (let i = 0; i < n; i++) {
    const { row, token } = table.mint({
      tenant: `tenant${i % MICRO_TENANTS}`,
      // The permission the check needs comes last, so the permission match walks all three.
      permissions: JSON.stringify(["services:read", "events:read", "call:counter"]),
      expiresAt: NOW + 3_600_000,
      createdAt: NOW,
      creator: "system",
      parent: null,
      label: "",
    });
    table.add(row);
    tokens.push(token);
  }
  return { table, tokens };
}

const big = tableOf(TABLE_TOKENS);
const one = tableOf(1);
const bigTokens = big.tokens;
const oneToken = one.tokens[0] as string;
const tokenAt = (i: number): string => bigTokens[i % TABLE_TOKENS] as string;

// ---- (1) end to end: kernel.call against kernel.as(token).call ------------------------------

const dataDir = mkdtempSync(join(tmpdir(), "solo-bench-"));
const kernel = await openKernel({ dataDir });
await kernel.tenants.create(TENANT);
await kernel.deploy({ tenant: TENANT, service: "counter", code: COUNTER });
const granted = await kernel.tokens.grant({ tenant: TENANT, permissions: ["call:counter"], label: "bench auth" });
const session = kernel.as(granted.token);
const system: Call = () => kernel.call(TENANT, "counter");
const withToken: Call = () => session.call(TENANT, "counter");

console.log(
  `auth: ${availableParallelism()} cores (load average ${loadavg()[0]?.toFixed(2)}), ${kernel.schedulers} schedulers (the counter runs on one); ${ROUNDS[1]} rounds of about ${ROUND_MS[1]} ms (1 in flight) and ${ROUNDS[64]} of about ${ROUND_MS[64]} ms (64 in flight) after a warm-up, kernel.call and kernel.as(token).call alternating; then ${MICRO_ROUNDS} rounds of ${MICRO_OPS.toLocaleString("en-US")} operations per microbenchmark`,
);

interface Result {
  readonly inFlight: number;
  readonly system: Round[];
  readonly token: Round[];
}
const results: Result[] = [];
let calls = 0;
for (const inFlight of IN_FLIGHT) {
  const warm = WARMUP_CALLS[inFlight];
  const sysWarm = await round(system, inFlight, warm);
  const tokWarm = await round(withToken, inFlight, warm);
  calls += 2 * warm;
  // Both sides make the same number of calls per round, sized from the slower of the two.
  const n = Math.min(
    MAX_ROUND_CALLS,
    Math.max(MIN_ROUND_CALLS, Math.round((Math.min(sysWarm.rate, tokWarm.rate) * ROUND_MS[inFlight]) / 1000)),
  );
  const result: Result = { inFlight, system: [], token: [] };
  for (let r = 0; r < ROUNDS[inFlight]; r++) {
    // Alternate which goes first, so neither always runs on a warmer (or more fragmented) heap.
    if (r % 2 === 0) {
      result.system.push(await round(system, inFlight, n));
      result.token.push(await round(withToken, inFlight, n));
    } else {
      result.token.push(await round(withToken, inFlight, n));
      result.system.push(await round(system, inFlight, n));
    }
    calls += 2 * n;
  }
  results.push(result);
  console.log(`  ${inFlight} in flight: ${ROUNDS[inFlight]} x ${n} calls each`);
}

// The check's parts as a sequential caller meets them: one at a time, each between two calls
// (the main thread idles waiting for each reply, so caches and branch predictors are cold).
const between = { sha: [] as number[], verify: [] as number[] };
for (let i = 0; i < BETWEEN_CALLS; i++) {
  let started = performance.now();
  createHash("sha256").update(tokenAt(i)).digest("hex");
  between.sha.push((performance.now() - started) * 1e6);
  await system();
  started = performance.now();
  big.table.verify(tokenAt(i), NOW);
  between.verify.push((performance.now() - started) * 1e6);
  await system();
  calls += 2;
}

// Every call, with or without the token, must have reached the service exactly once.
const count = await kernel.call(TENANT, "counter");
const counted = count === calls + 1;
const verifiedEvents = (await kernel.events({ tenant: TENANT, types: ["capability_verified"], limit: 1000 })).events.length;
const deniedEvents = (await kernel.events({ types: ["capability_denied"], limit: 1000 })).events.length;
await kernel.close();
rmSync(dataDir, { recursive: true, force: true });

// ---- (2) the check alone --------------------------------------------------------------------

interface MicroOp {
  readonly what: string;
  /** One operation; returns something derived from its result, so it cannot be optimized away. */
  readonly sync?: (i: number) => number;
  readonly async?: (i: number) => Promise<number>;
}

/**
 * Each op's ns per operation in each of `MICRO_ROUNDS` rounds of `MICRO_OPS` calls, after a
 * warm-up; the ops take turns round by round, so a slow stretch of the machine hits them all.
 */
async function runMicro(ops: readonly MicroOp[]): Promise<number[][]> {
  let sink = 0;
  const run = async (op: MicroOp, n: number): Promise<number> => {
    const started = performance.now();
    if (op.sync) for (let i = 0; i < n; i++) sink += op.sync(i);
    else if (op.async) for (let i = 0; i < n; i++) sink += await op.async(i);
    return ((performance.now() - started) * 1e6) / n;
  };
  for (const op of ops) await run(op, MICRO_WARMUP_OPS);
  const perOp = ops.map(() => [] as number[]);
  for (let r = 0; r < MICRO_ROUNDS; r++) {
    for (const [k, op] of ops.entries()) perOp[k]?.push(await run(op, MICRO_OPS));
  }
  if (sink === -1) console.log("");
  return perOp;
}

// Authority over a real (SQLite) event log: a first verification of each token appends a
// capability_verified record; the warm-up makes all of those, and the fixed clock keeps the
// once-a-minute record from coming due again while measuring.
const logDir = mkdtempSync(join(tmpdir(), "solo-bench-"));
const store = await openSqliteStore(join(logDir, "solo.db"));
const log = await EventLog.open(store);
const authority = new Authority(log, big.table, clock, () => true);
const need: Need = { action: "call", pattern: "counter" };
const targets: Target[] = Array.from({ length: MICRO_TENANTS }, (_, t) => ({
  operation: "call",
  tenant: `tenant${t}`,
  subject: "counter",
}));
const targetAt = (i: number): Target => targets[(i % TABLE_TOKENS) % MICRO_TENANTS] as Target;
for (let i = 0; i < TABLE_TOKENS; i++) await authority.authorize(tokenAt(i), targetAt(i), need);
await log.flush();
const verifiedAtWarmup = log.headId;
const principals = bigTokens.map((t) => big.table.verify(t, NOW));

const MICRO: MicroOp[] = [
  { what: "sha256 of a token alone (createHash, hex)", sync: (i) => createHash("sha256").update(tokenAt(i)).digest("hex").length },
  {
    what: `TokenTable.verify, table of ${TABLE_TOKENS.toLocaleString("en-US")} tokens (all used in turn)`,
    sync: (i) => big.table.verify(tokenAt(i), NOW).permissions.length,
  },
  { what: "TokenTable.verify, table of 1 token", sync: () => one.table.verify(oneToken, NOW).permissions.length },
  {
    what: `Authority.authorize (verify + reach + permission + count), ${TABLE_TOKENS.toLocaleString("en-US")} tokens, awaited`,
    async: async (i) => (await authority.authorize(tokenAt(i), targetAt(i), need)).permissions.length,
  },
  {
    what: "Authority.check alone (reach + permission, no verify)",
    sync: (i) => {
      authority.check(principals[i % TABLE_TOKENS] as ReturnType<TokenTable["verify"]>, targetAt(i), need);
      return 1;
    },
  },
];
const microResults = await runMicro(MICRO);
const micro = MICRO.map((op, k) => {
  const xs = microResults[k] ?? [];
  return { what: op.what, r: { median: median(xs), min: Math.min(...xs), max: Math.max(...xs) } };
});
const coldRows = [
  { what: "sha256 of a token alone, one between two sequential calls", xs: between.sha },
  { what: `TokenTable.verify (${TABLE_TOKENS.toLocaleString("en-US")} tokens), one between two sequential calls`, xs: between.verify },
];
const verificationsCounted = authority.verifications;
await log.flush();
const appendedWhileMeasuring = log.headId - verifiedAtWarmup;
await log.close();
await store.close();
rmSync(logDir, { recursive: true, force: true });

// ---- report ---------------------------------------------------------------------------------

const rows: string[][] = [
  ["principal", "in flight", "rounds", "median calls/s", "rounds p25..p75", "µs/call (median)", "latency median", "latency p99"],
];
const diffs: string[][] = [
  [
    "in flight",
    "µs/call system",
    "µs/call token",
    "difference (median of pairs)",
    "pairs p25..p75",
    "share of the system call",
    "calls/s token / system",
  ],
];
const signed = (ms: number): string => `${ms >= 0 ? "+" : ""}${us(ms)}`;
for (const r of results) {
  const line = (name: string, rounds: readonly Round[]): number => {
    const rates = rounds.map((x) => x.rate);
    const lat = pooled(rounds);
    const perCall = median(rounds.map((x) => 1000 / x.rate));
    rows.push([
      name,
      String(r.inFlight),
      `${rounds.length} x ${rounds[0]?.latencies.length ?? 0}`,
      fmtRate(median(rates)),
      `${fmtRate(percentile(rates, 25), "")}..${fmtRate(percentile(rates, 75), "")}`,
      us(perCall),
      us(median(lat)),
      us(percentile(lat, 99)),
    ]);
    return perCall;
  };
  const s = line("kernel.call (system, baseline)", r.system);
  const t = line("kernel.as(token).call (call:counter)", r.token);
  // Round i of each principal ran back to back: their difference is free of the slow drift.
  const pairs = r.token.map((x, i) => 1000 / x.rate - 1000 / (r.system[i] as Round).rate);
  const diff = median(pairs);
  diffs.push([
    String(r.inFlight),
    us(s),
    us(t),
    signed(diff),
    `${signed(percentile(pairs, 25))}..${signed(percentile(pairs, 75))}`,
    `${((diff / s) * 100).toFixed(1)}%`,
    fmtRatio(median(r.token.map((x) => x.rate)) / median(r.system.map((x) => x.rate))),
  ]);
}
console.log("");
printTable(rows);
console.log(
  "µs/call = the median over rounds of 1e6 / the round's calls/s (at 64 in flight, the amortized cost per call); latency = one call's round trip, over all rounds",
);
console.log("");
printTable(diffs);
console.log(
  "difference = the median over rounds of token µs/call - system µs/call of the round run next to it (what verifying and checking the token adds to each call); share = difference / system µs/call",
);

const microRows: string[][] = [["operation (no service call)", "median ns/op", "rounds min..max", "ops/s (one thread)"]];
for (const m of micro) microRows.push([m.what, ns(m.r.median), `${ns(m.r.min)}..${ns(m.r.max)}`, fmtRate(1e9 / m.r.median)]);
for (const c of coldRows)
  microRows.push([c.what, ns(median(c.xs)), `p10..p90 ${ns(percentile(c.xs, 10))}..${ns(percentile(c.xs, 90))}`, "-"]);
console.log("");
printTable(microRows);
console.log(
  `${MICRO_ROUNDS} rounds of ${MICRO_OPS.toLocaleString("en-US")} operations after ${MICRO_WARMUP_OPS.toLocaleString("en-US")} of warm-up; tokens over ${MICRO_TENANTS} tenants, each with 3 permissions (call:counter last); authorize runs on a fixed clock (${verificationsCounted.toLocaleString("en-US")} verifications counted; ${verifiedAtWarmup.toLocaleString("en-US")} capability_verified records appended during its warm-up, ${appendedWhileMeasuring} while measuring)`,
);
console.log(
  `the last two rows: each operation timed alone, ${BETWEEN_CALLS.toLocaleString("en-US")} times, between two sequential kernel.calls (as a 1-in-flight caller meets it, caches cold); median and p10..p90 of single timings`,
);

const okRecords = deniedEvents === 0 && verifiedEvents >= 1;
console.log(
  counted
    ? `\ncheck: the counter saw each of the ${calls} calls exactly once`
    : `\nCHECK FAILED: the counter is at ${String(count)} after ${calls} calls (expected ${calls + 1})`,
);
console.log(
  okRecords
    ? `check: no denial was recorded; ${verifiedEvents} capability_verified record(s) for the token (at most one a minute)`
    : `CHECK FAILED: ${deniedEvents} capability_denied and ${verifiedEvents} capability_verified records`,
);
if (!counted || !okRecords) process.exitCode = 1;
