/** What a service may fetch (validated by the kernel's `checkFetchGrant`). */
export interface FetchGrant {
  /** Allowed hosts: `api.example.com`, `*.example.com` (sub-domains only) or an IP, each optionally `:port`. */
  readonly hosts: readonly string[];
  /** Whether plain `http:` is allowed (default false: https only). */
  readonly allowHttp: boolean;
  /** Largest response body read, in bytes. */
  readonly maxResponseBytes: number;
  /** Largest request body sent, in bytes (UTF-8). */
  readonly maxRequestBytes: number;
  /** Time the whole fetch may take, redirects and body included, in milliseconds. */
  readonly timeoutMs: number;
  /** Redirects followed before giving up. */
  readonly maxRedirects: number;
}

/** Grants as the runtime enforces them (kept apart from their validation, so schedulers load little). */
export interface ServiceGrants {
  readonly call: readonly string[];
  readonly storage: boolean;
  readonly secrets: readonly string[];
  readonly emit: boolean;
  readonly timers: boolean;
  /** Log lines per second (a burst of as many is allowed); 0: no logging. */
  readonly logPerSecond: number;
  readonly fetch: FetchGrant | null;
}

/** Lines per second a service may log by default. */
export const DEFAULT_LOG_PER_SECOND = 100;

/** What a deployment without `grants` gets: its own storage, events, timers and log. */
export const DEFAULT_GRANTS: ServiceGrants = Object.freeze({
  call: Object.freeze([]) as readonly string[],
  storage: true,
  secrets: Object.freeze([]) as readonly string[],
  emit: true,
  timers: true,
  logPerSecond: DEFAULT_LOG_PER_SECOND,
  fetch: null,
});

/**
 * The powers a deployment states it needs, as given to `deploy({ grants })`. Each is off unless
 * granted; a deployment that gives no `grants` at all gets {@link DEFAULT_GRANTS}, the powers
 * that touch only the service itself and its tenant's log.
 */
export interface GrantsInput {
  /** Services of the same tenant this one may `solo.call` and `solo.cast` to. */
  readonly call?: readonly string[];
  /** `solo.storage` (its quota is `limits.storageBytes` / `storageKeys`). */
  readonly storage?: boolean;
  /** Secrets of the tenant it may read with `solo.secrets.get`, by name. */
  readonly secrets?: readonly string[];
  /** `solo.emit` of custom events. */
  readonly emit?: boolean;
  /** `solo.sendAfter` (at most `limits.timers` pending). */
  readonly timers?: boolean;
  /** `solo.log` / `console`, rate-limited: `true` for the default rate, or lines per second. */
  readonly log?: boolean | { readonly perSecond: number };
  /** `solo.fetch` to allow-listed hosts. */
  readonly fetch?: unknown;
}

/** The grants as plain data, as `status` shows them, the store keeps them and a service reads them (`solo.grants`). */
export function grantsData(g: ServiceGrants): Record<string, unknown> {
  return {
    call: [...g.call],
    storage: g.storage,
    secrets: [...g.secrets],
    emit: g.emit,
    timers: g.timers,
    log: g.logPerSecond === 0 ? false : { perSecond: g.logPerSecond },
    ...(g.fetch ? { fetch: g.fetch } : {}),
  };
}
