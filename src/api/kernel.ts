// The embedding API's types: what `openKernel` takes, the `Kernel` it returns, a token's `KernelSession`,
// and the clock the kernel keeps time by.
import type { EventPage, EventQuery, SoloEvent, SubscribeOptions, VerifyReport } from "./events.ts";
import type { FetchPolicy } from "./fetch.ts";
import type { LimitsInput, TenantLimits } from "./limits.ts";
import type { SecretsApi, VaultApi } from "./secrets.ts";
import type {
  CallOptions,
  Deployment,
  DeploySpec,
  LogEntry,
  ServiceInfo,
  ServiceSource,
  ServiceState,
  ServiceVersion,
  SwapOptions,
} from "./services.ts";
import type { SupervisionInput } from "./supervision.ts";
import type { TenantsApi, TenantUsage } from "./tenants.ts";
import type { GrantedToken, TokenInfo, TokenSpec, TokensApi, Via } from "./tokens.ts";

/** Options for {@link openKernel}. */
export interface KernelOptions {
  /** Where the kernel keeps its data; created (mode 0700) if missing. Default `./.solo`. */
  readonly dataDir?: string;
  /** Scheduler threads that run tenant code. Default: one per core. */
  readonly schedulers?: number;
  /** Default limits for every service; each deploy may override them. */
  readonly limits?: LimitsInput;
  /** Largest service source accepted by deploy, in bytes. Default 1 MiB. */
  readonly maxCodeBytes?: number;
  /** Receives every line a service logs with `solo.log` / `console.log`. */
  readonly onLog?: (entry: LogEntry) => void;
  /**
   * A PostgreSQL URL (`postgres://user@host:5432/db`) to keep the event log and durable state in,
   * instead of the SQLite file in the data directory. Default: `$SOLO_DATABASE_URL` if set.
   */
  readonly database?: string;
  /** Default supervision for every service (restart type, intensity, backoff); each deploy may override it. */
  readonly supervision?: SupervisionInput;
  /** The clock supervision uses; tests inject a manual one. Default: the system clock. */
  readonly clock?: Clock;
  /** What each tenant may use in all (services, memory). */
  readonly tenantLimits?: Partial<TenantLimits>;
  /**
   * The memory all tenants may be given together, in bytes: creating a tenant, or raising one's
   * `memoryBytes`, past it is refused (`SOLO_ERR_MEMORY_BUDGET`). Default: `$SOLO_MEMORY_BUDGET`,
   * else half of the host's memory (or of the process's cgroup limit, if lower).
   */
  readonly memoryBudgetBytes?: number;
  /**
   * `enforce` (default): analyzer errors refuse a deploy or swap. `warn`: they are only reported
   * (for testing the sandbox itself, which stays the boundary either way).
   */
  readonly analyzer?: "enforce" | "warn";
  /**
   * The vault's master key (32 bytes as 64 hex digits or base64). Default: `SOLO_MASTER_KEY`, else
   * the data directory's `master.key` (created 0600 on first open).
   */
  readonly masterKey?: string;
  /**
   * The operator's policy for services' `solo.fetch`: addresses exempt from the private-address
   * rule, extra trusted CAs, a resolver. Services cannot change it.
   */
  readonly fetch?: FetchPolicy;
}

