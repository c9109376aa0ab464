import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import type { JsonObject } from "@bufbuild/protobuf";
import {
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
 * fails until the worker is told `{ op: "heal" }`. It remembers every attempt it saw.
 */
const WORKER = `export default {
  init() { return { seen: [], healed: false } },
  handleCall(req, state) {
    if (req.op === "seen") return { reply: state.seen, state };
    if (req.op === "heal") { state.healed = true; return { reply: true, state } }
    state.seen.push([req.id, req.attempt]);
    const p = req.payload || {};
    if (p.permanent) return { reply: { ok: false, error: "the address does not exist", retry: false }, state };
    if (p.untilHealed && !state.healed) return { reply: { ok: false, error: "downstream is down" }, state };
    if (typeof p.failTimes === "number" && req.attempt <= p.failTimes) return { reply: { ok: false, error: "attempt " + req.attempt + " failed" }, state };
    return { reply: { ok: true }, state };
  },
};`;

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
}
interface JobView {
  status: "pending" | "dead";
  job: { id: string; attempts: number; maxAttempts: number; lastError: { reason: string; message: string } | null };
}
interface ErrorReply {
  error: { code: string; field?: string; message: string };
}

let gw: TestGateway;
let acme: TenantClient;

/** The queue's events about one job, oldest first. */
async function eventsOf(id: string): Promise<Array<{ type: string; payload: JsonObject }>> {
  const all: SeenEvent[] = await acme.events(["svc.queue.job.retrying", "svc.queue.job.succeeded", "svc.queue.job.dead"]);
  return all
    .filter((e) => (e.payload as JsonObject).id === id)
    .map((e) => ({ type: e.type.replace("svc.queue.", ""), payload: e.payload as JsonObject }));
}

async function settled(id: string): Promise<Array<{ type: string; payload: JsonObject }>> {
  let seen: Array<{ type: string; payload: JsonObject }> = [];
  await until(`job ${id} to succeed or die`, async () => {
    seen = await eventsOf(id);
    return seen.some((e) => e.type !== "job.retrying");
  });
  return seen;
}

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
    assert.equal((await acme.call<ErrorReply>("queue", { op: "get", id })).error.code, "not_found", "finished jobs are not kept");
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
    assert.equal((await acme.call<ErrorReply>("queue", { op: "get", id })).error.code, "not_found");
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

  it("answers malformed requests with a precise error and changes nothing", async () => {
    const before = await acme.call<Stats>("queue", { op: "stats" });
    const cases: Array<[JsonObject | string, string, string]> = [
      [{ op: "enqueue" }, "invalid_argument", "payload"],
      [{ op: "enqueue", payload: 1, delayMs: -5 }, "invalid_argument", "delayMs"],
      [{ op: "enqueue", payload: 1, maxAttempts: 0 }, "invalid_argument", "maxAttempts"],
      [{ op: "enqueue", payload: 1, id: "has space" }, "invalid_argument", "id"],
      [{ op: "purge" }, "invalid_argument", "op"],
      [{ op: "get", id: "job-999999999999" }, "not_found", "id"],
      [{ op: "redrive", id: "nope" }, "not_found", "id"],
      ["enqueue", "invalid_argument", ""],
    ];
    for (const [request, code, field] of cases) {
      const reply = await acme.call<ErrorReply>("queue", request);
      assert.deepEqual([reply.error?.code, reply.error?.field], [code, field], JSON.stringify(request));
    }
    assert.deepEqual(await acme.call<Stats>("queue", { op: "stats" }), before);
  });

  it("refuses a deploy without a worker, saying what to set", async () => {
    const e = await gatewayError(acme.deploy("queue-bad", CODE, { args: { maxAttempts: 3 }, grants: QUEUE_GRANTS }));
    assert.equal(e.reason, "SOLO_ERR_DEPLOY_INIT_FAILED");
    assert.match(e.message, /args\.worker must name the service that runs jobs/);
  });
});
