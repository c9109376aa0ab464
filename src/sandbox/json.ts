import { SoloError } from "../lib/errors/errors.ts";

/** How deeply arrays and objects may nest in any value that crosses the sandbox boundary. */
export const MAX_DEPTH = 64;

/**
 * Encodes a host value as JSON with the same strict rules the sandbox applies to values leaving a
 * service: null, booleans, finite numbers, strings, arrays and plain objects only; object
 * properties that are undefined are left out; anything JSON would drop or change is an error that
 * names its path. `what` names the value in errors ("the request").
 */
export function encodeJson(value: unknown, what: string, maxBytes: number): string {
  check(value, what, "$", 0, []);
  const json = JSON.stringify(value);
  if (overByteLimit(json, maxBytes)) {
    throw new SoloError("SOLO_ERR_VALUE_TOO_LARGE", `${what} is ${Buffer.byteLength(json)} bytes of JSON, over the limit of ${maxBytes}`, {
      limit: maxBytes,
      hint: "send less data per message, or raise limits.messageBytes for this service",
    });
  }
  return json;
}

/**
 * Encodes a host value as canonical JSON: the strict rules of {@link encodeJson}, with every
 * object's keys in code-unit order, so equal values always give the same bytes (what the event
 * log hashes). Returns the text; the caller checks its size.
 */
export function canonicalJson(value: unknown, what: string): string {
  check(value, what, "$", 0, []);
  return canonical(value);
}

function canonical(v: unknown): string {
  if (v === null || typeof v !== "object") return JSON.stringify(v);
  if (Array.isArray(v)) return `[${v.map(canonical).join(",")}]`;
  const o = v as Record<string, unknown>;
  const keys = Object.keys(o)
    .filter((k) => o[k] !== undefined)
    .sort();
  return `{${keys.map((k) => `${JSON.stringify(k)}:${canonical(o[k])}`).join(",")}}`;
}

/**
 * Whether `text` is more than `limit` bytes of UTF-8. Each UTF-16 unit is at most 3 bytes, so the
 * byte count is only computed when the length alone cannot decide.
 */
export function overByteLimit(text: string, limit: number): boolean {
  return text.length > limit || (text.length * 3 > limit && Buffer.byteLength(text) > limit);
}

function check(v: unknown, what: string, path: string, depth: number, ancestors: object[]): void {
  switch (typeof v) {
    case "string":
    case "boolean":
      return;
    case "number":
      if (!Number.isFinite(v)) notJson(what, path, `is ${v}; only finite numbers are JSON`);
      return;
    case "undefined":
      notJson(what, path, "is undefined; use null for no value");
      return;
    case "object":
      break;
    default:
      notJson(
        what,
        path,
        `is a ${typeof v}; only JSON data (null, boolean, finite number, string, array, plain object) can cross into a service`,
      );
  }
  if (v === null) return;
  if (depth >= MAX_DEPTH) {
    throw new SoloError("SOLO_ERR_VALUE_TOO_DEEP", `${what} at ${path} is nested deeper than ${MAX_DEPTH} levels`, {
      path,
      limit: MAX_DEPTH,
    });
  }
  if (ancestors.includes(v)) notJson(what, path, "refers back to itself (a cycle); JSON data must be a tree");
  ancestors.push(v);
  if (Array.isArray(v)) {
    for (let i = 0; i < v.length; i++) check(v[i], what, `${path}[${i}]`, depth + 1, ancestors);
  } else {
    const proto: unknown = Object.getPrototypeOf(v);
    if (proto !== Object.prototype && proto !== null) {
      const name = (proto as { constructor?: { name?: unknown } }).constructor?.name;
      notJson(
        what,
        path,
        `is ${typeof name === "string" && name ? `a ${name}` : "an object with a prototype"}, not a plain object; convert it to JSON data first`,
      );
    }
    for (const [k, item] of Object.entries(v)) {
      if (item !== undefined)
        check(item, what, /^[A-Za-z_$][\w$]*$/.test(k) ? `${path}.${k}` : `${path}[${JSON.stringify(k)}]`, depth + 1, ancestors);
    }
  }
  ancestors.pop();
}

function notJson(what: string, path: string, why: string): never {
  throw new SoloError("SOLO_ERR_VALUE_NOT_JSON", `${what} at ${path} ${why}`, { path });
}
