/**
 * The escape suite: hostile services that try to reach host authority, corrupt what the host
 * receives, or reach other services and tenants. Every test asserts what a user sees: a value
 * proving the attempt failed, or a precise SoloError. After every test a bystander service in
 * another tenant must still answer.
 */

import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, afterEach, before, describe, it } from "node:test";
import { crashOf, rejection } from "../../test/support/helpers.ts";
import type { GrantsInput } from "../api/grants.ts";
import { type Crash, type CrashKind, type ErrorCode, type Kernel, type LimitsInput, openKernel, type Reason } from "../index.ts";

let kernel: Kernel;
let dataDir: string;
let pings = 0;

const MALLORY = "mallory";

/** A module whose handleCall runs `body` with `request`, `state` and `ctx` in scope. */
function handler(body: string): string {
  return `export default {\n  init() { return null },\n  handleCall(request, state, ctx) {\n${body}\n  },\n};\n`;
}

/** The same, with an async handleCall. */
function asyncHandler(body: string): string {
  return handler(body).replace("handleCall(", "async handleCall(");
}

async function deploy(
  service: string,
  code: string,
  options: { tenant?: string; limits?: LimitsInput; grants?: GrantsInput } = {},
): Promise<void> {
  await kernel.deploy({
    tenant: options.tenant ?? MALLORY,
    service,
    code,
    ...(options.limits ? { limits: options.limits } : {}),
    ...(options.grants ? { grants: options.grants } : {}),
  });
}

/** Deploys a hostile service (a handleCall body, or a whole module) and calls it once. */
async function run(service: string, body: string, request: unknown = null, limits?: LimitsInput): Promise<unknown> {
  await deploy(service, body.startsWith("export default") ? body : handler(body), limits ? { limits } : {});
  return kernel.call(MALLORY, service, request);
}

/** Asserts a call failed with this code and reason and that the service crashed with this kind. */
async function expectCrash(
  promise: Promise<unknown>,
  expected: { code: ErrorCode; reason: Reason; kind: CrashKind; path?: string },
  service?: string,
): Promise<Crash> {
  const error = await rejection(promise);
  assert.equal(error.code, expected.code, error.message);
  assert.equal(error.reason, expected.reason, error.message);
  const crash = crashOf(error);
  assert.equal(crash.kind, expected.kind);
  assert.equal(crash.reason, expected.reason);
  if (expected.path !== undefined) assert.equal(crash.path, expected.path);
  if (service !== undefined) {
    const info = kernel.list(MALLORY).find((s) => s.service === service);
    assert.equal(info?.state, "crashed", `${service} should show as crashed in list()`);
    assert.equal(info?.crash?.kind, expected.kind);
  }
  return crash;
}

before(async () => {
  dataDir = mkdtempSync(join(tmpdir(), "solo-test-"));
  // These tests look at one crash at a time (restarts are the supervisor tests' subject), and at
  // code the analyzer would refuse: the sandbox must hold without it.
  kernel = await openKernel({ dataDir, schedulers: 2, supervision: { restart: "temporary" }, analyzer: "warn" });
  // The bystander lives in its own tenant; a warm-up service in a second tenant makes sure both
  // schedulers have run a service before the hostile ones arrive.
  await kernel.deploy({ tenant: "bystander", service: "echo", code: handler("    return { reply: { pong: request }, state };") });
  await kernel.deploy({ tenant: "warmup", service: "idle", code: handler("    return { reply: null, state };") });
});

after(async () => {
  await kernel.close();
  rmSync(dataDir, { recursive: true, force: true });
});

afterEach(async () => {
  pings++;
  assert.deepEqual(await kernel.call("bystander", "echo", { ping: pings }), { pong: { ping: pings } });
  assert.equal(({} as Record<string, unknown>).polluted, undefined);
});

