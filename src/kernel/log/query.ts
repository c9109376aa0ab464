import { type At, checkKeys, checkObject } from "../../lib/check.ts";
import { SoloError } from "../../lib/errors/errors.ts";
import { NAME_PATTERN } from "../../lib/names.ts";
import type { EventFilter } from "../../store/store.ts";
import type { LiveFilter } from "./event-log.ts";
import { isEventType } from "./event-types.ts";

const QUERY_KEYS = new Set(["tenant", "types", "subject", "afterId", "beforeId", "since", "until", "order", "limit", "cursor"]);
const SUBSCRIBE_KEYS = new Set(["tenant", "types", "subject", "fromId", "signal"]);
const MAX_LIMIT = 1000;
const MAX_TYPES = 64;

function bad(message: string, field: string): SoloError {
  return new SoloError("SOLO_ERR_EVENT_QUERY_INVALID", message, { field });
}

function checkFields(input: unknown, keys: ReadonlySet<string>, what: string): Record<string, unknown> {
  const at: At = { reason: "SOLO_ERR_EVENT_QUERY_INVALID", field: "", label: `${what}'s argument` };
  // One read of each field: what is checked is what is used, whatever getters the input has.
  const o: Record<string, unknown> = { ...checkObject(input, at) };
  checkKeys(o, keys, { ...at, label: what }, "field");
  return o;
}

function checkLive(o: Record<string, unknown>, what: string): LiveFilter {
  const out: { tenant?: string; types?: string[]; subject?: string } = {};
  if (o.tenant !== undefined) {
    if (typeof o.tenant !== "string" || !NAME_PATTERN.test(o.tenant)) throw bad(`${what}: tenant must be a valid tenant name`, "tenant");
    out.tenant = o.tenant;
  }
  if (o.types !== undefined) {
    if (!Array.isArray(o.types) || o.types.length > MAX_TYPES)
      throw bad(`${what}: types must be an array of at most ${MAX_TYPES} event types`, "types");
    for (const t of o.types) {
      if (typeof t !== "string" || !isEventType(t)) {
        throw bad(`${what}: ${JSON.stringify(String(t).slice(0, 80))} is not an event type (see docs/events.md)`, "types");
      }
    }
    out.types = [...(o.types as string[])];
  }
  if (o.subject !== undefined) {
    if (typeof o.subject !== "string" || o.subject === "" || o.subject.length > 256)
      throw bad(`${what}: subject must be a string of 1-256 characters`, "subject");
    out.subject = o.subject;
  }
  return out;
}

function checkId(v: unknown, field: string, what: string): number {
  if (typeof v !== "number" || !Number.isSafeInteger(v) || v < 0) throw bad(`${what}: ${field} must be an integer id >= 0`, field);
  return v;
}

function checkTime(v: unknown, field: string): number {
  if (typeof v === "number" && Number.isSafeInteger(v) && v >= 0) return v;
  if (typeof v === "string" && v.length <= 64) {
    const ms = Date.parse(v);
    if (Number.isFinite(ms)) return ms * 1000;
  }
  throw bad(`events: ${field} must be microseconds since the epoch or an ISO 8601 date`, field);
}

/** Validates a query; returns the store filter (one more than the page, to know if there is a next). @internal */
export function checkEventQuery(input: unknown = {}): { filter: EventFilter; limit: number } {
  const o = checkFields(input, QUERY_KEYS, "events");
  const live = checkLive(o, "events");
  const order = o.order ?? "asc";
  if (order !== "asc" && order !== "desc") throw bad('events: order must be "asc" or "desc"', "order");
  const limit = o.limit ?? 100;
  if (typeof limit !== "number" || !Number.isInteger(limit) || limit < 1 || limit > MAX_LIMIT) {
    throw bad(`events: limit must be an integer from 1 to ${MAX_LIMIT}`, "limit");
  }
  let afterId = o.afterId === undefined ? undefined : checkId(o.afterId, "afterId", "events");
  let beforeId = o.beforeId === undefined ? undefined : checkId(o.beforeId, "beforeId", "events");
  if (o.cursor !== undefined) {
    const c = decodeCursor(o.cursor, order);
    if (order === "asc") afterId = Math.max(afterId ?? 0, c);
    else beforeId = Math.min(beforeId ?? Number.MAX_SAFE_INTEGER, c);
  }
  const filter: EventFilter = {
    ...live,
    ...(afterId !== undefined ? { afterId } : {}),
    ...(beforeId !== undefined ? { beforeId } : {}),
    ...(o.since !== undefined ? { since: checkTime(o.since, "since") } : {}),
    ...(o.until !== undefined ? { until: checkTime(o.until, "until") } : {}),
    order,
    limit: limit + 1,
  };
  return { filter, limit };
}

/** Validates subscribe options. @internal */
export function checkSubscribe(input: unknown = {}): { filter: LiveFilter; fromId: number | undefined; signal: AbortSignal | undefined } {
  const o = checkFields(input, SUBSCRIBE_KEYS, "subscribe");
  const filter = checkLive(o, "subscribe");
  const fromId = o.fromId === undefined ? undefined : checkId(o.fromId, "fromId", "subscribe");
  if (o.signal !== undefined && !(o.signal instanceof AbortSignal)) throw bad("subscribe: signal must be an AbortSignal", "signal");
  return { filter, fromId: fromId === undefined ? undefined : Math.max(1, fromId), signal: o.signal as AbortSignal | undefined };
}

// A cursor names the last id a page returned and the order it was read in; it carries no filter,
// so it can widen nothing: the query's own filter (and tenant) always apply.
const CURSOR_PREFIX = "c1";

/** @internal */
export function encodeCursor(id: number, order: "asc" | "desc"): string {
  return `${CURSOR_PREFIX}${order === "asc" ? "a" : "d"}${id.toString(36)}`;
}

function decodeCursor(v: unknown, order: "asc" | "desc"): number {
  if (typeof v !== "string" || v.length > 32 || !v.startsWith(CURSOR_PREFIX))
    throw bad("events: cursor is not one this kernel returned", "cursor");
  const dir = v[CURSOR_PREFIX.length];
  if ((dir === "a" ? "asc" : dir === "d" ? "desc" : undefined) !== order) {
    throw bad("events: this cursor belongs to a query in the other order", "cursor");
  }
  const rest = v.slice(CURSOR_PREFIX.length + 1);
  const id = /^[0-9a-z]{1,12}$/.test(rest) ? Number.parseInt(rest, 36) : Number.NaN;
  if (!Number.isSafeInteger(id) || id < 0) throw bad("events: cursor is not one this kernel returned", "cursor");
  return id;
}
