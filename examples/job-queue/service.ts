/**
 * job-queue: a durable job queue with retries. Jobs are handed to a worker service with
 * `solo.call(worker, { id, attempt, payload })`, one at a time, in due order. A job that fails
 * (the worker answers with an error of its own or replies `{ ok: false }`, throws, times out or
 * is down) is retried after an exponential backoff, up to `maxAttempts`; then it moves to the
 * dead-letter list, where it can be inspected, sent back to the queue (`redrive`) or discarded.
 *
 * Waiting for a job: `wait` (or `enqueue` with `wait: true`) is a deferred call. `handleCall`
 * returns `{ noreply: true, state }` and keeps the caller's `ctx.replyTo`; when the job succeeds,
 * is dead-lettered or cancelled, `solo.reply` answers every caller waiting for it. The callers'
 * handles live in memory only: a restart or a crash of the queue answers them with
 * `SOLO_ERR_SERVICE_STOPPED` or `SOLO_ERR_SERVICE_CRASHED`, and the job itself carries on.
 *
 * Durability: every job lives in `solo.storage` (`job:<id>`, dead letters under `dead:<id>`), and
 * each attempt is recorded before the worker is called, so a restart resumes where the queue
 * was and a job that keeps crashing the queue still runs out of attempts. Delivery is
 * at-least-once: a worker should be idempotent per job id.
 *
 * Time: one timer (`solo.sendAfter`) is armed for the earliest due job, whatever the number of
 * jobs (a service has at most `limits.timers` pending timers). Due times are wall-clock
 * milliseconds (`Date.now()`), so they survive restarts.
 */

interface Config {
  /** The service that runs jobs (the deployment needs `call: [worker]`). */
  readonly worker: string;
  readonly maxAttempts: number;
  /** Delay before the first retry; each later retry waits `backoffFactor` times longer. */
  readonly backoffMs: number;
  readonly backoffFactor: number;
  readonly maxBackoffMs: number;
  /** 0-1: each delay is shortened by up to this fraction, at random, so failed jobs spread out. */
  readonly jitter: number;
  /** How long the worker may take with one job. */
  readonly callTimeoutMs: number;
  /** Pending and dead jobs kept at once. */
  readonly maxJobs: number;
}

type Failure = { readonly reason: string; readonly message: string };

interface Job {
  readonly id: string;
  readonly payload: SoloJson;
  readonly maxAttempts: number;
  readonly enqueuedAt: number;
  /** Attempts started so far (recorded before each call to the worker). */
  attempts: number;
  /** Wall-clock millisecond the next attempt is due. */
  runAt: number;
  lastError: Failure | null;
}

interface DeadJob extends Job {
  readonly diedAt: number;
}

/** What a waiting caller is answered with once its job's fate is known. */
type Outcome =
  | { readonly id: string; readonly status: "succeeded" | "cancelled"; readonly attempts: number }
  | { readonly id: string; readonly status: "dead"; readonly attempts: number; readonly error: Failure | null };

interface State {
  readonly config: Config;
  /** By id; read through own(), since an id may be named like an Object.prototype member. */
  jobs: Record<string, Job>;
  dead: Record<string, DeadJob>;
  seq: number;
  /** The single pending wake-up timer: its token (stale ones are ignored) and when it is due. */
  wake: { token: number; dueAt: number; timer: number } | null;
  wakeTokens: number;
  /** By job id: the reply handles (`ctx.replyTo`) of the calls waiting for it; in memory only. */
  waiters: Record<string, string[]>;
  counts: { enqueued: number; succeeded: number; failedAttempts: number; deadLettered: number; eventsNotRecorded: number };
  lastEventError: string | null;
}

/** A refused request: answered as `{ error, state }`, with the field at fault in `details`. */
interface Refusal {
  readonly error: Solo.ErrorAnswer & { readonly code: "invalid_argument" | "not_found" | "resource_exhausted" };
}

