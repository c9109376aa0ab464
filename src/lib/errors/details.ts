/**
 * What travels with an error: its JSON `details`, typed per reason, and the error as plain data.
 *
 * A reason's details are the keys every reason may carry ({@link CommonDetails}) and the keys of
 * its own ({@link ReasonDetails}); {@link DetailsOf} joins them. Neither has an index signature, so
 * a misspelled key, a key of another reason, or a value of the wrong type fails to compile where
 * the error is made. Code that does not know an error's reason reads {@link AnyDetails}: every
 * reason's keys. Every key is optional: a site sends what it knows, and details that arrive from a
 * thread or the wire ({@link ErrorData}) are whatever was sent. Values are JSON data.
 */

import type { ErrorCode, Reason } from "./reasons.ts";

/** Details as they arrive from a thread or the wire: any JSON object (see {@link ErrorData}). */
export type ErrorDetails = Readonly<Record<string, unknown>>;

/** The plain-data form of a {@link SoloError}, as it crosses threads and the wire. */
export interface ErrorData {
  readonly code: ErrorCode;
  readonly reason: Reason;
  readonly message: string;
  readonly details: ErrorDetails;
}

/** Why a message failed or a service crashed: the JSON form of the public `Crash` (src/api/crash.ts). */
export interface CrashDetail {
  readonly kind: string;
  readonly reason: Reason;
  readonly message: string;
  readonly line?: number;
  readonly column?: number;
  readonly path?: string;
  readonly resource?: string;
}

/** An error a service answered a call with (`return { error: { code, message, details? }, state }`). */
export interface ApplicationError {
  /** The service's own code: 1-64 of letters, digits, `_`, `.`, `:`, `-`, starting with a letter. */
  readonly code: string;
  readonly message: string;
  /** Any JSON value the service added. */
  readonly details?: unknown;
}

/** A position in the author's source, where the engine or the TypeScript stripper reported one. */
export interface SourcePosition {
  readonly line?: number;
  readonly column?: number;
}

/** One finding of the analyzer, as `SOLO_ERR_DEPLOY_REJECTED` lists it. */
export interface FindingDetail {
  readonly rule: string;
  readonly severity: string;
  readonly message: string;
  readonly line: number;
  readonly column: number;
  readonly hint: string;
}

/** One broken constraint of a gateway request (protovalidate). */
export interface ViolationDetail {
  readonly field: string;
  readonly rule: string;
  readonly message: string;
}

/** The keys any reason may carry. */
export interface CommonDetails {
  /** The input at fault, as the caller wrote it: `limits.cpuMsPerMessage`, `tags`, `#3` (a binary field number). */
  readonly field?: string;
  /** What to do about it, in one sentence. */
  readonly hint?: string;
  /** The tenant concerned; null where the operation reaches across tenants (an unscoped token's). */
  readonly tenant?: string | null;
  /** The service concerned. */
  readonly service?: string;
  /** The limit that was reached (bytes, a count, milliseconds or levels: the message says which). */
  readonly limit?: number;
  /** The smallest value accepted, for an integer out of its range. */
  readonly min?: number;
  /** The largest value accepted, for an integer out of its range. */
  readonly max?: number;
  /** How long to wait before trying again, in milliseconds. */
  readonly retryAfterMs?: number;
  /** The time that was allowed and ran out, in milliseconds. */
  readonly timeoutMs?: number;
  /** The file or directory concerned (a store, the gateway's TLS material, the master key file). */
  readonly file?: string;
  /** The id of the capability token concerned (`tok_...`), never the token itself. */
  readonly tokenId?: string;
  /** How a service's message or start failed. */
  readonly crash?: CrashDetail;
}

/** The keys a value that is not JSON data, or too large or deep, carries. */
interface ValueDetails {
  /** The JSON path of the offending value: `$.items[3]`. */
  readonly path?: string;
}

/** The keys an error of the store carries. */
interface StoreDetails {
  /** The PostgreSQL database, its URL without the password. */
  readonly database?: string;
}

/** The keys an error of `solo.fetch` carries. */
interface FetchDetails {
  /** The host that was (or would have been) fetched. */
  readonly host?: string;
}

