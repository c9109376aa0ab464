/**
 * The host half of the standard web APIs inside the sandbox (std-apis.ts is the guest half): URL
 * parsing, `application/x-www-form-urlencoded`, UTF-8, base64, randomness, hashing and HMAC, each
 * done by Node's own implementation (its WHATWG `URL` and `URLSearchParams`, `Buffer`,
 * `TextDecoder`, `atob`/`btoa`, node:crypto), never by hand-written code.
 *
 * It touches nothing outside the request: no grant is needed and no service state is kept. It
 * runs synchronously inside the message's step, so its work is on the scheduler thread's CPU clock
 * and counts against the message's budget (service.ts refuses it once that is spent). The request
 * is the guest's and treated as hostile: a malformed one is refused with a SoloError, and no input
 * larger than the bound below is worked on.
 * @internal
 */
import { atob, btoa } from "node:buffer";
import { createHash, createHmac, randomBytes, randomUUID, timingSafeEqual } from "node:crypto";
import type { ServiceLimits } from "../../api/limits.ts";
import { SoloError } from "../../lib/errors/errors.ts";
import { encodeStdError, encodeStdValue, type HostRequest } from "../../sandbox/contract.ts";

type StdRequest = Extract<HostRequest, { readonly op: "std" }>;

const HASHES: Readonly<Record<string, string>> = { "SHA-1": "sha1", "SHA-256": "sha256", "SHA-384": "sha384", "SHA-512": "sha512" };
const URL_FIELDS = new Set(["href", "protocol", "username", "password", "host", "hostname", "port", "pathname", "search", "hash"]);
const MAX_RANDOM = 65536;
/**
 * What one request may carry beyond `messageBytes`: the guest bounds each input to `messageBytes`
 * (bytes of data, characters of text), and JSON escaping makes a character at most 6.
 */
const TEXT_FACTOR = 16;
const SLACK = 64 * 1024;

/** Does the work of a standard API's request: its answer for the guest (text or bytes). */
export function stdCall(req: StdRequest, limits: ServiceLimits): string | Uint8Array {
  const limit = limits.messageBytes;
  if (req.arg.length > TEXT_FACTOR * limit + SLACK || req.bytes.length > 2 * limit + SLACK) {
    throw new SoloError("SOLO_ERR_VALUE_TOO_LARGE", `a standard API's input is larger than the service's message limit of ${limit} bytes`, {
      limit,
    });
  }
  switch (req.fn) {
    case "url":
      return parseUrl(req.arg);
    case "urlSet":
      return setUrl(req.arg);
    case "qsParse":
      return encodeStdValue([...new URLSearchParams(jsonString(req.arg))].flat());
    case "qsString":
      return encodeStdValue(serializeQuery(req.arg));
    case "encode":
      return orEmpty(Buffer.from(jsonString(req.arg), "utf8"));
    case "decode":
      return decodeUtf8(req.arg, req.bytes);
    case "atob":
      return base64(atob, req.arg);
    case "btoa":
      return base64(btoa, req.arg);
    case "random":
      return orEmpty(randomBytes(count(req.arg, MAX_RANDOM)));
    case "uuid":
      return encodeStdValue(randomUUID());
    case "digest":
      return createHash(hashOf(req.arg)).update(req.bytes).digest();
    case "sign":
      return sign(req.arg, req.bytes);
    case "verify":
      return verify(req.arg, req.bytes);
  }
}

function malformed(what: string): SoloError {
  return new SoloError("SOLO_ERR_INTERNAL", `a malformed standard API request: ${what}`);
}

function parseJson(arg: string): unknown {
  try {
    return JSON.parse(arg);
  } catch {
    throw malformed("its argument is not JSON");
  }
}

function jsonString(arg: string): string {
  const s = parseJson(arg);
  if (typeof s !== "string") throw malformed("a string was expected");
  return s;
}

function strings(arg: string, n?: number): (string | null)[] {
  const a = parseJson(arg);
  if (!Array.isArray(a) || (n !== undefined && a.length !== n) || !a.every((x) => typeof x === "string" || x === null)) {
    throw malformed("a list of strings was expected");
  }
  return a as (string | null)[];
}

// Empty bytes cannot become an ArrayBuffer in the engine: the guest reads "" as none.
function orEmpty(bytes: Uint8Array): string | Uint8Array {
  return bytes.length === 0 ? encodeStdValue("") : bytes;
}