describe("a service looking for host authority", () => {
  it("finds no process, require, module, Buffer or other host globals", async () => {
    const names = ["process", "require", "module", "exports", "Buffer", "global", "std", "os", "print", "scriptArgs", "fetch"];
    const more = ["setTimeout", "setInterval", "setImmediate", "navigator", "Deno", "Bun", "importScripts", "postMessage", "host", "gc"];
    const all = [...names, ...more];
    const reply = await run("globals-typeof", `    return { reply: ${JSON.stringify(all)}.map((n) => typeof globalThis[n]), state };`);
    assert.deepEqual(
      reply,
      all.map(() => "undefined"),
    );
  });

  it("sees only standard JavaScript globals, the web APIs the sandbox provides, solo and console when it enumerates globalThis", async () => {
    const allowed = new Set([
      ...["Object", "Function", "Error", "EvalError", "RangeError", "ReferenceError", "SyntaxError", "TypeError", "URIError"],
      ...["InternalError", "AggregateError", "Iterator", "Array", "parseInt", "parseFloat", "isNaN", "isFinite", "queueMicrotask"],
      ...["decodeURI", "decodeURIComponent", "encodeURI", "encodeURIComponent", "escape", "unescape", "Infinity", "NaN", "undefined"],
      ...["Number", "Boolean", "String", "Math", "Reflect", "Symbol", "globalThis", "Date", "RegExp", "JSON", "Proxy", "Map", "Set"],
      ...["WeakMap", "WeakSet", "ArrayBuffer", "Uint8ClampedArray", "Int8Array", "Uint8Array", "Int16Array", "Uint16Array"],
      ...["Int32Array", "Uint32Array", "BigInt64Array", "BigUint64Array", "Float16Array", "Float32Array", "Float64Array"],
      ...["DataView", "Promise", "BigInt", "DOMException", "solo", "console"],
      // The standard web APIs the sandbox adds (std-apis.ts).
      ...["URL", "URLSearchParams", "TextEncoder", "TextDecoder", "atob", "btoa", "structuredClone", "crypto"],
    ]);
    const reply = (await run(
      "globals-enumerate",
      `    return { reply: {
      names: Object.getOwnPropertyNames(globalThis),
      symbols: Object.getOwnPropertySymbols(globalThis).map(String),
      protoIsObject: Object.getPrototypeOf(globalThis) === Object.prototype,
    }, state };`,
    )) as { names: string[]; symbols: string[]; protoIsObject: boolean };
    assert.deepEqual(
      reply.names.filter((n) => !allowed.has(n)),
      [],
    );
    assert.ok(reply.names.includes("solo") && reply.names.includes("console"));
    assert.deepEqual(reply.symbols, ["Symbol(Symbol.toStringTag)"]);
    assert.equal(reply.protoIsObject, true);
  });

  it("has no eval, directly or through a computed global lookup", async () => {
    const reply = await run("no-eval", `    return { reply: [typeof eval, typeof globalThis["ev" + "al"], "eval" in globalThis], state };`);
    assert.deepEqual(reply, ["undefined", "undefined", false]);
  });

  it("cannot compile code with new Function", async () => {
    const reply = await run(
      "new-function",
      `    try { new Function("return process")(); return { reply: "compiled", state }; }
    catch (e) { return { reply: { name: e.name, message: e.message }, state }; }`,
    );
    assert.deepEqual(reply, {
      name: "EvalError",
      message: "compiling code at run time is not available in a Solo service; code arrives only through deploy",
    });
  });

  it('crashes with the EvalError when it tries this.constructor.constructor("return process")()', async () => {
    const crash = await expectCrash(
      run("ctor-ctor", `    return { reply: String(this.constructor.constructor("return process")()), state };`),
      { code: "aborted", reason: "SOLO_ERR_HANDLER_THREW", kind: "exception" },
      "ctor-ctor",
    );
    assert.match(crash.message, /^EvalError: compiling code at run time is not available in a Solo service/);
    assert.equal(crash.line, 4);
  });

  it("cannot compile code through the async, generator or async generator function constructors", async () => {
    const reply = await run(
      "fn-ctors",
      `    const out = [];
    for (const f of [async function () {}, function* () {}, async function* () {}, async () => {}, class {}]) {
      try { f.constructor("return process"); out.push("compiled"); } catch (e) { out.push(e.name); }
    }
    return { reply: out, state };`,
    );
    assert.deepEqual(reply, ["EvalError", "EvalError", "EvalError", "EvalError", "EvalError"]);
  });

  it("cannot reach a code compiler through Reflect or Proxy, nor replace the guarded constructors", async () => {
    const reply = await run(
      "reflect-proxy",
      `    const out = [];
    const attempts = [
      () => Reflect.construct(Function, ["return process"]),
      () => Reflect.apply(Function.prototype.constructor, null, ["return process"]),
      () => new Proxy(function () {}, {}).constructor("return process"),
      () => Reflect.getPrototypeOf(function* () {}).constructor("yield process"),
      () => Object.getOwnPropertyDescriptor(Function.prototype, "constructor").value("return process"),
      () => new Proxy(Function, { construct(t, a) { return Reflect.construct(t, a) } })("return process"),
    ];
    for (const attempt of attempts) {
      try { attempt(); out.push("compiled"); } catch (e) { out.push(e.name); }
    }
    const proto = Object.getPrototypeOf(async function () {});
    out.push(Reflect.defineProperty(Function.prototype, "constructor", { value: function () { return 1 } }));
    out.push(Reflect.defineProperty(proto, "constructor", { value: function () { return 1 } }));
    out.push(Reflect.set(globalThis, "Function", function () { return 1 }));
    out.push(Reflect.deleteProperty(globalThis, "Function"));
    try { Object.defineProperty(Function.prototype, "constructor", { value: 1 }); out.push("redefined"); } catch (e) { out.push(e.name); }
    return { reply: out, state };`,
    );
    assert.deepEqual(reply, [
      "EvalError",
      "EvalError",
      "EvalError",
      "EvalError",
      "EvalError",
      "EvalError",
      false,
      false,
      false,
      false,
      "TypeError",
    ]);
  });

  it("cannot load a host module with dynamic import()", async () => {
    const reply = await run(
      "dynamic-import",
      asyncHandler(`    const out = [];
    for (const spec of ["node:fs", "node:child_process", "fs", "./sibling.js", "data:text/javascript,export default 1"]) {
      try { await import(spec); out.push("loaded"); } catch (e) { out.push(e.name + ": " + e.message); }
    }
    return { reply: out, state };`),
    );
    assert.deepEqual(reply, [
      "ReferenceError: could not load module 'node:fs'",
      "ReferenceError: could not load module 'node:child_process'",
      "ReferenceError: could not load module 'fs'",
      "ReferenceError: could not load module 'sibling.js'",
      "ReferenceError: could not load module 'data:text/javascript,export default 1'",
    ]);
  });

  it("fails to deploy with SOLO_ERR_DEPLOY_IMPORT when the module statically imports or re-exports a module", async () => {
    const sources = [
      `import { readFileSync } from "node:fs";\nexport default { handleCall(r, s) { return { reply: typeof readFileSync, state: s } } };`,
      `import "./sibling.js";\nexport default { handleCall(r, s) { return { reply: 1, state: s } } };`,
      `export { execSync } from "node:child_process";\nexport default { handleCall(r, s) { return { reply: 1, state: s } } };`,
    ];
    const names = ["import-static-a", "import-static-b", "import-static-c"];
    for (const [i, code] of sources.entries()) {
      const service = names[i] as string;
      const error = await rejection(kernel.deploy({ tenant: MALLORY, service, code }));
      assert.equal(error.code, "invalid_argument");
      assert.equal(error.reason, "SOLO_ERR_DEPLOY_IMPORT");
      assert.match(error.message, /could not load module/);
      assert.equal(
        kernel.list(MALLORY).some((s) => s.service === service),
        false,
      );
    }
  });

  it("reports a top-level error that merely mentions 'import' as an init failure, not as an import", async () => {
    const error = await rejection(
      kernel.deploy({
        tenant: MALLORY,
        service: "import-word",
        code: `throw new Error("important setting missing");\nexport default { handleCall(r, s) { return { reply: 1, state: s } } };`,
      }),
    );
    assert.equal(error.reason, "SOLO_ERR_DEPLOY_INIT_FAILED");
    assert.equal(crashOf(error).kind, "exception");
  });

  it("sees an empty import.meta", async () => {
    await deploy(
      "import-meta",
      `const meta = import.meta;\nexport default { handleCall(r, s) { return { reply: Reflect.ownKeys(meta).map(String), state: s } } };`,
    );
    assert.deepEqual(await kernel.call(MALLORY, "import-meta"), []);
  });

  it("has no high-resolution clock: performance is absent", async () => {
    const reply = await run(
      "no-clock",
      `    return { reply: [typeof performance, typeof globalThis.process, Number.isInteger(Date.now())], state };`,
    );
    assert.deepEqual(reply, ["undefined", "undefined", true]);
  });

  it("has no shared memory: SharedArrayBuffer and Atomics are absent", async () => {
    const reply = await run("no-shared-memory", `    return { reply: [typeof SharedArrayBuffer, typeof Atomics], state };`);
    assert.deepEqual(reply, ["undefined", "undefined"]);
  });

  it("has no WebAssembly to compile native code with", async () => {
    const reply = await run("no-wasm", `    return { reply: typeof WebAssembly, state };`);
    assert.equal(reply, "undefined");
  });

  it("cannot observe garbage collection: WeakRef and FinalizationRegistry are absent", async () => {
    const reply = await run("no-gc-observe", `    return { reply: [typeof WeakRef, typeof FinalizationRegistry], state };`);
    assert.deepEqual(reply, ["undefined", "undefined"]);
  });

  it("cannot install Error.prepareStackTrace to reach the sandbox's internal functions", async () => {
    const reply = await run(
      "stack-api",
      `    let blocked = false;
    try { Error.prepareStackTrace = (e, frames) => frames.map((f) => typeof f.getFunction()); } catch (e) { blocked = e instanceof TypeError; }
    return { reply: { blocked, type: typeof Error.prepareStackTrace, stack: typeof new Error("probe").stack }, state };`,
    );
    assert.deepEqual(reply, { blocked: true, type: "undefined", stack: "string" });
  });
});

