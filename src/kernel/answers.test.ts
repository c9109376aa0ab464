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

/**
 * A gate: `wait` calls are deferred until `open` answers them all (a value, or with `fail` an error
 * of its own), from any handler, a timer's included.
 */
const GATE = `export default {
  init() { return { waiting: [], answered: [] } },
  handleCall(req, s, ctx) {
    switch (req.op) {
      case "wait": s.waiting.push(ctx.replyTo); return { noreply: true, state: s };
      case "open": return { reply: release(s, (to) => solo.reply(to, { opened: req.v })), state: s };
      case "fail": return { reply: release(s, (to) => solo.replyError(to, { code: "closed", message: "the gate stays shut" })), state: s };
      case "later": solo.sendAfter(10, { v: req.v }); return { reply: true, state: s };
      case "count": return { reply: s.waiting.length, state: s };
      case "again": return { reply: attempt(() => solo.reply(s.answered[0], 1)), state: s };
      case "forged": return { reply: attempt(() => solo.reply(req.to, 1)), state: s };
      case "storm": { let refused = 0; for (let i = 0; i < req.n; i++) { try { solo.reply("x." + i, i) } catch (e) { refused++ } } return { reply: refused, state: s } }
      case "bad": return { reply: attempt(() => solo.replyError(s.waiting[0], { code: 5 })), state: s };
      case "both": return { noreply: true, reply: 1, state: s };
      case "boom": throw new Error("boom");
    }
  },
  handleInfo(msg, s) { release(s, (to) => solo.reply(to, { opened: msg.v })); return { state: s } },
};
function release(s, answer) {
  const n = s.waiting.length;
  for (const to of s.waiting) { try { answer(to) } catch (e) { if (e.reason !== "SOLO_ERR_REPLY_TOO_LATE") throw e } }
  s.answered = s.waiting; s.waiting = [];
  return n;
}
function attempt(f) { try { f(); return "delivered" } catch (e) { return e.reason + ": " + e.message } }`;

/** Calls GATE's wait and reports what came back, so a deferred answer reaches a service too. */
const WAITER = `export default {
  init() { return null },
  async handleCall(req, s) {
    try { return { reply: { got: await solo.call("gate", { op: "wait" }, { timeoutMs: req.timeoutMs }) }, state: s } }
    catch (e) { return { reply: { reason: e.reason }, state: s } }
  },
};`;

