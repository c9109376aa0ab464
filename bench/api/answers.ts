// What a call costs by how the service answers it: a reply (the baseline, carrying the same value as
// the error answer), an error answer of the
// service's own (SOLO_ERR_APPLICATION_ERROR, caught by the caller), and a deferred reply (noreply,
// answered by solo.reply from the next message). Same kernel, same service, same run, the three
// alternating round by round, with 1 and 64 calls in flight.
import { mkdtempSync, rmSync } from "node:fs";
import { availableParallelism, tmpdir } from "node:os";
import { join } from "node:path";
import { type Kernel, openKernel } from "../../src/index.ts";
import { type Call, fmtMs, fmtRate, fmtRatio, median, percentile, printTable, type Round, round } from "../stats.ts";

// "reply" answers at once; "error" answers with an error of its own; "defer" holds the call and
// answers it (with any other held ones) when the next message arrives: a call, or the one timer
// message it arms. So a deferred call waits about one message, as in a queue.
const SERVICE = `export default {
  init() { return { n: 0, held: [], armed: false } },
  handleCall(req, s, ctx) {
    s.n++;
    for (const to of s.held) solo.reply(to, { code: "not_found", message: "no such thing", details: { n: s.n } });
    s.held = [];
    // Every answer carries the same value, so they differ only in how they travel.
    if (req === "reply") return { reply: { code: "not_found", message: "no such thing", details: { n: s.n } }, state: s };
    if (req === "number") return { reply: s.n, state: s };
    if (req === "error") return { error: { code: "not_found", message: "no such thing", details: { n: s.n } }, state: s };
    s.held.push(ctx.replyTo);
    if (!s.armed) { solo.sendAfter(0, "release"); s.armed = true; }
    return { noreply: true, state: s };
  },
  handleInfo(msg, s) {
    for (const to of s.held) solo.reply(to, { code: "not_found", message: "no such thing", details: { n: s.n } });
    s.held = [];
    s.armed = false;
    return { state: s };
  },
};`;

const IN_FLIGHT = [1, 64] as const;
const ROUNDS = 5;
const WARMUP_CALLS = 2000;
const ROUND_MS = 600;
const MIN_ROUND_CALLS = 500;
const MAX_ROUND_CALLS = 200_000;

const dataDir = mkdtempSync(join(tmpdir(), "solo-bench-answers-"));
const kernel: Kernel = await openKernel({ dataDir });
await kernel.deploy({ tenant: "bench", service: "answers", code: SERVICE, limits: { mailbox: 100_000 } });

let errors = 0;
const subjects: Array<{ readonly name: string; readonly call: Call }> = [
  { name: "reply (baseline)", call: () => kernel.call("bench", "answers", "reply") },
  {
    name: "error answer (caught)",
    call: () =>
      kernel.call("bench", "answers", "error").then(
        () => Promise.reject(new Error("an error answer resolved")),
        (e: { reason?: string }) => {
          if (e.reason !== "SOLO_ERR_APPLICATION_ERROR") throw e;
          errors++;
        },
      ),
  },
  { name: "deferred reply (solo.reply)", call: () => kernel.call("bench", "answers", "defer") },
  // Not an answer form: what the same call costs when its reply is a number, not an object.
  { name: "reply of a number (reference)", call: () => kernel.call("bench", "answers", "number") },
];

console.log(
  `answers: ${availableParallelism()} cores, ${kernel.schedulers} schedulers; ${ROUNDS} rounds of about ${ROUND_MS} ms after a warm-up, the three subjects alternating`,
);

const size = (rate: number): number => Math.min(MAX_ROUND_CALLS, Math.max(MIN_ROUND_CALLS, Math.round((rate * ROUND_MS) / 1000)));
const rows: string[][] = [["answered with", "in flight", "median calls/s", "rounds min..max", "latency median", "latency p99", "vs reply"]];
for (const inFlight of IN_FLIGHT) {
  const rates = new Map<string, number>();
  for (const s of subjects) rates.set(s.name, (await round(s.call, inFlight, WARMUP_CALLS)).rate);
  const measured = new Map<string, Round[]>(subjects.map((s) => [s.name, []]));
  for (let r = 0; r < ROUNDS; r++) {
    for (const s of subjects) measured.get(s.name)?.push(await round(s.call, inFlight, size(rates.get(s.name) ?? 1000)));
  }
  const baseline = median((measured.get(subjects[0]?.name ?? "") ?? []).map((x) => x.rate));
  for (const s of subjects) {
    const rounds = measured.get(s.name) ?? [];
    const perRound = rounds.map((x) => x.rate);
    const all = Float64Array.from(rounds.flatMap((x) => Array.from(x.latencies)));
    const rate = median(perRound);
    rows.push([
      s.name,
      String(inFlight),
      fmtRate(rate),
      `${fmtRate(Math.min(...perRound), "")}..${fmtRate(Math.max(...perRound), "")}`,
      fmtMs(median(all)),
      fmtMs(percentile(all, 99)),
      fmtRatio(rate / baseline),
    ]);
  }
}

const status = kernel.status("bench", "answers");
await kernel.close();
rmSync(dataDir, { recursive: true, force: true });

console.log();
printTable(rows);
console.log(`\ncheck: ${errors} error answers caught; the service never restarted (${status.restarts} restarts, state ${status.state})`);
if (status.restarts !== 0 || status.state !== "running") process.exitCode = 1;
