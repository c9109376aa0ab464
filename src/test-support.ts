/**
 * Helpers shared by the test files (not part of the public API).
 * @internal
 */
import assert from "node:assert/strict";
import { SoloError } from "./errors.ts";
import type { Crash } from "./sandbox/service.ts";

/** Awaits a promise that must reject with a SoloError, and returns the error. */
export async function rejection(promise: Promise<unknown>): Promise<SoloError> {
  try {
    await promise;
  } catch (err) {
    assert.ok(err instanceof SoloError, `expected a SoloError, got ${String(err)}`);
    return err;
  }
  return assert.fail("expected the operation to fail with a SoloError");
}

/** The crash description a service failure carries in its details. */
export function crashOf(error: SoloError): Crash {
  const crash = error.details.crash;
  assert.ok(crash !== null && typeof crash === "object", `expected details.crash on ${error.reason}: ${error.message}`);
  return crash as Crash;
}
