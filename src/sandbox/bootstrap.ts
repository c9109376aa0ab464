/**
 * The guest half of the sandbox: a script evaluated in every service's QuickJS context before the
 * author's module. It captures the intrinsics it relies on, removes the powers a service must not
 * have, builds the `solo` host object and returns the dispatcher the host drives.
 *
 * Everything it hands the host is a string: replies and outcomes are encoded here, inside the
 * sandbox and under the message's CPU budget, by a strict JSON encoder, so no getter, proxy, toJSON
 * or prototype trick can run on the host side. The host treats every string it gets back as hostile.
 *
 * The strings it makes and reads are the guest half of the one codec of this boundary: their
 * formats, and the host half, are in contract.ts.
 * @internal
 */
import { STD_APIS_SOURCE } from "./std-apis.ts";

export const BOOTSTRAP_FILENAME = "solo:bootstrap";

export const BOOTSTRAP_SOURCE = String.raw`(function (host, metaJson) {
"use strict";
const G = globalThis;
const jsonParse = JSON.parse, jsonStringify = JSON.stringify;
const getProto = Object.getPrototypeOf, ObjectProto = Object.prototype, keysOf = Object.keys;
const defineProperty = Object.defineProperty, freeze = Object.freeze, hasOwn = Object.hasOwn;
const isArray = Array.isArray, isFinite = Number.isFinite, apply = Reflect.apply;
const P = Promise, promiseThen = Promise.prototype.then, ErrorCtor = Error, TypeErrorCtor = TypeError;
const EvalErrorCtor = EvalError, StringCtor = String, NumberCtor = Number, MapCtor = Map;
const mapGet = Map.prototype.get, mapSet = Map.prototype.set, mapDelete = Map.prototype.delete;
const arrayJoin = Array.prototype.join, arrayPush = Array.prototype.push, arrayIndexOf = Array.prototype.indexOf;
const stringSlice = String.prototype.slice, stringIndexOf = String.prototype.indexOf, charAt = String.prototype.charAt;
const identRe = /^[A-Za-z_$][A-Za-z0-9_$]*$/, regexpTest = RegExp.prototype.test;
const meta = jsonParse(metaJson);
const MAX_DEPTH = meta.maxDepth;

// No ambient authority: no code from strings, no clocks finer than Date, no shared memory, no GC
// observation. Services get code only through deploy.
for (const name of ["eval", "performance", "SharedArrayBuffer", "Atomics", "WebAssembly", "WeakRef", "FinalizationRegistry"]) {
  delete G[name];
}
const denied = function Function() {
  throw new EvalErrorCtor("compiling code at run time is not available in a Solo service; code arrives only through deploy");
};
for (const fn of [function () {}, async function () {}, function* () {}, async function* () {}]) {
  const proto = getProto(fn);
  defineProperty(proto, "constructor", { value: denied, writable: false, configurable: false, enumerable: false });
}
denied.prototype = getProto(function () {});
// QuickJS-ng supports V8's Error.prepareStackTrace, whose call sites expose the functions on the
// stack (this bootstrap's among them). Pin it to undefined so no service can install one.
defineProperty(ErrorCtor, "prepareStackTrace", { value: undefined, writable: false, configurable: false, enumerable: false });
defineProperty(G, "Function", { value: denied, writable: false, configurable: false, enumerable: false });

function tagged(reason, message, path) {
  const e = new ErrorCtor(message);
  e.soloReason = reason;
  if (path !== undefined) e.soloPath = path;
  return e;
}

function pathKey(path, key) {
  return apply(regexpTest, identRe, [key]) ? path + "." + key : path + "[" + jsonStringify(key) + "]";
}

function typeName(v) {
  if (v === null) return "null";
  const t = typeof v;
  if (t !== "object") return t === "number" ? StringCtor(v) : t;
  let name = "object";
  try {
    const c = getProto(v) && getProto(v).constructor;
    if (typeof c === "function" && typeof c.name === "string" && c.name !== "") name = "a " + c.name;
  } catch (e) {}
  return name;
}

// Strict JSON encoding: only null, booleans, finite numbers, strings, arrays and plain objects.
// Object properties whose value is undefined are left out (as JSON.stringify does); anything else
// that JSON would silently drop or change is an error naming its path.
function encode(value, what, limit) {
  // Fast paths for the common scalar replies, kept apart from the full walk: QuickJS creates a
  // function's inner closures on every entry, so the walk lives in its own function.
  switch (typeof value) {
    case "boolean": return value ? "true" : "false";
    case "number": if (isFinite(value)) return jsonStringify(value); break;
    case "string": if (value.length * 6 + 2 <= limit) return jsonStringify(value); break;
    case "object": if (value === null) return "null"; break;
  }
  return encodeTree(value, what, limit);
}

function encodeTree(value, what, limit) {
  const parts = [];
  const ancestors = [];
  let size = 0;
  function out(s) {
    size += s.length;
    if (size > limit) throw tagged("SOLO_ERR_VALUE_TOO_LARGE", what + " is larger than " + limit + " bytes of JSON", "$");
    apply(arrayPush, parts, [s]);
  }
  function walk(v, path, depth) {
    switch (typeof v) {
      case "string": out(jsonStringify(v)); return;
      case "boolean": out(v ? "true" : "false"); return;
      case "number":
        if (!isFinite(v)) throw tagged("SOLO_ERR_VALUE_NOT_JSON", what + " at " + path + " is " + v + "; only finite numbers are JSON", path);
        out(jsonStringify(v));
        return;
      case "undefined":
        throw tagged("SOLO_ERR_VALUE_NOT_JSON", what + " at " + path + " is undefined; use null for no value", path);
      case "object": break;
      default:
        throw tagged("SOLO_ERR_VALUE_NOT_JSON", what + " at " + path + " is a " + typeof v + "; only JSON data (null, boolean, finite number, string, array, plain object) can leave a service", path);
    }
    if (v === null) { out("null"); return; }
    if (depth >= MAX_DEPTH) throw tagged("SOLO_ERR_VALUE_TOO_DEEP", what + " at " + path + " is nested deeper than " + MAX_DEPTH + " levels", path);
    if (apply(arrayIndexOf, ancestors, [v]) !== -1) throw tagged("SOLO_ERR_VALUE_NOT_JSON", what + " at " + path + " refers back to itself (a cycle); JSON data must be a tree", path);
    apply(arrayPush, ancestors, [v]);
    if (isArray(v)) {
      const n = v.length;
      out("[");
      for (let i = 0; i < n; i++) {
        if (i > 0) out(",");
        walk(v[i], path + "[" + i + "]", depth + 1);
      }
      out("]");
    } else {
      const proto = getProto(v);
      if (proto !== ObjectProto && proto !== null) {
        throw tagged("SOLO_ERR_VALUE_NOT_JSON", what + " at " + path + " is " + typeName(v) + ", not a plain object; convert it to JSON data first (for a Date, use toISOString(); for a Map, Object.fromEntries())", path);
      }
      const keys = keysOf(v);
      out("{");
      let first = true;
      for (let i = 0; i < keys.length; i++) {
        const k = keys[i];
        const item = v[k];
        if (item === undefined) continue;
        if (!first) out(",");
        first = false;
        out(jsonStringify(k));
        out(":");
        walk(item, pathKey(path, k), depth + 1);
      }
      out("}");
    }
    ancestors.length = ancestors.length - 1;
  }
  walk(value, "$", 0);
  return apply(arrayJoin, parts, [""]);
}

function safeString(get, fallback) {
  try {
    const v = get();
    return typeof v === "string" ? v : v === undefined ? fallback : StringCtor(v);
  } catch (e) {
    return fallback;
  }
}

function clip(s, n) {
  return s.length > n ? apply(stringSlice, s, [0, n]) + "..." : s;
}

function describe(e) {
  if (e !== null && typeof e === "object" && typeof e.soloReason === "string") {
    return "E" + jsonStringify({ kind: "value", reason: e.soloReason, message: e.message, path: e.soloPath });
  }
  const isObj = e !== null && (typeof e === "object" || typeof e === "function");
  const name = isObj ? safeString(() => e.name, "Error") : "thrown value";
  const message = isObj ? safeString(() => e.message, "") : safeString(() => (typeof e === "string" ? e : encode(e, "thrown value", 4096)), typeof e);
  const stack = isObj ? safeString(() => e.stack, "") : "";
  return "E" + jsonStringify({ kind: "exception", name: clip(name, 200), message: clip(message, 2000), stack: clip(stack, 4000) });
}

function resultError(message) {
  return "E" + jsonStringify({ kind: "result", reason: "SOLO_ERR_HANDLER_RESULT_INVALID", message: message });
}

const HANDLERS = ["init", "handleCall", "handleCast", "handleInfo", "codeChange", "terminate"];
const OP_HANDLER = { init: "init", call: "handleCall", cast: "handleCast", info: "handleInfo", codeChange: "codeChange", terminate: "terminate" };
let mod = null;
const fns = {};
let state = null;

function install(ns) {
  const d = ns.default;
  if (d === null || typeof d !== "object" || isArray(d)) {
    throw tagged("SOLO_ERR_DEPLOY_EXPORT_INVALID", "the module's default export must be an object of handlers (export default { init, handleCall, ... }), got " + (d === undefined ? "no default export" : typeName(d)));
  }
  const found = [];
  for (const name of HANDLERS) {
    const f = d[name];
    if (f === undefined) continue;
    if (typeof f !== "function") throw tagged("SOLO_ERR_DEPLOY_EXPORT_INVALID", "default export ." + name + " must be a function, got " + typeName(f));
    fns[name] = f;
    apply(arrayPush, found, [name]);
  }
  if (!fns.handleCall && !fns.handleCast && !fns.handleInfo) {
    throw tagged("SOLO_ERR_DEPLOY_EXPORT_INVALID", "the default export has none of handleCall, handleCast or handleInfo, so the service could never receive a message");
  }
  mod = d;
  return apply(arrayJoin, found, [","]);
}

function finish(op, result) {
  if (op === "init" || op === "codeChange") {
    if (result === undefined) return resultError(OP_HANDLER[op] + " must return the state (any JSON value; return null for none), got undefined");
    encode(result, "the state returned by " + OP_HANDLER[op], meta.stateBytes);
    state = result;
    return "S";
  }
  if (op === "terminate") return "S";
  const h = OP_HANDLER[op];
  // { stop: true, ... }: the service ends normally once this message is answered.
  if (result !== null && typeof result === "object" && !isArray(result)) {
    const stop = result.stop;
    if (stop !== undefined && stop !== false) {
      if (stop !== true) return resultError(h + "'s stop must be true or false, got " + typeName(stop));
      if (result.noreply !== undefined && result.noreply !== false) return resultError(h + " returned stop with noreply; a stopping service answers its call now (reply or error) or not at all");
      const out = finishOp(op, result);
      return apply(charAt, out, [0]) === "E" ? out : "X" + out;
    }
  }
  return finishOp(op, result);
}

function finishOp(op, result) {
  const h = OP_HANDLER[op];
  const shape = op === "call" ? "{ reply, state }" : "{ state }";
  if (result === null || typeof result !== "object" || isArray(result)) {
    return resultError(h + " must return " + shape + ", got " + (result === undefined ? "undefined" : typeName(result)));
  }
  const next = result.state;
  if (next === undefined) return resultError(h + " must return " + shape + "; the returned object has no state (return the state unchanged if nothing changed)");
  if (op === "call") {
    const reply = result.reply;
    const error = result.error;
    const noreply = result.noreply;
    if (noreply !== undefined && noreply !== false) {
      if (noreply !== true) return resultError("handleCall's noreply must be true or false, got " + typeName(noreply));
      if (reply !== undefined || error !== undefined) return resultError("handleCall returned noreply with a " + (reply !== undefined ? "reply" : "error") + "; a deferred call is answered later with solo.reply(ctx.replyTo, value)");
      state = next;
      return "N";
    }
    if (error !== undefined) {
      if (reply !== undefined) return resultError("handleCall returned both reply and error; answer with one: { reply, state } or { error: { code, message }, state }");
      const answer = errorAnswer(error, "handleCall's error");
      if (apply(charAt, answer, [0]) === "E") return answer;
      state = next;
      return answer;
    }
    // No reply (undefined, or none given) is an answer too: the caller gets no value.
    const s = reply === undefined ? "" : encode(reply, "the reply", meta.messageBytes);
    state = next;
    return "R" + s;
  }
  // A cast or timer message has no caller: an error or noreply for it is a mistake, said as one.
  if (result.error !== undefined || (result.noreply !== undefined && result.noreply !== false)) {
    return resultError(h + " has no caller to answer (it handles a cast or timer message); it returns { state }, without error or noreply");
  }
  state = next;
  return "S";
}

// An error a handler answers a call with, without crashing: { code, message, details? }.
const errorCodeRe = /^[A-Za-z][A-Za-z0-9_.:-]{0,63}$/;
const ERROR_KEYS = freeze(["code", "message", "details"]);
function errorAnswer(error, who) {
  const shape = "{ error: { code, message, details? }, state }";
  if (error === null || typeof error !== "object" || isArray(error)) {
    return resultError(who + " must be an object like { code: \"not_found\", message: \"no such key\" }, got " + typeName(error));
  }
  // Indexed, not for-of: the service may have replaced the array iterator.
  const keys = keysOf(error);
  for (let i = 0; i < keys.length; i++) {
    const key = keys[i];
    if (apply(arrayIndexOf, ERROR_KEYS, [key]) < 0) return resultError(who + " has an unknown field " + jsonStringify(clip(key, 80)) + "; it takes code, message and details");
  }
  const code = error.code;
  if (typeof code !== "string" || !apply(regexpTest, errorCodeRe, [code])) {
    return resultError(who + ".code must be a string of 1-64 letters, digits, _ . : - starting with a letter (like \"not_found\"), got " + (typeof code === "string" ? jsonStringify(clip(code, 80)) : typeName(code)) + "; the answer is " + shape);
  }
  const message = error.message;
  if (typeof message !== "string" || message.length > 2000) {
    return resultError(who + ".message must be a string of at most 2000 characters, got " + (typeof message === "string" ? message.length + " characters" : typeName(message)));
  }
  const out = { code: code, message: message };
  if (error.details !== undefined) out.details = error.details;
  return "A" + encode(out, "the error answer", meta.messageBytes);
}

function settleLater(op) {
  return [
    (v) => { let out; try { out = finish(op, v); } catch (e) { out = describe(e); } host("settle", out); },
    (e) => { host("settle", describe(e)); },
  ];
}

function invoke(op, args) {
  const fn = fns[OP_HANDLER[op]];
  if (fn === undefined) {
    if (op === "init") { state = null; return "S"; }
    if (op === "codeChange") return "S";
    return op === "terminate" ? "S" : "M";
  }
  let result;
  try {
    result = apply(fn, mod, args);
  } catch (e) {
    return describe(e);
  }
  try {
    if (result !== null && (typeof result === "object" || typeof result === "function") && typeof result.then === "function") {
      // A native promise is followed with the captured then, so a service that replaced
      // Promise.prototype.then still settles its own handlers; other thenables are adopted.
      try {
        apply(promiseThen, result, settleLater(op));
      } catch (e) {
        apply(promiseThen, new P((resolve) => resolve(result)), settleLater(op));
      }
      return "P";
    }
    return finish(op, result);
  } catch (e) {
    return describe(e);
  }
}

// Handler contexts are immutable, so one per sender is enough.
const contexts = new MapCtor();
function makeContext(from) {
  let c = apply(mapGet, contexts, [from]);
  if (c === undefined) {
    c = freeze({ tenant: meta.tenant, service: meta.service, version: meta.version, from: from === "" ? null : from });
    apply(mapSet, contexts, [from, c]);
  }
  return c;
}

// A call's context carries its own reply handle, so it is made per call. It is not frozen: it is
// this call's alone (the shared per-sender contexts of casts and timers are), and freezing a fresh
// object on every call cost about a third of a call's throughput (measured at 64 in flight).
function callContext(b) {
  const i = apply(stringIndexOf, b, ["\n"]);
  const from = apply(stringSlice, b, [i + 1]);
  return { tenant: meta.tenant, service: meta.service, version: meta.version, from: from === "" ? null : from, replyTo: apply(stringSlice, b, [0, i]) };
}

function parseInput(json) {
  return json === "" ? undefined : jsonParse(json);
}

// Calls this service has made that await a reply: id -> [resolve, reject].
const pending = new MapCtor();

class SoloError extends ErrorCtor {
  constructor(data) {
    super(data.message);
    this.name = "SoloError";
    this.code = data.code;
    this.reason = data.reason;
    this.details = data.details;
  }
}

function hostResult(r) {
  if (apply(charAt, r, [0]) === "E") throw new SoloError(jsonParse(apply(stringSlice, r, [1])));
  return apply(stringSlice, r, [1]);
}

function encodeArg(value, what) {
  try {
    return encode(value, what, meta.messageBytes);
  } catch (e) {
    if (e !== null && typeof e === "object" && typeof e.soloReason === "string") {
      throw new SoloError({ code: e.soloReason === "SOLO_ERR_VALUE_TOO_LARGE" ? "resource_exhausted" : "invalid_argument", reason: e.soloReason, message: e.message, details: { path: e.soloPath } });
    }
    throw e;
  }
}

function replyHandle(to, what) {
  if (typeof to !== "string" || to === "" || to.length > 64) throw new TypeErrorCtor(what + ": the first argument must be the ctx.replyTo of the call to answer, got " + typeName(to));
}

const nameRe = /^[a-z](?:[a-z0-9_-]{0,61}[a-z0-9])?$/;
function checkServiceName(service, what) {
  if (typeof service !== "string") throw new TypeErrorCtor(what + ": the service name must be a string");
  // Names are framed into the host request, so only the identifier grammar may pass.
  if (!apply(regexpTest, nameRe, [service])) {
    throw new SoloError({ code: "not_found", reason: "SOLO_ERR_SERVICE_NOT_FOUND", message: what + ": no service named " + jsonStringify(apply(stringSlice, service, [0, 80])) + " (not a valid service name)", details: {} });
  }
}

function timeoutOf(options) {
  if (options === undefined || options === null) return -1;
  if (typeof options !== "object") throw new TypeErrorCtor("solo.call: options must be an object like { timeoutMs: 1000 }");
  const t = options.timeoutMs;
  if (t === undefined) return -1;
  if (typeof t !== "number" || !(t >= 1 && t <= 600000) || t !== (t | 0)) throw new TypeErrorCtor("solo.call: timeoutMs must be an integer from 1 to 600000");
  return t;
}

function logText(args) {
  const parts = [];
  for (let i = 0; i < args.length; i++) {
    const a = args[i];
    let s;
    if (typeof a === "string") s = a;
    else {
      try { s = encode(a, "log argument", 8192); } catch (e) { s = safeString(() => StringCtor(a), "<unprintable>"); }
    }
    apply(arrayPush, parts, [s]);
  }
  return clip(apply(arrayJoin, parts, [" "]), 8192);
}

function logger(level) {
  return function log(...args) { hostResult(host("log", level + "\n" + logText(args))); };
}

// A host operation answered later (storage, emit): its result settles the promise through "resolve".
function later(op, body) {
  const id = hostResult(host(op, body));
  return new P((resolve, reject) => { apply(mapSet, pending, [id, [resolve, reject]]); });
}

function keyArg(key, what) {
  if (typeof key !== "string" || key === "") {
    throw new SoloError({ code: "invalid_argument", reason: "SOLO_ERR_STORAGE_KEY_INVALID", message: what + ": the key must be a non-empty string", details: { field: "key" } });
  }
  return jsonStringify(key);
}

// Durable key-value storage: every write resolves once it is on disk.
const storage = freeze({
  get(key) {
    try {
      return apply(promiseThen, later("kv", "get\n" + keyArg(key, "solo.storage.get")), [(found) => (found.length === 0 ? undefined : found[0])]);
    } catch (e) { return P.reject(e); }
  },
  put(key, value) {
    try {
      const k = keyArg(key, "solo.storage.put");
      if (value === undefined) throw new TypeErrorCtor("solo.storage.put: the value is undefined; use solo.storage.delete to remove a key");
      return later("kv", "put\n" + k + "\n" + encodeArg(value, "the stored value"));
    } catch (e) { return P.reject(e); }
  },
  delete(key) {
    try { return later("kv", "delete\n" + keyArg(key, "solo.storage.delete")); } catch (e) { return P.reject(e); }
  },
  list(prefix, options) {
    try {
      if (prefix !== undefined && typeof prefix !== "string") throw new TypeErrorCtor("solo.storage.list: the prefix must be a string");
      const o = options === undefined || options === null ? {} : options;
      if (typeof o !== "object") throw new TypeErrorCtor("solo.storage.list: options must be an object like { after, limit }");
      return later("kv", "list\n" + jsonStringify({ prefix: prefix === undefined ? "" : prefix, after: o.after, limit: o.limit }));
    } catch (e) { return P.reject(e); }
  },
});

// Secrets the deployment was granted, by name; the value arrives once its read is audited.
const secrets = freeze({
  get(name) {
    try {
      if (typeof name !== "string" || name === "") throw new TypeErrorCtor("solo.secrets.get: the name must be a non-empty string");
      return later("secret", name);
    } catch (e) { return P.reject(e); }
  },
});

// HTTP(S) to the hosts the grant allows: fetch(url) or fetch({ url, method, headers, body }),
// or fetch(url, { method, headers, body }). Resolves with { status, statusText, headers, body, url, redirected, bytes }.
function soloFetch(input, init) {
  try {
    let request;
    if (typeof input === "string") {
      const o = init === undefined || init === null ? {} : init;
      if (typeof o !== "object") throw new TypeErrorCtor("solo.fetch: the second argument must be an object like { method, headers, body }");
      request = { url: input, method: o.method, headers: o.headers, body: o.body };
    } else if (input !== null && typeof input === "object") {
      request = input;
    } else {
      throw new TypeErrorCtor("solo.fetch: give a URL string or a request object { url, method, headers, body }");
    }
    return later("fetch", encodeArg(request, "the fetch request"));
  } catch (e) { return P.reject(e); }
}

// The service's own grants, as status shows them, read-only all the way down.
function deepFreeze(v) {
  if (v !== null && typeof v === "object") {
    const keys = keysOf(v);
    for (let i = 0; i < keys.length; i++) deepFreeze(v[keys[i]]);
    freeze(v);
  }
  return v;
}

const solo = freeze({
  grants: deepFreeze(meta.grants),
  call(service, request, options) {
    try {
      checkServiceName(service, "solo.call");
      const timeout = timeoutOf(options);
      const body = encodeArg(request, "the request");
      return later("call", service + "\n" + timeout + "\n" + body);
    } catch (e) {
      return P.reject(e);
    }
  },
  cast(service, message) {
    checkServiceName(service, "solo.cast");
    hostResult(host("cast", service + "\n" + encodeArg(message, "the message")));
  },
  sendAfter(ms, message) {
    if (typeof ms !== "number" || !(ms >= 0 && ms <= 86400000)) throw new TypeErrorCtor("solo.sendAfter: ms must be a number from 0 to 86400000 (24 hours)");
    return NumberCtor(hostResult(host("timer", (ms | 0) + "\n" + encodeArg(message, "the timer message"))));
  },
  cancelTimer(id) {
    if (typeof id !== "number") return false;
    return hostResult(host("cancel", StringCtor(id))) === "1";
  },
  // Answers a call whose handler returned { noreply: true, state }, by its ctx.replyTo: once.
  reply(to, value) {
    replyHandle(to, "solo.reply");
    hostResult(host("reply", to + "\n" + (value === undefined ? "" : encodeArg(value, "the reply"))));
  },
  replyError(to, error) {
    replyHandle(to, "solo.replyError");
    const answer = errorAnswer(error, "solo.replyError: the error");
    if (apply(charAt, answer, [0]) !== "A") throw new TypeErrorCtor(jsonParse(apply(stringSlice, answer, [1])).message);
    hostResult(host("replyError", to + "\n" + apply(stringSlice, answer, [1])));
  },
  log: logger("info"),
  warn: logger("warn"),
  error: logger("error"),
  storage,
  secrets,
  fetch: soloFetch,
  emit(name, payload) {
    try {
      if (typeof name !== "string") {
        throw new SoloError({ code: "invalid_argument", reason: "SOLO_ERR_EVENT_INVALID", message: "solo.emit: the event name must be a string", details: { field: "name" } });
      }
      return later("emit", jsonStringify(name) + "\n" + encodeArg(payload === undefined ? null : payload, "the event payload"));
    } catch (e) { return P.reject(e); }
  },
});
defineProperty(G, "solo", { value: solo, writable: false, configurable: false, enumerable: false });
defineProperty(G, "console", {
  value: freeze({ log: logger("info"), info: logger("info"), debug: logger("debug"), warn: logger("warn"), error: logger("error") }),
  writable: false, configurable: false, enumerable: false,
});

// ---- The standard web APIs (URL, TextEncoder, atob, structuredClone, crypto, ...): std-apis.ts. ----
${STD_APIS_SOURCE}(host, meta.messageBytes);

function run(op, a, b) {
  switch (op) {
    case "call":
      return invoke(op, [parseInput(a), state, callContext(b)]);
    case "cast":
    case "info":
      return invoke(op, [parseInput(a), state, makeContext(b)]);
    case "init":
      return invoke(op, [parseInput(a), makeContext("")]);
    case "terminate":
      return invoke(op, [jsonParse(a), state, makeContext("")]);
    case "codeChange":
      return invoke(op, [jsonParse(a), state, makeContext("")]);
    case "export":
      // The state leaving for another version: strict JSON within stateBytes, or a described error.
      try {
        return "R" + encode(state, "the state", meta.stateBytes);
      } catch (e) {
        return describe(e);
      }
    case "adopt":
      // The state arriving from another version; with a version in b, that version's state goes
      // through this code's codeChange(fromVersion, state).
      state = jsonParse(a);
      return b === "" ? "S" : invoke("codeChange", [jsonParse(b), state, makeContext("")]);
    case "resolve": {
      const entry = apply(mapGet, pending, [a]);
      if (entry === undefined) return "S";
      apply(mapDelete, pending, [a]);
      if (apply(charAt, b, [0]) === "R") entry[0](parseInput(apply(stringSlice, b, [1])));
      else entry[1](new SoloError(jsonParse(apply(stringSlice, b, [1]))));
      return "S";
    }
  }
  return "E" + jsonStringify({ kind: "exception", name: "Error", message: "unknown operation " + op, stack: "" });
}

function installChecked(ns) {
  try {
    return "S" + install(ns);
  } catch (e) {
    return describe(e);
  }
}

return [installChecked, run];
})`;
