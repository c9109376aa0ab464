import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { type At, checkFlag, checkKeys, checkObject, checkWhole } from "./check.ts";
import { SoloError } from "./errors/errors.ts";

const AT: At = { reason: "SOLO_ERR_LIMITS_INVALID", field: "limits" };

function refusal(f: () => unknown): SoloError {
  try {
    f();
  } catch (e) {
    assert.ok(e instanceof SoloError, String(e));
    return e;
  }
  assert.fail("expected a refusal");
}

describe("checkObject()", () => {
  it("returns a plain object as it is", () => {
    const o = { a: 1 };
    assert.equal(checkObject(o, AT), o);
  });

  it("refuses null, arrays and primitives with the part's reason, the field and what was given", () => {
    for (const [bad, got] of [
      [null, "null"],
      [[], "an array"],
      ["x", "string"],
      [3, "number"],
      [undefined, "undefined"],
    ] as const) {
      const e = refusal(() => checkObject(bad, AT, "{ memoryBytes }"));
      assert.equal(e.reason, "SOLO_ERR_LIMITS_INVALID");
      assert.equal(e.message, `limits must be an object like { memoryBytes }, got ${got}`);
      assert.equal(e.details.field, "limits");
    }
  });

  it("names the whole input by its label, with an empty details.field", () => {
    const e = refusal(() => checkObject(7, { reason: "SOLO_ERR_KERNEL_OPTIONS_INVALID", field: "", label: "openKernel options" }));
    assert.equal(e.message, "openKernel options must be an object, got number");
    assert.equal(e.details.field, "");
  });
});

describe("checkKeys()", () => {
  it("lets known keys through, whatever their values", () => {
    checkKeys({ a: undefined, b: null }, ["a", "b", "c"], AT, "limit");
    checkKeys({}, new Set(["a"]), AT, "limit");
  });

  it("refuses the first unknown key of a nested object as the path, listing the known ones", () => {
    const e = refusal(() => checkKeys({ a: 1, cpuMs: 2 }, ["a"], AT, "limit"));
    assert.equal(e.message, "limits.cpuMs is not a limit");
    assert.equal(e.details.field, "limits.cpuMs");
    assert.equal(e.details.hint, "the limits of limits are a");
  });

  it("says a or an by the noun", () => {
    assert.match(refusal(() => checkKeys({ x: 1 }, ["a"], AT, "option")).message, /is not an option$/);
  });

  it("refuses an unknown top-level key in the words of the operation", () => {
    const e = refusal(() => checkKeys({ zap: 1 }, ["tenant"], { reason: "SOLO_ERR_REQUEST_INVALID", field: "", label: "deploy" }, "field"));
    assert.equal(e.message, 'deploy: unknown field "zap"');
    assert.equal(e.details.field, "zap");
    assert.equal(e.details.hint, "deploy takes tenant");
  });

  it("does not take inherited names for known ones", () => {
    for (const key of ["constructor", "toString", "__proto__", "hasOwnProperty"]) {
      const o = JSON.parse(`{"${key}": 1}`) as Record<string, unknown>;
      assert.equal(refusal(() => checkKeys(o, ["a"], AT, "limit")).details.field, `limits.${key}`);
    }
  });

  it("clips a huge key to 80 characters in the message and details.field", () => {
    const e = refusal(() => checkKeys({ ["k".repeat(100_000)]: 1 }, ["a"], AT, "limit"));
    assert.equal(e.details.field, `limits.${"k".repeat(80)}`);
    assert.ok(e.message.length < 200, String(e.message.length));
  });

  it("keeps the part's own hint when it has one", () => {
    const e = refusal(() => checkKeys({ x: 1 }, ["a"], { ...AT, hint: "see the docs" }, "limit"));
    assert.equal(e.details.hint, "see the docs");
  });
});

describe("checkWhole()", () => {
  const range = { min: 1, max: 10, unit: "ms" };

  it("returns an integer in range, ends included", () => {
    assert.equal(checkWhole(1, range, AT), 1);
    assert.equal(checkWhole(10, range, AT), 10);
  });

  it("refuses fractions, out-of-range, unsafe and non-numbers, naming the range and what was given", () => {
    for (const [bad, got] of [
      [0, "0"],
      [11, "11"],
      [1.5, "1.5"],
      [Number.NaN, "NaN"],
      [Number.POSITIVE_INFINITY, "Infinity"],
      ["5", "string"],
      [null, "null"],
      [5n, "bigint"],
    ] as const) {
      const e = refusal(() => checkWhole(bad, range, { ...AT, field: "limits.timeoutMs" }));
      assert.equal(e.message, `limits.timeoutMs must be an integer from 1 to 10 ms, got ${got}`);
      assert.deepEqual(e.details, { field: "limits.timeoutMs", min: 1, max: 10 });
    }
    assert.throws(() => checkWhole(2 ** 53, { min: 0, max: 2 ** 60 }, AT), SoloError);
  });
});

describe("checkFlag()", () => {
  it("takes true and false, and the fallback for undefined", () => {
    assert.equal(checkFlag(true, AT), true);
    assert.equal(checkFlag(false, AT, true), false);
    assert.equal(checkFlag(undefined, AT), false);
    assert.equal(checkFlag(undefined, AT, true), true);
  });

  it("refuses anything else, naming the field", () => {
    for (const bad of [1, 0, "true", null, {}]) {
      const e = refusal(() => checkFlag(bad, { ...AT, field: "grants.storage" }));
      assert.match(e.message, /^grants\.storage must be true or false, got /);
      assert.equal(e.details.field, "grants.storage");
    }
  });
});
