// What a durable log line costs against one kept only in memory (same run, rounds alternating):
// LogLines.add() with the store behind it (a real SQLite store through the event log's group
// commit, written in batches) and without, for 20 services logging lines of about 80 characters.
// Measured: the kernel's own cost per line when it is logged (what the router pays), and, for the
// durable one, the round's lines per second until the store holds what it keeps (each service's
// last 200: lines a batch would only delete again are not written).
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { performance } from "node:perf_hooks";
import type { LogEntry } from "../../src/api/services.ts";
import { EventLog } from "../../src/kernel/log/event-log.ts";
import { LogLines } from "../../src/kernel/log/lines.ts";
import { openSqliteStore } from "../../src/store/sqlite/sqlite-store.ts";
import { fmtRate, fmtRatio, median, printTable } from "../stats.ts";

const ROUNDS = 5;
const LINES = 20_000;
const SERVICES = 20;

const dir = mkdtempSync(join(tmpdir(), "solo-bench-log-lines-"));
const store = await openSqliteStore(join(dir, "solo.db"));
const log = await EventLog.open(store);

const lineOf = (i: number): LogEntry => ({
  tenant: "bench",
  service: `svc-${i % SERVICES}`,
  level: "info",
  text: `handled request ${i} for customer ${(i * 7919) % 100_000} in ${i % 97} ms`,
  at: new Date(1_780_000_000_000 + i).toISOString(),
});
const lines = Array.from({ length: LINES }, (_, i) => lineOf(i));

/** Adds every line; returns lines/s of add() and, when durable, lines/s until the store has them all. */
async function round(durable: boolean): Promise<{ add: number; stored: number }> {
  const kept = durable ? new LogLines((m) => log.write(m, [])) : new LogLines();
  const started = performance.now();
  for (const l of lines) kept.add(l);
  const added = performance.now();
  await kept.flush();
  const stored = performance.now();
  return { add: LINES / ((added - started) / 1000), stored: durable ? LINES / ((stored - started) / 1000) : Number.NaN };
}

for (let i = 0; i < 2; i++) {
  await round(false);
  await round(true);
}
const memory: number[] = [];
const durableAdd: number[] = [];
const durableStored: number[] = [];
for (let r = 0; r < ROUNDS; r++) {
  memory.push((await round(false)).add);
  const d = await round(true);
  durableAdd.push(d.add);
  durableStored.push(d.stored);
}
const rows = (await store.logLines()).length;
await log.close();
await store.close();
rmSync(dir, { recursive: true, force: true });

console.log(
  `log-lines: ${LINES} lines of about 80 characters from ${SERVICES} services per round, ${ROUNDS} rounds after a warm-up, in memory and durable alternating (SQLite)`,
);
console.log();
printTable([
  ["measure", "median lines/s", "rounds min..max", "vs in memory"],
  [
    "LogLines.add, in memory (baseline)",
    fmtRate(median(memory)),
    `${fmtRate(Math.min(...memory), "")}..${fmtRate(Math.max(...memory), "")}`,
    "1.00x",
  ],
  [
    "LogLines.add, durable (queued for the store)",
    fmtRate(median(durableAdd)),
    `${fmtRate(Math.min(...durableAdd), "")}..${fmtRate(Math.max(...durableAdd), "")}`,
    fmtRatio(median(durableAdd) / median(memory)),
  ],
  [
    "durable, until the store holds what it keeps",
    fmtRate(median(durableStored)),
    `${fmtRate(Math.min(...durableStored), "")}..${fmtRate(Math.max(...durableStored), "")}`,
    fmtRatio(median(durableStored) / median(memory)),
  ],
]);
// Each service keeps its last 200 in the store, whatever was written.
console.log(`\ncheck: the store kept ${rows} lines (${SERVICES} services x 200)`);
if (rows !== SERVICES * 200) process.exitCode = 1;
