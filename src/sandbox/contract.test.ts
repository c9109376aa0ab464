/**
 * The codec of the QuickJS boundary, both halves together: what a real service's `solo` calls
 * reach the host as, and what a result handed back becomes inside it.
 */
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { DEFAULT_GRANTS } from "../api/grants.ts";
import type { ServiceLimits } from "../api/limits.ts";
import { SoloError } from "../lib/errors/errors.ts";
import { decodeHostRequest, decodeOutcome, failed, type HostRequest, type Outcome, replied } from "./contract.ts";
import { compileEngine, instantiateEngine, type TenantEngine } from "./engine.ts";
import { ServiceSandbox } from "./service.ts";

const MiB = 1024 * 1024;
const LIMITS: ServiceLimits = {
  memoryBytes: 16 * MiB,
  stackBytes: 256 * 1024,
  cpuMsPerMessage: 1000,
  messageBytes: MiB,
  stateBytes: MiB,
  timers: 10,
  storageBytes: MiB,
  storageKeys: 100,
  mailbox: 100,
};

let engine: TenantEngine;
const boxes: ServiceSandbox[] = [];
before(async () => {
  engine = await instantiateEngine(await compileEngine(), 64 * MiB);
});
after(() => {
  for (const b of boxes) b.dispose();
});

/** A sandbox running `handleCall(request, state)` = `body`, whose host records each request and answers `answer(request)`. */
function sandbox(body: string, answer: (req: HostRequest) => string = () => "1"): { box: ServiceSandbox; seen: HostRequest[] } {
  const seen: HostRequest[] = [];
  const box = new ServiceSandbox(
    engine,
    { tenant: "t", service: "s", version: 1, filename: "s.js", limits: LIMITS, grants: DEFAULT_GRANTS },
    (req) => {
      seen.push(req);
      return answer(req);
    },
  );
  boxes.push(box);
  box.load(
    `export default { init() { return null }, async handleCall(request, state) { ${body} }, handleInfo(m, s) { return { state: s } } }`,
  );
  box.begin("init", "");
  box.endMessage();
  return { box, seen };
}

function call(box: ServiceSandbox, request: unknown): Outcome {
  return box.begin("call", JSON.stringify(request));
}

describe("the sandbox's codec", () => {
  describe("host requests", () => {
    it("reach the host as the requests the service made, fields and all", () => {
      const { box, seen } = sandbox(`
        solo.cast("other", { n: request });
        solo.sendAfter(250, "tick");
        solo.cancelTimer(7);
        console.warn("careful", { a: 1 });
        solo.call("other", [1, 2], { timeoutMs: 50 });
        solo.call("other", null);
        return { reply: null, state };`);
      call(box, 3);
      assert.deepEqual(seen, [
        { op: "cast", service: "other", body: '{"n":3}' },
        { op: "timer", delayMs: 250, body: '"tick"' },
        { op: "cancel", id: 7 },
        { op: "log", level: "warn", text: 'careful {"a":1}' },
        { op: "call", service: "other", timeoutMs: 50, body: "[1,2]" },
        { op: "call", service: "other", timeoutMs: undefined, body: "null" },
      ]);
    });

    it("pass a storage request through as the bootstrap framed it, for the control plane to read", () => {
      const { box, seen } = sandbox(`solo.storage.put("k", { v: request }); return { reply: null, state };`);
      call(box, 1);
      assert.deepEqual(seen, [{ op: "kv", arg: 'put\n"k"\n{"v":1}' }]);
    });

    it("refuse an operation the host does not know", () => {
      assert.throws(
        () => decodeHostRequest("exec", "rm -rf"),
        (err: unknown) =>
          err instanceof SoloError && err.reason === "SOLO_ERR_INTERNAL" && /unknown host operation "exec"/.test(err.message),
      );
    });

    it("give the service the host's error as a SoloError it can catch", () => {
      const { box } = sandbox(`try { solo.cast("other", 1) } catch (e) { return { reply: [e.name, e.reason, e.message], state } }`, () => {
        throw new SoloError("SOLO_ERR_SERVICE_NOT_FOUND", "no such service");
      });
      assert.deepEqual(call(box, null), { t: "reply", json: '["SoloError","SOLO_ERR_SERVICE_NOT_FOUND","no such service"]' });
    });
  });

  describe("results", () => {
    const AWAITS = `try { return { reply: await solo.call("other", request), state } } catch (e) { return { reply: { reason: e.reason, code: e.code }, state } }`;

    it("resume an awaiting message with the value", () => {
      const { box } = sandbox(AWAITS, () => "c1");
      assert.deepEqual(call(box, null), { t: "pending" });
      assert.deepEqual(box.resume("c1", replied('{"answer":42}')), { t: "reply", json: '{"answer":42}' });
    });

    it("resume an awaiting message with the error, thrown where it awaits", () => {
      const { box } = sandbox(AWAITS, () => "c1");
      call(box, null);
      const error = new SoloError("SOLO_ERR_CALL_TIMEOUT", "too slow").toData();
      assert.deepEqual(box.resume("c1", failed(error)), {
        t: "reply",
        json: '{"reason":"SOLO_ERR_CALL_TIMEOUT","code":"deadline_exceeded"}',
      });
    });
  });

  describe("decodeOutcome()", () => {
    it("reads each outcome the dispatcher makes, and calls anything else unreadable", () => {
      assert.deepEqual(decodeOutcome('R{"a":1}'), { t: "reply", json: '{"a":1}' });
      assert.deepEqual(decodeOutcome("S"), { t: "done" });
      assert.deepEqual(decodeOutcome("M"), { t: "missing" });
      assert.deepEqual(decodeOutcome("P"), { t: "pending" });
      assert.deepEqual(
        decodeOutcome('E{"kind":"value","name":"Error","message":"too deep","reason":"SOLO_ERR_VALUE_TOO_DEEP","path":"$.a"}'),
        {
          t: "threw",
          error: { kind: "value", name: "Error", message: "too deep", stack: "", reason: "SOLO_ERR_VALUE_TOO_DEEP", path: "$.a" },
        },
      );
      assert.deepEqual(decodeOutcome("E{not json"), {
        t: "threw",
        error: { kind: "exception", name: "Error", message: "the service reported an unreadable error" },
      });
      assert.deepEqual(decodeOutcome(""), { t: "unreadable" });
      assert.deepEqual(decodeOutcome("\u0000garbage"), { t: "unreadable" });
    });
  });
});
