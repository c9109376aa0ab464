/**
 * kv-cache: a key-value cache with per-entry TTLs and least-recently-used eviction.
 *
 * Expiry is exact for readers and timely for memory: a `get` checks the entry's expiry against
 * `Date.now()` (the wall clock, in milliseconds) and never returns a stale value, and one timer
 * (`solo.sendAfter`), armed for the earliest expiry, removes expired entries nobody reads. Sweeps
 * are at least `sweepMinMs` apart, so many keys expiring at different moments cost one scan per
 * `sweepMinMs`, not one per key. Deployed without `timers`, the cache still works: expiry is then
 * lazy only (on read, and when room is needed).
 *
 * Entries live in the service's memory: a restart empties the cache (it is a cache). Size is
 * bounded by `maxEntries` and `maxBytes` (keys and values as JSON text); beyond either, the least
 * recently used entries are evicted, expired ones first.
 *
 * A request the cache refuses (malformed, or a value over `maxValueBytes`) is answered with an
 * error of its own, `{ error: { code, message, details? }, state }`, which the caller gets as an
 * error; a miss is not an error but an answer, `{ hit: false }`.
 */

interface Config {
  readonly maxEntries: number;
  /** Bound on the JSON text of keys and values, all entries together. */
  readonly maxBytes: number;
  /** Largest single value (JSON text). */
  readonly maxValueBytes: number;
  /** TTL for a `set` that gives none; 0 means entries without a TTL never expire. */
  readonly defaultTtlMs: number;
  readonly maxTtlMs: number;
  /** The shortest time between two sweeps of expired entries. */
  readonly sweepMinMs: number;
}

interface Entry {
  readonly value: SoloJson;
  /** Wall-clock millisecond it expires at; 0 for never. */
  readonly expiresAt: number;
  readonly bytes: number;
  /** Logical time of the last read or write, for LRU eviction. */
  used: number;
}

interface Counters {
  hits: number;
  misses: number;
  sets: number;
  deletes: number;
  expired: number;
  evicted: number;
}

interface State {
  readonly config: Config;
  /** By `k:` + key, so a key like `__proto__` or `constructor` is only a key. */
  entries: Record<string, Entry>;
  count: number;
  bytes: number;
  tick: number;
  counts: Counters;
  /** The pending sweep timer, or null; `timers: false` once the deployment turned out to lack the power. */
  sweep: { token: number; dueAt: number; timer: number } | null;
  sweepTokens: number;
  lastSweepAt: number;
  timers: boolean;
}

type Request =
  | { op: "get"; key: string }
  | { op: "set"; key: string; value: SoloJson; ttlMs: number | undefined }
  | { op: "delete"; key: string }
  | { op: "stats" }
  | { op: "clear" };

/** A refused request: answered as `{ error, state }`, with the field at fault in `details`. */
interface Refusal {
  readonly error: Solo.ErrorAnswer & { readonly code: "invalid_argument" | "resource_exhausted" };
}

const DEFAULTS: Config = {
  maxEntries: 10_000,
  maxBytes: 8 * 1024 * 1024,
  maxValueBytes: 256 * 1024,
  defaultTtlMs: 0,
  maxTtlMs: 30 * 86_400_000,
  sweepMinMs: 1000,
};
const MAX_KEY_LENGTH = 512;
const MAX_TIMER_MS = 86_400_000;

