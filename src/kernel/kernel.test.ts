import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { rejection } from "../../test/support/helpers.ts";
import { type Kernel, openKernel, SoloError } from "../index.ts";

const COUNTER = `export default {
  init(args) { return { count: args?.start ?? 0 } },
  handleCall(req, state) {
    if (req === "get") return { reply: state.count, state };
    state.count += 1;
    return { reply: state.count, state };
  },
  handleCast(by, state) { state.count += by; return { state } },
}`;

let kernel: Kernel;
let dir: string;

before(async () => {
  dir = mkdtempSync(join(tmpdir(), "solo-test-"));
  // Crashes here stay crashed; restarts are the supervisor tests' subject.
  // Dozens of small tenants: each at the engine's minimum, so they fit a small machine's budget.
  kernel = await openKernel({
    dataDir: dir,
    schedulers: 2,
    supervision: { restart: "temporary" },
    tenantLimits: { memoryBytes: 16 * 1024 * 1024 },
  });
});

after(async () => {
  await kernel.close();
  rmSync(dir, { recursive: true, force: true });
});

describe("Kernel", () => {
  describe("deploy()", () => {
    it("starts a service, runs init with its args and answers calls with the state it keeps", async () => {
      assert.deepEqual(await kernel.deploy({ tenant: "acme", service: "counter", code: COUNTER, args: { start: 41 } }), {
        tenant: "acme",
        service: "counter",
        version: 1,
        findings: [],
      });
      assert.equal(await kernel.call("acme", "counter", "inc"), 42);
      assert.equal(await kernel.call("acme", "counter", "inc"), 43);
    });

    it("runs a TypeScript service with its types stripped", async () => {
      const code = `interface State { n: number }
export default {
  init(): State { return { n: 1 } },
  handleCall(req: { add: number }, state: State): { reply: number; state: State } {
    state.n += req.add;
    return { reply: state.n, state };
  },
};`;
      await kernel.deploy({ tenant: "acme", service: "typed", code });
      assert.equal(await kernel.call("acme", "typed", { add: 4 }), 5);
    });

    it("reports a JavaScript syntax error with the author's line and column", async () => {
      const err = await rejection(
        kernel.deploy({ tenant: "acme", service: "broken", code: "export default {\n  handleCall() {\n    return )\n  }\n}" }),
      );
      assert.equal(err.code, "invalid_argument");
      assert.equal(err.reason, "SOLO_ERR_DEPLOY_SYNTAX");
      assert.equal(err.details.line, 3);
      assert.equal(typeof err.details.column, "number");
      assert.equal(
        kernel.list("acme").find((s) => s.service === "broken"),
        undefined,
      );
    });

    it("reports a TypeScript syntax error with line and column", async () => {
      const err = await rejection(
        kernel.deploy({
          tenant: "acme",
          service: "broken-ts",
          code: "const a = 1;\nconst x: number = ;\nexport default { handleCall() {} }",
        }),
      );
      assert.equal(err.reason, "SOLO_ERR_DEPLOY_SYNTAX");
      assert.deepEqual([err.details.line, err.details.column], [2, 19]);
    });

    it("gives every syntax error a line and column: an enum where it starts, an unfinished module at its end", async () => {
      const enumErr = await rejection(
        kernel.deploy({
          tenant: "acme",
          service: "enum2",
          code: "const a = 1;\n  enum A { B }\nexport default { handleCall(r, s) { return { reply: 1, state: s } } }",
        }),
      );
      assert.equal(enumErr.reason, "SOLO_ERR_DEPLOY_TYPESCRIPT_UNSUPPORTED");
      assert.deepEqual([enumErr.details.line, enumErr.details.column], [2, 3]);
      assert.match(enumErr.message, /at enum2\.ts:2:3$/);
      const unfinished = await rejection(
        kernel.deploy({ tenant: "acme", service: "eof", code: "export default {\n  handleCall(r, s) { return { reply: 1, state: s } }" }),
      );
      assert.equal(unfinished.reason, "SOLO_ERR_DEPLOY_SYNTAX");
      assert.deepEqual([unfinished.details.line, unfinished.details.column], [2, 53], "just after the last character");
    });

    it("refuses TypeScript that needs transforming, with a hint", async () => {
      const err = await rejection(
        kernel.deploy({
          tenant: "acme",
          service: "enum",
          code: "enum A { B }\nexport default { handleCall(r, s) { return { reply: 1, state: s } } }",
        }),
      );
      assert.equal(err.reason, "SOLO_ERR_DEPLOY_TYPESCRIPT_UNSUPPORTED");
      assert.match(String(err.details.hint), /as const/);
    });

    it("refuses a module without a handler object, with the analyzer's finding", async () => {
      for (const code of ["export default 42;", "export default { init() { return 1 } }", "export default { handleCall: 3 }"]) {
        const err = await rejection(kernel.deploy({ tenant: "acme", service: "shapeless", code }));
        assert.equal(err.reason, "SOLO_ERR_DEPLOY_REJECTED", code);
        const findings = err.details.findings ?? [];
        assert.ok(
          findings.some((f) => f.rule === "default-export" && f.severity === "error" && f.line === 1),
          code,
        );
      }
      assert.equal(
        kernel.list("acme").find((s) => s.service === "shapeless"),
        undefined,
      );
    });

    it("refuses a module without a default export", async () => {
      const err = await rejection(kernel.deploy({ tenant: "acme", service: "nodefault", code: "export const x = 1;" }));
      assert.equal(err.reason, "SOLO_ERR_DEPLOY_REJECTED");
      assert.match(err.message, /default export/);
    });

    it("refuses a second deploy of a running service", async () => {
      await kernel.deploy({ tenant: "dup", service: "svc", code: COUNTER });
      const err = await rejection(kernel.deploy({ tenant: "dup", service: "svc", code: COUNTER }));
      assert.equal(err.code, "already_exists");
      assert.equal(err.reason, "SOLO_ERR_DEPLOY_EXISTS");
      assert.equal(await kernel.call("dup", "svc", "get"), 0);
    });

    it("rejects malformed, oversized and hostile deploy requests precisely and deploys nothing", async () => {
      const cases: Array<[unknown, string, string?]> = [
        [null, "SOLO_ERR_REQUEST_INVALID"],
        ["code", "SOLO_ERR_REQUEST_INVALID"],
        [{ tenant: "acme", service: "x", code: COUNTER, extra: 1 }, "SOLO_ERR_REQUEST_INVALID", "extra"],
        [{ tenant: "Acme", service: "x", code: COUNTER }, "SOLO_ERR_NAME_INVALID", "tenant"],
        [{ tenant: "acme", service: "../etc", code: COUNTER }, "SOLO_ERR_NAME_INVALID", "service"],
        [{ tenant: "acme", service: "a".repeat(64), code: COUNTER }, "SOLO_ERR_NAME_INVALID", "service"],
        [{ tenant: "acme", service: "x\u0000", code: COUNTER }, "SOLO_ERR_NAME_INVALID", "service"],
        [{ tenant: "acme", service: "x", code: 42 }, "SOLO_ERR_REQUEST_INVALID", "code"],
        [{ tenant: "acme", service: "x", code: "   " }, "SOLO_ERR_REQUEST_INVALID", "code"],
        [{ tenant: "acme", service: "x", code: `${COUNTER}//${"x".repeat(1024 * 1024)}` }, "SOLO_ERR_DEPLOY_CODE_TOO_LARGE", "code"],
        [{ tenant: "acme", service: "x", code: COUNTER, args: () => 1 }, "SOLO_ERR_VALUE_NOT_JSON"],
        [
          { tenant: "acme", service: "x", code: COUNTER, limits: { cpuMsPerMessage: -1 } },
          "SOLO_ERR_LIMITS_INVALID",
          "limits.cpuMsPerMessage",
        ],
      ];
      for (const [spec, reason, field] of cases) {
        const err = await rejection(kernel.deploy(spec as never));
        assert.equal(err.reason, reason, JSON.stringify(spec)?.slice(0, 80));
        if (field) assert.equal(err.details.field, field);
      }
      assert.equal(
        kernel.list("acme").find((s) => s.service === "x"),
        undefined,
      );
    });
  });

  describe("call()", () => {
    it("handles concurrent calls one at a time, in the order they were sent", async () => {
      await kernel.deploy({
        tenant: "order",
        service: "log",
        code: `export default {
  init() { return [] },
  handleCall(n, seen) { seen.push(n); return { reply: seen.length, state: seen } },
}`,
      });
      const replies = await Promise.all(Array.from({ length: 200 }, (_, i) => kernel.call("order", "log", i)));
      assert.deepEqual(
        replies,
        Array.from({ length: 200 }, (_, i) => i + 1),
      );
    });

    it("drives async handlers to completion and keeps one message at a time", async () => {
      await kernel.deploy({
        tenant: "async",
        service: "slow",
        code: `export default {
  init() { return { n: 0 } },
  async handleCall(req, state) {
    const before = state.n;
    await null; await Promise.resolve();
    state.n = before + 1;
    return { reply: state.n, state };
  },
}`,
      });
      const replies = await Promise.all(Array.from({ length: 20 }, () => kernel.call("async", "slow")));
      assert.deepEqual(
        replies.sort((a, b) => Number(a) - Number(b)),
        Array.from({ length: 20 }, (_, i) => i + 1),
      );
    });

    it("answers not_found for a missing service and for another tenant's service alike", async () => {
      await kernel.deploy({ tenant: "alice", service: "secret", code: COUNTER });
      const missing = await rejection(kernel.call("bob", "nothing"));
      const foreign = await rejection(kernel.call("bob", "secret"));
      assert.equal(missing.reason, "SOLO_ERR_SERVICE_NOT_FOUND");
      assert.equal(foreign.reason, "SOLO_ERR_SERVICE_NOT_FOUND");
      assert.equal(foreign.code, "not_found");
      await kernel.tenants.create("bob");
      assert.deepEqual(kernel.list("bob"), [], "a tenant with no services lists none, and never another tenant's");
    });

    it("times out with deadline_exceeded and then keeps serving", async () => {
      // The handler spins for 60 ms of its 100 ms budget, so a 5 ms timeout always fires first.
      await kernel.deploy({
        tenant: "timeout",
        service: "slow",
        code: `export default {
  init() { return 0 },
  handleCall(req, n) { if (req === "slow") { const end = Date.now() + 60; while (Date.now() < end) {} } return { reply: n + 1, state: n + 1 } },
}`,
      });
      const err = await rejection(kernel.call("timeout", "slow", "slow", { timeoutMs: 5 }));
      assert.equal(err.code, "deadline_exceeded");
      assert.equal(err.reason, "SOLO_ERR_CALL_TIMEOUT");
      // Like gen_server, a message that started before its caller gave up still runs; one that
      // had not started by its deadline is dropped. Either way the service goes on serving.
      const next = Number(await kernel.call("timeout", "slow", "fast"));
      assert.ok(next === 1 || next === 2, String(next));
      assert.equal(await kernel.call("timeout", "slow", "fast"), next + 1);
      assert.equal(kernel.list("timeout")[0]?.state, "running");
    });

    it("rejects with canceled when its AbortSignal fires", async () => {
      await kernel.deploy({ tenant: "abort", service: "svc", code: COUNTER });
      const controller = new AbortController();
      controller.abort();
      const err = await rejection(kernel.call("abort", "svc", null, { signal: controller.signal }));
      assert.equal(err.code, "canceled");
    });

    it("rejects bad options and non-JSON requests before anything reaches the service", async () => {
      await kernel.deploy({ tenant: "badreq", service: "svc", code: COUNTER });
      assert.equal((await rejection(kernel.call("badreq", "svc", null, { timeoutMs: 0 }))).reason, "SOLO_ERR_REQUEST_INVALID");
      const cyclic: Record<string, unknown> = {};
      cyclic.self = cyclic;
      const notJson = await rejection(kernel.call("badreq", "svc", cyclic));
      assert.equal(notJson.reason, "SOLO_ERR_VALUE_NOT_JSON");
      assert.equal(notJson.details.path, "$.self");
      assert.equal((await rejection(kernel.call("badreq", "svc", { n: Number.NaN }))).reason, "SOLO_ERR_VALUE_NOT_JSON");
      assert.equal((await rejection(kernel.call("badreq", "svc", "x".repeat(2 * 1024 * 1024)))).reason, "SOLO_ERR_VALUE_TOO_LARGE");
      assert.equal(await kernel.call("badreq", "svc", "get"), 0);
    });

    it("tells the caller when the service has no handleCall, without crashing it", async () => {
      await kernel.deploy({ tenant: "castonly", service: "sink", code: "export default { handleCast(m, s) { return { state: s } } }" });
      const err = await rejection(kernel.call("castonly", "sink"));
      assert.equal(err.code, "unimplemented");
      assert.equal(kernel.list("castonly")[0]?.state, "running");
    });
  });

  describe("cast()", () => {
    it("delivers messages in order before later calls", async () => {
      await kernel.deploy({ tenant: "cast", service: "counter", code: COUNTER });
      for (let i = 0; i < 10; i++) await kernel.cast("cast", "counter", 2);
      assert.equal(await kernel.call("cast", "counter", "get"), 20);
    });
  });

  describe("crashes", () => {
    it("rejects the failing call with the crash, every queued call at once, and shows crashed in list()", async () => {
      await kernel.deploy({
        tenant: "crash",
        service: "bomb",
        code: `export default {
  handleCall(req, state) {
    if (req === "boom") throw new Error("kaboom");
    return { reply: req, state };
  },
}`,
      });
      const [first, queued] = await Promise.allSettled([kernel.call("crash", "bomb", "boom"), kernel.call("crash", "bomb", "after")]);
      assert.equal(first.status, "rejected");
      const e1 = (first as PromiseRejectedResult).reason as SoloError;
      assert.equal(e1.reason, "SOLO_ERR_HANDLER_THREW");
      assert.deepEqual([(e1.details.crash as { line: number }).line], [3]);
      const e2 = (queued as PromiseRejectedResult).reason as SoloError;
      assert.equal(e2.code, "unavailable");
      const info = kernel.list("crash")[0];
      assert.equal(info?.state, "crashed");
      assert.equal(info?.crash?.kind, "exception");
      assert.equal((await rejection(kernel.call("crash", "bomb", "x"))).reason, "SOLO_ERR_SERVICE_CRASHED");
    });

    it("reports a handler result of the wrong shape precisely", async () => {
      await kernel.deploy({ tenant: "shape", service: "svc", code: "export default { handleCall(req, state) { return req } }" });
      const err = await rejection(kernel.call("shape", "svc", 5));
      assert.equal(err.reason, "SOLO_ERR_HANDLER_RESULT_INVALID");
      assert.match(err.message, /\{ reply, state \}/);
    });

    it("can be deployed again after a crash, as a new version", async () => {
      await kernel.deploy({ tenant: "again", service: "svc", code: "export default { handleCall() { throw new Error('x') } }" });
      await rejection(kernel.call("again", "svc"));
      assert.deepEqual(await kernel.deploy({ tenant: "again", service: "svc", code: COUNTER }), {
        tenant: "again",
        service: "svc",
        version: 2,
        findings: [],
      });
      assert.equal(await kernel.call("again", "svc"), 1);
    });
  });

  describe("kill()", () => {
    it("runs terminate, stops the service and rejects later calls with unavailable", async () => {
      await kernel.deploy({
        tenant: "kill",
        service: "svc",
        code: `export default {
  init() { return 0 },
  handleCall(r, s) { return { reply: s, state: s } },
  terminate(reason) { solo.log("terminating", reason) },
}`,
      });
      await kernel.kill("kill", "svc");
      assert.equal(kernel.list("kill")[0]?.state, "stopped");
      assert.equal((await rejection(kernel.call("kill", "svc"))).reason, "SOLO_ERR_SERVICE_STOPPED");
      assert.deepEqual(
        kernel.logs("kill", "svc").map((l) => l.text),
        ["terminating killed"],
      );
    });
  });

  describe("services calling services", () => {
    it("calls and casts within a tenant", async () => {
      await kernel.deploy({ tenant: "mesh", service: "store", code: COUNTER });
      await kernel.deploy({
        tenant: "mesh",
        service: "front",
        grants: { call: ["store"] },
        code: `export default {
  async handleCall(req, state) {
    solo.cast("store", 10);
    const n = await solo.call("store", "inc");
    return { reply: n, state };
  },
}`,
      });
      assert.equal(await kernel.call("mesh", "front"), 11);
    });

    it("turns a call to itself into a deadlock error instead of a hang", async () => {
      await kernel.deploy({
        tenant: "dead",
        service: "self",
        grants: { call: ["self"] },
        code: `export default {
  async handleCall(req, state) {
    try { await solo.call("self", 1); return { reply: "no error", state } }
    catch (e) { return { reply: e.reason, state } }
  },
}`,
      });
      assert.equal(await kernel.call("dead", "self"), "SOLO_ERR_CALL_DEADLOCK");
    });

    it("turns a cycle of calls into a deadlock error", async () => {
      const code = (next: string) => `export default {
  async handleCall(req, state) {
    if (req === "stop") return { reply: "reached", state };
    try { return { reply: await solo.call("${next}", "go"), state } }
    catch (e) { return { reply: e.reason, state } }
  },
}`;
      await kernel.deploy({ tenant: "cycle", service: "a", code: code("b"), grants: { call: ["b"] } });
      await kernel.deploy({ tenant: "cycle", service: "b", code: code("a"), grants: { call: ["a"] } });
      assert.equal(await kernel.call("cycle", "a", "go"), "SOLO_ERR_CALL_DEADLOCK");
      assert.equal(await kernel.call("cycle", "b", "stop"), "reached");
    });
  });

  describe("timers", () => {
    it("delivers sendAfter messages to handleInfo, and a cancelled timer never fires", async () => {
      await kernel.deploy({
        tenant: "timers",
        service: "clock",
        code: `export default {
  init() { return { ticks: [] } },
  handleCall(req, state) {
    if (req === "arm") {
      const cancelled = solo.sendAfter(5, "never");
      solo.sendAfter(10, "b");
      solo.sendAfter(1, "a");
      return { reply: solo.cancelTimer(cancelled), state };
    }
    return { reply: state.ticks, state };
  },
  handleInfo(msg, state) { state.ticks.push(msg); return { state } },
}`,
      });
      assert.equal(await kernel.call("timers", "clock", "arm"), true);
      let ticks: unknown = [];
      for (let i = 0; i < 200 && (ticks as unknown[]).length < 2; i++) {
        await new Promise((r) => setTimeout(r, 5));
        ticks = await kernel.call("timers", "clock", "read");
      }
      assert.deepEqual(ticks, ["a", "b"]);
    });
  });

  describe("list()", () => {
    it("shows only the tenant's own services with state, handlers, limits and usage", async () => {
      await kernel.deploy({ tenant: "lister", service: "one", code: COUNTER, limits: { cpuMsPerMessage: 250 } });
      const [info] = kernel.list("lister");
      assert.equal(info?.service, "one");
      assert.equal(info?.state, "running");
      assert.deepEqual(info?.handlers, ["init", "handleCall", "handleCast"]);
      assert.equal(info?.limits.cpuMsPerMessage, 250);
      await kernel.call("lister", "one");
      // Usage is sampled by the scheduler every 500 ms; wait (bounded) for a sample with the call.
      let usage = kernel.list("lister")[0]?.usage;
      for (let i = 0; i < 100 && (usage?.messages ?? 0) < 2; i++) {
        await new Promise((r) => setTimeout(r, 20));
        usage = kernel.list("lister")[0]?.usage;
      }
      assert.equal(usage?.messages, 2); // init and the call
      assert.ok((usage?.memoryBytes ?? 0) > 0);
      assert.ok((usage?.cpuMs ?? -1) >= 0);
      assert.throws(
        () => kernel.list("NOT VALID"),
        (e: unknown) => e instanceof SoloError && e.reason === "SOLO_ERR_NAME_INVALID",
      );
    });

    it("says a tenant that does not exist does not exist, rather than listing nothing", () => {
      assert.throws(
        () => kernel.list("nobody-here"),
        (e: unknown) => e instanceof SoloError && e.reason === "SOLO_ERR_TENANT_NOT_FOUND" && e.code === "not_found",
      );
    });
  });
});

