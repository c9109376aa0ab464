import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { LIMITS } from "../../test/support/scheduler.ts";
import { classify, moduleFailure, position, type Seen } from "./crash.ts";

const SPEC = { tenant: "acme", filename: "svc.ts", limits: LIMITS };
const NOTHING: Seen = { serviceLimitRefused: false, tenantFullRefused: false, interrupted: false, spec: SPEC, tenantCapBytes: 64 << 20 };
const STACK = "Error: no\n    at handleCall (svc.ts:7:13)\n    at <anonymous> (solo:bootstrap:10:2)";
const thrown = (name: string, message: string, stack = STACK) => ({ kind: "exception" as const, name, message, stack });

describe("classify()", () => {
  it("takes a service's own error for what it is, whatever it is named", () => {
    for (const [name, message] of [
      ["InternalError", "out of memory"],
      ["InternalError", "interrupted"],
      ["Error", "boom"],
    ] as const) {
      const c = classify(thrown(name, message), NOTHING);
      assert.equal(c.kind, "exception", `${name}: ${message}`);
      assert.equal(c.reason, "SOLO_ERR_HANDLER_THREW");
      assert.equal(c.message, `${name}: ${message} at svc.ts:7:13`);
      assert.deepEqual([c.line, c.column], [7, 13]);
    }
  });

  it("is a memory crash only when the host saw an allocation refused: the service's limit before the tenant's", () => {
    const own = classify(thrown("Error", "anything"), { ...NOTHING, serviceLimitRefused: true, tenantFullRefused: true });
    assert.equal(own.kind, "memory_limit");
    assert.equal(own.resource, undefined);
    assert.match(own.message, new RegExp(`its memory limit of ${LIMITS.memoryBytes} bytes`));
    const tenant = classify(thrown("Error", "anything"), { ...NOTHING, tenantFullRefused: true });
    assert.equal(tenant.resource, "tenant_memory");
    assert.match(tenant.message, /tenant acme's memory is full \(its limit of 67108864 bytes\)/);
  });

  it("is a CPU crash only when the host interrupted it", () => {
    const c = classify(thrown("InternalError", "interrupted"), { ...NOTHING, interrupted: true });
    assert.equal(c.reason, "SOLO_ERR_LIMIT_CPU");
    assert.match(c.message, new RegExp(`CPU budget of ${LIMITS.cpuMsPerMessage} ms`));
  });

  it("names a stack overflow with the stack limit", () => {
    const c = classify(thrown("RangeError", "Maximum call stack size exceeded"), NOTHING);
    assert.equal(c.reason, "SOLO_ERR_LIMIT_STACK");
  });

  it("keeps a guest's value reason only if it is one the guest may give", () => {
    const ok = classify({ kind: "value", name: "", message: "not JSON", reason: "SOLO_ERR_VALUE_NOT_JSON", path: "$.a" }, NOTHING);
    assert.deepEqual([ok.kind, ok.reason, ok.path], ["invalid_value", "SOLO_ERR_VALUE_NOT_JSON", "$.a"]);
    const forged = classify({ kind: "result", name: "", message: "x", reason: "SOLO_ERR_LIMIT_CPU" }, NOTHING);
    assert.deepEqual([forged.kind, forged.reason], ["invalid_result", "SOLO_ERR_HANDLER_RESULT_INVALID"]);
  });
});

describe("moduleFailure()", () => {
  it("makes a syntax error a deploy error with its position, and an import a deploy error with a hint", () => {
    const syntax = moduleFailure(thrown("SyntaxError", "unexpected token", "    at svc.ts:3:9"), "svc.ts", () => assert.fail());
    assert.equal(syntax.reason, "SOLO_ERR_DEPLOY_SYNTAX");
    assert.deepEqual([syntax.details.line, syntax.details.column], [3, 9]);
    const imported = moduleFailure(thrown("ReferenceError", "could not load module 'fs'"), "svc.ts", () => assert.fail());
    assert.equal(imported.reason, "SOLO_ERR_DEPLOY_IMPORT");
  });

  it("makes anything else thrown while evaluating a failed start", () => {
    const e = moduleFailure(thrown("Error", "boom"), "svc.ts", () => classify(thrown("Error", "boom"), NOTHING));
    assert.equal(e.reason, "SOLO_ERR_DEPLOY_INIT_FAILED");
  });
});

describe("position()", () => {
  it("finds the first frame in the author's file, treating the name literally", () => {
    assert.deepEqual(position(STACK, "svc.ts"), { line: 7, column: 13 });
    assert.equal(position("at svcXts:1:1", "svc.ts"), undefined);
    assert.equal(position("", "svc.ts"), undefined);
  });
});