/** How `handle` answers a call: a reply, a refusal, or later (`noreply`, for `wait`). */
type Answer = { readonly reply: unknown } | Refusal | { readonly noreply: true };

type Request =
  | { op: "enqueue"; payload: SoloJson; id?: string; delayMs?: number; maxAttempts?: number; wait: boolean }
  | { op: "get" | "wait" | "cancel" | "redrive" | "discard"; id: string }
  | { op: "dead"; after?: string; limit?: number }
  | { op: "stats" };

const DEFAULTS: Omit<Config, "worker"> = {
  maxAttempts: 5,
  backoffMs: 1000,
  backoffFactor: 2,
  maxBackoffMs: 300_000,
  jitter: 0.2,
  callTimeoutMs: 5000,
  maxJobs: 5000,
};
const RANGES: Record<keyof typeof DEFAULTS, [number, number]> = {
  maxAttempts: [1, 100],
  backoffMs: [0, 86_400_000],
  backoffFactor: [1, 10],
  maxBackoffMs: [0, 86_400_000],
  jitter: [0, 1],
  callTimeoutMs: [1, 600_000],
  maxJobs: [1, 100_000],
};
const ID = /^[A-Za-z0-9][A-Za-z0-9_.:-]{0,63}$/;
const SERVICE = /^[a-z](?:[a-z0-9_-]{0,61}[a-z0-9])?$/;
const MAX_TIMER_MS = 86_400_000;
const MAX_DELAY_MS = 365 * 86_400_000;

function checkConfig(args: unknown): Config {
  if (args === null || typeof args !== "object" || Array.isArray(args)) {
    throw new Error('job-queue: args must be an object like { worker: "mailer", maxAttempts: 5 }');
  }
  const given = args as Record<string, unknown>;
  for (const name of Object.keys(given)) {
    if (name !== "worker" && !Object.hasOwn(DEFAULTS, name)) {
      throw new Error(`job-queue: args.${name} is not a setting; the settings are worker, ${Object.keys(DEFAULTS).join(", ")}`);
    }
  }
  if (typeof given.worker !== "string" || !SERVICE.test(given.worker)) {
    throw new Error("job-queue: args.worker must name the service that runs jobs (and the deployment must grant call to it)");
  }
  const config: Record<string, number | string> = { worker: given.worker };
  for (const [name, [min, max]] of Object.entries(RANGES)) {
    const value = given[name] ?? DEFAULTS[name as keyof typeof DEFAULTS];
    const integer = name !== "jitter" && name !== "backoffFactor";
    if (typeof value !== "number" || !Number.isFinite(value) || value < min || value > max || (integer && !Number.isInteger(value))) {
      throw new Error(
        `job-queue: args.${name} must be ${integer ? "an integer" : "a number"} from ${min} to ${max}, got ${JSON.stringify(value)}`,
      );
    }
    config[name] = value;
  }
  return config as unknown as Config;
}

/** `field` names what the caller got wrong ("" for the request as a whole). */
function refuse(code: Refusal["error"]["code"], message: string, field = ""): Refusal {
  return { error: { code, message, ...(field === "" ? {} : { details: { field } }) } };
}

function invalid(field: string, message: string): Refusal {
  return refuse("invalid_argument", message, field);
}

function optionalInt(r: Record<string, unknown>, field: string, min: number, max: number): number | undefined | Refusal {
  const v = r[field];
  if (v === undefined) return undefined;
  if (typeof v !== "number" || !Number.isInteger(v) || v < min || v > max)
    return invalid(field, `${field} must be an integer from ${min} to ${max}`);
  return v;
}

