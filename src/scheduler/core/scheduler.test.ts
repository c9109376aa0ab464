/**
 * The scheduler in the test's own thread: real QuickJS sandboxes in real tenant instances, driven
 * through the same protocol messages the control plane sends a scheduler thread, with no thread,
 * no pool and no kernel in between.
 */
import assert from "node:assert/strict";
import { afterEach, before, describe, it } from "node:test";
import { rejection } from "../../../test/support/helpers.ts";
import { MiB, SchedulerHarness, TENANT_MEMORY } from "../../../test/support/scheduler.ts";
import { type ErrorData, SoloError } from "../../lib/errors/errors.ts";
import { failed, replied } from "../../sandbox/contract.ts";
import { compileEngine, type EngineImage } from "../../sandbox/engine.ts";

const COUNTER = `export default {
  init(start) { return start ?? 0 },
  handleCall(by, n) { return { reply: n + by, state: n + by } },
  handleCast(by, n) { return { state: n + by } },
}`;

let engine: EngineImage;
let h: SchedulerHarness;
before(async () => {
  engine = await compileEngine();
});
const fresh = (): SchedulerHarness => {
  h = new SchedulerHarness(engine);
  return h;
};
afterEach(async () => {
  await h.close();
});

describe("Scheduler (in the calling thread)", () => {
  describe("deploy", () => {
    it("runs init with the deploy's args and answers with the handlers the module defines", async () => {
      fresh();
      const { sid, handlers } = await h.deploy("counter", COUNTER, { args: 40 });
      assert.deepEqual([...handlers].sort(), ["handleCall", "handleCast", "init"]);
      assert.equal(await h.call(sid, 2), 42);
    });

    it("refuses a second deploy of a running service, which keeps running", async () => {
      fresh();
      const { sid } = await h.deploy("counter", COUNTER);
      const err = await rejection(h.deploy("counter", COUNTER));
      assert.equal(err.reason, "SOLO_ERR_DEPLOY_EXISTS");
      assert.equal(await h.call(sid, 1), 1);
    });

    it("fails a module that does not parse, at its line, and leaves nothing running", async () => {
      fresh();
      const err = await rejection(h.deploy("broken", "export default {\n  init() { return 0 ,\n}"));
      assert.equal(err.reason, "SOLO_ERR_DEPLOY_SYNTAX");
      assert.equal(err.details.line, 3);
      const gone = await rejection(h.call(1, null));
      assert.equal(gone.reason, "SOLO_ERR_SERVICE_CRASHED");
    });

    it("fails a deploy whose init throws, with the crash, and does not report it as a crashed service", async () => {
      fresh();
      const err = await rejection(
        h.deploy("bad", "export default { init() { throw new Error('no config') }, handleCast(m, s) { return { state: s } } }"),
      );
      assert.equal(err.reason, "SOLO_ERR_DEPLOY_INIT_FAILED");
      assert.match(err.message, /no config/);
      assert.equal((err.details.crash as { kind: string }).kind, "exception");
      assert.equal(
        h.reported.some((m) => m.op === "status"),
        false,
      );
    });

    it("starts from a captured state instead of init (a rollback), its pending timers armed again under their ids", async () => {
      fresh();
      const code = `export default {
        init() { throw new Error("init must not run") },
        handleCall(req, s) { return req === "cancel" ? { reply: solo.cancelTimer(7), state: s } : { reply: s, state: s } },
        handleInfo(msg, s) { return { state: { ...s, got: msg } } },
      }`;
      const { sid } = await h.deploy("resumed", code, {
        state: JSON.stringify({ n: 5 }),
        timers: [
          [7, Date.now() + 60_000, JSON.stringify("late")],
          [8, Date.now(), JSON.stringify("due")],
        ],
      });
      assert.deepEqual(await h.call(sid, "cancel"), true);
      await new Promise((r) => setTimeout(r, 20));
      assert.deepEqual(await h.call(sid, "state"), { n: 5, got: "due" });
    });
  });

  describe("call", () => {
    it("keeps the state from one message to the next, casts included, in the order they were sent", async () => {
      fresh();
      const { sid } = await h.deploy("counter", COUNTER);
      h.cast(sid, 1, 2, 3);
      assert.equal(await h.call(sid, 10), 16);
    });

    it("answers SOLO_ERR_HANDLER_MISSING for a service without handleCall, which keeps running", async () => {
      fresh();
      const { sid } = await h.deploy("sink", "export default { handleCast(m, s) { return { state: s } } }");
      const err = await rejection(h.call(sid, null));
      assert.equal(err.reason, "SOLO_ERR_HANDLER_MISSING");
      h.cast(sid, "still here");
      await h.next("taken");
    });

    it("lets a service call another service of its tenant that its grant names", async () => {
      fresh();
      await h.deploy("counter", COUNTER);
      const { sid } = await h.deploy(
        "front",
        "export default { async handleCall(n, s) { return { reply: await solo.call('counter', n), state: s } } }",
        { grants: { call: ["counter"] } },
      );
      assert.equal(await h.call(sid, 3), 3);
      assert.equal(await h.call(sid, 4), 7);
    });

    it("refuses a call to a service the grant does not name, and reports the denial to the control plane", async () => {
      fresh();
      await h.deploy("counter", COUNTER);
      const { sid } = await h.deploy(
        "front",
        "export default { async handleCall(n, s) { try { await solo.call('counter', n) } catch (e) { return { reply: e.reason, state: s } } } }",
      );
      assert.equal(await h.call(sid, 1), "SOLO_ERR_GRANT_MISSING");
      const denied = await h.next("denied");
      assert.deepEqual({ grant: denied.grant, detail: denied.detail, sid: denied.sid }, { grant: "call", detail: "counter", sid });
    });

    it("refuses a call that would close a cycle of services waiting on each other", async () => {
      fresh();
      const ping = (to: string): string =>
        `export default { async handleCall(n, s) { try { return { reply: n > 0 ? await solo.call('${to}', n - 1) : "bottom", state: s } } catch (e) { return { reply: e.reason, state: s } } } }`;
      const { sid } = await h.deploy("a", ping("b"), { grants: { call: ["b"] } });
      await h.deploy("b", ping("a"), { grants: { call: ["a"] } });
      assert.equal(await h.call(sid, 1), "bottom");
      assert.equal(await h.call(sid, 2), "SOLO_ERR_CALL_DEADLOCK");
    });

    it("does not start a call whose caller gave up before its turn", async () => {
      fresh();
      const { sid } = await h.deploy("counter", COUNTER);
      void h.call(sid, 100, Date.now() - 1);
      assert.equal(await h.call(sid, 1), 1);
    });
  });

  describe("timers and logs", () => {
    it("delivers a timer's message to handleInfo, and a cancelled timer never", async () => {
      fresh();
      const { sid } = await h.deploy(
        "alarm",
        `export default {
          init() { return [] },
          handleCall(r, s) { if (r === "arm") { solo.cancelTimer(solo.sendAfter(0, "cancelled")); solo.sendAfter(0, "rang") } return { reply: s, state: s } },
          handleInfo(m, s) { return { state: [...s, m] } },
        }`,
      );
      await h.call(sid, "arm");
      await new Promise((r) => setTimeout(r, 20));
      assert.deepEqual(await h.call(sid, "read"), ["rang"]);
    });

    it("sends a service's log lines to the control plane, dropping those over the grant's rate", async () => {
      fresh();
      const { sid } = await h.deploy(
        "chatty",
        "export default { handleCall(r, s) { console.warn('one'); solo.log('two'); solo.error('three'); return { reply: null, state: s } } }",
        { grants: { logPerSecond: 2 } },
      );
      await h.call(sid, null);
      const lines = h.reported.filter((m) => m.op === "log").map((m) => [m.level, m.text]);
      assert.deepEqual(lines, [
        ["warn", "one"],
        ["info", "two"],
      ]);
    });
  });

  describe("crash", () => {
    it("crashes a service whose handler throws: its caller gets the crash, the control plane a status, later calls are refused", async () => {
      fresh();
      const { sid } = await h.deploy(
        "fragile",
        "export default {\n  init() { return 0 },\n  handleCall() {\n    throw new TypeError('bad input')\n  },\n}",
      );
      const err = await rejection(h.call(sid, null));
      assert.equal(err.reason, "SOLO_ERR_HANDLER_THREW");
      const crash = err.details.crash as { kind: string; line: number };
      assert.equal(crash.kind, "exception");
      assert.equal(crash.line, 4);
      const status = await h.next("status", (m) => m.sid === sid);
      assert.equal(status.status, "crashed");
      assert.equal(status.crash?.reason, "SOLO_ERR_HANDLER_THREW");
      const after = await rejection(h.call(sid, null));
      assert.equal(after.reason, "SOLO_ERR_SERVICE_CRASHED");
    });

    it("rejects the calls waiting in a crashed service's mailbox, naming the crash", async () => {
      fresh();
      const { sid } = await h.deploy(
        "fragile",
        "export default { handleCall(req, s) { if (req === 'boom') throw new Error('boom'); return { reply: req, state: s } } }",
      );
      const [first, queued] = h.calls(sid, ["boom", "after"]);
      assert.equal((await rejection(first)).reason, "SOLO_ERR_HANDLER_THREW");
      const err = await rejection(queued);
      assert.equal(err.reason, "SOLO_ERR_SERVICE_CRASHED");
      assert.match(err.message, /it crashed: .*boom/);
    });

    it("crashes a service whose async handler awaits something that can never settle", async () => {
      fresh();
      const { sid } = await h.deploy(
        "stuck",
        "export default { async handleCall(r, s) { await new Promise(() => {}); return { reply: 1, state: s } } }",
      );
      const err = await rejection(h.call(sid, null));
      assert.equal(err.reason, "SOLO_ERR_HANDLER_UNSETTLED");
    });
  });

  describe("limits", () => {
    it("stops a message past its CPU budget, crashing only its service", async () => {
      fresh();
      const { sid: counter } = await h.deploy("counter", COUNTER);
      const { sid } = await h.deploy("spin", "export default { handleCall() { for (;;) {} } }", { limits: { cpuMsPerMessage: 20 } });
      const err = await rejection(h.call(sid, null));
      assert.equal(err.reason, "SOLO_ERR_LIMIT_CPU");
      assert.equal((err.details.crash as { kind: string }).kind, "cpu_limit");
      assert.equal(await h.call(counter, 1), 1);
    });

    it("stops a service that passes its memory limit", async () => {
      fresh();
      const { sid } = await h.deploy(
        "hog",
        "export default { handleCall(r, s) { const a = []; for (;;) a.push('x'.repeat(4096) + a.length) } }",
        {
          limits: { memoryBytes: 2 * MiB, cpuMsPerMessage: 5000 },
        },
      );
      const err = await rejection(h.call(sid, null));
      assert.equal(err.reason, "SOLO_ERR_LIMIT_MEMORY");
      assert.equal((err.details.crash as { kind: string }).kind, "memory_limit");
    });

    it("refuses a call when the mailbox is full, and drops (and counts) a cast", async () => {
      fresh();
      const { sid } = await h.deploy("counter", COUNTER, { limits: { mailbox: 1 } });
      const [first, second] = h.calls(sid, [1, 1]); // one batch: the first still waits in the mailbox
      assert.equal(await first, 1);
      const err = await rejection(second);
      assert.equal(err.reason, "SOLO_ERR_MAILBOX_FULL");
      assert.equal(err.details.limit, 1);
      const [, dropped] = h.cast(sid, 5, 6);
      await h.next("taken", (m) => m.cids.includes(dropped as number));
      assert.equal(await h.call(sid, 0), 6, "the first cast ran, the second did not");
      h.scheduler.sampleUsage();
      const usage = await h.next("usage", (m) => m.samples.some((s) => s[0] === sid));
      const sample = usage.samples.find((s) => s[0] === sid);
      assert.equal(sample?.[6], 1, "one cast dropped");
    });

    it("crashes a service whose reply is larger than its message limit", async () => {
      fresh();
      const { sid } = await h.deploy("big", "export default { handleCall(r, s) { return { reply: 'x'.repeat(4096), state: s } } }", {
        limits: { messageBytes: 1024 },
      });
      const err = await rejection(h.call(sid, null));
      assert.equal(err.reason, "SOLO_ERR_VALUE_TOO_LARGE");
    });

    it("refuses a timer beyond the service's limit on pending timers", async () => {
      fresh();
      const { sid } = await h.deploy(
        "timers",
        `export default {
          handleCall(n, s) { try { for (let i = 0; i < n; i++) solo.sendAfter(60000, i); return { reply: "ok", state: s } } catch (e) { return { reply: e.reason, state: s } } },
          handleInfo(m, s) { return { state: s } },
        }`,
        { limits: { timers: 2 } },
      );
      assert.equal(await h.call(sid, 2), "ok");
      assert.equal(await h.call(sid, 1), "SOLO_ERR_LIMIT_TIMERS");
    });
  });

  describe("swap", () => {
    const V1 = "export default { init() { return 1 }, handleCall(r, s) { return { reply: ['v1', s], state: s } } }";

    it("moves the state to the new version through its codeChange, between two messages", async () => {
      fresh();
      const { sid } = await h.deploy("svc", V1);
      const before = h.call(sid, null);
      const swapped = h.swap(
        sid,
        "export default { codeChange(from, s) { return { was: s, from } }, handleCall(r, s) { return { reply: ['v2', s], state: s } } }",
        2,
        1,
      );
      const afterSwap = h.call(sid, null);
      assert.deepEqual(await before, ["v1", 1]);
      const reply = await swapped;
      assert.equal(reply.state, "1");
      assert.deepEqual([...reply.handlers].sort(), ["codeChange", "handleCall"]);
      assert.deepEqual(await afterSwap, ["v2", { was: 1, from: 1 }]);
    });

    it("leaves the old version running, untouched, when the new version's codeChange throws", async () => {
      fresh();
      const { sid } = await h.deploy("svc", V1);
      const err = await rejection(
        h.swap(
          sid,
          "export default { codeChange() { throw new Error('nope') }, handleCall(r, s) { return { reply: 'v2', state: s } } }",
          2,
          1,
        ),
      );
      assert.equal(err.reason, "SOLO_ERR_SWAP_FAILED");
      assert.equal(err.details.phase, "codeChange");
      assert.deepEqual(await h.call(sid, null), ["v1", 1]);
    });

    it("refuses to swap a service that is not running", async () => {
      fresh();
      const { sid } = await h.deploy("svc", V1);
      await h.kill(sid);
      const err = await rejection(h.swap(sid, V1, 2, 1));
      assert.equal(err.reason, "SOLO_ERR_SERVICE_STOPPED");
    });
  });

  describe("kill", () => {
    it("runs terminate with the reason, stops the service and reports a failing terminate as a warning", async () => {
      fresh();
      const { sid } = await h.deploy(
        "svc",
        "export default { init() { return 0 }, handleCast(m, s) { return { state: s } }, terminate(reason) { throw new Error('bye: ' + reason) } }",
      );
      assert.equal(await h.kill(sid), "");
      const log = await h.next("log", (m) => m.sid === sid);
      assert.equal(log.level, "warn");
      assert.match(log.text, /terminate failed: .*bye: killed/);
      const err = await rejection(h.call(sid, null));
      assert.equal(err.reason, "SOLO_ERR_SERVICE_STOPPED");
    });

    it("stops a message in progress when the control plane asks on the board, and answers its caller", async () => {
      fresh();
      const { sid } = await h.deploy("spin", "export default { handleCall() { for (;;) {} } }", { limits: { cpuMsPerMessage: 60_000 } });
      h.board.requestStop(sid);
      const err = await rejection(h.call(sid, null));
      assert.equal(err.reason, "SOLO_ERR_SERVICE_STOPPED");
      assert.match(err.message, /while it handled this message/);
    });

    it("answers a kill of a service it does not have", async () => {
      fresh();
      assert.equal(await h.kill(99), "");
    });
  });

  describe("io", () => {
    const STORE = `export default {
      async handleCall(r, s) {
        try { await solo.storage.put("k", r); return { reply: "stored", state: s } }
        catch (e) { return { reply: e.reason, state: s } }
      },
    }`;

    it("sends a storage request to the control plane and resumes the message with its answer", async () => {
      fresh();
      const { sid } = await h.deploy("store", STORE);
      const reply = h.call(sid, { a: 1 });
      const io = await h.next("io");
      assert.deepEqual({ sid: io.sid, kind: io.kind }, { sid, kind: "kv" });
      assert.match(io.arg, /^put\n"k"\n/);
      h.send({ op: "io", sid, cid: io.cid, outcome: replied("null") });
      assert.equal(await reply, "stored");
    });

    it("throws the control plane's error inside the service", async () => {
      fresh();
      const { sid } = await h.deploy("store", STORE);
      const reply = h.call(sid, 1);
      const io = await h.next("io");
      const error: ErrorData = new SoloError("SOLO_ERR_STORAGE_QUOTA", "full").toData();
      h.send({ op: "io", sid, cid: io.cid, outcome: failed(error) });
      assert.equal(await reply, "SOLO_ERR_STORAGE_QUOTA");
    });

    it("refuses storage to a service deployed without the grant, without asking the control plane", async () => {
      fresh();
      const { sid } = await h.deploy("store", STORE, { grants: { storage: false } });
      assert.equal(await h.call(sid, 1), "SOLO_ERR_GRANT_MISSING");
      assert.equal(
        h.reported.some((m) => m.op === "io"),
        false,
      );
    });
  });

  describe("usage and holds", () => {
    it("reports each service's messages and mailbox, and its tenant's instance", async () => {
      fresh();
      const { sid } = await h.deploy("counter", COUNTER, { tenant: "metered" });
      await h.call(sid, 1);
      await h.call(sid, 1);
      h.scheduler.sampleUsage();
      const usage = await h.next("usage", (m) => m.samples.some((s) => s[0] === sid));
      const [, messages, , memory, mailbox] = usage.samples.find((s) => s[0] === sid) ?? [];
      assert.equal(messages, 3, "init and two calls");
      assert.ok((memory ?? 0) > 0);
      assert.equal(mailbox, 0);
      const tenant = usage.tenants.find(([name]) => name === "metered");
      assert.ok(tenant && tenant[1] > 0 && tenant[2] >= TENANT_MEMORY, "its linear memory and maximum");
    });

    it("moves a tenant's services to a fresh instance when its memory limit changes, their states intact", async () => {
      fresh();
      const { sid } = await h.deploy("counter", COUNTER);
      assert.equal(await h.call(sid, 5), 5);
      h.send({ op: "tenantMemory", tenant: "acme", memoryBytes: 2 * TENANT_MEMORY });
      const sampling = setInterval(() => h.scheduler.sampleUsage(), 10);
      try {
        await h.next("usage", (m) => m.tenants.some(([name, , cap]) => name === "acme" && cap >= 2 * TENANT_MEMORY));
      } finally {
        clearInterval(sampling);
      }
      assert.equal(await h.call(sid, 1), 6);
    });

    it("holds a tenant's messages while it cools down, then runs them", async () => {
      fresh();
      const { sid } = await h.deploy("counter", COUNTER);
      h.send({ op: "hold", tenant: "acme", ms: 300 });
      let answered = false;
      const reply = h.call(sid, 1).then((v) => {
        answered = true;
        return v;
      });
      await new Promise((r) => setTimeout(r, 50));
      assert.equal(answered, false);
      assert.equal(await reply, 1);
    });
  });

  describe("shutdown", () => {
    it("stops every service and rejects what waits on them", async () => {
      fresh();
      const { sid } = await h.deploy(
        "store",
        "export default { async handleCall(r, s) { await solo.storage.get('k'); return { reply: 1, state: s } } }",
      );
      const waiting = h.call(sid, null);
      await h.next("io");
      await h.close();
      const err = await rejection(waiting);
      assert.equal(err.reason, "SOLO_ERR_SERVICE_STOPPED");
      assert.match(err.message, /shutdown/);
    });
  });
});
