/**
 * The standard web APIs a service has where QuickJS-ng lacks them: `URL`, `URLSearchParams`,
 * `TextEncoder`, `TextDecoder`, `atob`, `btoa`, `structuredClone` and `crypto` (`getRandomValues`,
 * `randomUUID`, and `subtle` with `digest` and HMAC `importKey`/`sign`/`verify`). This is their
 * guest half; std-host.ts (scheduler/core) is the host half.
 *
 * Where the work is. `structuredClone` is guest JavaScript (the values live in the guest's heap).
 * Everything else is host-backed, done by Node's own implementations: randomness, hashing and HMAC
 * by node:crypto (a sandbox has no entropy, and cryptography is not hand-written), URL parsing by
 * Node's WHATWG `URL`, `application/x-www-form-urlencoded` by its `URLSearchParams`, UTF-8 by its
 * `Buffer` and `TextDecoder`, base64 by its `atob`/`btoa`. Bundling polyfills instead (the WHATWG
 * reference `whatwg-url` with its IDNA tables, a UTF-8 codec, SHA and HMAC in JavaScript) would
 * cost every runtime hundreds of KiB and run interpreted, many times slower. The guest half holds
 * only a URL's parsed components (a setter re-parses through the host), a `URLSearchParams` list,
 * a decoder's incomplete bytes and a key's bytes.
 *
 * Memory. The bootstrap splices in only {@link STD_APIS_SOURCE}: it captures the intrinsics the
 * implementation needs (before any service code runs) and defines the globals as getters. The
 * implementation ({@link STD_APIS_IMPL}, some 130 KiB once compiled) is compiled by the sandbox in
 * a runtime the first time its service reads one of the globals, so a service that never uses
 * them pays about 11 KiB (a runtime with the bootstrap held 153 KiB before this, 165 KiB after).
 *
 * CPU. The host work of a call runs synchronously in the message's step, on the scheduler thread's
 * CPU clock, so it counts against the message's budget like the guest's own work; once the budget
 * is spent the sandbox does no more of it (service.ts). Compiling the implementation is the
 * kernel's work and is not counted. Each host-backed call takes at most `limits.messageBytes` of
 * input (bytes of data, characters of text): more is refused with a `QuotaExceededError`, except
 * that `TextEncoder` and `TextDecoder` cut larger inputs into calls of that size.
 *
 * The boundary. Requests go through `host("std", fn + "\n" + argument, bytes?)`: `fn` one of
 * contract.ts's STD_FUNCTIONS, text JSON-encoded (NUL characters and lone surrogates cross intact),
 * data as a fresh ArrayBuffer copied out of the service's view. Answers: `I=<json>` a value,
 * `I!<json>` a web error `{ name, message }` thrown here as a TypeError or DOMException, an
 * ArrayBuffer (copied at once into memory the service's limit counts), or `E<error data>`, the
 * host's refusal. `host("std", "load\n")` is answered by the sandbox itself with the factory.
 *
 * Hardening, as the bootstrap's. Intrinsics are captured before the service runs and the
 * implementation reads no global; its own lists have a null prototype and its descriptors too (no
 * setter or getter the service put on Array.prototype or Object.prototype reaches them); brand
 * checks go through private fields and captured getters, never a service-visible `constructor` or
 * `Symbol.toStringTag`; every exposed class, prototype and object is frozen, and the globals are
 * getters that are neither writable nor configurable.
 * @internal
 */

