/**
 * Solo's one error type.
 *
 * Every failure that reaches a user is a {@link SoloError}: a closed `code` (the Connect/gRPC
 * code names), a stable `reason` (`SOLO_ERR_<PART>_<WHAT>`), a message that says what was wrong,
 * where, and what to do, and JSON `details`, typed per reason (details.ts). The catalogue of
 * reasons is reasons.ts; `docs/errors.md` documents every reason; a test keeps the two in step.
 */

import type { AnyDetails, DetailsOf, ErrorData } from "./details.ts";
import { type ErrorCode, isReason, REASONS, type Reason } from "./reasons.ts";

export type {
  AnyDetails,
  ApplicationError,
  CommonDetails,
  CrashDetail,
  DetailsOf,
  ErrorData,
  ErrorDetails,
  ReasonDetails,
} from "./details.ts";
export { ERROR_CODES, type ErrorCode, isReason, REASONS, type Reason } from "./reasons.ts";

/**
 * The error every Solo operation rejects with.
 *
 * @example
 * try { await kernel.call("acme", "missing", {}) }
 * catch (e) { if (e instanceof SoloError && e.code === "not_found") ... }
 */
export class SoloError<R extends Reason = Reason> extends Error {
  override readonly name = "SoloError";
  readonly code: ErrorCode;
  readonly reason: R;
  /** JSON details: the keys every reason may carry and the reason's own (details.ts). */
  readonly details: DetailsOf<R> & AnyDetails;

  constructor(reason: R, message: string, details?: NoInfer<DetailsOf<R>>, options?: { cause?: unknown }) {
    super(message, options);
    this.code = REASONS[reason];
    this.reason = reason;
    this.details = (details ?? {}) as DetailsOf<R> & AnyDetails;
  }

  /** Wraps anything thrown into a SoloError; a SoloError passes through unchanged. */
  static from(err: unknown): SoloError {
    if (err instanceof SoloError) return err;
    const message = err instanceof Error ? err.message : String(err);
    return new SoloError("SOLO_ERR_INTERNAL", `internal error: ${message}`, {}, { cause: err });
  }

  /** Rebuilds an error from its plain-data form (after crossing a thread). */
  static fromData(data: ErrorData): SoloError {
    const reason: Reason = isReason(data.reason) ? data.reason : "SOLO_ERR_INTERNAL";
    // A wire error's details are whatever arrived: they are trusted to be JSON, not to be typed.
    return new SoloError(reason, data.message, data.details as DetailsOf<Reason>);
  }

  /** The plain-data form, safe to send to a client: no stack, no cause. */
  toData(): ErrorData {
    return { code: this.code, reason: this.reason, message: this.message, details: this.details };
  }

  toJSON(): ErrorData {
    return this.toData();
  }
}
