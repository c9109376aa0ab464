import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { describe, it } from "node:test";
import { type DetailsOf, ERROR_CODES, type ErrorData, REASONS, type Reason, type ReasonDetails, SoloError } from "./errors.ts";

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

describe("SoloError details", () => {
  it("keep every key through the data form, and come back typed by their reason", () => {
    const crash = { kind: "exception", reason: "SOLO_ERR_HANDLER_THREW", message: "Error: boom", line: 3, column: 7 } as const;
    const restarting = new SoloError("SOLO_ERR_SERVICE_RESTARTING", "restarting", {
      tenant: "acme",
      service: "billing",
      retryAfterMs: 250,
      crash,
      hint: "retry in 250 ms",
    });
    const failed = new SoloError("SOLO_ERR_SCHEDULER_FAILED", "replaced", { culpritSid: 7, culpritWhy: "cpu", started: true });
    const swap = new SoloError("SOLO_ERR_SWAP_FAILED", "no load", { phase: "load", cause: failed.toData() });
    for (const e of [restarting, failed, swap]) {
      const wire: ErrorData = JSON.parse(JSON.stringify(e));
      const back = SoloError.fromData(wire);
      assert.deepEqual(back.toData(), e.toData());
      assert.deepEqual(back.details, e.details);
    }
    const back = SoloError.fromData(JSON.parse(JSON.stringify(failed)));
    // A SoloError whose reason is not known reads any reason's keys, typed.
    const sid: number | undefined = back.details.culpritSid;
    assert.deepEqual([sid, back.details.started, back.details.tenant], [7, true, undefined]);
    assert.equal(restarting.details.crash?.line, 3);
  });

  it("from the wire are whatever arrived", () => {
    const data = {
      code: "not_found",
      reason: "SOLO_ERR_SERVICE_NOT_FOUND",
      message: "m",
      details: { service: "x", fromANewerKernel: [1] },
    } as const;
    assert.deepEqual(SoloError.fromData(data).details, { service: "x", fromANewerKernel: [1] });
  });

  it("refuse a misspelled key, another reason's key, or a value of the wrong type (checked by tsc)", () => {
    const made = [
      // @ts-expect-error `feild` is no key of any reason (the common key is `field`)
      new SoloError("SOLO_ERR_NAME_INVALID", "bad name", { feild: "tenant" }),
      // @ts-expect-error `culpritSid` is a key of SOLO_ERR_SCHEDULER_FAILED, not of SOLO_ERR_SERVICE_NOT_FOUND
      new SoloError("SOLO_ERR_SERVICE_NOT_FOUND", "gone", { service: "x", culpritSid: 3 }),
      // @ts-expect-error `retryAfterMs` is a number of milliseconds
      new SoloError("SOLO_ERR_OVERLOADED", "full", { retryAfterMs: "soon" }),
      new SoloError("SOLO_ERR_NAME_INVALID", "bad name", { field: "tenant", hint: "a-z" }),
    ];
    // At run time they are made all the same: the check is the compiler's.
    assert.deepEqual(
      made.map((e) => e.details),
      [{ feild: "tenant" }, { service: "x", culpritSid: 3 }, { retryAfterMs: "soon" }, { field: "tenant", hint: "a-z" }],
    );
    const ownAreReasons: keyof ReasonDetails extends Reason ? true : false = true;
    const typed: DetailsOf<"SOLO_ERR_CALL_DEADLOCK"> = { cycle: ["a", "b", "a"], hint: "use solo.cast" };
    assert.ok(ownAreReasons && typed.cycle?.length === 3);
  });
});
