/**
 * job-queue: a durable job queue with retries. Jobs are handed to a worker service with
 * `solo.call(worker, { id, attempt, payload })`, one at a time, in due order. A job that fails
 * (the worker replies `{ ok: false }`, throws, times out or is down) is retried after an
 * exponential backoff, up to `maxAttempts`; then it moves to the dead-letter list, where it can be
 * inspected, sent back to the queue (`redrive`) or discarded.
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

interface Failure {
  readonly reason: string;
  readonly message: string;
}

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

interface State {
  readonly config: Config;
  /** By id; read through own(), since an id may be named like an Object.prototype member. */
  jobs: Record<string, Job>;
  dead: Record<string, DeadJob>;
  seq: number;
  /** The single pending wake-up timer: its token (stale ones are ignored) and when it is due. */
  wake: { token: number; dueAt: number; timer: number } | null;
  wakeTokens: number;
  counts: { enqueued: number; succeeded: number; failedAttempts: number; deadLettered: number; eventsNotRecorded: number };
  lastEventError: string | null;
}

interface ErrorReply {
  readonly error: {
    readonly code: "invalid_argument" | "not_found" | "already_exists" | "resource_exhausted";
    readonly message: string;
    readonly field?: string;
  };
}

type Request =
  | { op: "enqueue"; payload: SoloJson; id?: string; delayMs?: number; maxAttempts?: number }
  | { op: "get" | "cancel" | "redrive" | "discard"; id: string }
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

function invalid(field: string, message: string): ErrorReply {
  return { error: { code: "invalid_argument", field, message } };
}

function optionalInt(r: Record<string, unknown>, field: string, min: number, max: number): number | undefined | ErrorReply {
  const v = r[field];
  if (v === undefined) return undefined;
  if (typeof v !== "number" || !Number.isInteger(v) || v < min || v > max)
    return invalid(field, `${field} must be an integer from ${min} to ${max}`);
  return v;
}

function checkRequest(request: unknown): Request | ErrorReply {
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
      return { op: "enqueue", payload: r.payload as SoloJson, id: r.id as string | undefined, delayMs, maxAttempts };
    }
    case "get":
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
      return invalid("op", `unknown op ${JSON.stringify(r.op)}; the ops are enqueue, get, cancel, dead, redrive, discard, stats`);
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

function failureOf(err: unknown): Failure {
  const e = err as Partial<Solo.Error>;
  return { reason: typeof e.reason === "string" ? e.reason : "WORKER_THREW", message: String(e.message ?? err).slice(0, 500) };
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
  await announce(state, "job.dead", { id: job.id, attempts: job.attempts, error: { ...failure } });
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
  let failure: Failure | null = null;
  let permanent = false;
  try {
    const reply = await solo.call<{ ok?: unknown; error?: unknown; retry?: unknown } | null>(
      config.worker,
      { id: job.id, attempt: job.attempts, payload: job.payload },
      { timeoutMs: config.callTimeoutMs },
    );
    if (reply !== null && typeof reply === "object" && reply.ok === false) {
      failure = { reason: "WORKER_FAILED", message: String(reply.error ?? "the worker replied ok: false").slice(0, 500) };
      permanent = reply.retry === false;
    }
  } catch (err) {
    failure = failureOf(err);
  }
  const now = Date.now();
  if (failure === null) {
    delete state.jobs[job.id];
    await solo.storage.delete(`job:${job.id}`);
    state.counts.succeeded++;
    await announce(state, "job.succeeded", { id: job.id, attempts: job.attempts });
    return;
  }
  state.counts.failedAttempts++;
  if (permanent || job.attempts >= job.maxAttempts) {
    await deadLetter(state, job, failure, now);
    return;
  }
  job.lastError = failure;
  const delayMs = backoff(config, job.attempts);
  job.runAt = now + delayMs;
  await solo.storage.put(`job:${job.id}`, job as unknown as SoloJson);
  await announce(state, "job.retrying", { id: job.id, attempt: job.attempts, delayMs, error: { ...failure } });
}

async function enqueue(state: State, r: Extract<Request, { op: "enqueue" }>, now: number) {
  const existing = r.id === undefined ? undefined : (own(state.jobs, r.id) ?? own(state.dead, r.id));
  if (existing !== undefined) return { id: existing.id, duplicate: true };
  if (Object.keys(state.jobs).length + Object.keys(state.dead).length >= state.config.maxJobs) {
    return {
      error: {
        code: "resource_exhausted",
        message: `the queue holds ${state.config.maxJobs} jobs; wait for some to finish, or discard dead letters`,
      },
    } satisfies ErrorReply;
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
  return { id, duplicate: false, runAt: job.runAt };
}

async function handle(state: State, r: Request, now: number): Promise<unknown> {
  switch (r.op) {
    case "enqueue":
      return enqueue(state, r, now);
    case "get": {
      const pending = own(state.jobs, r.id);
      if (pending !== undefined) return { status: "pending", job: pending };
      const dead = own(state.dead, r.id);
      if (dead !== undefined) return { status: "dead", job: dead };
      return { error: { code: "not_found", field: "id", message: `no pending or dead job ${r.id} (finished jobs are not kept)` } };
    }
    case "cancel": {
      if (own(state.jobs, r.id) === undefined) return { error: { code: "not_found", field: "id", message: `no pending job ${r.id}` } };
      delete state.jobs[r.id];
      await solo.storage.delete(`job:${r.id}`);
      return { cancelled: r.id };
    }
    case "redrive": {
      const dead = own(state.dead, r.id);
      if (dead === undefined) return { error: { code: "not_found", field: "id", message: `no dead job ${r.id}` } };
      const { diedAt: _, ...rest } = dead;
      const job: Job = { ...rest, attempts: 0, runAt: now, lastError: null };
      await solo.storage.put(`job:${r.id}`, job as unknown as SoloJson);
      await solo.storage.delete(`dead:${r.id}`);
      delete state.dead[r.id];
      state.jobs[r.id] = job;
      return { redriven: r.id };
    }
    case "discard": {
      if (own(state.dead, r.id) === undefined) return { error: { code: "not_found", field: "id", message: `no dead job ${r.id}` } };
      delete state.dead[r.id];
      await solo.storage.delete(`dead:${r.id}`);
      return { discarded: r.id };
    }
    case "dead": {
      const ids = Object.keys(state.dead)
        .filter((id) => r.after === undefined || id > r.after)
        .sort();
      const page = ids.slice(0, r.limit ?? 100);
      return { jobs: page.map((id) => state.dead[id]), more: ids.length > page.length };
    }
    case "stats":
      return {
        pending: Object.keys(state.jobs).length,
        dead: Object.keys(state.dead).length,
        ...state.counts,
        lastEventError: state.lastEventError,
        nextDueInMs: nextDueIn(state, now),
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

  async handleCall(request: unknown, state: State): Promise<Solo.CallResult<State, unknown>> {
    const r = checkRequest(request);
    if ("error" in r) return { reply: r, state };
    const reply = await handle(state, r, Date.now());
    // Every call also re-checks the wake-up timer, so a lost timer message cannot stall the queue.
    schedule(state, Date.now());
    return { reply, state };
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
