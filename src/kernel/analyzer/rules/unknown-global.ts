/**
 * The `unknown-global` rule: the code reads a global the sandbox does not have (process, fetch,
 * setTimeout, ...), and the hint names what a service uses instead.
 */

import { isDeclared, type Reference, type RuleCheck, report } from "./helpers.ts";

/**
 * Globals a service's sandbox does not have, each with what to use instead. A test checks every name
 * against a real sandbox. (`queueMicrotask` is not here: QuickJS-ng provides it; nor are `URL`,
 * `URLSearchParams`, `TextEncoder`, `TextDecoder`, `atob`, `btoa`, `structuredClone` and `crypto`:
 * the sandbox provides them, sandbox/std-apis.ts.)
 */
export const MISSING_GLOBALS: Readonly<Record<string, string>> = {
  process: "there is no process in a service: pass configuration as deploy args (init's first argument)",
  require: "a service is one self-contained module: put the code it needs in it and reach other services with solo.call / solo.cast",
  module: "a service is an ES module: export its handlers with `export default { ... }`",
  exports: "a service is an ES module: export its handlers with `export default { ... }`",
  global: "use globalThis",
  self: "use globalThis",
  window: "a service has no browser window: use globalThis for the global object",
  document: "a service has no DOM: it handles messages and returns JSON data",
  navigator: "a service has no browser environment: its identity is in ctx (tenant, service, version)",
  localStorage: "use solo.storage (get, put, delete, list), which is durable and private to the service",
  Buffer:
    "use Uint8Array, with TextEncoder / TextDecoder for UTF-8 and btoa / atob for base64; messages and state are JSON, so carry binary data as strings (for example base64)",
  fetch:
    "use solo.fetch(url, { method, headers, body }): outbound HTTP(S) to the hosts the deployment was granted (grants: { fetch: { hosts: [...] } })",
  XMLHttpRequest: "not available yet: network access arrives as a gated power; ask another service with solo.call",
  WebSocket: "not available: a service talks to other services with solo.call / solo.cast",
  Request: "not available yet: network access arrives as a gated power",
  Response: "not available yet: network access arrives as a gated power",
  Headers: "not available yet: network access arrives as a gated power",
  AbortController: "not available: solo.call takes { timeoutMs } to bound a wait",
  setTimeout: "use solo.sendAfter(ms, message): the message arrives at handleInfo",
  setInterval: "use solo.sendAfter(ms, message), and send the next one from handleInfo each time",
  setImmediate: "use solo.sendAfter(0, message) to continue in a later message",
  clearTimeout: "use solo.cancelTimer(id) with the id solo.sendAfter returned",
  clearInterval: "use solo.cancelTimer(id) with the id solo.sendAfter returned",
  performance: "there is no high-resolution clock in a service: use Date.now() (milliseconds)",
  SharedArrayBuffer: "there is no shared memory in a service: use ArrayBuffer",
  Atomics: "there is no shared memory in a service: a service handles one message at a time, so it needs no atomics",
  WebAssembly: "a service cannot compile code at run time: code arrives only through deploy",
  WeakRef: "garbage collection is not observable in a service: keep entries in a Map and delete them when done",
  FinalizationRegistry: "garbage collection is not observable in a service: clean up explicitly (terminate runs when the service stops)",
  Intl: "not available: format numbers and dates with your own code (Date#toISOString works)",
  __dirname: "a service has no file system: its identity is in ctx (tenant, service, version)",
  __filename: "a service has no file system: its identity is in ctx (tenant, service, version)",
};

const MISSING = new Map(Object.entries(MISSING_GLOBALS));

/** Reports reads of the globals in {@link MISSING_GLOBALS} the module does not declare itself. */
export const unknownGlobal: RuleCheck = {
  id: "unknown-global",
  globals: [...MISSING.keys()],
  check(cx) {
    const reads: Reference[] = [];
    return {
      nodes: {
        Identifier: (node, scope) => {
          if (MISSING.has(node.name) && !cx.consumed.has(node)) reads.push({ name: node.name, scope, at: node });
        },
      },
      finish() {
        for (const r of reads) {
          if (isDeclared(r.scope, r.name)) continue;
          const hint = MISSING.get(r.name);
          if (hint !== undefined) report(cx, "unknown-global", r.at, `\`${r.name}\` does not exist in a Solo service`, hint);
        }
      },
    };
  },
};
