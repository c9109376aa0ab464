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
import { hasWords, renderHint, type Surface } from "./transport.ts";

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
  // The hint as written, naming operations as terms (transport.ts's words()); details.hint is
  // it in the embedding API's words, and hintFor() in any interface's.
  readonly #hint: string | undefined;

  constructor(reason: R, message: string, details?: NoInfer<DetailsOf<R>>, options?: { cause?: unknown }) {
    super(message, options);
    this.code = REASONS[reason];
    this.reason = reason;
    const hint = (details as AnyDetails | undefined)?.hint;
    if (typeof hint === "string" && hasWords(hint)) {
      this.#hint = hint;
      this.details = { ...details, hint: renderHint(hint, "api") } as DetailsOf<R> & AnyDetails;
    } else {
      this.details = (details ?? {}) as DetailsOf<R> & AnyDetails;
    }
  }

  /** What to do about it, in the words of the interface that shows it (`solo tenant create` on the CLI, ...). */
  hintFor(surface: Surface): string | undefined {
    return this.#hint === undefined ? this.details.hint : renderHint(this.#hint, surface);
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

  /**
   * The plain-data form, to cross a thread (fromData rebuilds it, hint and all): no stack, no
   * cause. A hint keeps its terms, for the interface that finally shows it.
   */
  toData(): ErrorData {
    const details = this.#hint === undefined ? this.details : { ...this.details, hint: this.#hint };
    return { code: this.code, reason: this.reason, message: this.message, details };
  }

  /** The error as the embedding API shows it, safe to send to a client: no stack, no cause. */
  toJSON(): ErrorData {
    return { code: this.code, reason: this.reason, message: this.message, details: this.details };
  }
}