/** A running Solo kernel: the embedding API every other interface is a client of. */
export interface Kernel {
  /** The data directory in use. */
  readonly dataDir: string;
  /** The number of scheduler threads. */
  readonly schedulers: number;
  /**
   * Checks the code with the analyzer (errors refuse it), strips types, starts the service under
   * its tenant's supervisor, runs `init`, and records the deployment durably before resolving.
   */
  deploy(spec: DeploySpec): Promise<Deployment>;
  /** Sends a request to `handleCall` and waits for the reply, like `gen_server:call`. */
  call(tenant: string, service: string, request?: unknown, options?: CallOptions): Promise<unknown>;
  /** Sends a message to `handleCast` without waiting, like `gen_server:cast`. */
  cast(tenant: string, service: string, message?: unknown): Promise<void>;
  /** Stops a service (running `terminate` if it is idle); pending calls are rejected. */
  kill(tenant: string, service: string): Promise<void>;
  /** The tenant's services with their state and usage; with `tag`, only the services carrying it. */
  list(tenant: string, filter?: { readonly tag?: string }): ServiceInfo[];
  /** One service's state, version, restarts, last crash, limits, supervision and usage. */
  status(tenant: string, service: string): ServiceInfo;
  /** A tenant's totals (services, memory, mailboxes, dropped messages) and its limits. */
  tenantUsage(tenant: string): TenantUsage;
  /**
   * Stops the service if it runs (with `terminate`) and starts its current version again, with a
   * fresh `init` and a fresh restart-intensity count: how an operator revives a `failed` service.
   */
  restart(tenant: string, service: string): Promise<Deployment>;
  /**
   * Hot swap: replaces a running service's code between two messages, carrying its state through
   * the new code's `codeChange(fromVersion, state)`; no message is lost, reordered or handled twice.
   * If the new version crashes within `rollbackWindowMs` (default 30 s), the previous code comes
   * back with the state captured at the swap. A failed swap leaves the old version running.
   */
  swap(tenant: string, service: string, code: string, options?: SwapOptions): Promise<Deployment>;
  /** Swaps back to an earlier version's code (default: the one before the running one). */
  rollback(tenant: string, service: string, version?: number): Promise<Deployment>;
  /** The most recent log lines of a service (up to 200 and 64 KiB), kept across its crashes and restarts. */
  logs(tenant: string, service: string): LogEntry[];
  /**
   * A service's kept lines, then each new one as it is logged: iterate with `for await`; break,
   * or abort `signal`, to stop (the kernel's close ends it too). A follower that falls more than
   * 1,000 lines behind is told how many it missed, in a line of its own.
   */
  followLogs(tenant: string, service: string, options?: { readonly signal?: AbortSignal }): AsyncIterableIterator<LogEntry>;
  /** Every version of a service that ran, oldest first, with the current one marked (killed services' too). */
  versions(tenant: string, service: string): Promise<ServiceVersion[]>;
  /** The source of one version of a service, exactly as deployed (default: the current version). */
  source(tenant: string, service: string, version?: number): Promise<ServiceSource>;
  /** One page of the event log, oldest first unless `order: "desc"`; `cursor` continues it. */
  events(query?: EventQuery): Promise<EventPage>;
  /**
   * Follows the event log: from `fromId` (the stored past, then live) or from now, with no gap and
   * no duplicate. Iterate with `for await`; break, or abort `signal`, to stop.
   */
  subscribe(options?: SubscribeOptions): AsyncIterableIterator<SoloEvent>;
  /** Walks the whole hash chain and reports the first missing, altered or unlinked event. */
  verify(): Promise<VerifyReport>;
  /** Where the kernel keeps its durable state: `sqlite` (in the data directory) or `postgres`. */
  readonly store: { readonly kind: "sqlite" | "postgres"; readonly location: string };
  /**
   * The kernel as the holder of `token` sees it: every operation verifies the token and checks its
   * permissions (denials are audited and change nothing). The methods above act for the embedder,
   * which holds this object and so has every power; anything that serves other callers (the
   * gateway, an agent's tools) goes through a session. `via` says which request the session
   * serves (the requester's address and certificate, the request id): denials are recorded
   * against it, and carry the id as their correlation id. A session made with `via` serves that
   * one request: its token is verified once, at its first check, and that verification stands for
   * the rest of the request (make one per request); without `via`, at every operation.
   */
  as(token: string | undefined, via?: Via): KernelSession;
  /** Capability tokens, granted by the embedder. */
  readonly tokens: TokensApi;
  /** Tenants: create, list, update limits, delete. */
  readonly tenants: TenantsApi;
  /** Tenants' secrets, encrypted at rest. */
  readonly secrets: SecretsApi;
  /** The vault's keys and their rotation. */
  readonly vault: VaultApi;
  /** A snapshot of the kernel's state for monitoring: services by state, memory, breakers, the log. */
  stats(): KernelStats;
  /** Calls `observer.commit` after every durable commit of the event log; returns the unsubscribe. */
  observe(observer: KernelObserver): () => void;
  /** Terminates every service, stops the schedulers and releases the data directory. */
  close(): Promise<void>;
}