describe("a deferred reply", () => {
  async function gate(limits?: { mailbox: number }): Promise<Kernel> {
    const k = await kernels.start(kernels.freshDir());
    await k.deploy({ tenant: "acme", service: "gate", code: GATE, ...(limits ? { limits } : {}) });
    await k.deploy({ tenant: "acme", service: "waiter", code: WAITER, grants: { call: ["gate"] } });
    return k;
  }
  // Polls the gate's count of deferred calls; a poll the full mailbox refuses is simply not yet.
  const waiting = (k: Kernel, n: number): Promise<void> =>
    until(`${n} waiting`, async () => (await k.call("acme", "gate", { op: "count" }).catch(() => -1)) === n);

  it("holds the call until a later message answers it, with a value or an error, each caller its own", async () => {
    const k = await gate();
    const calls = [k.call("acme", "gate", { op: "wait" }), k.call("acme", "gate", { op: "wait" })];
    const fromService = k.call("acme", "waiter", {});
    await waiting(k, 3);
    assert.equal(await k.call("acme", "gate", { op: "open", v: 7 }), 3);
    assert.deepEqual(await Promise.all(calls), [{ opened: 7 }, { opened: 7 }]);
    assert.deepEqual(await fromService, { got: { opened: 7 } });
    const refused = rejection(k.call("acme", "gate", { op: "wait" }));
    await waiting(k, 1);
    assert.equal(await k.call("acme", "gate", { op: "fail" }), 1);
    const err = await refused;
    assert.equal(err.reason, "SOLO_ERR_APPLICATION_ERROR");
    assert.deepEqual(err.details.answer, { code: "closed", message: "the gate stays shut" });
    assert.equal(k.status("acme", "gate").restarts, 0);
  });

  it("can be answered from a timer's message", async () => {
    const k = await gate();
    const call = k.call("acme", "gate", { op: "wait" });
    await waiting(k, 1);
    await k.call("acme", "gate", { op: "later", v: 9 });
    assert.deepEqual(await call, { opened: 9 });
  });

  it("is refused precisely when the handle was answered already, or is not one of this service's, and a storm of them costs only the refusals", async () => {
    const k = await gate();
    const call = k.call("acme", "gate", { op: "wait" });
    await waiting(k, 1);
    await k.call("acme", "gate", { op: "open", v: 1 });
    await call;
    assert.match(
      (await k.call("acme", "gate", { op: "again" })) as string,
      /^SOLO_ERR_REPLY_UNKNOWN: solo\.reply: the call under "[0-9a-z.]+" was answered already; a call is answered once$/,
    );
    // The waiter's handle, kept and replayed by the gate once it was answered; a made-up one.
    for (const to of ["1.1", "zz.9", "x".repeat(64)]) {
      assert.match((await k.call("acme", "gate", { op: "forged", to })) as string, /^SOLO_ERR_REPLY_UNKNOWN: /);
    }
    assert.match((await k.call("acme", "gate", { op: "forged", to: 42 })) as string, /the first argument must be the ctx\.replyTo/);
    assert.equal(await k.call("acme", "gate", { op: "storm", n: 100 }), 100);
    assert.equal(k.status("acme", "gate").state, "running");
    // A storm without end is stopped by the message's CPU budget, like any loop.
    const stopped = await rejection(k.call("acme", "gate", { op: "storm", n: 1e9 }));
    assert.equal(stopped.reason, "SOLO_ERR_LIMIT_CPU");
  });

  it("obeys its caller's timeout; a reply after it is refused as too late, and the gate goes on", async () => {
    const k = await gate();
    const timedOut = await rejection(k.call("acme", "gate", { op: "wait" }, { timeoutMs: 100 }));
    assert.equal(timedOut.reason, "SOLO_ERR_CALL_TIMEOUT");
    assert.deepEqual(await k.call("acme", "waiter", { timeoutMs: 100 }), { reason: "SOLO_ERR_CALL_TIMEOUT" });
    // Both callers gave up: the gate's release skips them (it catches SOLO_ERR_REPLY_TOO_LATE).
    assert.equal(await k.call("acme", "gate", { op: "open", v: 1 }), 2);
    const st = k.status("acme", "gate");
    assert.equal(st.state, "running");
    assert.equal(st.restarts, 0);
  });

  it("is answered with the crash when the deferring service crashes, and with the stop when it is killed", async () => {
    const k = await gate();
    const crashed = rejection(k.call("acme", "gate", { op: "wait" }));
    await waiting(k, 1);
    await rejection(k.call("acme", "gate", { op: "boom" }));
    assert.equal((await crashed).reason, "SOLO_ERR_SERVICE_CRASHED");
    await until("restarted", () => k.status("acme", "gate").state === "running");
    const killed = rejection(k.call("acme", "gate", { op: "wait" }));
    await waiting(k, 1);
    await k.kill("acme", "gate");
    assert.equal((await killed).reason, "SOLO_ERR_SERVICE_STOPPED");
  });

  it("is answered that the service restarted when an operator restarts it", async () => {
    const k = await gate();
    const held = rejection(k.call("acme", "gate", { op: "wait" }));
    await waiting(k, 1);
    await k.restart("acme", "gate");
    const err = await held;
    assert.equal(err.reason, "SOLO_ERR_SERVICE_STOPPED");
    assert.equal(err.message, "service gate was stopped (restart)");
  });

  it("survives a hot swap: the new code answers calls the old one deferred", async () => {
    const k = await gate();
    const call = k.call("acme", "gate", { op: "wait" });
    await waiting(k, 1);
    await k.swap("acme", "gate", GATE.replace("{ opened: req.v }", "{ opened: req.v, by: 2 }"));
    await k.call("acme", "gate", { op: "open", v: 3 });
    assert.deepEqual(await call, { opened: 3, by: 2 });
  });

  it("counts against the mailbox: past limits.mailbox deferred calls, the next is refused at once", async () => {
    const k = await gate({ mailbox: 3 });
    const held = [1, 2, 3].map(() => k.call("acme", "gate", { op: "wait" }));
    await waiting(k, 3);
    const refused = await rejection(k.call("acme", "gate", { op: "wait" }));
    assert.equal(refused.reason, "SOLO_ERR_MAILBOX_FULL");
    assert.equal(refused.details.resource, "deferred_calls");
    assert.equal(await k.call("acme", "gate", { op: "open", v: 0 }), 4, "the refused one was in the gate's list too");
    assert.equal((await Promise.all(held)).length, 3);
  });

  it("is a wrong result when noreply comes with a reply, and solo.replyError checks its error", async () => {
    const k = await gate();
    const call = k.call("acme", "gate", { op: "wait" });
    await waiting(k, 1);
    assert.match((await k.call("acme", "gate", { op: "bad" })) as string, /solo\.replyError: the error\.code must be a string/);
    await k.call("acme", "gate", { op: "open", v: 5 });
    assert.deepEqual(await call, { opened: 5 });
    const both = await rejection(k.call("acme", "gate", { op: "both" }));
    assert.equal(both.reason, "SOLO_ERR_HANDLER_RESULT_INVALID");
    assert.match(both.message, /returned noreply with a reply/);
  });
});