/** The bootstrap's part, spliced in by bootstrap.ts: the captured intrinsics and the globals' getters. @internal */
export const STD_APIS_SOURCE = String.raw`(function (host, limitBytes) {
const O = Object, getProto = O.getPrototypeOf, freeze = O.freeze, defineProperty = O.defineProperty;
function getter(o, k) { return O.getOwnPropertyDescriptor(o, k).get; }
const TAP = getProto(Uint8Array.prototype), AP = ArrayBuffer.prototype, DVP = DataView.prototype, MP = Map.prototype, SP = Set.prototype;
// Every intrinsic the implementation uses, captured now, before any service code runs: it is
// compiled later, when the service may have replaced any global or prototype method.
const I = freeze({
  __proto__: null,
  ObjectCtor: O, ObjectProto: O.prototype, ArrayCtor: Array, defineProperty, freeze, getProto, setProto: O.setPrototypeOf,
  keysOf: O.keys, ownDesc: O.getOwnPropertyDescriptor, hasOwn: O.hasOwn, apply: Reflect.apply, isArray: Array.isArray,
  jsonParse: JSON.parse, jsonStringify: JSON.stringify, StringCtor: String, TypeErr: TypeError, RangeErr: RangeError,
  ErrorCtor: Error, DOMEx: DOMException, P: Promise, resolved: Promise.resolve, rejected: Promise.reject, AB: ArrayBuffer, U8: Uint8Array, MapCtor: Map, SetCtor: Set,
  DateCtor: Date, RegExpCtor: RegExp, SymbolIterator: Symbol.iterator, SymbolToStringTag: Symbol.toStringTag,
  push: Array.prototype.push, join: Array.prototype.join, sortArray: Array.prototype.sort, slice: String.prototype.slice, charAt: String.prototype.charAt,
  charCodeAt: String.prototype.charCodeAt, toLowerCase: String.prototype.toLowerCase, trim: String.prototype.trim,
  toWellFormed: String.prototype.toWellFormed, taName: getter(TAP, Symbol.toStringTag), taBuffer: getter(TAP, "buffer"),
  taOffset: getter(TAP, "byteOffset"), taBytes: getter(TAP, "byteLength"), taLength: getter(TAP, "length"), taSet: TAP.set,
  taSubarray: TAP.subarray, abBytes: getter(AP, "byteLength"), abSlice: AP.slice, isView: ArrayBuffer.isView,
  abResizable: getter(AP, "resizable"), abMax: getter(AP, "maxByteLength"), abTransfer: AP.transfer,
  dvBuffer: getter(DVP, "buffer"), dvOffset: getter(DVP, "byteOffset"), dvBytes: getter(DVP, "byteLength"),
  mapForEach: MP.forEach, mapGet: MP.get, mapSet: MP.set, mapHas: MP.has, mapSize: getter(MP, "size"),
  setForEach: SP.forEach, setAdd: SP.add, setSize: getter(SP, "size"), weakMapHas: WeakMap.prototype.has,
  weakSetHas: WeakSet.prototype.has, dateTime: Date.prototype.getTime, reSource: getter(RegExp.prototype, "source"),
  reFlags: getter(RegExp.prototype, "flags"), boolValue: Boolean.prototype.valueOf, numValue: Number.prototype.valueOf,
  strValue: String.prototype.valueOf, bigValue: BigInt.prototype.valueOf, symValue: Symbol.prototype.valueOf,
  isError: Error.isError, domName: getter(DOMException.prototype, "name"), domMessage: getter(DOMException.prototype, "message"),
  IteratorProto: getProto(getProto([][Symbol.iterator]())),
  TYPED: freeze({ __proto__: null, Int8Array, Uint8Array, Uint8ClampedArray, Int16Array, Uint16Array, Int32Array, Uint32Array, Float16Array, Float32Array, Float64Array, BigInt64Array, BigUint64Array, DataView }),
  ERRORS: freeze({ __proto__: null, Error, EvalError, RangeError, ReferenceError, SyntaxError, TypeError, URIError }),
});
const RangeErr = RangeError, ErrorCtor = Error, jsonParse = JSON.parse, apply = Reflect.apply, slice = String.prototype.slice;
let api;
// The implementation, compiled in this runtime by the sandbox the first time the service reads one
// of these globals; after that, the same frozen objects every time.
function load() {
  if (api !== undefined) return api;
  const factory = host("std", "load\n");
  if (typeof factory !== "function") {
    if (typeof factory !== "string") throw new RangeErr("out of memory: no room to load the standard APIs");
    throw new ErrorCtor(jsonParse(apply(slice, factory, [1])).message);
  }
  api = factory(host, limitBytes, I);
  return api;
}
const NAMES = ["URL", "URLSearchParams", "TextEncoder", "TextDecoder", "atob", "btoa", "structuredClone", "crypto"];
for (let i = 0; i < NAMES.length; i++) {
  const name = NAMES[i];
  defineProperty(globalThis, name, { __proto__: null, get: () => load()[name], enumerable: false, configurable: false });
}
})`;

/** The name the implementation's code runs under (its functions' stack frames). @internal */
export const STD_APIS_FILENAME = "solo:std";

/** The request for the implementation, which the sandbox answers itself with {@link STD_APIS_IMPL}'s factory. @internal */
export const STD_APIS_LOAD = "load\n";

/**
 * The implementation: a script whose value is a factory `(host, limitBytes, intrinsics)` returning
 * the globals, compiled by the sandbox (service.ts) on first use. It reads no global: everything
 * comes from the intrinsics the bootstrap captured before the service ran.
 * @internal
 */
