/**
 * Solo's one error type and its catalogue of reasons.
 *
 * Every failure that reaches a user is a {@link SoloError}: a closed `code` (the Connect/gRPC
 * code names), a stable `reason` (`SOLO_ERR_<PART>_<WHAT>`), a message that says what was wrong,
 * where, and what to do, and JSON `details`. `docs/errors.md` documents every reason; a test keeps
 * the two in step.
 */

/** The Connect/gRPC status codes, by their Connect names. */
export const ERROR_CODES = [
  "canceled",
  "unknown",
  "invalid_argument",
  "deadline_exceeded",
  "not_found",
  "already_exists",
  "permission_denied",
  "resource_exhausted",
  "failed_precondition",
  "aborted",
  "out_of_range",
  "unimplemented",
  "internal",
  "unavailable",
  "data_loss",
  "unauthenticated",
] as const;

/** One of the Connect/gRPC status codes. */
export type ErrorCode = (typeof ERROR_CODES)[number];

/** Every reason Solo can give, with the code it always travels with. */
export const REASONS = {
  SOLO_ERR_KERNEL_OPTIONS_INVALID: "invalid_argument",
  SOLO_ERR_KERNEL_DATA_DIR: "failed_precondition",
  SOLO_ERR_KERNEL_DATA_DIR_LOCKED: "failed_precondition",
  SOLO_ERR_KERNEL_CLOSED: "unavailable",
  SOLO_ERR_NAME_INVALID: "invalid_argument",
  SOLO_ERR_REQUEST_INVALID: "invalid_argument",
  SOLO_ERR_LIMITS_INVALID: "invalid_argument",
  SOLO_ERR_DEPLOY_CODE_TOO_LARGE: "invalid_argument",
  SOLO_ERR_DEPLOY_SYNTAX: "invalid_argument",
  SOLO_ERR_DEPLOY_TYPESCRIPT_UNSUPPORTED: "invalid_argument",
  SOLO_ERR_DEPLOY_IMPORT: "invalid_argument",
  SOLO_ERR_DEPLOY_EXPORT_INVALID: "invalid_argument",
  SOLO_ERR_DEPLOY_INIT_FAILED: "failed_precondition",
  SOLO_ERR_DEPLOY_EXISTS: "already_exists",
  SOLO_ERR_DEPLOY_REJECTED: "invalid_argument",
  SOLO_ERR_SERVICE_NOT_FOUND: "not_found",
  SOLO_ERR_SERVICE_CRASHED: "unavailable",
  SOLO_ERR_SERVICE_STOPPED: "unavailable",
  SOLO_ERR_SERVICE_RESTARTING: "unavailable",
  SOLO_ERR_SERVICE_FAILED: "unavailable",
  SOLO_ERR_CIRCUIT_OPEN: "unavailable",
  SOLO_ERR_SWAP_FAILED: "aborted",
  SOLO_ERR_VERSION_NOT_FOUND: "not_found",
  SOLO_ERR_SUPERVISION_INVALID: "invalid_argument",
  SOLO_ERR_HANDLER_THREW: "aborted",
  SOLO_ERR_HANDLER_RESULT_INVALID: "aborted",
  SOLO_ERR_HANDLER_UNSETTLED: "aborted",
  SOLO_ERR_HANDLER_MISSING: "unimplemented",
  SOLO_ERR_LIMIT_CPU: "resource_exhausted",
  SOLO_ERR_LIMIT_MEMORY: "resource_exhausted",
  SOLO_ERR_LIMIT_STACK: "resource_exhausted",
  SOLO_ERR_LIMIT_TIMERS: "resource_exhausted",
  SOLO_ERR_MAILBOX_FULL: "resource_exhausted",
  SOLO_ERR_TENANT_LIMIT: "resource_exhausted",
  SOLO_ERR_MEMORY_BUDGET: "resource_exhausted",
  SOLO_ERR_VALUE_NOT_JSON: "invalid_argument",
  SOLO_ERR_VALUE_TOO_LARGE: "resource_exhausted",
  SOLO_ERR_VALUE_TOO_DEEP: "invalid_argument",
  SOLO_ERR_CALL_TIMEOUT: "deadline_exceeded",
  SOLO_ERR_CALL_DEADLOCK: "failed_precondition",
  SOLO_ERR_CALL_CANCELED: "canceled",
  SOLO_ERR_CALL_NOT_IN_MESSAGE: "failed_precondition",
  SOLO_ERR_ENGINE_FAULT: "internal",
  SOLO_ERR_SCHEDULER_FAILED: "unavailable",
  SOLO_ERR_STORE_OPEN: "failed_precondition",
  SOLO_ERR_STORE_CORRUPT: "data_loss",
  SOLO_ERR_STORE_SCHEMA_NEWER: "failed_precondition",
  SOLO_ERR_STORE_LOCKED: "failed_precondition",
  SOLO_ERR_STORE_UNAVAILABLE: "unavailable",
  SOLO_ERR_STORE_CLOSED: "unavailable",
  SOLO_ERR_EVENT_INVALID: "invalid_argument",
  SOLO_ERR_EVENT_TOO_LARGE: "resource_exhausted",
  SOLO_ERR_EVENT_QUERY_INVALID: "invalid_argument",
  SOLO_ERR_STORAGE_KEY_INVALID: "invalid_argument",
  SOLO_ERR_STORAGE_QUOTA: "resource_exhausted",
  SOLO_ERR_TOKEN_MISSING: "unauthenticated",
  SOLO_ERR_TOKEN_MALFORMED: "unauthenticated",
  SOLO_ERR_TOKEN_UNKNOWN: "unauthenticated",
  SOLO_ERR_TOKEN_EXPIRED: "unauthenticated",
  SOLO_ERR_TOKEN_REVOKED: "unauthenticated",
  SOLO_ERR_PERMISSION_DENIED: "permission_denied",
  SOLO_ERR_PERMISSION_INVALID: "invalid_argument",
  SOLO_ERR_TOKEN_ATTENUATION: "permission_denied",
  SOLO_ERR_TOKEN_NOT_FOUND: "not_found",
  SOLO_ERR_TENANT_NOT_FOUND: "not_found",
  SOLO_ERR_TENANT_EXISTS: "already_exists",
  SOLO_ERR_TENANT_DELETED: "failed_precondition",
  SOLO_ERR_TENANT_BUSY: "aborted",
  SOLO_ERR_TENANT_COOLDOWN: "unavailable",
  SOLO_ERR_VAULT_MASTER_KEY: "failed_precondition",
  SOLO_ERR_SECRET_INVALID: "invalid_argument",
  SOLO_ERR_SECRET_NOT_FOUND: "not_found",
  SOLO_ERR_SECRET_TAMPERED: "data_loss",
  SOLO_ERR_GRANTS_INVALID: "invalid_argument",
  SOLO_ERR_GRANT_MISSING: "permission_denied",
  SOLO_ERR_FETCH_INVALID: "invalid_argument",
  SOLO_ERR_FETCH_DENIED: "permission_denied",
  SOLO_ERR_FETCH_TIMEOUT: "deadline_exceeded",
  SOLO_ERR_FETCH_TOO_LARGE: "resource_exhausted",
  SOLO_ERR_FETCH_FAILED: "unavailable",
  SOLO_ERR_OVERLOADED: "resource_exhausted",
  SOLO_ERR_REQUESTER_THROTTLED: "resource_exhausted",
  SOLO_ERR_MCP_REQUEST_INVALID: "invalid_argument",
  SOLO_ERR_MCP_REQUEST_TOO_LARGE: "resource_exhausted",
  SOLO_ERR_MCP_SESSION_NOT_FOUND: "not_found",
  SOLO_ERR_MCP_SESSION_FORBIDDEN: "permission_denied",
  SOLO_ERR_MCP_ORIGIN_DENIED: "permission_denied",
  SOLO_ERR_INTERNAL: "internal",
} as const satisfies Record<string, ErrorCode>;