function checkRequest(request: unknown): Request | Refusal {
  if (request === null || typeof request !== "object" || Array.isArray(request)) {
    return invalid("", 'the request must be an object like { op: "enqueue", payload: {...} }');
  }
  const r = request as Record<string, unknown>;
  switch (r.op) {
    case "enqueue": {
      if (!("payload" in r)) return invalid("payload", "enqueue needs a payload (any JSON value, null included)");
      if (r.id !== undefined && (typeof r.id !== "string" || !ID.test(r.id))) {
        return invalid("id", "id must be 1-64 of letters, digits, _ . : - (starting with a letter or digit)");
      }
      const delayMs = optionalInt(r, "delayMs", 0, MAX_DELAY_MS);
      if (typeof delayMs === "object") return delayMs;
      const maxAttempts = optionalInt(r, "maxAttempts", 1, 100);
      if (typeof maxAttempts === "object") return maxAttempts;
      if (r.wait !== undefined && typeof r.wait !== "boolean") return invalid("wait", "wait must be true or false");
      return { op: "enqueue", payload: r.payload as SoloJson, id: r.id as string | undefined, delayMs, maxAttempts, wait: r.wait === true };
    }
    case "get":
    case "wait":
    case "cancel":
    case "redrive":
    case "discard":
      if (typeof r.id !== "string" || !ID.test(r.id)) return invalid("id", `${r.op} needs the job's id`);
      return { op: r.op, id: r.id };
    case "dead": {
      if (r.after !== undefined && typeof r.after !== "string") return invalid("after", "after must be a job id");
      const limit = optionalInt(r, "limit", 1, 1000);
      if (typeof limit === "object") return limit;
      return { op: "dead", after: r.after as string | undefined, limit };
    }
    case "stats":
      return { op: "stats" };
    default:
      return invalid("op", `unknown op ${JSON.stringify(r.op)}; the ops are enqueue, get, wait, cancel, dead, redrive, discard, stats`);
  }
}

/** The record's own entry: looking up "constructor" must not find Object.prototype's. */
function own<T>(record: Record<string, T>, key: string): T | undefined {
  return Object.hasOwn(record, key) ? record[key] : undefined;
}

/** Every key under `prefix`, a page at a time. */
async function loadAll<T>(prefix: string): Promise<T[]> {
  const out: T[] = [];
  let after: string | undefined;
  for (;;) {
    const page = await solo.storage.list<T>(prefix, after === undefined ? { limit: 1000 } : { after, limit: 1000 });
    for (const { value } of page) out.push(value);
    if (page.length < 1000) return out;
    after = page[page.length - 1]?.key;
  }
}

/** Arms the one wake-up timer for the earliest due job, unless one is pending early enough. */
function schedule(state: State, now: number): void {
  let earliest = Number.POSITIVE_INFINITY;
  for (const job of Object.values(state.jobs)) earliest = Math.min(earliest, job.runAt);
  const wake = state.wake;
  // A timer message can be dropped (a full mailbox) or lost (a rollback): one long overdue is re-armed.
  const alive = wake !== null && now < wake.dueAt + 60_000;
  if (alive && wake.dueAt <= earliest && earliest !== Number.POSITIVE_INFINITY) return;
  if (wake !== null) solo.cancelTimer(wake.timer);
  state.wake = null;
  if (earliest === Number.POSITIVE_INFINITY) return;
  const token = ++state.wakeTokens;
  const delay = Math.min(MAX_TIMER_MS, Math.max(0, earliest - now));
  state.wake = { token, dueAt: now + delay, timer: solo.sendAfter(delay, { wake: token }) };
}

/** How long until the earliest pending job is due (0 if one is overdue), or null with none pending. */
function nextDueIn(state: State, now: number): number | null {
  let earliest: number | null = null;
  for (const job of Object.values(state.jobs)) earliest = earliest === null ? job.runAt : Math.min(earliest, job.runAt);
  return earliest === null ? null : Math.max(0, earliest - now);
}

/** The due job to run next: the earliest, ties broken by id. */
function nextDue(state: State, now: number): Job | undefined {
  let next: Job | undefined;
  for (const job of Object.values(state.jobs)) {
    if (job.runAt > now) continue;
    if (next === undefined || job.runAt < next.runAt || (job.runAt === next.runAt && job.id < next.id)) next = job;
  }
  return next;
}