function checkConfig(args: unknown): Config {
  if (args !== null && args !== undefined && (typeof args !== "object" || Array.isArray(args))) {
    throw new Error("kv-cache: args must be an object like { maxEntries: 10000, defaultTtlMs: 60000 }");
  }
  const given = (args ?? {}) as Record<string, unknown>;
  for (const name of Object.keys(given)) {
    if (!Object.hasOwn(DEFAULTS, name))
      throw new Error(`kv-cache: args.${name} is not a setting; the settings are ${Object.keys(DEFAULTS).join(", ")}`);
  }
  const config: Record<string, number> = {};
  for (const [name, fallback] of Object.entries(DEFAULTS)) {
    const value = given[name] ?? fallback;
    const min = name === "defaultTtlMs" || name === "sweepMinMs" ? 0 : 1;
    if (typeof value !== "number" || !Number.isSafeInteger(value) || value < min) {
      throw new Error(`kv-cache: args.${name} must be an integer of at least ${min}, got ${JSON.stringify(value)}`);
    }
    config[name] = value;
  }
  if (config.defaultTtlMs !== undefined && config.maxTtlMs !== undefined && config.defaultTtlMs > config.maxTtlMs) {
    throw new Error("kv-cache: args.defaultTtlMs must not exceed maxTtlMs");
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

function checkRequest(request: unknown, config: Config): Request | Refusal {
  if (request === null || typeof request !== "object" || Array.isArray(request)) {
    return invalid("", 'the request must be an object like { op: "get", key: "user:42" }');
  }
  const r = request as Record<string, unknown>;
  if (r.op === "stats" || r.op === "clear") return { op: r.op };
  if (r.op !== "get" && r.op !== "set" && r.op !== "delete") {
    return invalid("op", `unknown op ${JSON.stringify(r.op)}; the ops are get, set, delete, stats, clear`);
  }
  if (typeof r.key !== "string" || r.key.length === 0 || r.key.length > MAX_KEY_LENGTH) {
    return invalid("key", `key must be a string of 1 to ${MAX_KEY_LENGTH} characters`);
  }
  if (r.op !== "set") return { op: r.op, key: r.key };
  if (!("value" in r)) return invalid("value", "set needs a value (any JSON value; null is a value)");
  const ttl = r.ttlMs;
  if (ttl !== undefined && (typeof ttl !== "number" || !Number.isSafeInteger(ttl) || ttl < 1 || ttl > config.maxTtlMs)) {
    return invalid(
      "ttlMs",
      `ttlMs must be an integer from 1 to ${config.maxTtlMs}; leave it out for the default (${config.defaultTtlMs || "no expiry"})`,
    );
  }
  return { op: "set", key: r.key, value: r.value as SoloJson, ttlMs: ttl };
}

function expired(entry: Entry, now: number): boolean {
  return entry.expiresAt !== 0 && entry.expiresAt <= now;
}

function remove(state: State, slot: string, why: "deletes" | "expired" | "evicted"): void {
  const entry = state.entries[slot];
  if (entry === undefined) return;
  delete state.entries[slot];
  state.count--;
  state.bytes -= entry.bytes;
  state.counts[why]++;
}

/** Removes every expired entry, and arms the timer for the next expiry. */
function sweepExpired(state: State, now: number): void {
  for (const [slot, entry] of Object.entries(state.entries)) if (expired(entry, now)) remove(state, slot, "expired");
  state.lastSweepAt = now;
}

function earliestExpiry(state: State): number {
  let earliest = 0;
  for (const entry of Object.values(state.entries)) {
    if (entry.expiresAt !== 0 && (earliest === 0 || entry.expiresAt < earliest)) earliest = entry.expiresAt;
  }
  return earliest;
}

/** Keeps one sweep timer armed for `expiresAt` (or earlier); without the timers power, does nothing. */
function armSweep(state: State, expiresAt: number, now: number): void {
  if (!state.timers || expiresAt === 0) return;
  const at = Math.max(expiresAt, state.lastSweepAt + state.config.sweepMinMs);
  const current = state.sweep;
  // A timer message can be lost (a full mailbox, a rollback): one long overdue does not count.
  if (current !== null && current.dueAt <= at && now < current.dueAt + 60_000) return;
  try {
    if (current !== null) solo.cancelTimer(current.timer);
    const delay = Math.min(MAX_TIMER_MS, Math.max(0, at - now));
    const token = ++state.sweepTokens;
    state.sweep = { token, dueAt: now + delay, timer: solo.sendAfter(delay, { sweep: token }) };
  } catch (err) {
    // Deployed without `timers` (SOLO_ERR_GRANT_MISSING): expiry stays exact on reads, memory is
    // reclaimed when room is needed, and stats says `sweeps: "lazy"`. Anything else is a real error.
    if ((err as Partial<Solo.Error>).reason !== "SOLO_ERR_GRANT_MISSING") throw err;
    state.timers = false;
    state.sweep = null;
  }
}

/** Makes room for `bytes` more in one more entry: expired entries go first, then the least recently used. */
function makeRoom(state: State, bytes: number, now: number): void {
  const { maxEntries, maxBytes } = state.config;
  if (state.count < maxEntries && state.bytes + bytes <= maxBytes) return;
  sweepExpired(state, now);
  while (state.count > 0 && (state.count >= maxEntries || state.bytes + bytes > maxBytes)) {
    let victim: string | undefined;
    let oldest = Number.POSITIVE_INFINITY;
    for (const [slot, entry] of Object.entries(state.entries)) {
      if (entry.used < oldest) {
        oldest = entry.used;
        victim = slot;
      }
    }
    if (victim === undefined) return;
    remove(state, victim, "evicted");
  }
}

function get(state: State, key: string, now: number) {
  const slot = `k:${key}`;
  const entry = state.entries[slot];
  if (entry !== undefined && expired(entry, now)) remove(state, slot, "expired");
  if (entry === undefined || expired(entry, now)) {
    state.counts.misses++;
    return { hit: false };
  }
  state.counts.hits++;
  entry.used = ++state.tick;
  return { hit: true, value: entry.value, ttlMs: entry.expiresAt === 0 ? null : entry.expiresAt - now };
}

function set(state: State, r: Extract<Request, { op: "set" }>, now: number) {
  const { config } = state;
  const valueBytes = JSON.stringify(r.value).length;
  if (valueBytes > config.maxValueBytes) {
    const message = `the value is ${valueBytes} bytes of JSON, over this cache's maxValueBytes of ${config.maxValueBytes}`;
    return refuse("resource_exhausted", message, "value");
  }
  const slot = `k:${r.key}`;
  const bytes = r.key.length + valueBytes;
  const old = state.entries[slot];
  if (old !== undefined) {
    delete state.entries[slot];
    state.count--;
    state.bytes -= old.bytes;
  }
  makeRoom(state, bytes, now);
  const ttl = r.ttlMs ?? config.defaultTtlMs;
  const expiresAt = ttl === 0 ? 0 : now + ttl;
  state.entries[slot] = { value: r.value, expiresAt, bytes, used: ++state.tick };
  state.count++;
  state.bytes += bytes;
  state.counts.sets++;
  armSweep(state, expiresAt, now);
  return { stored: true, ttlMs: ttl === 0 ? null : ttl };
}

export default {
  init(args: unknown): State {
    return {
      config: checkConfig(args),
      entries: {},
      count: 0,
      bytes: 0,
      tick: 0,
      counts: { hits: 0, misses: 0, sets: 0, deletes: 0, expired: 0, evicted: 0 },
      sweep: null,
      sweepTokens: 0,
      lastSweepAt: 0,
      timers: true,
    };
  },

  handleCall(request: unknown, state: State): Solo.CallResult<State, unknown> {
    const r = checkRequest(request, state.config);
    if ("error" in r) return { error: r.error, state };
    const now = Date.now();
    switch (r.op) {
      case "get":
        return { reply: get(state, r.key, now), state };
      case "set": {
        const stored = set(state, r, now);
        return "error" in stored ? { error: stored.error, state } : { reply: stored, state };
      }
      case "delete": {
        const slot = `k:${r.key}`;
        const entry = state.entries[slot];
        const live = entry !== undefined && !expired(entry, now);
        remove(state, slot, live ? "deletes" : "expired");
        return { reply: { deleted: live }, state };
      }
      case "clear": {
        const cleared = state.count;
        state.entries = {};
        state.count = 0;
        state.bytes = 0;
        return { reply: { cleared }, state };
      }
      case "stats":
        return { reply: { entries: state.count, bytes: state.bytes, ...state.counts, sweeps: state.timers ? "timer" : "lazy" }, state };
    }
  },

  handleInfo(message: unknown, state: State): Solo.Handled<State> {
    const token = (message as { sweep?: unknown } | null)?.sweep;
    if (state.sweep === null || token !== state.sweep.token) return { state }; // stale or cancelled
    const now = Date.now();
    state.sweep = null;
    sweepExpired(state, now);
    armSweep(state, earliestExpiry(state), now);
    return { state };
  },
};
