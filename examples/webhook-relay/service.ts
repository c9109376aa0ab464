/**
 * webhook-relay: fans events out to subscribed HTTPS endpoints with `solo.fetch`.
 *
 * Subscribers register a URL (and the events they want); `publish` POSTs the event to each
 * matching subscriber at once and answers with every outcome. The deployment's fetch grant is
 * the allow-list: a URL on a host it does not list is refused by the kernel before any
 * connection (`SOLO_ERR_FETCH_DENIED`, with the host), and that refusal comes back in the reply.
 *
 * - A 2xx is delivered. A 408, 429, 5xx or a network failure is retried with exponential backoff
 *   (one `solo.sendAfter` timer per pending retry, bounded by `maxPending`), up to `maxAttempts`.
 *   Any other 4xx fails at once; a 410 Gone also removes the subscription (the usual webhook
 *   convention). A refusal (host not granted, a URL the kernel will not fetch) is never retried.
 * - Subscriptions and pending retries are in `solo.storage`: a restart keeps both and re-arms
 *   the retries. Delivery is at-least-once; receivers dedupe on `x-solo-delivery`.
 * - A subscription may name a tenant secret (granted with `secrets`); its value is sent as
 *   `authorization: Bearer <value>` and never stored or echoed by the relay. It may also name a
 *   signing secret: each request then carries `x-solo-signature: sha256=<hex>`, the HMAC-SHA256
 *   of the exact body under that secret (`crypto.subtle`), for the receiver to verify.
 * - A request the relay refuses (malformed, an unknown subscription, one too many) is answered
 *   with an error of its own, `{ error: { code, message, details? }, state }`. A delivery that
 *   fails is not a refusal: `publish` succeeded, and its reply says how each delivery went.
 */

interface Config {
  readonly maxAttempts: number;
  readonly backoffMs: number;
  readonly maxBackoffMs: number;
  /** Retries waiting at once; a delivery that would need one more fails instead. */
  readonly maxPending: number;
  readonly maxSubscriptions: number;
}

interface Subscription {
  readonly id: string;
  readonly url: string;
  /** Event names, or `["*"]` for all. */
  readonly events: readonly string[];
  /** Name of a tenant secret sent as a bearer token, or null. */
  readonly secret: string | null;
  /** Name of a tenant secret the body is signed with (HMAC-SHA256), or null. */
  readonly signingSecret?: string | null;
  readonly createdAt: number;
}

/** One event on its way to one subscriber. */
interface Delivery {
  /** `<event id>/<subscription id>`: what receivers dedupe on. */
  readonly key: string;
  readonly eventId: string;
  readonly event: string;
  readonly payload: SoloJson;
  readonly occurredAt: number;
  readonly subscription: string;
  attempts: number;
  nextAt: number;
}

type Outcome =
  | { outcome: "delivered"; status: number; attempts: number }
  | { outcome: "retrying"; status: number | null; attempts: number; nextAttemptInMs: number; error: Failure }
  | { outcome: "failed"; status: number | null; attempts: number; error: Failure; unsubscribed?: boolean }
  | { outcome: "refused"; attempts: number; error: Failure };

interface Failure {
  readonly reason: string;
  readonly message: string;
}

interface State {
  readonly config: Config;
  subs: Record<string, Subscription>;
  pending: Record<string, Delivery>;
  seq: number;
  counts: { published: number; delivered: number; retried: number; failed: number; refused: number; eventsNotRecorded: number };
  lastEventError: string | null;
}

/** A refused request: answered as `{ error, state }`, with the field at fault in `details`. */
interface Refusal {
  readonly error: Solo.ErrorAnswer & { readonly code: "invalid_argument" | "not_found" | "resource_exhausted" };
}

/** How `handle` answers a request: a reply, or a refusal. */
type Answer = { readonly reply: unknown } | Refusal;

type Request =
  | { op: "subscribe"; url: string; events: string[]; secret: string | null; signingSecret: string | null }
  | { op: "unsubscribe"; id: string }
  | { op: "subscriptions" }
  | { op: "publish"; event: string; payload: SoloJson; id: string | null }
  | { op: "stats" };