function backoff(config: Config, failedAttempts: number): number {
  const raw = Math.min(config.maxBackoffMs, config.backoffMs * config.backoffFactor ** (failedAttempts - 1));
  return Math.round(raw * (1 - config.jitter * Math.random()));
}

/** Events are for watchers: a deployment without `emit` still runs its jobs, and stats counts what was not recorded. */
async function announce(state: State, name: string, payload: SoloJson): Promise<void> {
  try {
    await solo.emit(name, payload);
  } catch (err) {
    state.counts.eventsNotRecorded++;
    state.lastEventError = String((err as Error).message).slice(0, 300);
  }
}

/** Answers every call waiting for this job with its fate. */
function release(state: State, id: string, outcome: Outcome): void {
  for (const to of own(state.waiters, id) ?? []) {
    try {
      solo.reply(to, outcome);
    } catch (err) {
      // That caller gave up (its timeout passed, or it stopped): the job's fate stands all the same.
      if ((err as Partial<Solo.Error>).reason !== "SOLO_ERR_REPLY_TOO_LATE") throw err;
    }
  }
  delete state.waiters[id];
}

function deadOutcome(job: DeadJob): Outcome {
  return { id: job.id, status: "dead", attempts: job.attempts, error: job.lastError };
}

/** Moves a job to the dead-letter list, durably. */
async function deadLetter(state: State, job: Job, failure: Failure, now: number): Promise<void> {
  job.lastError = failure;
  const dead: DeadJob = { ...job, diedAt: now };
  delete state.jobs[job.id];
  state.dead[job.id] = dead;
  // In this order: a crash between the two leaves both, and init keeps the dead letter.
  await solo.storage.put(`dead:${job.id}`, dead as unknown as SoloJson);
  await solo.storage.delete(`job:${job.id}`);
  state.counts.deadLettered++;
  release(state, job.id, deadOutcome(dead));
  await announce(state, "job.dead", { id: job.id, attempts: job.attempts, error: failure });
}

/**
 * Hands one attempt to the worker: null if it succeeded, or why it failed and whether that is
 * final. A failure is an error answer of the worker's own (`{ error: { code, message, details:
 * { retry: false }? } }`), a reply `{ ok: false, error, retry? }`, or the kernel's reason for a
 * worker that threw, timed out, is down or behind an open breaker.
 */
async function work(config: Config, job: Job): Promise<{ failure: Failure; final: boolean } | null> {
  try {
    const reply = await solo.call<{ ok?: unknown; error?: unknown; retry?: unknown } | null | undefined>(
      config.worker,
      { id: job.id, attempt: job.attempts, payload: job.payload },
      { timeoutMs: config.callTimeoutMs },
    );
    if (reply === null || typeof reply !== "object" || reply.ok !== false) return null;
    const message = String(reply.error ?? "the worker replied ok: false").slice(0, 500);
    return { failure: { reason: "WORKER_FAILED", message }, final: reply.retry === false };
  } catch (err) {
    const e = err as Partial<Solo.Error>;
    if (e.reason === "SOLO_ERR_APPLICATION_ERROR") {
      const answer = e.details?.answer as unknown as Solo.ErrorAnswer;
      const details = answer.details as { retry?: unknown } | null | undefined;
      return { failure: { reason: answer.code, message: answer.message.slice(0, 500) }, final: details?.retry === false };
    }
    const reason = typeof e.reason === "string" ? e.reason : "WORKER_THREW";
    return { failure: { reason, message: String(e.message ?? err).slice(0, 500) }, final: false };
  }
}