/** The keys of each reason that has keys of its own, beyond {@link CommonDetails}. */
export interface ReasonDetails {
  SOLO_ERR_KERNEL_DATA_DIR: {
    /** The data directory that cannot be created or locked. */
    readonly dataDir?: string;
    /** A file's or directory's permission bits, in octal (`644`), when they are too open. */
    readonly mode?: string;
  };
  SOLO_ERR_KERNEL_DATA_DIR_LOCKED: {
    /** The data directory that is locked. */
    readonly dataDir?: string;
    /** The process that holds the lock. */
    readonly pid?: number;
  };
  SOLO_ERR_REQUEST_INVALID: {
    /** Every broken constraint of a gateway request (the first 20). */
    readonly violations?: readonly ViolationDetail[];
    /** The compression of a request body that does not decompress (`gzip`, `br`). */
    readonly encoding?: string;
    /** The protobuf message a gateway request body should be (`solo.v1.DeployRequest`). */
    readonly message?: string;
  };
  SOLO_ERR_DEPLOY_SYNTAX: SourcePosition;
  SOLO_ERR_DEPLOY_TYPESCRIPT_UNSUPPORTED: SourcePosition;
  SOLO_ERR_DEPLOY_IMPORT: SourcePosition;
  SOLO_ERR_DEPLOY_REJECTED: {
    /** The analyzer's findings (the first ones). */
    readonly findings?: readonly FindingDetail[];
  };
  SOLO_ERR_SWAP_FAILED: {
    /** Where the swap failed: moving the state out, loading the new module, or its codeChange. */
    readonly phase?: "export" | "load" | "codeChange";
    /** Why the new module did not load. */
    readonly cause?: ErrorData;
  };
  SOLO_ERR_VERSION_NOT_FOUND: {
    /** The versions the service has. */
    readonly versions?: readonly number[];
  };
  SOLO_ERR_LIMIT_TIMERS: {
    /** `queued_bytes`: the tenant's waiting messages and timers, not the service's count of timers. */
    readonly resource?: "queued_bytes";
  };
  SOLO_ERR_MAILBOX_FULL: {
    /** `queued_bytes`: the tenant's waiting messages, not the service's mailbox; `deferred_calls`: calls its handlers deferred (noreply), waiting for solo.reply. */
    readonly resource?: "queued_bytes" | "deferred_calls";
  };
  SOLO_ERR_TENANT_LIMIT: {
    /** `services`: the tenant's count of services. */
    readonly resource?: "services";
  };
  SOLO_ERR_MEMORY_BUDGET: {
    /** The memory limit asked for the tenant, in bytes. */
    readonly requested?: number;
    /** The kernel's memory budget, in bytes. */
    readonly budget?: number;
    /** What the other tenants are given, in bytes. */
    readonly committed?: number;
    /** What is left of the budget, in bytes. */
    readonly available?: number;
  };
  SOLO_ERR_VALUE_NOT_JSON: ValueDetails;
  SOLO_ERR_VALUE_TOO_LARGE: ValueDetails;
  SOLO_ERR_VALUE_TOO_DEEP: ValueDetails;
  SOLO_ERR_APPLICATION_ERROR: {
    /** The service's own error, as its handler returned it: a code of its choosing, a message, and details if it gave any. */
    readonly answer?: ApplicationError;
  };
  SOLO_ERR_CALL_DEADLOCK: {
    /** The services waiting on each other, from the caller round to it again. */
    readonly cycle?: readonly string[];
  };
  SOLO_ERR_SCHEDULER_FAILED: {
    /** The instance (its sid) whose step the watchdog stopped by replacing the scheduler. */
    readonly culpritSid?: number;
    /** Why: it ran past its hard CPU limit, or it was being killed. */
    readonly culpritWhy?: "cpu" | "killed";
    /** The call had started, so its outcome is unknown: it is not run again. */
    readonly started?: boolean;
  };
  SOLO_ERR_STORE_OPEN: StoreDetails & {
    /** The schema version a failed migration was to reach. */
    readonly version?: number;
  };
  SOLO_ERR_STORE_CORRUPT: StoreDetails & {
    /** Which check failed: `open`, `quick_check`, `log_head`, `event_hash`. */
    readonly check?: string;
    /** The vault key whose stored form fails authentication. */
    readonly keyId?: number;
  };
  SOLO_ERR_STORE_SCHEMA_NEWER: StoreDetails & {
    /** The store's schema version. */
    readonly found?: number;
    /** The newest schema version this kernel reads. */
    readonly supported?: number;
  };
  SOLO_ERR_STORE_LOCKED: StoreDetails;
  SOLO_ERR_STORE_UNAVAILABLE: StoreDetails;
  SOLO_ERR_STORAGE_QUOTA: {
    /** The bytes the service's storage would hold after the write. */
    readonly would?: number;
  };
  SOLO_ERR_TOKEN_MALFORMED: {
    /** What was given instead of a token (its type or length, never its text). */
    readonly got?: string;
  };
  SOLO_ERR_TOKEN_EXPIRED: {
    /** When the token expired (ISO 8601). */
    readonly expiredAt?: string;
  };
  SOLO_ERR_TOKEN_REVOKED: {
    /** When the token was revoked (ISO 8601). */
    readonly revokedAt?: string;
  };
  SOLO_ERR_PERMISSION_DENIED: {
    /** The operation that was refused (`deploy`, `tokens.revoke`). */
    readonly operation?: string;
    /** The permission it needs (`call:billing`). */
    readonly required?: string;
  };
  SOLO_ERR_TOKEN_ATTENUATION: {
    /** A permission the parent token does not cover. */
    readonly permission?: string;
    /** When the parent token expires (ISO 8601): the derived one may not outlive it. */
    readonly expiresAt?: string;
  };
  SOLO_ERR_TENANT_COOLDOWN: {
    /** The tenant's stalls of a scheduler in the last ten minutes. */
    readonly strikes?: number;
  };
  SOLO_ERR_VAULT_MASTER_KEY: {
    /** Where the master key came from (`SOLO_MASTER_KEY`, a file, the option). */
    readonly source?: string;
    /** The length of the text given as a master key. */
    readonly length?: number;
    /** The id of the master key the store's secrets are sealed under. */
    readonly expected?: string;
    /** The id of the master key given. */
    readonly found?: string;
  };
  SOLO_ERR_SECRET_NOT_FOUND: {
    /** The secret's name. */
    readonly name?: string;
  };
  SOLO_ERR_SECRET_TAMPERED: {
    /** The secret's name. */
    readonly name?: string;
  };
  SOLO_ERR_GRANT_MISSING: {
    /** The grant the power needs (`call`, `secrets`, `fetch`, ...). */
    readonly grant?: string;
    /** What the service asked for with it (a service, a host). */
    readonly requested?: string;
  };
  SOLO_ERR_FETCH_INVALID: {
    /** The size of the request body, in bytes. */
    readonly bytes?: number;
  };
  SOLO_ERR_FETCH_DENIED: FetchDetails & {
    /** The URL refused (without its credentials). */
    readonly url?: string;
    /** The address the host resolves to that is not public. */
    readonly address?: string;
    /** The network the address lies in (`127.0.0.0/8`). */
    readonly range?: string;
  };
  SOLO_ERR_FETCH_TIMEOUT: FetchDetails;
  SOLO_ERR_FETCH_TOO_LARGE: FetchDetails;
  SOLO_ERR_FETCH_FAILED: FetchDetails & {
    /** Why: `aborted`, `redirects`, `tls`, or the system's error code (`ENOTFOUND`, `ECONNREFUSED`). */
    readonly cause?: string;
    /** The TLS error code, when `cause` is `tls`. */
    readonly tlsCode?: string;
  };
  SOLO_ERR_MCP_REQUEST_TOO_LARGE: {
    /** The largest request body `/mcp` reads, in bytes. */
    readonly maxBytes?: number;
  };
}

/**
 * The details of an error of reason `R`: the keys every reason may carry and `R`'s own. This is
 * what a `new SoloError(R, ...)` is checked against.
 */
export type DetailsOf<R extends Reason> = Readonly<
  CommonDetails & (R extends keyof ReasonDetails ? ReasonDetails[R] : Record<never, never>)
>;

type KeysOf<T> = T extends unknown ? keyof T : never;
type ValueOf<T, K extends PropertyKey> = T extends unknown ? (K extends keyof T ? T[K] : never) : never;
type OwnDetails = ReasonDetails[keyof ReasonDetails];

/**
 * Every key any reason may carry, each optional and typed as the reasons that have it type it:
 * what code that does not know an error's reason (a plain `SoloError`) may read from its details.
 */
export type AnyDetails = Readonly<CommonDetails & { readonly [K in KeysOf<OwnDetails>]?: ValueOf<OwnDetails, K> }>;