/** A stable reason string, `SOLO_ERR_<PART>_<WHAT>`. */
export type Reason = keyof typeof REASONS;

/** JSON details that travel with an error: the field at fault, a hint, a crash description. */
export type ErrorDetails = Readonly<Record<string, unknown>>;

/** The plain-data form of a {@link SoloError}, as it crosses threads and (later) the wire. */
export interface ErrorData {
  readonly code: ErrorCode;
  readonly reason: Reason;
  readonly message: string;
  readonly details: ErrorDetails;
}

/**
 * The error every Solo operation rejects with.
 *
 * @example
 * try { await kernel.call("acme", "missing", {}) }
 * catch (e) { if (e instanceof SoloError && e.code === "not_found") ... }
 */
export class SoloError extends Error {
  override readonly name = "SoloError";
  readonly code: ErrorCode;
  readonly reason: Reason;
  readonly details: ErrorDetails;

  constructor(reason: Reason, message: string, details: ErrorDetails = {}, options?: { cause?: unknown }) {
    super(message, options);
    this.code = REASONS[reason];
    this.reason = reason;
    this.details = details;
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
    return new SoloError(reason, data.message, data.details);
  }

  /** The plain-data form, safe to send to a client: no stack, no cause. */
  toData(): ErrorData {
    return { code: this.code, reason: this.reason, message: this.message, details: this.details };
  }

  toJSON(): ErrorData {
    return this.toData();
  }
}

/** Whether a string is one of the catalogued reasons. */
export function isReason(value: string): value is Reason {
  return Object.hasOwn(REASONS, value);
}