/** What `kernel.stats()` reports. */
export interface KernelStats {
  readonly tenants: ReadonlyArray<{
    readonly tenant: string;
    readonly services: Readonly<Record<ServiceState, number>>;
    /** The tenant's linear memory (what the host holds for it), as in {@link TenantUsage}. */
    readonly memoryBytes: number;
    /** The tenant's memory limit. */
    readonly limitBytes: number;
    /** What its running services' runtimes hold. */
    readonly heapBytes: number;
    readonly mailbox: number;
    readonly restarts: number;
    readonly dropped: number;
  }>;
  /** The kernel's memory budget and what tenants' limits add up to. */
  readonly memory: { readonly budgetBytes: number; readonly committedBytes: number };
  /** What each scheduler thread is running at this moment: a service's message step, or nothing. */
  readonly schedulers: ReadonlyArray<{
    readonly index: number;
    readonly running: { readonly tenant: string; readonly service: string; readonly forMs: number } | null;
  }>;
  readonly breakers: { readonly closed: number; readonly open: number; readonly half_open: number };
  readonly log: { readonly headId: number; readonly queued: number; readonly commits: number; readonly ops: number };
  /** Successful token verifications since open. */
  readonly verifications: number;
  /** Denials since open, and the durable `capability_denied` records written for them (repeats are counted into one). */
  readonly denials: { readonly seen: number; readonly written: number };
}

/** Hooks for monitoring. */
export interface KernelObserver {
  /** After each durable commit of the event log: its duration and the operations it carried. */
  commit?(ms: number, ops: number): void;
}

/**
 * The kernel as the holder of one capability token sees it: the embedding API's operations, each
 * of which verifies the token and checks its permissions first (a denial is audited and changes
 * nothing). Tokens are checked at every operation, so a revocation or expiry takes effect at once.
 */
export interface KernelSession {
  /** The token's own description. */
  whoami(): Promise<TokenInfo>;
  /**
   * Whether the token is valid now and which tenant it reaches (null: every tenant), without
   * recording anything: for routing and admission (the gateway's per-tenant lanes), never for
   * deciding what the token may do.
   */
  reach(): { readonly valid: boolean; readonly tenant: string | null };
  deploy(spec: DeploySpec): Promise<Deployment>;
  call(tenant: string, service: string, request?: unknown, options?: CallOptions): Promise<unknown>;
  cast(tenant: string, service: string, message?: unknown): Promise<void>;
  kill(tenant: string, service: string): Promise<void>;
  list(tenant: string, filter?: { readonly tag?: string }): Promise<ServiceInfo[]>;
  status(tenant: string, service: string): Promise<ServiceInfo>;
  tenantUsage(tenant: string): Promise<TenantUsage>;
  /**
   * What of the kernel's metrics this token may read: `{ tenant: null }` for an unscoped token
   * (everything), `{ tenant }` for a scoped one (that tenant's series only). Needs
   * `services:read`; a denial is audited like any other.
   */
  metricsScope(): Promise<{ readonly tenant: string | null }>;
  restart(tenant: string, service: string): Promise<Deployment>;
  swap(tenant: string, service: string, code: string, options?: SwapOptions): Promise<Deployment>;
  rollback(tenant: string, service: string, version?: number): Promise<Deployment>;
  logs(tenant: string, service: string): Promise<LogEntry[]>;
  followLogs(tenant: string, service: string, options?: { readonly signal?: AbortSignal }): AsyncIterableIterator<LogEntry>;
  versions(tenant: string, service: string): Promise<ServiceVersion[]>;
  source(tenant: string, service: string, version?: number): Promise<ServiceSource>;
  /** Events of the token's tenant (an unscoped token: any tenant, or all). */
  events(query?: EventQuery): Promise<EventPage>;
  subscribe(options?: SubscribeOptions): AsyncIterableIterator<SoloEvent>;
  verify(): Promise<VerifyReport>;
  readonly tokens: TokensApi & {
    /** Derives a token from this one: a subset of its permissions, expiring no later. */
    attenuate(spec: Omit<TokenSpec, "tenant"> & { readonly tenant?: string | null }): Promise<GrantedToken>;
  };
  readonly tenants: TenantsApi;
  readonly secrets: SecretsApi;
  readonly vault: VaultApi;
}

/** Time as the kernel sees it; tests inject a manual clock. */
export interface Clock {
  now(): number;
  setTimeout(fn: () => void, ms: number): unknown;
  clearTimeout(handle: unknown): void;
  /** A number in [0, 1), for jitter. */
  random(): number;
}
