import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import type { JsonObject } from "@bufbuild/protobuf";
import {
  errorAnswer,
  exampleSource,
  gatewayError,
  type SeenEvent,
  startTestGateway,
  type TenantClient,
  type TestGateway,
  until,
} from "../test-gateway.ts";

const CODE = exampleSource(import.meta.url, "service.ts");

/**
 * A worker whose behaviour its payload decides, so the test knows each job's fate:
 * `failTimes: n` fails the first n attempts, `permanent` fails for good at once, `untilHealed`
 * fails until the worker is told `{ op: "heal" }`. A failure is a reply `{ ok: false }`, or with
 * `asError` an error answer of the worker's own. `holdAttempt: n` defers its answer to attempt n
 * (noreply), so that attempt stays in flight until `{ op: "release" }`, which says what became of
 * each answer it then gave. It remembers every attempt it saw.
 */
const WORKER = `export default {
  init() { return { seen: [], healed: false, held: [] } },
  handleCall(req, state, ctx) {
    if (req.op === "seen") return { reply: state.seen, state };
    if (req.op === "heal") { state.healed = true; return { reply: true, state } }
    if (req.op === "release") return { reply: state.held.splice(0).map(answerLate), state };
    state.seen.push([req.id, req.attempt]);
    const p = req.payload || {};
    if (p.holdAttempt === req.attempt) { state.held.push(ctx.replyTo); return { noreply: true, state } }
    if (p.permanent) return fail(p, "the address does not exist", false, state);
    if (p.untilHealed && !state.healed) return fail(p, "downstream is down", true, state);
    if (typeof p.failTimes === "number" && req.attempt <= p.failTimes) return fail(p, "attempt " + req.attempt + " failed", true, state);
    return { reply: { ok: true }, state };
  },
};
function fail(p, message, retry, state) {
  if (p.asError) return { error: { code: retry ? "unavailable" : "rejected", message, ...(retry ? {} : { details: { retry: false } }) }, state };
  return { reply: { ok: false, error: message, ...(retry ? {} : { retry: false }) }, state };
}
function answerLate(to) {
  try { solo.reply(to, { ok: true }); return "answered" } catch (e) { return e.reason }
}`;

const QUEUE_GRANTS = { call: ["worker"], storage: true, timers: true, emit: true };
const QUEUE_ARGS = { worker: "worker", maxAttempts: 3, backoffMs: 10, backoffFactor: 2, jitter: 0 };

interface Enqueued {
  id: string;
  duplicate: boolean;
}
interface Stats {
  pending: number;
  dead: number;
  enqueued: number;
  succeeded: number;
  failedAttempts: number;
  deadLettered: number;
  waiting: number;
}
interface JobView {
  status: "pending" | "dead";
  job: { id: string; attempts: number; maxAttempts: number; lastError: { reason: string; message: string } | null };
}
/** What a wait is answered with. */
interface Outcome {
  id: string;
  status: "succeeded" | "dead" | "cancelled";
  attempts: number;
  error?: { reason: string; message: string } | null;
}

/** Long enough for any job here to settle: a wait is bounded by its caller's timeout. */
const WAIT_MS = 60_000;

let gw: TestGateway;
let acme: TenantClient;

/** A queue's events about one job, oldest first. */
async function eventsOf(id: string, queue = "queue"): Promise<Array<{ type: string; payload: JsonObject }>> {
  const types = ["retrying", "succeeded", "dead"].map((t) => `svc.${queue}.job.${t}`);
  const all: SeenEvent[] = await acme.events(types);
  return all
    .filter((e) => (e.payload as JsonObject).id === id)
    .map((e) => ({ type: e.type.replace(`svc.${queue}.`, ""), payload: e.payload as JsonObject }));
}

async function settled(id: string, queue = "queue"): Promise<Array<{ type: string; payload: JsonObject }>> {
  let seen: Array<{ type: string; payload: JsonObject }> = [];
  await until(`job ${id} to succeed or die`, async () => {
    seen = await eventsOf(id, queue);
    return seen.some((e) => e.type !== "job.retrying");
  });
  return seen;
}