/** Stops on request, with a last answer of each kind; terminate logs why and the state it had. */
const STOPPER = `export default {
  init() { return { n: 0, waiting: [] } },
  handleCall(req, s, ctx) {
    s.n++;
    switch (req) {
      case "bye": return { reply: "bye", stop: true, state: s };
      case "refuse": return { error: { code: "closing", message: "closing down" }, stop: true, state: s };
      case "quietly": return { stop: true, state: s };
      case "hold": s.waiting.push(ctx.replyTo); return { noreply: true, state: s };
      case "slow": { const t = Date.now(); while (Date.now() - t < 30) {} return { reply: s.n, state: s } }
      case "bad": return { stop: "yes", state: s };
      case "both": return { stop: true, noreply: true, state: s };
      default: return { reply: s.n, state: s };
    }
  },
  handleCast(m, s) { return { stop: true, state: s } },
  terminate(reason, s) { solo.log("terminate", reason, s.n) },
};`;

describe("a normal stop", () => {
  async function stopper(restart: "permanent" | "transient" | "temporary"): Promise<Kernel> {
    const k = await kernels.start(kernels.freshDir());
    await k.deploy({ tenant: "acme", service: "s", code: STOPPER, supervision: { restart, backoffMs: 10 } });
    return k;
  }
  const stoppedEvents = async (k: Kernel) => (await allEvents(k, { tenant: "acme", types: ["service_stopped"] })).map((e) => e.payload);

  it("answers the call that asked, runs terminate('normal'), records it, and leaves a transient service down until restarted", async () => {
    const k = await stopper("transient");
    assert.equal(await k.call("acme", "s", "x"), 1);
    assert.equal(await k.call("acme", "s", "bye"), "bye");
    await until("stopped", () => k.status("acme", "s").state === "stopped");
    assert.deepEqual(
      k.logs("acme", "s").map((l) => l.text),
      ["terminate normal 2"],
    );
    await until("recorded", async () => (await stoppedEvents(k)).length === 1);
    assert.deepEqual(await stoppedEvents(k), [{ version: 1, reason: "normal", restart: "transient" }]);
    const refused = await rejection(k.call("acme", "s", "x"));
    assert.equal(refused.reason, "SOLO_ERR_SERVICE_STOPPED");
    assert.equal(refused.message, "service s stopped normally");
    assert.match(String(refused.details.hint), /restart it, or deploy it again/);
    // Not a crash: nothing crashed, and an operator's restart brings it back from init.
    assert.equal(k.status("acme", "s").crash, undefined);
    await k.restart("acme", "s");
    assert.equal(await k.call("acme", "s", "x"), 1);
  });

  it("restarts a permanent service (as OTP does), and leaves a temporary one down", async () => {
    const permanent = await stopper("permanent");
    assert.equal(await permanent.call("acme", "s", "bye"), "bye");
    await until("restarted", async () => (await allEvents(permanent, { tenant: "acme", types: ["service_restarted"] })).length === 1);
    const [stopped] = await allEvents(permanent, { tenant: "acme", types: ["service_stopped"] });
    const [restarted] = await allEvents(permanent, { tenant: "acme", types: ["service_restarted"] });
    assert.equal(restarted?.causationId, stopped?.id, "the restart is caused by the stop");
    await until("running", () => permanent.status("acme", "s").state === "running");
    assert.equal(await permanent.call("acme", "s", "x"), 1, "from init again");
    const temporary = await stopper("temporary");
    await temporary.call("acme", "s", "bye");
    await until("stopped", () => temporary.status("acme", "s").state === "stopped");
  });

  it("may come with an error answer or none, or from a cast", async () => {
    const k = await stopper("transient");
    const err = await rejection(k.call("acme", "s", "refuse"));
    assert.deepEqual(err.details.answer, { code: "closing", message: "closing down" });
    await until("stopped", () => k.status("acme", "s").state === "stopped");
    await k.restart("acme", "s");
    assert.equal(await k.call("acme", "s", "quietly"), undefined);
    await until("stopped again", () => k.status("acme", "s").state === "stopped");
    await k.restart("acme", "s");
    await k.cast("acme", "s", {});
    await until("stopped by a cast", () => k.status("acme", "s").state === "stopped");
  });

  it("answers what waited in its mailbox, and calls it deferred, that it stopped", async () => {
    const k = await stopper("transient");
    const held = rejection(k.call("acme", "s", "hold"));
    const slow = k.call("acme", "s", "slow");
    const bye = k.call("acme", "s", "bye");
    const behind = rejection(k.call("acme", "s", "x"));
    assert.equal(await slow, 2);
    assert.equal(await bye, "bye");
    for (const err of [await held, await behind]) {
      assert.equal(err.reason, "SOLO_ERR_SERVICE_STOPPED");
      assert.match(err.message, /stopped normally/);
    }
  });

  it("is started again by a kernel restart, as a reboot would, and can be killed while stopped", async () => {
    const dir = kernels.freshDir();
    const k = await kernels.start(dir);
    await k.deploy({ tenant: "acme", service: "s", code: STOPPER, supervision: { restart: "transient" } });
    await k.call("acme", "s", "bye");
    await until("stopped", () => k.status("acme", "s").state === "stopped");
    await k.close();
    const again = await kernels.start(dir);
    assert.equal(again.status("acme", "s").state, "running");
    await again.call("acme", "s", "bye");
    await until("stopped", () => again.status("acme", "s").state === "stopped");
    await again.kill("acme", "s");
    await again.close();
    assert.deepEqual((await kernels.start(dir)).list("acme"), [], "the kill holds: nothing comes back");
  });

  it("is a wrong result from a cast or timer handler when it carries an error or noreply (there is no caller)", async () => {
    const k = await kernels.start(kernels.freshDir());
    for (const [name, result] of [
      ["erring", "{ error: { code: 'x', message: 'y' }, state: s }"],
      ["deferring", "{ noreply: true, state: s }"],
    ] as const) {
      await k.deploy({
        tenant: "acme",
        service: name,
        code: `export default { init() { return 0 }, handleCast(m, s) { return ${result} } }`,
      });
      await k.cast("acme", name, 1);
      await until(`${name} crashed`, () => k.status("acme", name).crash !== undefined);
      const crash = k.status("acme", name).crash;
      assert.equal(crash?.reason, "SOLO_ERR_HANDLER_RESULT_INVALID");
      assert.match(crash?.message ?? "", /handleCast has no caller to answer/);
    }
  });

  it("is a wrong result when stop is not a boolean, or comes with noreply", async () => {
    const k = await stopper("transient");
    const bad = await rejection(k.call("acme", "s", "bad"));
    assert.equal(bad.reason, "SOLO_ERR_HANDLER_RESULT_INVALID");
    assert.match(bad.message, /stop must be true or false/);
    await until("restarted", () => k.status("acme", "s").state === "running");
    const both = await rejection(k.call("acme", "s", "both"));
    assert.match(both.message, /returned stop with noreply/);
  });
});

