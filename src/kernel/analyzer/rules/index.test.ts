import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { RULES } from "../contract.ts";
import { RULE_CHECKS } from "./index.ts";

describe("the rules table", () => {
  it("checks every rule of RULES but syntax (reported by the parse), once each and in the same order", () => {
    assert.deepEqual(
      RULE_CHECKS.map((r) => r.id),
      RULES.map((r) => r.id).filter((id) => id !== "syntax"),
    );
  });
});
