// What a handler may answer a call with: a value, no value, or an error of its own (which does not
// crash the service), through the embedding API and from one service to another.

import assert from "node:assert/strict";
import { before, describe, it } from "node:test";
import { rejection, until } from "../../test/support/helpers.ts";
import { allEvents, testKernels } from "../../test/support/kernels.ts";
import type { Kernel } from "../index.ts";

const kernels = testKernels("answers");

/** A key-value map that answers a missing key with an error of its own, and counts its calls. */
const KV = `export default {
  init() { return { calls: 0, map: {} } },
  handleCall(req, s) {
    s.calls++;
    switch (req.op) {
      case "get":
        if (!(req.key in s.map)) return { error: { code: "not_found", message: "no key " + req.key, details: { key: req.key } }, state: s };
        return { reply: s.map[req.key], state: s };
      case "put": s.map[req.key] = req.value; return { state: s };
      case "lookup": return { reply: s.map[req.key], state: s };
      case "calls": return { reply: s.calls, state: s };
      case "bare": return { error: { code: "teapot", message: "short and stout" }, state: s };
      case "async": return Promise.resolve({ error: { code: "later", message: "after a turn" }, state: s });
      case "shape": return { error: req.error, state: s };
      case "both": return { reply: 1, error: { code: "x", message: "y" }, state: s };
      case "fn": return { error: { code: "x", message: "y", details: { f() {} } }, state: s };
    }
  },
};`;

/** Calls KV and says what it got: its reply, or the error it caught, as data. */
const ASKER = `export default {
  init() { return null },
  async handleCall(req, s) {
    try {
      return { reply: { value: await solo.call("kv", req) }, state: s };
    } catch (e) {
      return { reply: { reason: e.reason, code: e.code, answer: e.details && e.details.answer }, state: s };
    }
  },
};`;

describe("a handler's answer", () => {
  let k: Kernel;
  before(async () => {
    k = await kernels.start(kernels.freshDir());
    await k.deploy({ tenant: "acme", service: "kv", code: KV, supervision: { breakerThreshold: 2 } });
    await k.deploy({ tenant: "acme", service: "asker", code: ASKER, grants: { call: ["kv"] } });
  });

  it("can be an error of the service's own: coded, with its details, and the service keeps running with its state", async () => {
    await k.call("acme", "kv", { op: "put", key: "a", value: 1 });
    for (let i = 0; i < 5; i++) {
      const err = await rejection(k.call("acme", "kv", { op: "get", key: "zz" }));
      assert.equal(err.reason, "SOLO_ERR_APPLICATION_ERROR");
      assert.equal(err.code, "failed_precondition");
      assert.equal(err.message, "service kv answered with an error: not_found: no key zz");
      assert.deepEqual(err.details, { service: "kv", answer: { code: "not_found", message: "no key zz", details: { key: "zz" } } });
    }
    // The state survived every error answer: the put is still there, and each call was counted.
    assert.equal(await k.call("acme", "kv", { op: "get", key: "a" }), 1);
    assert.equal(await k.call("acme", "kv", { op: "calls" }), 8);
    const st = k.status("acme", "kv");
    assert.equal(st.state, "running");
    assert.equal(st.restarts, 0);
    assert.equal(st.crash, undefined);
    // Past the breaker's threshold of 2, and it is still closed: an answer is not a failure.
    assert.deepEqual(st.breaker, { state: "closed", consecutiveFailures: 0 });
    assert.deepEqual(await allEvents(k, { tenant: "acme", types: ["service_crashed", "circuit_breaker_opened"] }), []);
  });

  it("leaves out details the service did not give, and may come from an async handler", async () => {
    const bare = await rejection(k.call("acme", "kv", { op: "bare" }));
    assert.deepEqual(bare.details, { service: "kv", answer: { code: "teapot", message: "short and stout" } });
    const later = await rejection(k.call("acme", "kv", { op: "async" }));
    assert.deepEqual(later.details.answer, { code: "later", message: "after a turn" });
  });

  it("reaches a calling service as an error it can catch, with the same reason and answer", async () => {
    assert.deepEqual(await k.call("acme", "asker", { op: "get", key: "nope" }), {
      reason: "SOLO_ERR_APPLICATION_ERROR",
      code: "failed_precondition",
      answer: { code: "not_found", message: "no key nope", details: { key: "nope" } },
    });
    assert.deepEqual(await k.call("acme", "asker", { op: "get", key: "a" }), { value: 1 });
  });

  it("can be no value: reply undefined, or none given, reaches the caller as undefined, and a calling service too", async () => {
    assert.equal(await k.call("acme", "kv", { op: "lookup", key: "missing" }), undefined);
    assert.equal(await k.call("acme", "kv", { op: "put", key: "b", value: 2 }), undefined);
    assert.deepEqual(await k.call("acme", "asker", { op: "lookup", key: "missing" }), {});
    assert.equal(k.status("acme", "kv").state, "running");
  });

  it("is refused as a wrong shape when the error is malformed, naming what is wrong", async () => {
    const cases: Array<[unknown, RegExp]> = [
      ["not found", /error must be an object like \{ code: "not_found", message: "no such key" \}, got string/],
      [{ message: "no code" }, /error\.code must be a string of 1-64 letters/],
      [{ code: "9lives", message: "x" }, /error\.code must be a string of 1-64 letters, .*got "9lives"/],
      [{ code: "x".repeat(65), message: "x" }, /error\.code must be/],
      [{ code: "ok", message: 5 }, /error\.message must be a string of at most 2000 characters, got 5/],
      [{ code: "ok", message: "m".repeat(2001) }, /got 2001 characters/],
      [{ code: "ok", message: "x", extra: 1 }, /error has an unknown field "extra"; it takes code, message and details/],
    ];
    for (const [error, message] of cases) {
      const dir = kernels.freshDir();
      const k2 = await kernels.start(dir);
      await k2.deploy({ tenant: "acme", service: "kv", code: KV });
      const err = await rejection(k2.call("acme", "kv", { op: "shape", error }));
      assert.equal(err.reason, "SOLO_ERR_HANDLER_RESULT_INVALID", `${JSON.stringify(error)}: ${err.message}`);
      assert.match(err.message, message);
      await k2.close();
    }
  });

  it("cannot be both a reply and an error", async () => {
    const k2 = await kernels.start(kernels.freshDir());
    await k2.deploy({ tenant: "acme", service: "kv", code: KV });
    const err = await rejection(k2.call("acme", "kv", { op: "both" }));
    assert.equal(err.reason, "SOLO_ERR_HANDLER_RESULT_INVALID");
    assert.match(err.message, /returned both reply and error/);
  });

  it("is refused when its details are not JSON or too large, as a reply would be", async () => {
    const k2 = await kernels.start(kernels.freshDir());
    await k2.deploy({ tenant: "acme", service: "kv", code: KV, limits: { messageBytes: 1024 } });
    const big = await rejection(k2.call("acme", "kv", { op: "shape", error: { code: "c", message: "m", details: "x".repeat(2000) } }));
    assert.equal(big.reason, "SOLO_ERR_VALUE_TOO_LARGE");
    await until("restarted", () => k2.status("acme", "kv").state === "running");
    const fn = await rejection(k2.call("acme", "kv", { op: "fn" }));
    assert.equal(fn.reason, "SOLO_ERR_VALUE_NOT_JSON");
    assert.match(fn.message, /the error answer/);
  });
});