export const STD_APIS_IMPL = String.raw`(function (host, limitBytes, I) {
"use strict";
const { ObjectCtor, ObjectProto, ArrayCtor, defineProperty, freeze, getProto, setProto, keysOf, ownDesc, hasOwn, apply, isArray } = I;
const { jsonParse, jsonStringify, StringCtor, TypeErr, RangeErr, ErrorCtor, DOMEx, P, resolved, rejected, AB, U8, MapCtor, SetCtor, DateCtor, RegExpCtor } = I;
const { SymbolIterator, SymbolToStringTag, push, join, sortArray, slice, charAt, charCodeAt, toLowerCase, trim, toWellFormed } = I;
const { taName, taBuffer, taOffset, taBytes, taLength, taSet, taSubarray, abBytes, abSlice, isView, abResizable, abMax, abTransfer } = I;
const { dvBuffer, dvOffset, dvBytes, mapForEach, mapGet, mapSet, mapHas, mapSize, setForEach, setAdd, setSize, weakMapHas, weakSetHas } = I;
const { dateTime, reSource, reFlags, boolValue, numValue, strValue, bigValue, symValue, isError, domName, domMessage, IteratorProto, TYPED, ERRORS } = I;
const FAIL = freeze({});
const TOKEN = freeze({});

// A list of our own: with no prototype, no setter the service put on Array.prototype reaches it.
function list() { return setProto([], null); }
function data(value) { return { __proto__: null, value: value, writable: true, enumerable: true, configurable: true }; }
function tryCall(fn, v) { try { return apply(fn, v, []); } catch (e) { return FAIL; } }
function kind(v) { return v === null ? "null" : isArray(v) ? "an array" : typeof v; }
function clip(s) { return s.length > 80 ? apply(slice, s, [0, 80]) + "..." : s; }
function quota(what, n, unit) {
  return new DOMEx(what + " is " + n + " " + unit + "; a Solo service's standard APIs take at most limits.messageBytes (" + limitBytes + ") " + unit + " per call", "QuotaExceededError");
}
// WebIDL's DOMString and USVString: a symbol cannot be one; a USVString has no lone surrogates.
function str(v, what) {
  if (typeof v === "symbol") throw new TypeErr(what + " must be a string, got a symbol");
  return StringCtor(v);
}
function usv(v, what) { return apply(toWellFormed, str(v, what), []); }
// A list of strings (or nulls) as JSON. Not JSON.stringify: QuickJS-ng's builds its output in
// arrays of its own, through any setter the service put on Array.prototype indices.
function jsonList(l) {
  const parts = list();
  for (let i = 0; i < l.length; i++) apply(push, parts, [l[i] === null ? "null" : jsonStringify(l[i])]);
  return "[" + apply(join, parts, [","]) + "]";
}
function text(s, what) {
  if (s.length > limitBytes) throw quota(what, s.length, "characters");
  return s;
}

// The host's half of a standard API: its value, or the error it answered, thrown.
function std(fn, arg, bytes) {
  // No data is passed as none: the engine cannot hand the host an empty buffer.
  const r = bytes === undefined || apply(abBytes, bytes, []) === 0 ? host("std", fn + "\n" + arg) : host("std", fn + "\n" + arg, bytes);
  if (typeof r !== "string") {
    if (r !== undefined) return r;
    throw new RangeErr("out of memory: the tenant's memory is full");
  }
  const tag = apply(charAt, r, [0]);
  if (tag === "I") {
    const value = jsonParse(apply(slice, r, [2]));
    if (apply(charAt, r, [1]) === "=") return value;
    throw value.name === "TypeError" ? new TypeErr(value.message) : new DOMEx(value.message, value.name);
  }
  // The host refused: the message's CPU budget is spent, or the request was malformed.
  const d = jsonParse(apply(slice, r, [1]));
  const e = new ErrorCtor(d.message);
  defineProperty(e, "name", data("SoloError"));
  defineProperty(e, "code", data(d.code));
  defineProperty(e, "reason", data(d.reason));
  defineProperty(e, "details", data(d.details));
  throw e;
}

// Bytes the host answered, copied into memory the service's limit counts (the host's copy is
// freed as soon as it is dropped).
function stdBytes(fn, arg, bytes) {
  const r = std(fn, arg, bytes);
  return typeof r === "string" ? new AB(0) : apply(abSlice, r, [0]);
}

// The bytes of a BufferSource (an ArrayBuffer, a TypedArray or a DataView), as a fresh ArrayBuffer
// the host may read; read through the captured getters, never the service's own properties.
function bytesOf(v, what, bound) {
  if (v !== null && typeof v === "object") {
    let buffer = FAIL, offset = 0, n = tryCall(abBytes, v);
    if (n !== FAIL) buffer = v;
    else if (isView(v)) {
      const ta = apply(taName, v, []) !== undefined;
      buffer = apply(ta ? taBuffer : dvBuffer, v, []);
      offset = apply(ta ? taOffset : dvOffset, v, []);
      n = apply(ta ? taBytes : dvBytes, v, []);
    }
    if (buffer !== FAIL) {
      if (bound && n > limitBytes) throw quota(what, n, "bytes");
      return apply(abSlice, buffer, [offset, offset + n]);
    }
  }
  throw new TypeErr(what + " must be an ArrayBuffer, a TypedArray or a DataView, got " + kind(v));
}

function concat(a, b, c) {
  const na = apply(abBytes, a, []), nb = apply(abBytes, b, []), nc = c === undefined ? 0 : apply(abBytes, c, []);
  const out = new U8(na + nb + nc);
  apply(taSet, out, [new U8(a), 0]);
  apply(taSet, out, [new U8(b), na]);
  if (c !== undefined) apply(taSet, out, [new U8(c), na + nb]);
  return apply(taBuffer, out, []);
}

// ---- TextEncoder / TextDecoder (UTF-8 only) ----

// UTF-8 of a string, through the host in pieces of at most limitBytes (a character is at most 3
// bytes; a surrogate pair is never cut in two).
function utf8(s) {
  const n = s.length;
  if (n === 0) return new AB(0);
  const step = limitBytes / 3 | 0;
  if (n <= step) return stdBytes("encode", jsonStringify(s));
  const parts = list();
  let total = 0;
  for (let i = 0; i < n;) {
    let end = i + step > n ? n : i + step;
    if (end < n && (apply(charCodeAt, s, [end - 1]) & 0xfc00) === 0xd800) end--;
    const b = stdBytes("encode", jsonStringify(apply(slice, s, [i, end])));
    apply(push, parts, [b]);
    total += apply(abBytes, b, []);
    i = end;
  }
  const out = new U8(total);
  for (let k = 0, at = 0; k < parts.length; k++) {
    apply(taSet, out, [new U8(parts[k]), at]);
    at += apply(abBytes, parts[k], []);
  }
  return apply(taBuffer, out, []);
}

let encoderBrand, decoderBrand;

class TextEncoder {
  #brand = true;
  get encoding() { this.#brand; return "utf-8"; }
  encode(input) {
    return new U8(utf8(input === undefined ? "" : str(input, "TextEncoder.encode: the input")));
  }
  encodeInto(source, destination) {
    const s = str(source, "TextEncoder.encodeInto: the source");
    if (apply(taName, destination, []) !== "Uint8Array") throw new TypeErr("TextEncoder.encodeInto: the destination must be a Uint8Array, got " + kind(destination));
    const room = apply(taLength, destination, []);
    // No more characters than bytes of room can fit; a pair whose second half is cut off is left.
    let n = s.length < room ? s.length : room;
    if (n < s.length && n > 0 && (apply(charCodeAt, s, [n - 1]) & 0xfc00) === 0xd800) n--;
    const bytes = new U8(utf8(apply(slice, s, [0, n])));
    let written = apply(taLength, bytes, []);
    let read = n;
    if (written > room) {
      written = room;
      while (written > 0 && (bytes[written] & 0xc0) === 0x80) written--;
      read = 0;
      for (let i = 0; i < written; i++) {
        const c = bytes[i];
        if ((c & 0xc0) !== 0x80) read += c >= 0xf0 ? 2 : 1;
      }
    }
    apply(taSet, destination, [apply(taSubarray, bytes, [0, written])]);
    return { read: read, written: written };
  }
  static {
    encoderBrand = (o) => #brand in o;
  }
}

const UTF8_LABELS = { __proto__: null, "unicode-1-1-utf-8": 1, unicode11utf8: 1, unicode20utf8: 1, "utf-8": 1, utf8: 1, "x-unicode20utf8": 1 };

// How many bytes at the end of b[0, n) begin a UTF-8 sequence that is valid so far but incomplete:
// they wait for the next piece (the Encoding Standard's decoder would wait for them too).
function incomplete(b, n) {
  for (let k = 1; k <= 3 && k <= n; k++) {
    const c = b[n - k];
    if (c < 0x80) return 0;
    if (c < 0xc0) continue;
    const need = c >= 0xf0 ? 4 : c >= 0xe0 ? 3 : 2;
    if (c < 0xc2 || c > 0xf4 || need <= k) return 0;
    if (k >= 2) {
      const d = b[n - k + 1];
      if (d < (c === 0xe0 ? 0xa0 : c === 0xf0 ? 0x90 : 0x80) || d > (c === 0xed ? 0x9f : c === 0xf4 ? 0x8f : 0xbf)) return 0;
    }
    return k;
  }
  return 0;
}

class TextDecoder {
  #fatal;
  #ignoreBOM;
  #pending = null;
  #started = false;
  constructor(label, options) {
    const name = label === undefined ? "utf-8" : apply(toLowerCase, apply(trim, str(label, "TextDecoder: the label"), []), []);
    if (UTF8_LABELS[name] !== 1) throw new RangeErr("TextDecoder: the encoding " + jsonStringify(clip(name)) + " is not supported; a Solo service decodes UTF-8 only");
    if (options !== undefined && options !== null && typeof options !== "object") throw new TypeErr("TextDecoder: options must be an object like { fatal: true }");
    this.#fatal = options ? !!options.fatal : false;
    this.#ignoreBOM = options ? !!options.ignoreBOM : false;
  }
  get encoding() { this.#fatal; return "utf-8"; }
  get fatal() { return this.#fatal; }
  get ignoreBOM() { return this.#ignoreBOM; }
  decode(input, options) {
    if (options !== undefined && options !== null && typeof options !== "object") throw new TypeErr("TextDecoder.decode: options must be an object like { stream: true }");
    const stream = options ? !!options.stream : false;
    let buffer = input === undefined ? new AB(0) : bytesOf(input, "TextDecoder.decode: the input", false);
    if (this.#pending !== null) buffer = concat(this.#pending, buffer);
    this.#pending = null;
    const b = new U8(buffer);
    let n = apply(taLength, b, []);
    if (stream) {
      const keep = incomplete(b, n);
      if (keep > 0) this.#pending = apply(abSlice, buffer, [n - keep]);
      n -= keep;
    }
    let out = "";
    try {
      for (let at = 0; at < n;) {
        let end = at + limitBytes < n ? at + limitBytes : n;
        if (end < n) end -= incomplete(b, end);
        out += std("decode", (this.#fatal ? "1" : "0") + (this.#ignoreBOM || this.#started ? "1" : "0"), apply(abSlice, buffer, [at, end]));
        this.#started = true;
        at = end;
      }
    } catch (e) {
      this.#pending = null;
      this.#started = false;
      throw e;
    }
    if (!stream) this.#started = false;
    return out;
  }
  static {
    decoderBrand = (o) => #fatal in o;
  }
}

// ---- atob / btoa ----

function atob(data) {
  if (arguments.length < 1) throw new TypeErr("atob: 1 argument required");
  return std("atob", jsonStringify(text(str(data, "atob: the data"), "atob: the data")));
}

function btoa(data) {
  if (arguments.length < 1) throw new TypeErr("btoa: 1 argument required");
  return std("btoa", jsonStringify(text(str(data, "btoa: the data"), "btoa: the data")));
}

// ---- URL / URLSearchParams ----

// The components of a parsed URL, as the host answers them (null: not a valid URL).
const HREF = 0, ORIGIN = 1, PROTOCOL = 2, USERNAME = 3, PASSWORD = 4, HOST = 5, HOSTNAME = 6, PORT = 7, PATHNAME = 8, SEARCH = 9, HASH = 10;
let paramsList, linkParams, refillParams, setQuery, urlBrand;

function parseUrl(url, base, fail) {
  const u = text(usv(url, "URL: the url"), "URL: the url");
  const b = base === undefined ? null : text(usv(base, "URL: the base"), "URL: the base");
  const p = std("url", jsonList([u, b]));
  if (p === null && fail) throw new TypeErr("Invalid URL: " + jsonStringify(clip(u)) + (b === null ? "" : " against the base " + jsonStringify(clip(b))) + " is not a valid URL");
  return p;
}

// Pairs of a query string, flat: [name, value, name, value, ...].
function parseQuery(s) {
  const out = list();
  if (s === "") return out;
  const pairs = std("qsParse", jsonStringify(text(s, "URLSearchParams: the query")));
  for (let i = 0; i < pairs.length; i++) apply(push, out, [pairs[i]]);
  return out;
}

class URL {
  #p;
  #q = null;
  constructor(url, base) {
    if (arguments.length < 1) throw new TypeErr("URL: 1 argument required");
    // URL.parse hands over the components it parsed already.
    this.#p = url === TOKEN ? base : parseUrl(url, base, true);
  }
  static canParse(url, base) {
    return parseUrl(url, base, false) !== null;
  }
  static parse(url, base) {
    const p = parseUrl(url, base, false);
    return p === null ? null : new URL(TOKEN, p);
  }
  #set(field, value, refill) {
    const v = usv(value, "URL." + field);
    if (this.#p[HREF].length + v.length > limitBytes) throw quota("URL." + field + ": the URL and the new value", this.#p[HREF].length + v.length, "characters");
    this.#p = std("urlSet", jsonList([this.#p[HREF], field, v]));
    if (refill && this.#q !== null) refillParams(this.#q, this.#p[SEARCH]);
  }
  get href() { return this.#p[HREF]; }
  set href(v) { this.#set("href", v, true); }
  get origin() { return this.#p[ORIGIN]; }
  get protocol() { return this.#p[PROTOCOL]; }
  set protocol(v) { this.#set("protocol", v, false); }
  get username() { return this.#p[USERNAME]; }
  set username(v) { this.#set("username", v, false); }
  get password() { return this.#p[PASSWORD]; }
  set password(v) { this.#set("password", v, false); }
  get host() { return this.#p[HOST]; }
  set host(v) { this.#set("host", v, false); }
  get hostname() { return this.#p[HOSTNAME]; }
  set hostname(v) { this.#set("hostname", v, false); }
  get port() { return this.#p[PORT]; }
  set port(v) { this.#set("port", v, false); }
  get pathname() { return this.#p[PATHNAME]; }
  set pathname(v) { this.#set("pathname", v, false); }
  get search() { return this.#p[SEARCH]; }
  set search(v) { this.#set("search", v, true); }
  get hash() { return this.#p[HASH]; }
  set hash(v) { this.#set("hash", v, false); }
  get searchParams() {
    if (this.#q === null) {
      const q = new URLSearchParams(this.#p[SEARCH]);
      linkParams(q, this);
      this.#q = q;
    }
    return this.#q;
  }
  toString() { return this.#p[HREF]; }
  toJSON() { return this.#p[HREF]; }
  static {
    setQuery = (u, serialized) => { u.#set("search", serialized, false); };
    urlBrand = (o) => #p in o;
  }
}

class URLSearchParams {
  #list = list();
  #url = null;
  constructor(init) {
    if (init === undefined) return;
    if (init !== null && (typeof init === "object" || typeof init === "function")) {
      const other = paramsList(init);
      if (other !== undefined) {
        for (let i = 0; i < other.length; i++) apply(push, this.#list, [other[i]]);
      } else if (isArray(init)) {
        for (let i = 0; i < init.length; i++) this.#pair(init[i]);
      } else if (typeof init[SymbolIterator] === "function") {
        // A Map, a generator, another iterable: its own iterator is the service's code, run as the web would.
        const it = init[SymbolIterator]();
        for (;;) {
          const r = it.next();
          if (r.done) break;
          this.#pair(r.value);
        }
      } else {
        const keys = keysOf(init);
        for (let i = 0; i < keys.length; i++) apply(push, this.#list, [usv(keys[i], "URLSearchParams: a name"), usv(init[keys[i]], "URLSearchParams: a value")]);
      }
      return;
    }
    let s = usv(init, "URLSearchParams: the query");
    if (apply(charAt, s, [0]) === "?") s = apply(slice, s, [1]);
    this.#list = parseQuery(s);
  }
  #pair(p) {
    if (p === null || typeof p !== "object" || p.length !== 2) throw new TypeErr("URLSearchParams: each pair must be a [name, value] of exactly two items");
    apply(push, this.#list, [usv(p[0], "URLSearchParams: a name"), usv(p[1], "URLSearchParams: a value")]);
  }
  #update() {
    if (this.#url !== null) setQuery(this.#url, this.toString());
  }
  get size() { return this.#list.length / 2; }
  append(name, value) {
    if (arguments.length < 2) throw new TypeErr("URLSearchParams.append: 2 arguments required");
    apply(push, this.#list, [usv(name, "URLSearchParams.append: the name"), usv(value, "URLSearchParams.append: the value")]);
    this.#update();
  }
  delete(name, value) {
    const n = usv(name, "URLSearchParams.delete: the name");
    const v = value === undefined ? undefined : usv(value, "URLSearchParams.delete: the value");
    const l = this.#list, kept = list();
    for (let i = 0; i < l.length; i += 2) {
      if (l[i] !== n || (v !== undefined && l[i + 1] !== v)) apply(push, kept, [l[i], l[i + 1]]);
    }
    this.#list = kept;
    this.#update();
  }
  get(name) {
    const n = usv(name, "URLSearchParams.get: the name"), l = this.#list;
    for (let i = 0; i < l.length; i += 2) if (l[i] === n) return l[i + 1];
    return null;
  }
  getAll(name) {
    const n = usv(name, "URLSearchParams.getAll: the name"), l = this.#list, out = [];
    for (let i = 0; i < l.length; i += 2) if (l[i] === n) defineProperty(out, out.length, data(l[i + 1]));
    return out;
  }
  has(name, value) {
    const n = usv(name, "URLSearchParams.has: the name");
    const v = value === undefined ? undefined : usv(value, "URLSearchParams.has: the value");
    const l = this.#list;
    for (let i = 0; i < l.length; i += 2) if (l[i] === n && (v === undefined || l[i + 1] === v)) return true;
    return false;
  }
  set(name, value) {
    if (arguments.length < 2) throw new TypeErr("URLSearchParams.set: 2 arguments required");
    const n = usv(name, "URLSearchParams.set: the name"), v = usv(value, "URLSearchParams.set: the value");
    const l = this.#list, kept = list();
    let found = false;
    for (let i = 0; i < l.length; i += 2) {
      if (l[i] !== n) apply(push, kept, [l[i], l[i + 1]]);
      else if (!found) { found = true; apply(push, kept, [n, v]); }
    }
    if (!found) apply(push, kept, [n, v]);
    this.#list = kept;
    this.#update();
  }
  sort() {
    const l = this.#list, pairs = list();
    for (let i = 0; i < l.length; i += 2) apply(push, pairs, [[l[i], l[i + 1]]]);
    // Stable, by the names' UTF-16 code units, as the standard sorts them.
    apply(sortArray, pairs, [(a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0)]);
    const out = list();
    for (let i = 0; i < pairs.length; i++) apply(push, out, [pairs[i][0], pairs[i][1]]);
    this.#list = out;
    this.#update();
  }
  forEach(callback, thisArg) {
    if (typeof callback !== "function") throw new TypeErr("URLSearchParams.forEach: the callback must be a function");
    for (let i = 0; i < this.#list.length; i += 2) apply(callback, thisArg, [this.#list[i + 1], this.#list[i], this]);
  }
  keys() { return new ParamsIterator(TOKEN, this, 0); }
  values() { return new ParamsIterator(TOKEN, this, 1); }
  entries() { return new ParamsIterator(TOKEN, this, 2); }
  toString() {
    const l = this.#list;
    if (l.length === 0) return "";
    let size = 0;
    for (let i = 0; i < l.length; i++) size += l[i].length + 1;
    if (size > limitBytes) throw quota("URLSearchParams.toString: the parameters", size, "characters");
    return std("qsString", jsonList(l));
  }
  static {
    paramsList = (o) => (#list in o ? o.#list : undefined);
    linkParams = (p, u) => { p.#url = u; };
    refillParams = (p, search) => { p.#list = parseQuery(search === "" ? "" : apply(slice, search, [1])); };
  }
}
defineProperty(URLSearchParams.prototype, SymbolIterator, { __proto__: null, value: URLSearchParams.prototype.entries, writable: true, enumerable: false, configurable: true });

// The live iterator of a URLSearchParams: it sees pairs added while it runs, as the web's does.
class ParamsIterator {
  #params;
  #kind;
  #at = 0;
  constructor(token, params, k) {
    if (token !== TOKEN) throw new TypeErr("Illegal constructor");
    this.#params = params;
    this.#kind = k;
  }
  next() {
    const l = paramsList(this.#params), i = this.#at;
    if (i >= l.length) return { value: undefined, done: true };
    this.#at = i + 2;
    return { value: this.#kind === 0 ? l[i] : this.#kind === 1 ? l[i + 1] : [l[i], l[i + 1]], done: false };
  }
}
setProto(ParamsIterator.prototype, IteratorProto);

// ---- structuredClone ----

function cloneError(what) {
  return new DOMEx("structuredClone: " + what + " could not be cloned", "DataCloneError");
}

function structuredClone(value, options) {
  if (arguments.length < 1) throw new TypeErr("structuredClone: 1 argument required");
  const memory = new MapCtor();
  const moved = list();
  if (options !== undefined && options !== null) {
    if (typeof options !== "object") throw new TypeErr("structuredClone: options must be an object like { transfer: [buffer] }");
    const transfer = options.transfer;
    if (transfer !== undefined) {
      if (!isArray(transfer)) throw new TypeErr("structuredClone: transfer must be an array of ArrayBuffers");
      for (let i = 0; i < transfer.length; i++) {
        const b = transfer[i];
        if (tryCall(abBytes, b) === FAIL) throw cloneError("a transfer list item that is not an ArrayBuffer");
        if (apply(mapHas, memory, [b])) throw cloneError("an ArrayBuffer listed twice in transfer");
        apply(mapSet, memory, [b, cloneBuffer(b)]);
        apply(push, moved, [b]);
      }
    }
  }
  const out = clone(value, memory);
  // Transferred buffers are detached only once the whole clone has succeeded.
  for (let i = 0; i < moved.length; i++) apply(abTransfer, moved[i], []);
  return out;
}

function clone(v, memory) {
  const t = typeof v;
  if (t === "function") throw cloneError("a function");
  if (t === "symbol") throw cloneError("a symbol");
  if (t !== "object" || v === null) return v;
  const seen = apply(mapGet, memory, [v]);
  if (seen !== undefined) return seen;
  if (isArray(v)) {
    const out = new ArrayCtor(v.length);
    apply(mapSet, memory, [v, out]);
    return copyProps(v, out, memory);
  }
  const proto = getProto(v);
  // The common case first: a plain object (an object whose prototype was changed to
  // Object.prototype, or that is a proxy, is copied by its own enumerable properties too).
  if (proto === ObjectProto || proto === null) return copyProps(v, {}, memory, v);
  return cloneObject(v, memory);
}

function copyProps(v, out, memory, placeholder) {
  if (placeholder !== undefined) apply(mapSet, memory, [v, out]);
  const keys = keysOf(v);
  for (let i = 0; i < keys.length; i++) {
    const k = keys[i];
    // A property a getter met earlier deleted is skipped, as the standard does.
    if (!hasOwn(v, k)) continue;
    defineProperty(out, k, data(clone(v[k], memory)));
  }
  return out;
}

function remember(memory, v, out) {
  apply(mapSet, memory, [v, out]);
  return out;
}

function cloneBuffer(b) {
  const n = apply(abBytes, b, []);
  if (!apply(abResizable, b, [])) return apply(abSlice, b, [0]);
  const out = new AB(n, { maxByteLength: apply(abMax, b, []) });
  apply(taSet, new U8(out), [new U8(b)]);
  return out;
}

function cloneObject(v, memory) {
  let x;
  if ((x = tryCall(domName, v)) !== FAIL) return cloneErrorObject(v, memory, new DOMEx(apply(domMessage, v, []), x));
  if (isError(v)) {
    const name = v.name;
    const Ctor = typeof name === "string" && ERRORS[name] !== undefined ? ERRORS[name] : ErrorCtor;
    const m = ownDesc(v, "message");
    return cloneErrorObject(v, memory, m !== undefined && hasOwn(m, "value") ? new Ctor(StringCtor(m.value)) : new Ctor());
  }
  if ((x = tryCall(dateTime, v)) !== FAIL) return remember(memory, v, new DateCtor(x));
  if (v !== RegExpCtor.prototype && (x = tryCall(reSource, v)) !== FAIL) return remember(memory, v, new RegExpCtor(x, apply(reFlags, v, [])));
  if (tryCall(abBytes, v) !== FAIL) return remember(memory, v, cloneBuffer(v));
  if (isView(v)) {
    const name = apply(taName, v, []);
    const ta = name !== undefined;
    const buffer = clone(apply(ta ? taBuffer : dvBuffer, v, []), memory);
    const offset = apply(ta ? taOffset : dvOffset, v, []);
    return remember(memory, v, ta ? new TYPED[name](buffer, offset, apply(taLength, v, [])) : new TYPED.DataView(buffer, offset, apply(dvBytes, v, [])));
  }
  if (tryCall(mapSize, v) !== FAIL) {
    const out = remember(memory, v, new MapCtor());
    const entries = list();
    apply(mapForEach, v, [(value, key) => { apply(push, entries, [key, value]); }]);
    for (let i = 0; i < entries.length; i += 2) apply(mapSet, out, [clone(entries[i], memory), clone(entries[i + 1], memory)]);
    return out;
  }
  if (tryCall(setSize, v) !== FAIL) {
    const out = remember(memory, v, new SetCtor());
    const items = list();
    apply(setForEach, v, [(value) => { apply(push, items, [value]); }]);
    for (let i = 0; i < items.length; i++) apply(setAdd, out, [clone(items[i], memory)]);
    return out;
  }
  if ((x = tryCall(boolValue, v)) !== FAIL || (x = tryCall(numValue, v)) !== FAIL || (x = tryCall(strValue, v)) !== FAIL || (x = tryCall(bigValue, v)) !== FAIL) {
    return remember(memory, v, ObjectCtor(x));
  }
  if (tryCall(symValue, v) !== FAIL) throw cloneError("a Symbol object");
  if (weakHas(weakMapHas, v) || weakHas(weakSetHas, v)) throw cloneError("a WeakMap or WeakSet");
  if (paramsList(v) !== undefined || urlBrand(v) || encoderBrand(v) || decoderBrand(v) || keyParts(v) !== undefined) {
    throw cloneError("a platform object (URL, URLSearchParams, TextEncoder, TextDecoder or CryptoKey)");
  }
  return copyProps(v, {}, memory, v);
}

function weakHas(has, v) {
  try { apply(has, v, [TOKEN]); return true; } catch (e) { return false; }
}

function cloneErrorObject(v, memory, out) {
  remember(memory, v, out);
  const stack = ownDesc(v, "stack");
  defineProperty(out, "stack", { __proto__: null, value: stack !== undefined && typeof stack.value === "string" ? stack.value : "", writable: true, enumerable: false, configurable: true });
  const cause = ownDesc(v, "cause");
  if (cause !== undefined && hasOwn(cause, "value")) defineProperty(out, "cause", { __proto__: null, value: clone(cause.value, memory), writable: true, enumerable: false, configurable: true });
  return out;
}

// ---- crypto ----

const HASHES = { __proto__: null, "sha-1": "SHA-1", "sha-256": "SHA-256", "sha-384": "SHA-384", "sha-512": "SHA-512" };
const USAGES = { __proto__: null, encrypt: 1, decrypt: 1, sign: 2, verify: 2, deriveKey: 1, deriveBits: 1, wrapKey: 1, unwrapKey: 1 };
let keyParts;

// An algorithm as Web Crypto takes it: a name, or an object with one; lower-cased.
function algorithmName(alg, what) {
  const name = alg !== null && typeof alg === "object" ? alg.name : alg;
  if (typeof name !== "string") throw new TypeErr(what + ": the algorithm must be a name or an object like { name: \"HMAC\" }, got " + kind(name));
  return apply(toLowerCase, name, []);
}

function hashOf(alg, what) {
  const h = HASHES[algorithmName(alg, what)];
  if (h === undefined) throw new DOMEx(what + ": unrecognized algorithm " + jsonStringify(clip(algorithmName(alg, what))) + "; a Solo service has SHA-1, SHA-256, SHA-384 and SHA-512", "NotSupportedError");
  return h;
}

// A promise of what fn returns, or of its error, as Web Crypto's methods answer.
function settle(fn) {
  try {
    return apply(resolved, P, [fn()]);
  } catch (e) {
    return apply(rejected, P, [e]);
  }
}

class CryptoKey {
  #hash;
  #bytes;
  #extractable;
  #algorithm;
  #usages;
  constructor(token, hash, bytes, length, extractable, usages) {
    if (token !== TOKEN) throw new TypeErr("Illegal constructor: keys come from crypto.subtle.importKey");
    this.#hash = hash;
    this.#bytes = bytes;
    this.#extractable = extractable;
    this.#algorithm = freeze({ name: "HMAC", length: length, hash: freeze({ name: hash }) });
    this.#usages = freeze(usages);
  }
  get type() { this.#hash; return "secret"; }
  get extractable() { return this.#extractable; }
  get algorithm() { return this.#algorithm; }
  get usages() { return this.#usages; }
  static {
    keyParts = (k) => (k !== null && typeof k === "object" && #hash in k ? [k.#hash, k.#bytes, k.#usages] : undefined);
  }
}

function importKey(format, keyData, algorithm, extractable, keyUsages) {
  return settle(() => {
    const what = "crypto.subtle.importKey";
    if (format !== "raw") {
      if (format === "spki" || format === "pkcs8" || format === "jwk") throw new DOMEx(what + ": a Solo service imports raw keys only, not " + format, "NotSupportedError");
      throw new TypeErr(what + ": the format must be \"raw\", got " + (typeof format === "string" ? jsonStringify(clip(format)) : kind(format)));
    }
    if (algorithmName(algorithm, what) !== "hmac") throw new DOMEx(what + ": a Solo service imports HMAC keys only, not " + jsonStringify(clip(algorithmName(algorithm, what))), "NotSupportedError");
    if (algorithm === null || typeof algorithm !== "object" || algorithm.hash === undefined) throw new TypeErr(what + ": the algorithm must name its hash, like { name: \"HMAC\", hash: \"SHA-256\" }");
    const hash = hashOf(algorithm.hash, what);
    const bytes = bytesOf(keyData, what + ": the key data", true);
    if (!isArray(keyUsages)) throw new TypeErr(what + ": the key usages must be an array like [\"sign\", \"verify\"]");
    let sign = false, verify = false;
    for (let i = 0; i < keyUsages.length; i++) {
      const u = keyUsages[i];
      if (typeof u !== "string" || USAGES[u] === undefined) throw new TypeErr(what + ": " + (typeof u === "string" ? jsonStringify(clip(u)) : kind(u)) + " is not a key usage");
      if (USAGES[u] !== 2) throw new DOMEx(what + ": an HMAC key can only sign and verify, not " + u, "SyntaxError");
      if (u === "sign") sign = true; else verify = true;
    }
    if (!sign && !verify) throw new DOMEx(what + ": the key usages are empty; give [\"sign\"], [\"verify\"] or both", "SyntaxError");
    const bits = apply(abBytes, bytes, []) * 8;
    if (bits === 0) throw new DOMEx(what + ": the key is empty", "DataError");
    let length = bits;
    if (algorithm.length !== undefined) {
      length = +algorithm.length;
      if (!(length > bits - 8 && length <= bits)) throw new DOMEx(what + ": the algorithm's length (" + length + " bits) does not fit the key's " + bits + " bits", "DataError");
    }
    const usages = [];
    if (sign) apply(push, usages, ["sign"]);
    if (verify) apply(push, usages, ["verify"]);
    return new CryptoKey(TOKEN, hash, bytes, length, !!extractable, usages);
  });
}

// The hash and bytes of a key that may be used for op.
function keyFor(algorithm, key, op, what) {
  if (algorithmName(algorithm, what) !== "hmac") throw new DOMEx(what + ": a Solo service signs with HMAC only, not " + jsonStringify(clip(algorithmName(algorithm, what))), "NotSupportedError");
  const k = keyParts(key);
  if (k === undefined) throw new TypeErr(what + ": the key must be a CryptoKey from crypto.subtle.importKey, got " + kind(key));
  const usages = k[2];
  if (usages[0] !== op && usages[1] !== op) throw new DOMEx(what + ": the key's usages do not include " + op, "InvalidAccessError");
  return k;
}

const subtle = freeze({
  digest(algorithm, data) {
    return settle(() => {
      const hash = hashOf(algorithm, "crypto.subtle.digest");
      return stdBytes("digest", hash, bytesOf(data, "crypto.subtle.digest: the data", true));
    });
  },
  importKey: importKey,
  sign(algorithm, key, data) {
    return settle(() => {
      const what = "crypto.subtle.sign";
      const k = keyFor(algorithm, key, "sign", what);
      const d = bytesOf(data, what + ": the data", true);
      return stdBytes("sign", k[0] + "\n" + apply(abBytes, k[1], []), concat(k[1], d));
    });
  },
  verify(algorithm, key, signature, data) {
    return settle(() => {
      const what = "crypto.subtle.verify";
      const k = keyFor(algorithm, key, "verify", what);
      const s = bytesOf(signature, what + ": the signature", true);
      const d = bytesOf(data, what + ": the data", true);
      return std("verify", k[0] + "\n" + apply(abBytes, k[1], []) + "\n" + apply(abBytes, s, []), concat(k[1], s, d));
    });
  },
});

const MAX_RANDOM = 65536;
const crypto = freeze({
  getRandomValues(array) {
    const name = apply(taName, array, []);
    if (name === undefined) {
      if (isView(array)) throw new DOMEx("crypto.getRandomValues: a DataView cannot be filled; give an integer TypedArray such as a Uint8Array", "TypeMismatchError");
      throw new TypeErr("crypto.getRandomValues: the argument must be an integer TypedArray such as a Uint8Array, got " + kind(array));
    }
    if (name === "Float16Array" || name === "Float32Array" || name === "Float64Array") {
      throw new DOMEx("crypto.getRandomValues: a " + name + " cannot be filled; give an integer TypedArray such as a Uint8Array", "TypeMismatchError");
    }
    const n = apply(taBytes, array, []);
    if (n > MAX_RANDOM) throw new DOMEx("crypto.getRandomValues: the array is " + n + " bytes; at most 65536 bytes can be filled at once", "QuotaExceededError");
    if (n > 0) apply(taSet, new U8(apply(taBuffer, array, []), apply(taOffset, array, []), n), [new U8(stdBytes("random", StringCtor(n)))]);
    return array;
  },
  randomUUID() {
    return std("uuid", "");
  },
  subtle: subtle,
});

// ---- the globals ----

const classes = [URL, URLSearchParams, ParamsIterator, TextEncoder, TextDecoder, CryptoKey];
const tags = ["URL", "URLSearchParams", "URLSearchParams Iterator", "TextEncoder", "TextDecoder", "CryptoKey"];
for (let i = 0; i < classes.length; i++) {
  defineProperty(classes[i].prototype, SymbolToStringTag, { __proto__: null, value: tags[i], writable: false, enumerable: false, configurable: true });
  freeze(classes[i].prototype);
  freeze(classes[i]);
}
return freeze({ __proto__: null, URL, URLSearchParams, TextEncoder, TextDecoder, atob, btoa, structuredClone, crypto });
})`;
