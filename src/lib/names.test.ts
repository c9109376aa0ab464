import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { SoloError } from "./errors/errors.ts";
import { checkName } from "./names.ts";

describe("checkName()", () => {
  it("accepts names of the documented grammar", () => {
    for (const ok of ["a", "acme", "billing-v2", "job_queue", "a1", "a".repeat(63)]) assert.equal(checkName(ok, "service"), ok);
  });

  it("rejects everything else with the reason and the field", () => {
    for (const bad of ["", "A", "1abc", "-a", "a-", "a_", "a b", "a/b", "a.b", "é", "a\u0000", "a".repeat(64), 5, null, undefined, {}]) {
      assert.throws(
        () => checkName(bad, "tenant"),
        (e: unknown) => e instanceof SoloError && e.reason === "SOLO_ERR_NAME_INVALID" && e.details.field === "tenant",
        String(bad),
      );
    }
  });
});
