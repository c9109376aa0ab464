/** The fetch request as sandboxed code hands it over: checked field by field, nothing trusted. */
import type { FetchGrant } from "../../../api/grants.ts";
import { SoloError } from "../../../lib/errors/errors.ts";
import { shortText } from "./grant.ts";

const KiB = 1024;
const MAX_URL_LENGTH = 8 * KiB;
const MAX_HEADERS = 100;
const MAX_HEADER_BYTES = 64 * KiB;
const METHODS = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"] as const;
/** The methods a service may use. */
export type Method = (typeof METHODS)[number];
/**
 * Headers the kernel owns: framing and connection management (a service setting them could
 * smuggle a second request or confuse the proxy), and `accept-encoding` because bodies are
 * returned as text and never decompressed.
 */
const FORBIDDEN_HEADERS = new Set([
  "host",
  "connection",
  "content-length",
  "transfer-encoding",
  "upgrade",
  "te",
  "trailer",
  "keep-alive",
  "expect",
  "accept-encoding",
]);
const TOKEN = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/;
const HEADER_VALUE = /^[\t\x20-\x7e\x80-\xff]*$/;

/** A request that passed {@link checkRequest}. */
export interface CheckedRequest {
  readonly url: URL;
  readonly method: Method;
  /** Lower-case names. */
  readonly headers: ReadonlyMap<string, string>;
  readonly body: Buffer | undefined;
}

/** Validates a request from sandboxed code; nothing about it is trusted. */
export function checkRequest(request: unknown, grant: FetchGrant): CheckedRequest {
  if (request === null || typeof request !== "object" || Array.isArray(request)) {
    throw requestInvalid("request", "the fetch request must be an object like { url, method, headers, body }");
  }
  const fields = request as Record<string, unknown>;
  for (const key of Object.keys(fields)) {
    if (key !== "url" && key !== "method" && key !== "headers" && key !== "body") {
      throw requestInvalid(
        shortText(key),
        `the fetch request has an unknown field ${JSON.stringify(shortText(key))}; the fields are url, method, headers, body`,
      );
    }
  }
  const url = checkUrl(fields.url);
  const method = checkMethod(fields.method);
  const headers = checkHeaders(fields.headers);
  const rawBody = fields.body ?? undefined;
  if (rawBody !== undefined && typeof rawBody !== "string")
    throw requestInvalid("body", "the fetch body must be a string (JSON.stringify objects first)");
  if (rawBody !== undefined && (method === "GET" || method === "HEAD")) {
    throw requestInvalid("body", `a ${method} request cannot have a body; use POST or PUT, or put the data in the query string`);
  }
  const body = rawBody === undefined ? undefined : Buffer.from(rawBody, "utf8");
  if (body !== undefined && body.length > grant.maxRequestBytes) {
    throw new SoloError(
      "SOLO_ERR_FETCH_INVALID",
      `the fetch body is ${body.length} bytes, over this service's limit of ${grant.maxRequestBytes}; send less or raise the grant's maxRequestBytes`,
      { field: "body", limit: grant.maxRequestBytes, bytes: body.length },
    );
  }
  return { url, method, headers, body };
}

function checkUrl(value: unknown): URL {
  if (typeof value !== "string") throw requestInvalid("url", "the fetch url must be a string");
  if (value.length > MAX_URL_LENGTH) throw requestInvalid("url", `the fetch url is longer than ${MAX_URL_LENGTH} characters`);
  const url = URL.parse(value);
  if (url === null)
    throw requestInvalid("url", "the fetch url is not an absolute URL; write it in full, like https://api.example.com/path");
  if (url.protocol !== "https:" && url.protocol !== "http:") {
    throw requestInvalid(
      "url",
      `the fetch url uses ${JSON.stringify(shortText(url.protocol))}; only https: (and http:, if granted) are supported`,
    );
  }
  if (url.username !== "" || url.password !== "") {
    // The credentials themselves are never repeated back.
    throw requestInvalid("url", `the fetch url for ${url.host} carries credentials; send them in an authorization header instead`);
  }
  url.hash = "";
  return url;
}

function checkMethod(value: unknown): Method {
  if (value === undefined || value === null) return "GET";
  const upper = typeof value === "string" ? value.toUpperCase() : "";
  const method = METHODS.find((m) => m === upper);
  if (method === undefined) throw requestInvalid("method", `the fetch method must be one of ${METHODS.join(", ")}`);
  return method;
}

function checkHeaders(value: unknown): Map<string, string> {
  const headers = new Map<string, string>();
  if (value === undefined || value === null) return headers;
  if (typeof value !== "object" || Array.isArray(value))
    throw requestInvalid("headers", "the fetch headers must be an object of name: value strings");
  const entries = Object.entries(value);
  if (entries.length > MAX_HEADERS)
    throw requestInvalid("headers", `the fetch request has ${entries.length} headers; at most ${MAX_HEADERS} are allowed`);
  let total = 0;
  for (const [name, raw] of entries) {
    const field = `headers.${shortText(name)}`;
    if (!TOKEN.test(name)) throw requestInvalid(field, `the header name ${JSON.stringify(shortText(name))} is not a valid HTTP token`);
    const lower = name.toLowerCase();
    if (FORBIDDEN_HEADERS.has(lower) || lower.startsWith("proxy-")) {
      throw requestInvalid(field, `the header ${lower} is set by the kernel and may not be set by a service; remove it`);
    }
    if (headers.has(lower))
      throw requestInvalid(
        field,
        `the header ${lower} is given twice (names are case-insensitive); give it once, with values joined by ", "`,
      );
    if (typeof raw !== "string") throw requestInvalid(field, `the value of header ${lower} must be a string`);
    // Never echo the value: it may be a token.
    if (!HEADER_VALUE.test(raw))
      throw requestInvalid(
        field,
        `the value of header ${lower} contains a control character (CR, LF, NUL...) or a character beyond Latin-1`,
      );
    total += name.length + raw.length;
    if (total > MAX_HEADER_BYTES) throw requestInvalid(field, `the fetch headers exceed ${MAX_HEADER_BYTES} bytes in all`);
    headers.set(lower, raw);
  }
  return headers;
}

function requestInvalid(field: string, message: string): SoloError {
  return new SoloError("SOLO_ERR_FETCH_INVALID", message, { field });
}