describe("openKernel()", () => {
  it("refuses a second kernel on the same data directory while the first is open", async () => {
    const err = await rejection(openKernel({ dataDir: dir, schedulers: 1 }));
    assert.equal(err.reason, "SOLO_ERR_KERNEL_DATA_DIR_LOCKED");
  });

  it("rejects unknown and malformed options", async () => {
    assert.equal((await rejection(openKernel({ schedulers: 0 }))).reason, "SOLO_ERR_KERNEL_OPTIONS_INVALID");
    assert.equal((await rejection(openKernel({ nope: 1 } as never))).reason, "SOLO_ERR_KERNEL_OPTIONS_INVALID");
  });

  it("rejects every operation after close() with unavailable", async () => {
    const d = mkdtempSync(join(tmpdir(), "solo-test-"));
    const k = await openKernel({ dataDir: d, schedulers: 1 });
    await k.deploy({ tenant: "t", service: "s", code: COUNTER });
    await k.close();
    assert.equal((await rejection(k.call("t", "s"))).reason, "SOLO_ERR_KERNEL_CLOSED");
    assert.equal((await rejection(k.deploy({ tenant: "t", service: "s2", code: COUNTER }))).code, "unavailable");
    const reopened = await openKernel({ dataDir: d, schedulers: 1 });
    await reopened.close();
    rmSync(d, { recursive: true, force: true });
  });
});

