import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { describe, it } from "node:test";
import { ERROR_CODES, REASONS, SoloError } from "./errors.ts";

const doc = readFileSync(new URL("../../../docs/errors.md", import.meta.url), "utf8");
const documented = new Map([...doc.matchAll(/^\| `(SOLO_ERR_[A-Z_]+)` *\| `([a-z_]+)` *\|/gm)].map((m) => [m[1] ?? "", m[2] ?? ""]));

describe("the error catalogue", () => {
  it("documents every reason with its code in docs/errors.md", () => {
    for (const [reason, code] of Object.entries(REASONS)) {
      assert.equal(documented.get(reason), code, `${reason} is missing from docs/errors.md or has the wrong code`);
    }
  });

  it("documents no reason that does not exist", () => {
    for (const reason of documented.keys()) assert.ok(Object.hasOwn(REASONS, reason), `docs/errors.md documents unknown ${reason}`);
  });

  it("uses only Connect codes", () => {
    for (const code of Object.values(REASONS)) assert.ok((ERROR_CODES as readonly string[]).includes(code));
  });
});

describe("SoloError", () => {
  it("carries code, reason and details, and round-trips through its data form without the cause", () => {
    const e = new SoloError("SOLO_ERR_SERVICE_NOT_FOUND", "no service", { service: "x" }, { cause: new Error("secret") });
    assert.equal(e.code, "not_found");
    const back = SoloError.fromData(JSON.parse(JSON.stringify(e)));
    assert.deepEqual(back.toData(), {
      code: "not_found",
      reason: "SOLO_ERR_SERVICE_NOT_FOUND",
      message: "no service",
      details: { service: "x" },
    });
    assert.equal(JSON.stringify(e).includes("secret"), false);
  });

  it("wraps anything else as internal, keeping SoloErrors as they are", () => {
    const e = new SoloError("SOLO_ERR_CALL_TIMEOUT", "late");
    assert.equal(SoloError.from(e), e);
    assert.equal(SoloError.from(new TypeError("x")).reason, "SOLO_ERR_INTERNAL");
    assert.equal(SoloError.fromData({ code: "not_found", reason: "NOPE" as never, message: "m", details: {} }).reason, "SOLO_ERR_INTERNAL");
  });
});