const stats = (queue = "queue") => acme.call<Stats>(queue, { op: "stats" });

async function enqueue(payload: JsonObject, extra: JsonObject = {}): Promise<string> {
  const r = await acme.call<Enqueued>("queue", { op: "enqueue", payload, ...extra });
  assert.equal(r.duplicate, false);
  return r.id;
}

before(async () => {
  gw = await startTestGateway();
  acme = await gw.tenant("acme", ["deploy:queue*", "deploy:worker", "call:queue*", "call:worker", "call:ghost", "events:read"]);
  await acme.deploy("worker", WORKER);
  await acme.deploy("queue", CODE, { args: QUEUE_ARGS, grants: QUEUE_GRANTS });
});

after(async () => {
  await gw?.close();
});

describe("the job-queue example", () => {
  it("hands a job to the worker and reports it done", async () => {
    const id = await enqueue({ task: "welcome-email", to: "ada@example.com" });
    assert.match(id, /^job-\d{12}$/);
    assert.deepEqual(await settled(id), [{ type: "job.succeeded", payload: { id, attempts: 1 } }]);
    const seen = await acme.call<Array<[string, number]>>("worker", { op: "seen" });
    assert.deepEqual(
      seen.filter(([j]) => j === id),
      [[id, 1]],
    );
    assert.equal((await errorAnswer(acme.call("queue", { op: "get", id }), "queue")).code, "not_found", "finished jobs are not kept");
  });

  it("retries a failing job with exponential backoff until it succeeds", async () => {
    const id = await enqueue({ failTimes: 2 });
    const events = await settled(id);
    assert.deepEqual(events, [
      { type: "job.retrying", payload: { id, attempt: 1, delayMs: 10, error: { reason: "WORKER_FAILED", message: "attempt 1 failed" } } },
      { type: "job.retrying", payload: { id, attempt: 2, delayMs: 20, error: { reason: "WORKER_FAILED", message: "attempt 2 failed" } } },
      { type: "job.succeeded", payload: { id, attempts: 3 } },
    ]);
  });

  it("dead-letters a job after maxAttempts, and redrives it once the cause is fixed", async () => {
    const id = await enqueue({ untilHealed: true });
    const events = await settled(id);
    assert.deepEqual(
      events.map((e) => [e.type, e.payload.attempt ?? e.payload.attempts, e.payload.delayMs ?? null]),
      [
        ["job.retrying", 1, 10],
        ["job.retrying", 2, 20],
        ["job.dead", 3, null],
      ],
    );
    const dead = await acme.call<JobView>("queue", { op: "get", id });
    assert.equal(dead.status, "dead");
    assert.equal(dead.job.attempts, 3);
    assert.deepEqual(dead.job.lastError, { reason: "WORKER_FAILED", message: "downstream is down" });
    const list = await acme.call<{ jobs: Array<{ id: string }>; more: boolean }>("queue", { op: "dead" });
    assert.deepEqual(
      list.jobs.map((j) => j.id),
      [id],
    );
    await acme.call("worker", { op: "heal" });
    assert.deepEqual(await acme.call("queue", { op: "redrive", id }), { redriven: id });
    await until("the redriven job to succeed", async () => (await eventsOf(id)).some((e) => e.type === "job.succeeded"));
    assert.deepEqual((await eventsOf(id)).at(-1), { type: "job.succeeded", payload: { id, attempts: 1 } });
    assert.deepEqual((await acme.call<{ jobs: unknown[] }>("queue", { op: "dead" })).jobs, []);
  });

  it("dead-letters at once when the worker says the failure is permanent", async () => {
    const id = await enqueue({ permanent: true });
    assert.deepEqual(await settled(id), [
      { type: "job.dead", payload: { id, attempts: 1, error: { reason: "WORKER_FAILED", message: "the address does not exist" } } },
    ]);
    assert.deepEqual(await acme.call("queue", { op: "discard", id }), { discarded: id });
    assert.equal((await errorAnswer(acme.call("queue", { op: "get", id }), "queue")).code, "not_found");
  });

  it("takes a worker's error answer as a failed attempt, final when its details say retry: false", async () => {
    const flaky = await enqueue({ failTimes: 1, asError: true });
    assert.deepEqual(await settled(flaky), [
      {
        type: "job.retrying",
        payload: { id: flaky, attempt: 1, delayMs: 10, error: { reason: "unavailable", message: "attempt 1 failed" } },
      },
      { type: "job.succeeded", payload: { id: flaky, attempts: 2 } },
    ]);
    const doomed = await enqueue({ permanent: true, asError: true });
    assert.deepEqual(await settled(doomed), [
      { type: "job.dead", payload: { id: doomed, attempts: 1, error: { reason: "rejected", message: "the address does not exist" } } },
    ]);
    // Retried until the job runs out of attempts, as a failure replied with { ok: false } is.
    const down = await enqueue({ failTimes: 9, asError: true }, { maxAttempts: 2 });
    assert.deepEqual(
      (await settled(down)).map((e) => [e.type, e.payload.error]),
      [
        ["job.retrying", { reason: "unavailable", message: "attempt 1 failed" }],
        ["job.dead", { reason: "unavailable", message: "attempt 2 failed" }],
      ],
    );
    for (const id of [doomed, down]) await acme.call("queue", { op: "discard", id });
  });

  it("answers an enqueue with wait: true when the job's fate is known, and a wait for a dead job at once", async () => {
    const done = await acme.call<Outcome>("queue", { op: "enqueue", payload: { failTimes: 1 }, wait: true }, WAIT_MS);
    assert.match(done.id, /^job-\d{12}$/);
    assert.deepEqual(done, { id: done.id, status: "succeeded", attempts: 2 });
    const dead = await acme.call<Outcome>("queue", { op: "enqueue", id: "doomed", payload: { permanent: true }, wait: true }, WAIT_MS);
    const error = { reason: "WORKER_FAILED", message: "the address does not exist" };
    assert.deepEqual(dead, { id: "doomed", status: "dead", attempts: 1, error });
    // Known already: a wait for a dead job, or an enqueue with wait of its id again, is answered at once.
    assert.deepEqual(await acme.call("queue", { op: "wait", id: "doomed" }), dead);
    assert.deepEqual(await acme.call("queue", { op: "enqueue", id: "doomed", payload: {}, wait: true }), dead);
    await acme.call("queue", { op: "discard", id: "doomed" });
    // Finished jobs are not kept, so waiting for one finished already is not_found.
    const gone = await errorAnswer(acme.call("queue", { op: "wait", id: done.id }), "queue");
    assert.deepEqual([gone.code, gone.details], ["not_found", { field: "id" }]);
    assert.equal((await stats()).waiting, 0);
  });

  it("holds every wait for a pending job until its fate, here a cancel, and skips a waiter that gave up", async () => {
    const id = await enqueue({ task: "later" }, { delayMs: 3_600_000 });
    const waits = [1, 2].map(() => acme.call<Outcome>("queue", { op: "wait", id }, WAIT_MS));
    // This one gives up after 2 s: the queue still holds its handle, and must skip it when it answers.
    const gaveUp = gatewayError(acme.call("queue", { op: "wait", id }, 2000));
    await until("three waits to be held", async () => (await stats()).waiting === 3);
    assert.equal((await gaveUp).reason, "SOLO_ERR_CALL_TIMEOUT");
    assert.deepEqual(await acme.call("queue", { op: "cancel", id }), { cancelled: id });
    assert.deepEqual(await Promise.all(waits), [
      { id, status: "cancelled", attempts: 0 },
      { id, status: "cancelled", attempts: 0 },
    ]);
    assert.equal((await stats()).waiting, 0);
    // Replying to the caller that gave up threw SOLO_ERR_REPLY_TOO_LATE, which the queue caught.
    assert.deepEqual(await acme.events(["service_crashed"]), []);
  });

  it("counts a worker that is not there as a failure, with the kernel's reason", async () => {
    await acme.deploy("queue-ghost", CODE, {
      args: { ...QUEUE_ARGS, worker: "ghost", maxAttempts: 2 },
      grants: { ...QUEUE_GRANTS, call: ["ghost"] },
    });
    const { id } = await acme.call<Enqueued>("queue-ghost", { op: "enqueue", payload: null });
    await until("the job to die", async () => (await acme.call<Stats>("queue-ghost", { op: "stats" })).deadLettered === 1);
    const dead = await acme.call<JobView>("queue-ghost", { op: "get", id });
    assert.equal(dead.job.attempts, 2);
    assert.equal(dead.job.lastError?.reason, "SOLO_ERR_SERVICE_NOT_FOUND");
  });

  it("keeps jobs across a restart and never reuses an id", async () => {
    const later = await enqueue({ task: "report" }, { delayMs: 3_600_000 });
    await acme.restart("queue");
    const view = await acme.call<JobView>("queue", { op: "get", id: later });
    assert.equal(view.status, "pending");
    assert.equal(view.job.attempts, 0);
    const stats = await acme.call<Stats & { nextDueInMs: number }>("queue", { op: "stats" });
    assert.equal(stats.pending, 1);
    assert.ok(stats.nextDueInMs > 3_000_000, "the wake-up timer was armed again for the delayed job");
    const next = await enqueue({ task: "another" }, { delayMs: 3_600_000 });
    assert.ok(next > later, `${next} comes after ${later}`);
    assert.deepEqual(await acme.call("queue", { op: "cancel", id: later }), { cancelled: later });
    assert.deepEqual(await acme.call("queue", { op: "cancel", id: next }), { cancelled: next });
  });

  it("counts an attempt the queue was stopped in, runs the job again, and dead-letters it if that was the last", async () => {
    // The worker holds attempt 1 of each job unanswered, so the queue is restarted mid-attempt.
    await acme.deploy("queue-restart", CODE, { args: { ...QUEUE_ARGS, callTimeoutMs: 600_000 }, grants: QUEUE_GRANTS });
    const worker = () => acme.call<Array<[string, number]>>("worker", { op: "seen" });
    const attemptsOf = async (id: string) => (await worker()).filter(([j]) => j === id).map(([, n]) => n);
    const interrupt = async (id: string, maxAttempts: number) => {
      const waiting = gatewayError(
        acme.call("queue-restart", { op: "enqueue", id, payload: { holdAttempt: 1 }, maxAttempts, wait: true }, WAIT_MS),
      );
      await until(`attempt 1 of ${id} to be in flight`, async () => (await attemptsOf(id)).length === 1);
      await acme.restart("queue-restart");
      // A waiting caller is answered with the stop; the job itself carries on.
      assert.equal((await waiting).reason, "SOLO_ERR_SERVICE_STOPPED");
    };

    // Attempts left: the job runs again (at least once), and the interrupted attempt counted.
    await interrupt("again", 3);
    assert.deepEqual(await settled("again", "queue-restart"), [{ type: "job.succeeded", payload: { id: "again", attempts: 2 } }]);
    assert.deepEqual(await attemptsOf("again"), [1, 2]);

    // It was the last attempt: the job is dead-lettered as ATTEMPT_INTERRUPTED, never run again.
    await interrupt("last", 1);
    const error = { reason: "ATTEMPT_INTERRUPTED", message: "the queue stopped during the last attempt; it may or may not have run" };
    assert.deepEqual(await settled("last", "queue-restart"), [{ type: "job.dead", payload: { id: "last", attempts: 1, error } }]);
    assert.deepEqual(await acme.call("queue-restart", { op: "wait", id: "last" }), { id: "last", status: "dead", attempts: 1, error });
    const dead = await acme.call<JobView>("queue-restart", { op: "get", id: "last" });
    assert.deepEqual([dead.status, dead.job.attempts, dead.job.lastError], ["dead", 1, error]);
    assert.deepEqual(await attemptsOf("last"), [1]);

    // The worker's late answers to the stopped queue's calls reach no one.
    assert.deepEqual(await acme.call("worker", { op: "release" }), ["SOLO_ERR_REPLY_TOO_LATE", "SOLO_ERR_REPLY_TOO_LATE"]);
    const counts = await stats("queue-restart");
    assert.deepEqual([counts.pending, counts.dead, counts.waiting], [0, 1, 0]);
  });

  it("takes a hot swap from a version without waits, keeping its jobs", async () => {
    const before = CODE.replace("waiters: {},", "");
    assert.notEqual(before, CODE);
    await acme.deploy("queue-swap", before, { args: QUEUE_ARGS, grants: QUEUE_GRANTS });
    const id = await acme.call<Enqueued>("queue-swap", { op: "enqueue", payload: {}, delayMs: 3_600_000 }).then((r) => r.id);
    await acme.kernel.swap({ ref: { tenant: "acme", service: "queue-swap" }, code: CODE });
    const wait = acme.call<Outcome>("queue-swap", { op: "wait", id }, WAIT_MS);
    await until("the wait to be held", async () => (await stats("queue-swap")).waiting === 1);
    await acme.call("queue-swap", { op: "cancel", id });
    assert.deepEqual(await wait, { id, status: "cancelled", attempts: 0 });
  });

  it("enqueues once per client-chosen id", async () => {
    const first = await acme.call<Enqueued>("queue", { op: "enqueue", id: "order-17:receipt", payload: {}, delayMs: 3_600_000 });
    const again = await acme.call<Enqueued>("queue", { op: "enqueue", id: "order-17:receipt", payload: {} });
    assert.deepEqual([first.id, first.duplicate, again.id, again.duplicate], ["order-17:receipt", false, "order-17:receipt", true]);
    await acme.call("queue", { op: "cancel", id: "order-17:receipt" });
    // Ids are the client's: one named like an Object.prototype member is just an id.
    const odd = await acme.call<Enqueued>("queue", { op: "enqueue", id: "constructor", payload: {}, delayMs: 3_600_000 });
    assert.deepEqual(odd, { id: "constructor", duplicate: false, runAt: (odd as Enqueued & { runAt: number }).runAt });
    assert.equal((await acme.call<JobView>("queue", { op: "get", id: "constructor" })).job.attempts, 0);
    await acme.call("queue", { op: "cancel", id: "constructor" });
  });

  it("answers malformed requests with an error of its own, naming the field, and changes nothing", async () => {
    const before = await stats();
    const cases: Array<[JsonObject | string, string, string]> = [
      [{ op: "enqueue" }, "invalid_argument", "payload"],
      [{ op: "enqueue", payload: 1, delayMs: -5 }, "invalid_argument", "delayMs"],
      [{ op: "enqueue", payload: 1, maxAttempts: 0 }, "invalid_argument", "maxAttempts"],
      [{ op: "enqueue", payload: 1, id: "has space" }, "invalid_argument", "id"],
      [{ op: "enqueue", payload: 1, wait: "yes" }, "invalid_argument", "wait"],
      [{ op: "wait" }, "invalid_argument", "id"],
      [{ op: "purge" }, "invalid_argument", "op"],
      [{ op: "get", id: "job-999999999999" }, "not_found", "id"],
      [{ op: "redrive", id: "nope" }, "not_found", "id"],
      [{ op: "wait", id: "nope" }, "not_found", "id"],
      ["enqueue", "invalid_argument", ""],
    ];
    for (const [request, code, field] of cases) {
      const answer = await errorAnswer(acme.call("queue", request), "queue");
      assert.deepEqual([answer.code, answer.details], [code, field === "" ? undefined : { field }], JSON.stringify(request));
    }
    assert.deepEqual(await stats(), before);
  });

  it("refuses a deploy without a worker, saying what to set", async () => {
    const e = await gatewayError(acme.deploy("queue-bad", CODE, { args: { maxAttempts: 3 }, grants: QUEUE_GRANTS }));
    assert.equal(e.reason, "SOLO_ERR_DEPLOY_INIT_FAILED");
    assert.match(e.message, /args\.worker must name the service that runs jobs/);
  });
});