/** One attempt of one job: recorded, handed to the worker, and settled. */
async function attempt(state: State, job: Job): Promise<void> {
  const { config } = state;
  if (job.attempts >= job.maxAttempts) {
    // Its last attempt was recorded but never settled: the queue stopped (or crashed) during it.
    // Counting that attempt is what stops a job that crashes the queue from running forever.
    const message = "the queue stopped during the last attempt; it may or may not have run";
    await deadLetter(state, job, { reason: "ATTEMPT_INTERRUPTED", message }, Date.now());
    return;
  }
  job.attempts++;
  await solo.storage.put(`job:${job.id}`, job as unknown as SoloJson);
  const failed = await work(config, job);
  const now = Date.now();
  if (failed === null) {
    delete state.jobs[job.id];
    await solo.storage.delete(`job:${job.id}`);
    state.counts.succeeded++;
    release(state, job.id, { id: job.id, status: "succeeded", attempts: job.attempts });
    await announce(state, "job.succeeded", { id: job.id, attempts: job.attempts });
    return;
  }
  const { failure, final } = failed;
  state.counts.failedAttempts++;
  if (final || job.attempts >= job.maxAttempts) {
    await deadLetter(state, job, failure, now);
    return;
  }
  job.lastError = failure;
  const delayMs = backoff(config, job.attempts);
  job.runAt = now + delayMs;
  await solo.storage.put(`job:${job.id}`, job as unknown as SoloJson);
  await announce(state, "job.retrying", { id: job.id, attempt: job.attempts, delayMs, error: failure });
}

/** A wait for job `id`: answered at once if it is dead, deferred (`noreply`) while it is pending. */
function waitFor(state: State, id: string, replyTo: string): Answer {
  const dead = own(state.dead, id);
  if (dead !== undefined) return { reply: deadOutcome(dead) };
  if (own(state.jobs, id) === undefined) return refuse("not_found", `no pending or dead job ${id} (finished jobs are not kept)`, "id");
  state.waiters[id] = [...(own(state.waiters, id) ?? []), replyTo];
  return { noreply: true };
}

async function enqueue(state: State, r: Extract<Request, { op: "enqueue" }>, now: number, replyTo: string): Promise<Answer> {
  const existing = r.id === undefined ? undefined : (own(state.jobs, r.id) ?? own(state.dead, r.id));
  if (existing !== undefined) return r.wait ? waitFor(state, existing.id, replyTo) : { reply: { id: existing.id, duplicate: true } };
  if (Object.keys(state.jobs).length + Object.keys(state.dead).length >= state.config.maxJobs) {
    return refuse("resource_exhausted", `the queue holds ${state.config.maxJobs} jobs; wait for some to finish, or discard dead letters`);
  }
  let id = r.id;
  if (id === undefined) {
    state.seq++;
    id = `job-${String(state.seq).padStart(12, "0")}`;
    // The sequence is stored so a restart never hands out an id a worker has seen.
    await solo.storage.put("meta:seq", state.seq);
  }
  const job: Job = {
    id,
    payload: r.payload,
    maxAttempts: r.maxAttempts ?? state.config.maxAttempts,
    enqueuedAt: now,
    attempts: 0,
    runAt: now + (r.delayMs ?? 0),
    lastError: null,
  };
  await solo.storage.put(`job:${id}`, job as unknown as SoloJson);
  state.jobs[id] = job;
  state.counts.enqueued++;
  return r.wait ? waitFor(state, id, replyTo) : { reply: { id, duplicate: false, runAt: job.runAt } };
}