describe("a service tampering with the solo object", () => {
  it("cannot replace, delete or extend the frozen solo and console objects, and they keep working", async () => {
    const reply = await run(
      "tamper-solo",
      `    const out = [];
    const attempts = [
      () => { solo.call = () => "forged"; },
      () => { solo.extra = 1; },
      () => { delete solo.log; },
      () => { globalThis.solo = {}; },
      () => { delete globalThis.solo; },
      () => Object.defineProperty(globalThis, "solo", { value: {} }),
      () => Object.setPrototypeOf(solo, { call() { return "forged"; } }),
      () => { console.log = () => {}; },
      () => { globalThis.console = {}; },
    ];
    for (const attempt of attempts) {
      try { attempt(); out.push("changed"); } catch (e) { out.push(e.name); }
    }
    const d = Object.getOwnPropertyDescriptor(globalThis, "solo");
    solo.log("still", "logging");
    console.warn("console too");
    return { reply: { out, frozen: Object.isFrozen(solo) && Object.isFrozen(console) && Object.isFrozen(solo.storage), writable: d.writable, configurable: d.configurable, keys: Object.keys(solo) }, state };`,
    );
    assert.deepEqual(reply, {
      out: ["TypeError", "TypeError", "TypeError", "TypeError", "TypeError", "TypeError", "TypeError", "TypeError", "TypeError"],
      frozen: true,
      writable: false,
      configurable: false,
      // solo.grants, solo.reply and solo.replyError came with issue 17.
      keys: [
        "grants",
        "call",
        "cast",
        "sendAfter",
        "cancelTimer",
        "reply",
        "replyError",
        "log",
        "warn",
        "error",
        "storage",
        "secrets",
        "fetch",
        "emit",
      ],
    });
    assert.deepEqual(
      kernel.logs(MALLORY, "tamper-solo").map((l) => [l.level, l.text]),
      [
        ["info", "still logging"],
        ["warn", "console too"],
      ],
    );
  });
});

