/**
 * rate-limiter: a token bucket per key. Each key may spend `capacity` tokens at once and earns
 * `refillTokens` back every `refillEveryMs`, up to `capacity` again.
 *
 * Time: a service has no high-resolution clock (no `performance`); `Date.now()` is the wall clock
 * in whole milliseconds. Buckets refill in whole steps of `refillEveryMs`, computed lazily from
 * `Date.now()` at each request, so millisecond resolution is all it needs and every answer is an
 * integer. The wall clock can step backwards (NTP): elapsed time is never negative, so a step
 * back only delays refills, never grants extra tokens.
 *
 * Buckets live in the service's memory: a restart (or a crash) forgets them, which refills every
 * key. A full bucket is the same as no bucket, so a timer sweeps full buckets away every
 * `sweepEveryMs` and memory stays proportional to the keys that are actually limited.
 *
 * A request the limiter refuses (malformed, or a new key past `maxKeys`) is answered with an error
 * of its own, `{ error: { code, message, details? }, state }`: the caller gets it as an error
 * (`SOLO_ERR_APPLICATION_ERROR`), and the limiter goes on with its state. A take that finds too
 * few tokens is not an error: it is the limiter's answer, `allowed: false`.
 */

interface Config {
  /** Tokens a key can spend in a burst. */
  readonly capacity: number;
  /** Tokens earned back per step. */
  readonly refillTokens: number;
  /** Length of a refill step, in milliseconds. */
  readonly refillEveryMs: number;
  /** Keys tracked at once; a new key beyond this is refused (resource_exhausted). */
  readonly maxKeys: number;
  /** How often full buckets are forgotten. */
  readonly sweepEveryMs: number;
}

interface Bucket {
  /** Tokens left as of `at`. */
  tokens: number;
  /** The wall-clock millisecond the last whole refill step ended (or the bucket was made). */
  at: number;
}

interface State {
  readonly config: Config;
  /** By `k:` + key, so a key like `__proto__` or `constructor` is only a key. */
  buckets: Record<string, Bucket>;
  keys: number;
  /** When the pending sweep timer is due; 0 when none is pending. */
  sweepDueAt: number;
  allowed: number;
  denied: number;
}

type Request =
  | { op?: "take"; key: string; cost?: number }
  | { op: "peek"; key: string; cost?: number }
  | { op: "reset"; key: string }
  | { op: "stats" };

interface Decision {
  readonly allowed: boolean;
  /** Tokens left for this key after the request. */
  readonly remaining: number;
  /** 0 when allowed; otherwise how long until `cost` tokens are there. */
  readonly retryAfterMs: number;
  readonly limit: number;
}

interface Stats {
  readonly keys: number;
  readonly allowed: number;
  readonly denied: number;
  readonly config: Config;
}

type Reply = Decision | Stats | { readonly reset: boolean };

/** A refused request: answered as `{ error, state }`, with the field at fault in `details`. */
interface Refusal {
  readonly error: Solo.ErrorAnswer & { readonly code: "invalid_argument" | "resource_exhausted" };
}

const DEFAULTS: Config = { capacity: 10, refillTokens: 1, refillEveryMs: 1000, maxKeys: 100_000, sweepEveryMs: 60_000 };
const MAX_KEY_LENGTH = 256;
const MAX_TIMER_MS = 86_400_000;