const DEFAULTS: Config = { maxAttempts: 5, backoffMs: 1000, maxBackoffMs: 600_000, maxPending: 500, maxSubscriptions: 100 };
// An absolute http(s) URL without credentials; the kernel checks the rest (host, scheme, address).
const URL_SHAPE = /^https?:\/\/[^\s/?#@]+(?:[/?#][^\s]*)?$/;
const EVENT = /^[a-z][a-z0-9_.-]{0,99}$/;
const SECRET = /^[A-Za-z_][A-Za-z0-9_.-]{0,127}$/;
const ID = /^[A-Za-z0-9][A-Za-z0-9_.:-]{0,63}$/;
const RETRYABLE_STATUS = [408, 429];
const REFUSALS = ["SOLO_ERR_FETCH_DENIED", "SOLO_ERR_FETCH_INVALID", "SOLO_ERR_GRANT_MISSING"];

function checkConfig(args: unknown): Config {
  if (args !== null && args !== undefined && (typeof args !== "object" || Array.isArray(args))) {
    throw new Error("webhook-relay: args must be an object like { maxAttempts: 5, backoffMs: 1000 }");
  }
  const given = (args ?? {}) as Record<string, unknown>;
  for (const name of Object.keys(given)) {
    if (!Object.hasOwn(DEFAULTS, name)) {
      throw new Error(`webhook-relay: args.${name} is not a setting; the settings are ${Object.keys(DEFAULTS).join(", ")}`);
    }
  }
  const config: Record<string, number> = {};
  for (const [name, fallback] of Object.entries(DEFAULTS)) {
    const value = given[name] ?? fallback;
    const max = name.endsWith("Ms") ? 86_400_000 : name === "maxPending" ? 900 : 10_000;
    if (typeof value !== "number" || !Number.isSafeInteger(value) || value < 1 || value > max) {
      throw new Error(`webhook-relay: args.${name} must be an integer from 1 to ${max}, got ${JSON.stringify(value)}`);
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

function checkRequest(request: unknown): Request | Refusal {
  if (request === null || typeof request !== "object" || Array.isArray(request)) {
    return invalid("", 'the request must be an object like { op: "publish", event: "order.created", payload: {...} }');
  }
  const r = request as Record<string, unknown>;
  switch (r.op) {
    case "subscribe": {
      if (typeof r.url !== "string" || r.url.length > 2048 || !URL_SHAPE.test(r.url)) {
        return invalid("url", "url must be an absolute https:// (or http://, if the grant allows it) URL without credentials");
      }
      const events = r.events ?? ["*"];
      if (
        !Array.isArray(events) ||
        events.length === 0 ||
        events.length > 50 ||
        !events.every((e) => e === "*" || (typeof e === "string" && EVENT.test(e)))
      ) {
        return invalid("events", 'events must be a list of 1-50 event names (a-z 0-9 _ . -) or ["*"] for all');
      }
      for (const field of ["secret", "signingSecret"] as const) {
        const v = r[field];
        if (v !== undefined && (typeof v !== "string" || !SECRET.test(v))) {
          return invalid(field, `${field} must be the name of one of the tenant's secrets`);
        }
      }
      return {
        op: "subscribe",
        url: r.url,
        events: events as string[],
        secret: (r.secret as string | undefined) ?? null,
        signingSecret: (r.signingSecret as string | undefined) ?? null,
      };
    }
    case "unsubscribe":
      if (typeof r.id !== "string" || !ID.test(r.id)) return invalid("id", "unsubscribe needs the subscription's id");
      return { op: "unsubscribe", id: r.id };
    case "publish":
      if (typeof r.event !== "string" || !EVENT.test(r.event))
        return invalid("event", "event must be a name of 1-100 of a-z 0-9 _ . - starting with a letter");
      if (!("payload" in r)) return invalid("payload", "publish needs a payload (any JSON value)");
      if (r.id !== undefined && (typeof r.id !== "string" || !ID.test(r.id)))
        return invalid("id", "id must be 1-64 of letters, digits, _ . : -");
      return { op: "publish", event: r.event, payload: r.payload as SoloJson, id: (r.id as string | undefined) ?? null };
    case "subscriptions":
    case "stats":
      return { op: r.op };
    default:
      return invalid("op", `unknown op ${JSON.stringify(r.op)}; the ops are subscribe, unsubscribe, subscriptions, publish, stats`);
  }
}

function own<T>(record: Record<string, T>, key: string): T | undefined {
  return Object.hasOwn(record, key) ? record[key] : undefined;
}

/** `https://host:port` of a URL: what events name, since a path or query may carry a token. */
function originOf(url: string): string {
  return /^https?:\/\/[^/?#]+/.exec(url)?.[0] ?? "";
}

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

/** One POST of one delivery; never throws. */
interface Attempt {
  readonly status: number | null;
  readonly failure: Failure | null;
  readonly refused: boolean;
  /** The receiver's Retry-After, in milliseconds, when it sent one in seconds. */
  readonly retryAfterMs: number | null;
}

async function attemptOnce(d: Delivery, sub: Subscription): Promise<Attempt> {
  const headers: Record<string, string> = {
    "content-type": "application/json",
    "x-solo-event": d.event,
    "x-solo-delivery": d.key,
    "x-solo-attempt": String(d.attempts),
  };
  try {
    const body = JSON.stringify({ id: d.eventId, event: d.event, occurredAt: new Date(d.occurredAt).toISOString(), payload: d.payload });
    if (sub.secret !== null) headers.authorization = `Bearer ${await solo.secrets.get(sub.secret)}`;
    if (sub.signingSecret) headers["x-solo-signature"] = `sha256=${await hmacSha256(await solo.secrets.get(sub.signingSecret), body)}`;
    const res = await solo.fetch(sub.url, { method: "POST", headers, body });
    if (res.status >= 200 && res.status < 300) return { status: res.status, failure: null, refused: false, retryAfterMs: null };
    const seconds = /^\d{1,6}$/.test(res.headers["retry-after"] ?? "") ? Number(res.headers["retry-after"]) : null;
    return {
      status: res.status,
      failure: { reason: `HTTP_${res.status}`, message: `${originOf(sub.url)} answered ${res.status} ${res.statusText}`.trim() },
      refused: false,
      retryAfterMs: seconds === null ? null : seconds * 1000,
    };
  } catch (err) {
    const e = err as Partial<Solo.Error>;
    const reason = typeof e.reason === "string" ? e.reason : "RELAY_ERROR";
    return {
      status: null,
      failure: { reason, message: String(e.message ?? err).slice(0, 500) },
      refused: REFUSALS.includes(reason),
      retryAfterMs: null,
    };
  }
}

/** The HMAC-SHA256 of `body` under `secret`, in hex, as GitHub and Stripe sign their webhooks. */
async function hmacSha256(secret: string, body: string): Promise<string> {
  const utf8 = new TextEncoder();
  const key = await crypto.subtle.importKey("raw", utf8.encode(secret), { name: "HMAC", hash: "SHA-256" }, false, ["sign"]);
  const mac = new Uint8Array(await crypto.subtle.sign("HMAC", key, utf8.encode(body)));
  return Array.from(mac, (b) => b.toString(16).padStart(2, "0")).join("");
}

/** Events are for watchers: without `emit` the relay still delivers, and stats counts what was not recorded. */
async function record(state: State, name: string, payload: SoloJson): Promise<void> {
  try {
    await solo.emit(name, payload);
  } catch (err) {
    state.counts.eventsNotRecorded++;
    state.lastEventError = String((err as Error).message).slice(0, 300);
  }
}

function retryable(status: number | null): boolean {
  return status === null || status >= 500 || RETRYABLE_STATUS.includes(status);
}

/** Makes one attempt and settles what follows: done, a retry armed, or given up. */
async function deliver(state: State, d: Delivery, sub: Subscription): Promise<Outcome> {
  const { config } = state;
  d.attempts++;
  const { status, failure, refused, retryAfterMs } = await attemptOnce(d, sub);
  const host = originOf(sub.url);
  const slot = `pending:${d.key}`;
  const base = { delivery: d.key, subscription: sub.id, host, attempts: d.attempts };
  if (failure === null) {
    if (own(state.pending, d.key)) await solo.storage.delete(slot);
    delete state.pending[d.key];
    state.counts.delivered++;
    await record(state, "delivery.succeeded", { ...base, status });
    return { outcome: "delivered", status: status ?? 0, attempts: d.attempts };
  }
  const mayRetry = !refused && retryable(status) && d.attempts < config.maxAttempts;
  const room = own(state.pending, d.key) !== undefined || Object.keys(state.pending).length < config.maxPending;
  if (mayRetry && room) {
    const backoff = Math.min(config.maxBackoffMs, config.backoffMs * 2 ** (d.attempts - 1));
    const delay = Math.min(config.maxBackoffMs, Math.max(backoff, retryAfterMs ?? 0));
    d.nextAt = Date.now() + delay;
    state.pending[d.key] = d;
    await solo.storage.put(slot, d as unknown as SoloJson);
    solo.sendAfter(delay, { retry: d.key, attempt: d.attempts });
    state.counts.retried++;
    await record(state, "delivery.retrying", { ...base, status, nextAttemptInMs: delay, error: { ...failure } });
    return { outcome: "retrying", status, attempts: d.attempts, nextAttemptInMs: delay, error: failure };
  }
  if (own(state.pending, d.key)) await solo.storage.delete(slot);
  delete state.pending[d.key];
  if (refused) {
    state.counts.refused++;
    await record(state, "delivery.refused", { ...base, error: { ...failure } });
    return { outcome: "refused", attempts: d.attempts, error: failure };
  }
  state.counts.failed++;
  const gone = status === 410;
  if (gone) await unsubscribe(state, sub.id);
  await record(state, "delivery.failed", { ...base, status, error: { ...failure }, unsubscribed: gone });
  return { outcome: "failed", status, attempts: d.attempts, error: failure, ...(gone ? { unsubscribed: true } : {}) };
}

async function unsubscribe(state: State, id: string): Promise<boolean> {
  if (own(state.subs, id) === undefined) return false;
  delete state.subs[id];
  await solo.storage.delete(`sub:${id}`);
  return true;
}

function nextId(state: State, prefix: string): string {
  state.seq++;
  return `${prefix}-${state.seq.toString(36)}-${Date.now().toString(36)}`;
}

async function handle(state: State, r: Request): Promise<Answer> {
  switch (r.op) {
    case "subscribe": {
      const same = Object.values(state.subs).find(
        (s) => s.url === r.url && s.secret === r.secret && (s.signingSecret ?? null) === r.signingSecret,
      );
      if (same !== undefined) return { reply: { id: same.id, duplicate: true } };
      if (Object.keys(state.subs).length >= state.config.maxSubscriptions) {
        return refuse("resource_exhausted", `the relay has ${state.config.maxSubscriptions} subscriptions, its limit`);
      }
      const sub: Subscription = {
        id: nextId(state, "sub"),
        url: r.url,
        events: r.events,
        secret: r.secret,
        signingSecret: r.signingSecret,
        createdAt: Date.now(),
      };
      await solo.storage.put(`sub:${sub.id}`, sub as unknown as SoloJson);
      state.subs[sub.id] = sub;
      return { reply: { id: sub.id, duplicate: false } };
    }
    case "unsubscribe":
      return (await unsubscribe(state, r.id)) ? { reply: { unsubscribed: r.id } } : refuse("not_found", `no subscription ${r.id}`, "id");
    case "subscriptions":
      return {
        reply: { subscriptions: Object.values(state.subs).sort((a, b) => a.createdAt - b.createdAt || (a.id < b.id ? -1 : 1)) },
      };
    case "publish": {
      const eventId = r.id ?? nextId(state, "evt");
      const occurredAt = Date.now();
      const targets = Object.values(state.subs).filter((s) => s.events.includes("*") || s.events.includes(r.event));
      state.counts.published++;
      // Every subscriber at once: one slow endpoint does not hold up the others' first attempt.
      const outcomes = await Promise.all(
        targets.map(async (sub) => {
          const d: Delivery = {
            key: `${eventId}/${sub.id}`,
            eventId,
            event: r.event,
            payload: r.payload,
            occurredAt,
            subscription: sub.id,
            attempts: 0,
            nextAt: occurredAt,
          };
          return { subscription: sub.id, url: sub.url, ...(await deliver(state, d, sub)) };
        }),
      );
      return { reply: { id: eventId, deliveries: outcomes } };
    }
    case "stats":
      return {
        reply: {
          subscriptions: Object.keys(state.subs).length,
          pending: Object.keys(state.pending).length,
          ...state.counts,
          lastEventError: state.lastEventError,
        },
      };
  }
}

export default {
  async init(args: unknown): Promise<State> {
    const state: State = {
      config: checkConfig(args),
      subs: {},
      pending: {},
      seq: 0,
      counts: { published: 0, delivered: 0, retried: 0, failed: 0, refused: 0, eventsNotRecorded: 0 },
      lastEventError: null,
    };
    for (const sub of await loadAll<Subscription>("sub:")) state.subs[sub.id] = sub;
    const now = Date.now();
    for (const d of await loadAll<Delivery>("pending:")) {
      state.pending[d.key] = d;
      solo.sendAfter(Math.min(86_400_000, Math.max(0, d.nextAt - now)), { retry: d.key, attempt: d.attempts });
    }
    return state;
  },

  async handleCall(request: unknown, state: State): Promise<Solo.CallResult<State, unknown>> {
    const r = checkRequest(request);
    if ("error" in r) return { error: r.error, state };
    return { ...(await handle(state, r)), state };
  },

  async handleInfo(message: unknown, state: State): Promise<Solo.Handled<State>> {
    const m = message as { retry?: unknown; attempt?: unknown } | null;
    const d = typeof m?.retry === "string" ? own(state.pending, m.retry) : undefined;
    if (d === undefined || d.attempts !== m?.attempt) return { state }; // already settled, or a stale timer
    const sub = own(state.subs, d.subscription);
    if (sub === undefined) {
      // Unsubscribed while a retry waited: nothing more to send.
      delete state.pending[d.key];
      await solo.storage.delete(`pending:${d.key}`);
      return { state };
    }
    await deliver(state, d, sub);
    return { state };
  },
};