describe("a service poisoning its own intrinsics", () => {
  it("pollutes only its own Object.prototype: the host, a sibling service and another tenant stay clean", async () => {
    await deploy(
      "proto-poisoner",
      handler(`    ({}).__proto__.polluted = "yes";
    Object.prototype.isAdmin = true;
    return { reply: { seenInside: ({}).polluted, a: 1 }, state };`),
    );
    await deploy("proto-sibling", handler("    return { reply: [typeof ({}).polluted, typeof ({}).isAdmin], state };"));
    const reply = (await kernel.call(MALLORY, "proto-poisoner")) as Record<string, unknown>;
    assert.deepEqual(reply, { seenInside: "yes", a: 1 });
    assert.deepEqual(Object.keys(reply), ["seenInside", "a"]);
    assert.equal(Object.getPrototypeOf(reply), Object.prototype);
    assert.equal(Object.hasOwn(Object.prototype, "polluted"), false);
    assert.equal(({} as Record<string, unknown>).isAdmin, undefined);
    assert.deepEqual(await kernel.call(MALLORY, "proto-sibling"), ["undefined", "undefined"]);
    // The poisoned service goes on answering with only its own reply data.
    assert.deepEqual(await kernel.call(MALLORY, "proto-poisoner"), { seenInside: "yes", a: 1 });
  });

  it("cannot change its reply with a poisoned Object.prototype.toJSON", async () => {
    const reply = await run(
      "tojson-poisoner",
      `    Object.prototype.toJSON = function () { return "hijacked"; };
    Array.prototype.toJSON = function () { return "hijacked"; };
    return { reply: { a: 1, list: [1, "two", { three: 3 }] }, state };`,
    );
    assert.deepEqual(reply, { a: 1, list: [1, "two", { three: 3 }] });
  });

  it("cannot change its reply with poisoned Array.prototype.push, join and indexOf", async () => {
    const reply = await run(
      "array-poisoner",
      `    Array.prototype.push = function () { return 0; };
    Array.prototype.join = function () { return "hijacked"; };
    Array.prototype.indexOf = function () { return 0; };
    return { reply: { a: [1, 2, { b: "c" }], d: null }, state };`,
    );
    assert.deepEqual(reply, { a: [1, 2, { b: "c" }], d: null });
  });

  it("gets a precise error, not a corrupted value, when a setter on Array.prototype indices breaks its reply", async () => {
    await deploy(
      "index-setter",
      handler(`    Object.defineProperty(Array.prototype, "0", {
      configurable: true,
      set(v) { Object.defineProperty(this, "0", { value: typeof v === "string" ? "garbage" : v, writable: true, enumerable: true, configurable: true }); },
    });
    return { reply: { a: 1 }, state };`),
    );
    await deploy(
      "index-setter-caller",
      handler(
        `    return solo.call("index-setter", null).then((r) => ({ reply: r, state }), (e) => ({ reply: [e.code, e.reason], state }));`,
      ),
      { grants: { call: ["index-setter"] } },
    );
    assert.deepEqual(await kernel.call(MALLORY, "index-setter-caller", null, { timeoutMs: 2000 }), [
      "invalid_argument",
      "SOLO_ERR_VALUE_NOT_JSON",
    ]);
    await deploy(
      "index-setter-host",
      handler(`    Object.defineProperty(Array.prototype, "0", {
      configurable: true,
      set(v) { Object.defineProperty(this, "0", { value: typeof v === "string" ? "garbage" : v, writable: true, enumerable: true, configurable: true }); },
    });
    return { reply: { a: 1 }, state };`),
    );
    const error = await rejection(kernel.call(MALLORY, "index-setter-host", null));
    assert.equal(error.reason, "SOLO_ERR_VALUE_NOT_JSON");
  });

  it("cannot smuggle a reply larger than messageBytes past the limit with a setter on Array.prototype indices", async () => {
    const error = await rejection(
      run(
        "index-setter-large",
        `    Object.defineProperty(Array.prototype, "3", {
      configurable: true,
      set(v) { Object.defineProperty(this, "3", { value: typeof v === "string" ? JSON.stringify("x".repeat(100000)) : v, writable: true, enumerable: true, configurable: true }); },
    });
    return { reply: { a: "b" }, state };`,
        null,
        { messageBytes: 1024 },
      ),
    );
    assert.equal(error.reason, "SOLO_ERR_VALUE_TOO_LARGE");
  });

  it("mutates String.prototype, JSON and Promise.prototype.then without breaking the host, itself or other services", async () => {
    await deploy(
      "vandal",
      `export default {
  init() { return { calls: 0 } },
  handleCall(request, state) {
    const calls = state.calls + 1;
    if (request.op === "vandalize") {
      String.prototype.slice = function () { return "hijacked"; };
      String.prototype.charAt = function () { return "E"; };
      String.prototype.indexOf = function () { return -1; };
      String.prototype.toString = function () { return "hijacked"; };
      JSON.parse = function () { return { hijacked: true }; };
      JSON.stringify = function () { return '"hijacked"'; };
      Promise.prototype.then = function () { throw new Error("then hijacked"); };
      Object.keys = function () { return ["hijacked"]; };
      Array.isArray = function () { return false; };
      Number.isFinite = function () { return true; };
      Map.prototype.get = function () { return undefined; };
      Reflect.apply = function () { return "hijacked"; };
      RegExp.prototype.exec = function () { return null; };
      return { reply: "vandalized", state: { calls } };
    }
    if (request.op === "fail") throw new Error("deliberate failure");
    solo.log("echo", request);
    return { reply: { echo: request, calls }, state: { calls } };
  },
};
`,
    );
    await deploy("vandal-sibling", handler("    return { reply: { ok: request }, state };"));
    assert.equal(await kernel.call(MALLORY, "vandal", { op: "vandalize" }), "vandalized");
    const request = { op: "echo", text: "h\u00e9llo \u2713 \ud83d\ude00", list: [1, -2.5, true, null, { nested: ["a", "b"] }] };
    assert.deepEqual(await kernel.call(MALLORY, "vandal", request), { echo: request, calls: 2 });
    assert.deepEqual(await kernel.call(MALLORY, "vandal", request), { echo: request, calls: 3 });
    assert.deepEqual(await kernel.call(MALLORY, "vandal-sibling", [1, "two"]), { ok: [1, "two"] });
    assert.deepEqual(
      kernel.logs(MALLORY, "vandal").map((l) => l.text),
      [`echo ${JSON.stringify(request)}`, `echo ${JSON.stringify(request)}`],
    );
    assert.deepEqual(JSON.parse('{"a":[1]}'), { a: [1] });
    assert.equal("abc".slice(1), "bc");
    // Even its error reports still reach the host intact.
    const crash = await expectCrash(
      kernel.call(MALLORY, "vandal", { op: "fail" }),
      { code: "aborted", reason: "SOLO_ERR_HANDLER_THREW", kind: "exception" },
      "vandal",
    );
    assert.match(crash.message, /^Error: deliberate failure at vandal\.js:\d+:\d+$/);
  });

  it("still settles its own async handlers after replacing Promise.prototype.then", async () => {
    await deploy(
      "then-vandal",
      `export default {
  handleCall(request, state) {
    if (request === "vandalize") {
      Promise.prototype.then = function () { throw new Error("then hijacked"); };
      return { reply: "vandalized", state };
    }
    return (async () => ({ reply: "async ok", state }))();
  },
};
`,
    );
    assert.equal(await kernel.call(MALLORY, "then-vandal", "vandalize"), "vandalized");
    assert.equal(await kernel.call(MALLORY, "then-vandal", "async"), "async ok");
  });
});

