import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { SoloError } from "../lib/errors/errors.ts";
import { DEFAULT_LIMITS, resolveLimits } from "./limits.ts";

describe("resolveLimits()", () => {
  it("merges overrides over the defaults", () => {
    assert.deepEqual(resolveLimits({ cpuMsPerMessage: 10 }, DEFAULT_LIMITS), { ...DEFAULT_LIMITS, cpuMsPerMessage: 10 });
    assert.equal(resolveLimits(undefined, DEFAULT_LIMITS), DEFAULT_LIMITS);
  });

  it("rejects unknown keys, non-integers and values out of range", () => {
    for (const bad of [{ cpu: 1 }, { memoryBytes: 1.5 }, { stackBytes: 1 }, { timers: -1 }, { messageBytes: "1" }, [], 5]) {
      assert.throws(
        () => resolveLimits(bad, DEFAULT_LIMITS),
        (e: unknown) => e instanceof SoloError && e.reason === "SOLO_ERR_LIMITS_INVALID",
      );
    }
  });
});