/** A URL's components, in the order std-apis.ts reads them. */
function partsOf(u: URL): string[] {
  return [u.href, u.origin, u.protocol, u.username, u.password, u.host, u.hostname, u.port, u.pathname, u.search, u.hash];
}

function parseUrl(arg: string): string {
  const [input, base] = strings(arg, 2);
  if (typeof input !== "string") throw malformed("the URL is not a string");
  const parsed = base === null || base === undefined ? URL.parse(input) : URL.parse(input, base);
  return encodeStdValue(parsed ? partsOf(parsed) : null);
}

function setUrl(arg: string): string {
  const [href, field, value] = strings(arg, 3);
  const u = typeof href === "string" ? URL.parse(href) : null;
  if (!u || typeof field !== "string" || !URL_FIELDS.has(field) || typeof value !== "string") throw malformed("not a URL setter");
  if (field === "href") {
    const next = URL.parse(value);
    if (!next) return encodeStdError("TypeError", `Invalid URL: ${JSON.stringify(clip(value))} is not a valid URL (URL.href)`);
    return encodeStdValue(partsOf(next));
  }
  // Every other setter ignores a value it cannot use, as the standard says.
  (u as unknown as Record<string, string>)[field] = value;
  return encodeStdValue(partsOf(u));
}

function serializeQuery(arg: string): string {
  const flat = strings(arg);
  if (flat.length % 2 !== 0) throw malformed("an odd list of names and values");
  const params = new URLSearchParams();
  for (let i = 0; i < flat.length; i += 2) params.append(String(flat[i]), String(flat[i + 1]));
  return params.toString();
}

function decodeUtf8(flags: string, bytes: Uint8Array): string {
  const fatal = flags.charAt(0) === "1";
  try {
    return encodeStdValue(new TextDecoder("utf-8", { fatal, ignoreBOM: flags.charAt(1) === "1" }).decode(bytes));
  } catch (err) {
    if (!(err instanceof TypeError)) throw err;
    return encodeStdError("TypeError", "TextDecoder.decode: the input is not valid UTF-8 (the decoder is fatal: true)");
  }
}

function base64(fn: (s: string) => string, arg: string): string {
  try {
    return encodeStdValue(fn(jsonString(arg)));
  } catch (err) {
    if (!(err instanceof DOMException)) throw err;
    const what = fn === atob ? "atob: the data is not valid base64" : "btoa: the data has a character above U+00FF";
    return encodeStdError(err.name, `${what} (${err.message})`);
  }
}

function count(arg: string, max: number): number {
  const n = Number(arg);
  if (!Number.isInteger(n) || n < 0 || n > max) throw malformed(`a count from 0 to ${max} was expected`);
  return n;
}

function hashOf(name: string): string {
  const h = HASHES[name];
  if (h === undefined) throw malformed(`no hash named ${JSON.stringify(name.slice(0, 40))}`);
  return h;
}

// `<hash>\n<key bytes>[\n<signature bytes>]`: the lengths of the parts of `bytes` before the data.
function framing(arg: string, parts: number, total: number): { hash: string; lengths: number[] } {
  const [name = "", ...rest] = arg.split("\n");
  const lengths = rest.map((s) => count(s, total));
  if (lengths.length !== parts || lengths.reduce((a, b) => a + b, 0) > total) throw malformed("the key and data do not add up");
  return { hash: hashOf(name), lengths };
}

function sign(arg: string, bytes: Uint8Array): Uint8Array {
  const { hash, lengths } = framing(arg, 1, bytes.length);
  const keyBytes = lengths[0] ?? 0;
  return createHmac(hash, bytes.subarray(0, keyBytes)).update(bytes.subarray(keyBytes)).digest();
}

function verify(arg: string, bytes: Uint8Array): string {
  const { hash, lengths } = framing(arg, 2, bytes.length);
  const keyBytes = lengths[0] ?? 0;
  const sigBytes = lengths[1] ?? 0;
  const signature = bytes.subarray(keyBytes, keyBytes + sigBytes);
  const mac = createHmac(hash, bytes.subarray(0, keyBytes))
    .update(bytes.subarray(keyBytes + sigBytes))
    .digest();
  // In constant time, so the answer does not tell how much of a forged signature was right.
  return encodeStdValue(signature.length === mac.length && timingSafeEqual(signature, mac));
}

function clip(s: string): string {
  return s.length > 80 ? `${s.slice(0, 80)}...` : s;
}