async function handle(state: State, r: Request, now: number, replyTo: string): Promise<Answer> {
  switch (r.op) {
    case "enqueue":
      return enqueue(state, r, now, replyTo);
    case "get": {
      const pending = own(state.jobs, r.id);
      if (pending !== undefined) return { reply: { status: "pending", job: pending } };
      const dead = own(state.dead, r.id);
      if (dead !== undefined) return { reply: { status: "dead", job: dead } };
      return refuse("not_found", `no pending or dead job ${r.id} (finished jobs are not kept)`, "id");
    }
    case "wait":
      return waitFor(state, r.id, replyTo);
    case "cancel": {
      const job = own(state.jobs, r.id);
      if (job === undefined) return refuse("not_found", `no pending job ${r.id}`, "id");
      delete state.jobs[r.id];
      await solo.storage.delete(`job:${r.id}`);
      release(state, r.id, { id: r.id, status: "cancelled", attempts: job.attempts });
      return { reply: { cancelled: r.id } };
    }
    case "redrive": {
      const dead = own(state.dead, r.id);
      if (dead === undefined) return refuse("not_found", `no dead job ${r.id}`, "id");
      const { diedAt: _, ...rest } = dead;
      const job: Job = { ...rest, attempts: 0, runAt: now, lastError: null };
      await solo.storage.put(`job:${r.id}`, job as unknown as SoloJson);
      await solo.storage.delete(`dead:${r.id}`);
      delete state.dead[r.id];
      state.jobs[r.id] = job;
      return { reply: { redriven: r.id } };
    }
    case "discard": {
      if (own(state.dead, r.id) === undefined) return refuse("not_found", `no dead job ${r.id}`, "id");
      delete state.dead[r.id];
      await solo.storage.delete(`dead:${r.id}`);
      return { reply: { discarded: r.id } };
    }
    case "dead": {
      const ids = Object.keys(state.dead)
        .filter((id) => r.after === undefined || id > r.after)
        .sort();
      const page = ids.slice(0, r.limit ?? 100);
      return { reply: { jobs: page.map((id) => state.dead[id]), more: ids.length > page.length } };
    }
    case "stats":
      return {
        reply: {
          pending: Object.keys(state.jobs).length,
          dead: Object.keys(state.dead).length,
          ...state.counts,
          waiting: Object.values(state.waiters).reduce((n, handles) => n + handles.length, 0),
          lastEventError: state.lastEventError,
          nextDueInMs: nextDueIn(state, now),
        },
      };
  }
}

export default {
  async init(args: unknown): Promise<State> {
    const config = checkConfig(args);
    const state: State = {
      config,
      jobs: {},
      dead: {},
      seq: (await solo.storage.get<number>("meta:seq")) ?? 0,
      wake: null,
      wakeTokens: 0,
      waiters: {},
      counts: { enqueued: 0, succeeded: 0, failedAttempts: 0, deadLettered: 0, eventsNotRecorded: 0 },
      lastEventError: null,
    };
    for (const dead of await loadAll<DeadJob>("dead:")) state.dead[dead.id] = dead;
    for (const job of await loadAll<Job>("job:")) {
      // A crash between writing a dead letter and deleting the job leaves both: the dead letter wins.
      if (own(state.dead, job.id) === undefined) state.jobs[job.id] = job;
      else await solo.storage.delete(`job:${job.id}`);
    }
    schedule(state, Date.now());
    return state;
  },

  async handleCall(request: unknown, state: State, ctx: Solo.CallContext): Promise<Solo.CallResult<State, unknown>> {
    const r = checkRequest(request);
    if ("error" in r) return { error: r.error, state };
    const answer = await handle(state, r, Date.now(), ctx.replyTo);
    // Every call also re-checks the wake-up timer, so a lost timer message cannot stall the queue.
    schedule(state, Date.now());
    return { ...answer, state };
  },

  // A hot swap keeps the state as it was: one from a version that had no `wait` has no waiters.
  codeChange(_fromVersion: number, state: State): State {
    return { ...state, waiters: state.waiters ?? {} };
  },

  async handleInfo(message: unknown, state: State): Promise<Solo.Handled<State>> {
    const token = (message as { wake?: unknown } | null)?.wake;
    if (state.wake === null || token !== state.wake.token) return { state }; // a stale or cancelled timer
    state.wake = null;
    const job = nextDue(state, Date.now());
    if (job !== undefined) await attempt(state, job);
    // One job per message, so calls (enqueue, stats) are answered between jobs.
    schedule(state, Date.now());
    return { state };
  },
};