describe("version numbers", () => {
  it("count deploys that start: one whose init fails gives its number back", async () => {
    const k = await kernels.start(kernels.freshDir());
    const failing = await rejection(
      k.deploy({
        tenant: "acme",
        service: "v",
        code: "export default { init() { throw new Error('no') }, handleCall(r, s) { return { reply: 1, state: s } } }",
      }),
    );
    assert.equal(failing.reason, "SOLO_ERR_DEPLOY_INIT_FAILED");
    assert.equal((await k.deploy({ tenant: "acme", service: "v", code: STOPPER })).version, 1);
    await rejection(
      k.swap("acme", "v", "export default { codeChange() { throw new Error('no') }, handleCall(r, s) { return { reply: 1, state: s } } }"),
    );
    assert.equal((await k.swap("acme", "v", STOPPER)).version, 2);
    assert.deepEqual(
      (await k.versions("acme", "v")).map((v) => v.version),
      [1, 2],
    );
  });
});

describe("the file as deployed", () => {
  const THROWER = `export default {
  init() { return 0 },
  handleCall(req, n) {
    if (req === "boom") throw new Error("boom");
    return { reply: n, state: n };
  },
};`;

  it("is what syntax errors, crashes and recovered crashes name, and a swap may rename it; a rollback brings the old name back", async () => {
    const dir = kernels.freshDir();
    const k = await kernels.start(dir);
    const syntax = await rejection(
      k.deploy({ tenant: "acme", service: "billing", code: "export default {\n  oops(\n}", file: "billing.ts" }),
    );
    assert.match(syntax.message, /at billing\.ts:3:1/);
    await k.deploy({ tenant: "acme", service: "billing", code: THROWER, file: "billing.ts", supervision: { backoffMs: 10 } });
    const crash = await rejection(k.call("acme", "billing", "boom"));
    assert.match(crash.message, /Error: boom at billing\.ts:4:35/);
    await until("restarted", () => k.status("acme", "billing").state === "running");
    await k.close();

    const again = await kernels.start(dir);
    await until("recovered", () => again.status("acme", "billing").state === "running");
    assert.match((await rejection(again.call("acme", "billing", "boom"))).message, /at billing\.ts:4:35/);
    await until("restarted again", () => again.status("acme", "billing").state === "running");
    await again.swap("acme", "billing", `\n${THROWER}`, { file: "billing-v2.ts", rollbackWindowMs: 0 });
    assert.match((await rejection(again.call("acme", "billing", "boom"))).message, /at billing-v2\.ts:5:35/);
    await until("restarted after the swap", () => again.status("acme", "billing").state === "running");
    await again.rollback("acme", "billing", 1);
    assert.match((await rejection(again.call("acme", "billing", "boom"))).message, /at billing\.ts:4:35/);
  });

  it("is refused when it is not a plain file name, and nothing is deployed", async () => {
    const k = await kernels.start(kernels.freshDir());
    for (const file of ["../etc/passwd", "dir/billing.ts", "a b.ts", "", ".hidden", "x".repeat(129), 5]) {
      const err = await rejection(k.deploy({ tenant: "acme", service: "named", code: THROWER, file: file as never }));
      assert.equal(err.reason, "SOLO_ERR_REQUEST_INVALID", String(file));
      assert.equal(err.details.field, "file");
    }
    assert.deepEqual(k.list("acme"), []);
  });
});
