// Public types: why a message failed or a service crashed, as users see it in errors and in `list()`.
import type { Reason } from "./errors.ts";

/** Why a message failed or a service crashed, as users see it in errors and in `list()`. */
export interface Crash {
  readonly kind: CrashKind;
  readonly reason: Reason;
  readonly message: string;
  /** Position in the author's source, where the engine reported one. */
  readonly line?: number;
  readonly column?: number;
  /** JSON path of an offending value (`$.items[3]`), for value errors. */
  readonly path?: string;
  /** For a memory_limit crash: `tenant_memory` when the tenant's memory was full, not the service's own limit. */
  readonly resource?: "tenant_memory";
}

/** The closed set of crash kinds. */
export const CRASH_KINDS = [
  "exception",
  "cpu_limit",
  "memory_limit",
  "stack_limit",
  "invalid_result",
  "invalid_value",
  "unsettled",
  "engine_fault",
  "scheduler_failed",
] as const;
export type CrashKind = (typeof CRASH_KINDS)[number];