describe("a service replying with values that are not JSON data", () => {
  it("crashes with a cpu_limit when a getter on its reply loops forever", async () => {
    await expectCrash(
      run("getter-loop", "    return { reply: { get a() { while (true) {} } }, state };", null, { cpuMsPerMessage: 50 }),
      { code: "resource_exhausted", reason: "SOLO_ERR_LIMIT_CPU", kind: "cpu_limit" },
      "getter-loop",
    );
  });

  it("crashes with the getter's error when a getter on its reply throws", async () => {
    const crash = await expectCrash(
      run("getter-throw", `    return { reply: { ok: 1, get a() { throw new TypeError("getter says no"); } }, state };`),
      { code: "aborted", reason: "SOLO_ERR_HANDLER_THREW", kind: "exception" },
      "getter-throw",
    );
    assert.match(crash.message, /^TypeError: getter says no at getter-throw\.js:\d+:\d+$/);
  });

  it("is rejected with SOLO_ERR_VALUE_NOT_JSON when its reply carries a toJSON function", async () => {
    const crash = await expectCrash(
      run("tojson-trap", `    return { reply: { a: 1, toJSON() { return { admin: true }; } }, state };`),
      { code: "invalid_argument", reason: "SOLO_ERR_VALUE_NOT_JSON", kind: "invalid_value", path: "$.toJSON" },
      "tojson-trap",
    );
    assert.match(crash.message, /the reply at \$\.toJSON is a function/);
  });

  it("crashes with the trap's error when its reply is a proxy whose ownKeys trap throws", async () => {
    const crash = await expectCrash(
      run("proxy-ownkeys", `    return { reply: { a: new Proxy({}, { ownKeys() { throw new Error("ownKeys trap"); } }) }, state };`),
      { code: "aborted", reason: "SOLO_ERR_HANDLER_THREW", kind: "exception" },
      "proxy-ownkeys",
    );
    assert.match(crash.message, /^Error: ownKeys trap/);
  });

  it("can only deliver plain JSON data when its reply is a proxy posing as a plain object", async () => {
    const reply = await run(
      "proxy-plain",
      `    const target = {};
    const p = new Proxy(target, {
      getPrototypeOf() { return Object.prototype; },
      ownKeys() { return ["a", "b"]; },
      getOwnPropertyDescriptor() { return { value: 0, enumerable: true, configurable: true, writable: true }; },
      get(t, key) { return key === "a" ? [1, 2] : { nested: String(key) }; },
    });
    return { reply: p, state };`,
    );
    assert.deepEqual(reply, { a: [1, 2], b: { nested: "b" } });
    assert.equal(Object.getPrototypeOf(reply), Object.prototype);
  });

  const notJson: Array<{ name: string; service: string; reply: string; path: string; message: RegExp }> = [
    { name: "a function", service: "reply-function", reply: "() => process", path: "$", message: /at \$ is a function/ },
    { name: "a symbol", service: "reply-symbol", reply: 'Symbol("s")', path: "$", message: /at \$ is a symbol/ },
    { name: "a BigInt", service: "reply-bigint", reply: "{ n: 10n }", path: "$.n", message: /at \$\.n is a bigint/ },
    { name: "NaN", service: "reply-nan", reply: "NaN", path: "$", message: /at \$ is NaN; only finite numbers are JSON/ },
    { name: "Infinity", service: "reply-infinity", reply: "{ a: [1, Infinity] }", path: "$.a[1]", message: /is Infinity/ },
    {
      name: "a cycle",
      service: "reply-cycle",
      reply: "(() => { const a = {}; a.self = a; return { a }; })()",
      path: "$.a.self",
      message: /a cycle/,
    },
    { name: "a Map", service: "reply-map", reply: "{ a: new Map([[1, 2]]) }", path: "$.a", message: /is a Map, not a plain object/ },
    { name: "a Date", service: "reply-date", reply: "{ a: new Date(0) }", path: "$.a", message: /is a Date, not a plain object/ },
    {
      name: "a class instance",
      service: "reply-class",
      reply: "(() => { class Secret {} return { list: [1, new Secret()] }; })()",
      path: "$.list[1]",
      message: /is a Secret, not a plain object/,
    },
    { name: "undefined inside an array", service: "reply-undef-item", reply: "[1, undefined]", path: "$[1]", message: /is undefined/ },
    { name: "a key needing quotes", service: "reply-odd-key", reply: '{ "odd key": new Set() }', path: '$["odd key"]', message: /Set/ },
  ];
  for (const c of notJson) {
    it(`is rejected with SOLO_ERR_VALUE_NOT_JSON at ${c.path} when its reply contains ${c.name}`, async () => {
      const crash = await expectCrash(
        run(c.service, `    return { reply: ${c.reply}, state };`),
        { code: "invalid_argument", reason: "SOLO_ERR_VALUE_NOT_JSON", kind: "invalid_value", path: c.path },
        c.service,
      );
      assert.match(crash.message, c.message);
    });
  }

  // Issue 17 changed this: an undefined reply (a map's missing key, say) used to crash the service.
  it("answers no value when its reply is undefined, and the service keeps running", async () => {
    assert.equal(await run("reply-undefined", "    return { reply: undefined, state };"), undefined);
    assert.equal(kernel.list(MALLORY).find((s) => s.service === "reply-undefined")?.state, "running");
  });

  it("is rejected with SOLO_ERR_VALUE_TOO_DEEP when its reply nests deeper than 64 levels", async () => {
    const crash = await expectCrash(
      run("reply-deep", "    let v = 0; for (let i = 0; i < 100; i++) v = { v }; return { reply: v, state };"),
      { code: "invalid_argument", reason: "SOLO_ERR_VALUE_TOO_DEEP", kind: "invalid_value", path: `$${".v".repeat(64)}` },
      "reply-deep",
    );
    assert.match(crash.message, /nested deeper than 64 levels/);
  });

  it("is rejected with SOLO_ERR_VALUE_TOO_LARGE when its reply is over messageBytes", async () => {
    const crash = await expectCrash(
      run("reply-large", `    return { reply: { items: Array.from({ length: 200 }, (_, i) => "item-" + i) }, state };`, null, {
        messageBytes: 1024,
      }),
      { code: "resource_exhausted", reason: "SOLO_ERR_VALUE_TOO_LARGE", kind: "invalid_value", path: "$" },
      "reply-large",
    );
    assert.match(crash.message, /larger than 1024 bytes/);
  });

  it("delivers a reply with an own __proto__ key as plain data without polluting the host", async () => {
    const reply = (await run(
      "reply-proto-key",
      `    return { reply: JSON.parse('{"__proto__": {"polluted": true}, "a": 1}'), state };`,
    )) as Record<string, unknown>;
    assert.deepEqual(Object.keys(reply), ["__proto__", "a"]);
    assert.equal(Object.getPrototypeOf(reply), Object.prototype);
    assert.equal(reply.polluted, undefined);
    assert.equal(({} as Record<string, unknown>).polluted, undefined);
  });
});