describe("redeploying a crashed service", () => {
  it("keeps the crashed version visible until the new one has started, and refuses a concurrent deploy", async () => {
    const d = mkdtempSync(join(tmpdir(), "solo-test-"));
    const k = await openKernel({ dataDir: d, schedulers: 1, supervision: { restart: "temporary" } });
    try {
      await k.deploy({ tenant: "re", service: "svc", code: "export default { handleCall() { throw new Error('x') } }" });
      await rejection(k.call("re", "svc"));
      const slow =
        "export default { init() { const end = Date.now() + 30; while (Date.now() < end) {} return 0 }, handleCall(r, n) { return { reply: n, state: n } } }";
      const first = k.deploy({ tenant: "re", service: "svc", code: slow });
      const second = await rejection(k.deploy({ tenant: "re", service: "svc", code: slow }));
      assert.equal(second.reason, "SOLO_ERR_DEPLOY_EXISTS");
      assert.equal(k.list("re")[0]?.state, "crashed");
      assert.equal((await rejection(k.call("re", "svc"))).reason, "SOLO_ERR_SERVICE_CRASHED");
      assert.equal((await first).version, 2);
      assert.equal(await k.call("re", "svc"), 0);
    } finally {
      await k.close();
      rmSync(d, { recursive: true, force: true });
    }
  });
});
