import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { Code, ConnectError } from "@connectrpc/connect";
import { toConnectError } from "../gateway/errors.ts";
import { SoloError } from "../lib/errors/errors.ts";
import { errorData, exitCodeOf } from "./errors.ts";
import { EXIT } from "./output.ts";

describe("the CLI's error output", () => {
  it("reports a SoloError raised in the CLI's own process as it would one from the gateway", () => {
    const local = new SoloError("SOLO_ERR_STORE_SCHEMA_NEWER", "the store's schema is version 9; this Solo knows up to 4", {
      field: "database",
      hint: "upgrade Solo",
      found: 9,
    });
    const remote = toConnectError(local);
    assert.deepEqual(errorData(local), errorData(remote));
    assert.deepEqual(errorData(local), {
      code: "failed_precondition",
      reason: "SOLO_ERR_STORE_SCHEMA_NEWER",
      message: "the store's schema is version 9; this Solo knows up to 4",
      field: "database",
      hint: "upgrade Solo",
      details: { found: 9 },
    });
    assert.equal(exitCodeOf(local), exitCodeOf(remote));
    assert.equal(exitCodeOf(local), EXIT.invalid);
  });

  it("maps codes to exit codes the same way for both", () => {
    const cases: Array<[SoloError, number]> = [
      [new SoloError("SOLO_ERR_TOKEN_UNKNOWN", "x"), EXIT.auth],
      [new SoloError("SOLO_ERR_SERVICE_NOT_FOUND", "x"), EXIT.notFound],
      [new SoloError("SOLO_ERR_KERNEL_CLOSED", "x"), EXIT.unavailable],
      [new SoloError("SOLO_ERR_INTERNAL", "x"), EXIT.failed],
    ];
    for (const [e, exit] of cases) {
      assert.equal(exitCodeOf(e), exit, e.reason);
      assert.equal(exitCodeOf(toConnectError(e)), exit, e.reason);
    }
    assert.equal(exitCodeOf(new Error("boom")), EXIT.failed);
    assert.equal(exitCodeOf(new ConnectError("x", Code.PermissionDenied)), EXIT.auth);
  });
});