describe("a request trying to pollute prototypes", () => {
  it("arrives as an own __proto__ key and pollutes neither the service, the host nor another service", async () => {
    const code = handler(`    return { reply: {
      keys: Object.keys(request),
      protoIsObject: Object.getPrototypeOf(request) === Object.prototype,
      requestPolluted: request.polluted === true,
      globalPolluted: ({}).polluted === true,
      echo: request,
    }, state };`);
    await deploy("proto-request", code);
    await deploy("proto-request-other", code);
    const payload: unknown = JSON.parse('{"__proto__": {"polluted": true}, "a": 1}');
    const reply = (await kernel.call(MALLORY, "proto-request", payload)) as { echo: Record<string, unknown> };
    assert.deepEqual(reply, {
      keys: ["__proto__", "a"],
      protoIsObject: true,
      requestPolluted: false,
      globalPolluted: false,
      echo: payload,
    });
    assert.equal(Object.getPrototypeOf(reply.echo), Object.prototype);
    assert.equal(({} as Record<string, unknown>).polluted, undefined);
    const other = (await kernel.call(MALLORY, "proto-request-other", { a: 2 })) as { globalPolluted: boolean };
    assert.equal(other.globalPolluted, false);
  });
});

describe("a service reaching for other services and tenants", () => {
  it("cannot forge calls or casts to another tenant's service or to names with odd characters", async () => {
    await kernel.deploy({
      tenant: "victim-co",
      service: "vault",
      code: `export default {
  init() { return 0 },
  handleCall(r, s) { return { reply: s, state: s } },
  handleCast(m, s) { return { state: s + 1 } },
};
`,
    });
    const names = ["victim-co/vault", "vault", "../victim-co/vault", "victim-co:vault", "VAULT", "", " vault", "vault/", "v".repeat(100)];
    await deploy(
      "forger",
      `export default {
  async handleCall(request, state) {
    const out = [];
    for (const name of ${JSON.stringify(names)}) {
      try { await solo.call(name, { steal: true }); out.push("reached"); } catch (e) { out.push([e.code, e.reason]); }
      try { solo.cast(name, { steal: true }); out.push("reached"); } catch (e) { out.push([e.code, e.reason]); }
    }
    return { reply: out, state };
  },
};
`,
      // Granted the one well-formed name: it still reaches only its own tenant's "vault".
      { grants: { call: ["vault"] } },
    );
    const reply = await kernel.call(MALLORY, "forger");
    assert.deepEqual(
      reply,
      // Odd names are refused as no such service before any grant is looked at.
      names.flatMap(() => [
        ["not_found", "SOLO_ERR_SERVICE_NOT_FOUND"],
        ["not_found", "SOLO_ERR_SERVICE_NOT_FOUND"],
      ]),
    );
    assert.equal(await kernel.call("victim-co", "vault"), 0);
  });

  it("cannot reach a sibling through a service name containing a newline", async () => {
    await deploy("nl-target", handler("    return { reply: 'alive', state };"));
    await deploy(
      "nl-injector",
      handler(`    const nl = String.fromCharCode(10);
    return solo.call("nl-target" + nl + "1" + nl + "not json", null).then(
      () => ({ reply: "reached", state }),
      (e) => ({ reply: [e.code, e.reason], state }),
    );`),
    );
    assert.deepEqual(await kernel.call(MALLORY, "nl-injector"), ["not_found", "SOLO_ERR_SERVICE_NOT_FOUND"]);
    assert.equal(await kernel.call(MALLORY, "nl-target"), "alive");
  });

  it("cannot reach a sibling through a service name ending in a NUL character", async () => {
    await deploy(
      "nul-target",
      `export default {
  init() { return 0 },
  handleCall(request, state) { return { reply: state, state: state + 1 } },
};
`,
    );
    await deploy(
      "nul-injector",
      asyncHandler(`    return solo.call("nul-target" + String.fromCharCode(0), { forged: true }).then(
      () => ({ reply: "reached", state }),
      (e) => ({ reply: [e.code, e.reason], state }),
    );`),
    );
    assert.deepEqual(await kernel.call(MALLORY, "nul-injector"), ["not_found", "SOLO_ERR_SERVICE_NOT_FOUND"]);
    assert.equal(await kernel.call(MALLORY, "nul-target"), 0);
  });

  it("sees only its own tenant's services, even under a name another tenant also uses", async () => {
    const whoAmI = handler("    return { reply: ctx.tenant + '/' + ctx.service, state };");
    await kernel.deploy({ tenant: "alice", service: "shared", code: whoAmI });
    await kernel.deploy({ tenant: "alice", service: "secret", code: whoAmI });
    await kernel.deploy({ tenant: "bob", service: "shared", code: whoAmI });
    await kernel.deploy({
      tenant: "bob",
      service: "prober",
      grants: { call: ["shared", "secret"] },
      code: `export default {
  async handleCall(request, state, ctx) {
    const out = { me: ctx.tenant };
    out.shared = await solo.call("shared", null);
    try { await solo.call("secret", null); out.secret = "reached"; } catch (e) { out.secret = [e.code, e.reason]; }
    try { await solo.call("alice/secret", null); out.qualified = "reached"; } catch (e) { out.qualified = [e.code, e.reason]; }
    return { reply: out, state };
  },
};
`,
    });
    assert.deepEqual(await kernel.call("bob", "prober"), {
      me: "bob",
      shared: "bob/shared",
      secret: ["not_found", "SOLO_ERR_SERVICE_NOT_FOUND"],
      qualified: ["not_found", "SOLO_ERR_SERVICE_NOT_FOUND"],
    });
    assert.deepEqual(
      kernel.list("bob").map((s) => s.service),
      ["prober", "shared"],
    );
    assert.deepEqual(
      kernel.list("alice").map((s) => s.service),
      ["secret", "shared"],
    );
  });

  it("crashes only itself: a sibling in its tenant and a service in another tenant keep answering", async () => {
    await deploy("crasher", handler("    throw new Error('gone');"));
    await deploy("crasher-sibling", handler("    return { reply: 'sibling ok', state };"));
    await expectCrash(kernel.call(MALLORY, "crasher"), { code: "aborted", reason: "SOLO_ERR_HANDLER_THREW", kind: "exception" }, "crasher");
    assert.equal(await kernel.call(MALLORY, "crasher-sibling"), "sibling ok");
    assert.equal(await kernel.call("victim-co", "vault"), 0);
  });
});