function checkConfig(args: unknown): Config {
  if (args !== null && args !== undefined && (typeof args !== "object" || Array.isArray(args))) {
    throw new Error("rate-limiter: args must be an object like { capacity: 10, refillTokens: 1, refillEveryMs: 1000 }");
  }
  const given = (args ?? {}) as Record<string, unknown>;
  const config: Record<string, number> = {};
  for (const [name, fallback] of Object.entries(DEFAULTS)) {
    const value = given[name] ?? fallback;
    const max = name.endsWith("Ms") ? MAX_TIMER_MS : 1_000_000_000;
    if (typeof value !== "number" || !Number.isSafeInteger(value) || value < 1 || value > max) {
      throw new Error(`rate-limiter: args.${name} must be an integer from 1 to ${max}, got ${JSON.stringify(value)}`);
    }
    config[name] = value;
  }
  for (const name of Object.keys(given)) {
    if (!Object.hasOwn(DEFAULTS, name))
      throw new Error(`rate-limiter: args.${name} is not a setting; the settings are ${Object.keys(DEFAULTS).join(", ")}`);
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

/** Validates a request; returns the refusal for a malformed one. */
function checkRequest(request: unknown, config: Config): Request | Refusal {
  if (request === null || typeof request !== "object" || Array.isArray(request)) {
    return invalid("", 'the request must be an object like { key: "user:42" } or { op: "stats" }');
  }
  const r = request as Record<string, unknown>;
  const op = r.op ?? "take";
  if (op !== "take" && op !== "peek" && op !== "reset" && op !== "stats") {
    return invalid("op", `unknown op ${JSON.stringify(op)}; the ops are take (the default), peek, reset, stats`);
  }
  if (op === "stats") return { op };
  if (typeof r.key !== "string" || r.key.length === 0 || r.key.length > MAX_KEY_LENGTH) {
    return invalid("key", `key must be a string of 1 to ${MAX_KEY_LENGTH} characters`);
  }
  if (op === "reset") return { op, key: r.key };
  const cost = r.cost ?? 1;
  if (typeof cost !== "number" || !Number.isSafeInteger(cost) || cost < 1 || cost > config.capacity) {
    return invalid("cost", `cost must be an integer from 1 to the capacity (${config.capacity}); a larger cost could never be allowed`);
  }
  return { op, key: r.key, cost };
}

/** Brings a bucket up to `now` in whole refill steps. */
function refill(bucket: Bucket, config: Config, now: number): void {
  const elapsed = Math.max(0, now - bucket.at);
  const steps = Math.floor(elapsed / config.refillEveryMs);
  if (steps === 0) return;
  bucket.tokens = Math.min(config.capacity, bucket.tokens + steps * config.refillTokens);
  bucket.at = bucket.tokens === config.capacity ? now : bucket.at + steps * config.refillEveryMs;
}

function retryAfter(bucket: Bucket, config: Config, cost: number, now: number): number {
  const missing = cost - bucket.tokens;
  if (missing <= 0) return 0;
  const steps = Math.ceil(missing / config.refillTokens);
  return Math.max(1, bucket.at + steps * config.refillEveryMs - now);
}

/** Forgets buckets that are full again: they behave exactly like keys never seen. */
function sweep(state: State, now: number): void {
  for (const [slot, bucket] of Object.entries(state.buckets)) {
    refill(bucket, state.config, now);
    if (bucket.tokens >= state.config.capacity) {
      delete state.buckets[slot];
      state.keys--;
    }
  }
}

// A rollback starts the previous code without its timers, so a sweep long overdue counts as lost
// and is armed again by the next request.
function armSweep(state: State, now: number): void {
  const pending = state.sweepDueAt !== 0 && now < state.sweepDueAt + state.config.sweepEveryMs;
  if (pending || state.keys === 0) return;
  solo.sendAfter(state.config.sweepEveryMs, { sweep: true });
  state.sweepDueAt = now + state.config.sweepEveryMs;
}

function decide(state: State, key: string, cost: number, consume: boolean): Decision | Refusal {
  const { config } = state;
  const now = Date.now();
  const slot = `k:${key}`;
  let bucket = state.buckets[slot];
  if (bucket === undefined) {
    if (state.keys >= config.maxKeys) sweep(state, now);
    if (state.keys >= config.maxKeys) {
      return refuse("resource_exhausted", `the limiter tracks ${config.maxKeys} keys already; raise maxKeys or retry later`);
    }
    bucket = { tokens: config.capacity, at: now };
  } else {
    refill(bucket, config, now);
  }
  const allowed = bucket.tokens >= cost;
  if (consume) {
    if (allowed) bucket.tokens -= cost;
    if (state.buckets[slot] === undefined) {
      state.buckets[slot] = bucket;
      state.keys++;
    }
    armSweep(state, now);
    if (allowed) state.allowed++;
    else state.denied++;
  }
  return {
    allowed,
    remaining: bucket.tokens,
    retryAfterMs: allowed ? 0 : retryAfter(bucket, config, cost, now),
    limit: config.capacity,
  };
}

export default {
  init(args: unknown): State {
    return { config: checkConfig(args), buckets: {}, keys: 0, sweepDueAt: 0, allowed: 0, denied: 0 };
  },

  handleCall(request: unknown, state: State): Solo.CallResult<State, Reply> {
    const r = checkRequest(request, state.config);
    if ("error" in r) return { error: r.error, state };
    switch (r.op) {
      case "stats":
        return { reply: { keys: state.keys, allowed: state.allowed, denied: state.denied, config: { ...state.config } }, state };
      case "reset": {
        const existed = state.buckets[`k:${r.key}`] !== undefined;
        if (existed) {
          delete state.buckets[`k:${r.key}`];
          state.keys--;
        }
        return { reply: { reset: existed }, state };
      }
      default: {
        const d = decide(state, r.key, r.cost ?? 1, r.op !== "peek");
        return "error" in d ? { error: d.error, state } : { reply: d, state };
      }
    }
  },

  handleInfo(message: unknown, state: State): Solo.Handled<State> {
    if (message !== null && typeof message === "object" && (message as { sweep?: unknown }).sweep === true) {
      const now = Date.now();
      state.sweepDueAt = 0;
      sweep(state, now);
      armSweep(state, now);
    }
    return { state };
  },
};
