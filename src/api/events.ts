// Public types: the event log as readers see it, the kernel's own event types, and what
// `events()`, `subscribe()` and `verify()` take and return.

/**
 * The closed list of the kernel's own event types. `docs/events.md` documents each one (and says
 * which part emits it); a test keeps the two in step. Services add their own events under
 * `svc.<service>.<name>` (see {@link customEventType}).
 */
export const EVENT_TYPES = [
  // the kernel itself
  "kernel_started",
  "kernel_stopped",
  "scheduler_replaced",
  // deployment and lifecycle
  "service_deployed",
  "service_deployment_failed",
  "service_started",
  "service_crashed",
  "service_killed",
  "service_restarted",
  "service_failed",
  "service_stopped",
  // hot swap
  "hot_swap_started",
  "hot_swap_succeeded",
  "hot_swap_failed",
  "hot_swap_rolled_back",
  // resources and breakers
  "resource_violation",
  "circuit_breaker_opened",
  "circuit_breaker_closed",
  // tenants and capabilities
  "tenant_created",
  "tenant_updated",
  "tenant_deleted",
  "capability_granted",
  "capability_revoked",
  "capability_denied",
  "capability_verified",
  // secrets (names only, never values)
  "secret_stored",
  "secret_accessed",
  "secret_access_denied",
  "secret_revoked",
  "secret_tampered",
  "vault_key_created",
  "vault_key_rotated",
  "vault_master_rotated",
  // a service's gated powers
  "grant_denied",
] as const;

/** One of the kernel's event types. */
export type KernelEventType = (typeof EVENT_TYPES)[number];

/** One event of the log, as readers see it. */
export interface SoloEvent {
  /** Position in the log: 1, 2, 3, ... with no gaps. */
  readonly id: number;
  /** Microseconds since the Unix epoch, assigned at commit; never goes backwards. */
  readonly timestamp: number;
  /** The appender's wall clock (milliseconds since the epoch) when it appended. */
  readonly wallTime: number;
  /** The tenant the event belongs to; null for kernel-wide events. */
  readonly tenant: string | null;
  readonly type: string;
  /** What the event is about, usually a service name. */
  readonly subject: string | null;
  readonly payload: unknown;
  /** The id of the event that caused this one. */
  readonly causationId: number | null;
  /** Ties together the events of one request. */
  readonly correlationId: string | null;
  /** SHA-256 (hex) of the previous event; 64 zeros for the first. */
  readonly prevHash: string;
  /** SHA-256 (hex) of this event's canonical encoding, which includes `prevHash`. */
  readonly hash: string;
}

/** What {@link EventLog.verify} found. */
export type VerifyReport =
  | {
      readonly ok: true;
      readonly events: number;
      readonly headHash: string;
      /** Events 1..verifiedUpTo are intact: every event, the head's id (0 for an empty log). */
      readonly verifiedUpTo: number;
    }
  | {
      readonly ok: false;
      /** The first event id at fault. */
      readonly at: number;
      readonly problem: "missing" | "broken_link" | "hash_mismatch" | "head_mismatch";
      readonly message: string;
      /** Events 1..verifiedUpTo are intact. */
      readonly verifiedUpTo: number;
    };

/** What {@link Kernel.events} takes. Every field narrows; all are optional. */
export interface EventQuery {
  /**
   * Only this tenant's events. Omitted: every tenant's and the kernel's own (the admin read,
   * which the capabilities of a later release restrict to admin tokens).
   */
  readonly tenant?: string;
  /** Only these types (kernel types or `svc.<service>.<name>`). */
  readonly types?: readonly string[];
  /** Only events about this subject (usually a service name). */
  readonly subject?: string;
  /** Ids strictly after this one. */
  readonly afterId?: number;
  /** Ids strictly before this one. */
  readonly beforeId?: number;
  /** Timestamps at or after this: microseconds since the epoch, or an ISO 8601 date. */
  readonly since?: number | string;
  /** Timestamps before this: microseconds since the epoch, or an ISO 8601 date. */
  readonly until?: number | string;
  /** `asc` (oldest first, the default) or `desc` (newest first). */
  readonly order?: "asc" | "desc";
  /** At most this many events (1-1000, default 100). */
  readonly limit?: number;
  /** The `cursor` of the previous page, to continue where it stopped. */
  readonly cursor?: string;
}

/** One page of events. */
export interface EventPage {
  readonly events: SoloEvent[];
  /** Pass as `cursor` to get the next page; null when there is none. */
  readonly cursor: string | null;
}

/** What {@link Kernel.subscribe} takes. */
export interface SubscribeOptions {
  /** Only this tenant's events; omitted: all (the admin read). */
  readonly tenant?: string;
  readonly types?: readonly string[];
  readonly subject?: string;
  /** The first id to deliver. Default: the next event appended after the call. */
  readonly fromId?: number;
  /** Ends the subscription. */
  readonly signal?: AbortSignal;
}
