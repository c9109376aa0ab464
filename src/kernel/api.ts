import type { Crash } from "../api/crash.ts";
import type { ServiceMeta } from "../lib/names.ts";
import type { Finding } from "./analyzer/index.ts";
import type { TokenSpec } from "./auth/authority.ts";
import type { Via } from "./auth/denials.ts";
import type { GrantedToken, TokenInfo } from "./auth/tokens.ts";
import type { BreakerState } from "./breaker/circuit.ts";
import type { LimitsInput, ServiceLimits, TenantLimits } from "./limits.ts";
import type { SoloEvent, VerifyReport } from "./log/event-log.ts";
import type { EventPage, EventQuery, SubscribeOptions } from "./log/query.ts";
import type { FetchPolicy } from "./powers/fetch/index.ts";
import type { GrantsInput } from "./powers/grants.ts";
import type { Clock, SupervisionInput, SupervisionPolicy } from "./supervisor/policy.ts";
import type { TenantInfo } from "./tenants/tenants.ts";
import type { SecretInfo, VaultStatus } from "./vault/vault.ts";

// The embedding API's types: what `openKernel` takes and the `Kernel` it returns.

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

/** Options for {@link Kernel.swap}. */
export interface SwapOptions {
  /** How long a crash of the new version rolls it back (0 to 3600000 ms). Default 30000. */
  readonly rollbackWindowMs?: number;
}

/** A tenant's totals, as the resource monitor last sampled them. */
export interface TenantUsage {
  readonly tenant: string;
  /** Services not killed (running, restarting, crashed or failed). */
  readonly services: number;
  readonly running: number;
  /**
   * Bytes the host holds for the tenant: its WebAssembly instance's linear memory, which
   * `limits.memoryBytes` caps. 0 while it has no running service (the instance is given back).
   */
  readonly memoryBytes: number;
  /** Bytes its running services' runtimes hold together (within `memoryBytes`). */
  readonly heapBytes: number;
  /** Bytes of the messages waiting in its services' mailboxes and timers (at most `limits.memoryBytes`). */
  readonly queuedBytes: number;
  readonly mailbox: number;
  readonly dropped: number;
  readonly limits: TenantLimits;
}

/** What {@link Kernel.deploy} takes. */
export interface DeploySpec {
  readonly tenant: string;
  readonly service: string;
  /** One ES module, JavaScript or TypeScript, whose default export is the handler object. */
  readonly code: string;
  /** Passed to `init(args, ctx)`; any JSON value. */
  readonly args?: unknown;
  /** Overrides of the kernel's default limits for this service. */
  readonly limits?: LimitsInput;
  /** How the tenant's supervisor restarts this service (overrides the kernel's default). */
  readonly supervision?: SupervisionInput;
  /** Labels for discovery: `list(tenant, { tag })`. Up to 32, each 1-64 of a-z 0-9 _ . : - */
  readonly tags?: readonly string[];
  /** Flat descriptive data (string, number, boolean or null values), up to 4 KiB of JSON. */
  readonly metadata?: Readonly<Record<string, string | number | boolean | null>>;
  /**
   * The powers the service needs (see docs/programming-model.md). Omitted: its own storage,
   * events, timers and log. A session may grant only what its token holds.
   */
  readonly grants?: GrantsInput;
}

/** What a successful deploy returns. */
export interface Deployment {
  readonly tenant: string;
  readonly service: string;
  readonly version: number;
  /** What the analyzer found in the code that did not block it (warnings; errors when `analyzer: "warn"`). */
  readonly findings: readonly Finding[];
}

/** Options for {@link Kernel.call}. */
export interface CallOptions {
  /** How long to wait for the reply. Default 5000 ms, at most 600000. */
  readonly timeoutMs?: number;
  /** Aborts the wait; the call then rejects with code `canceled`. */
  readonly signal?: AbortSignal;
}

/** A service's lifecycle state, as `list()` shows it. */
export type ServiceState = "running" | "restarting" | "crashed" | "failed" | "stopped";

/** What a service has used, as last sampled by its scheduler. */
export interface ServiceUsage {
  /** Messages handled (init, calls, casts, timer messages). */
  readonly messages: number;
  /** CPU milliseconds spent in the service's code. */
  readonly cpuMs: number;
  /** Bytes the service's runtime holds (every allocation, as the engine counts it against `limits.memoryBytes`). */
  readonly memoryBytes: number;
  /** Messages waiting in the mailbox. */
  readonly mailbox: number;
  /** Casts and timer messages that found no handler or a stopped service (never lost silently). */
  readonly unhandled: number;
  /** Casts and timer messages dropped because the mailbox was full (each reported as a resource_violation event). */
  readonly dropped: number;
}

/** One service, as `list()` shows it. */
export interface ServiceInfo {
  readonly tenant: string;
  readonly service: string;
  readonly version: number;
  readonly state: ServiceState;
  readonly handlers: readonly string[];
  readonly limits: ServiceLimits;
  readonly usage: ServiceUsage;
  readonly deployedAt: string;
  /** Why the service last crashed (also while it restarts, or once it has failed). */
  readonly crash?: Crash;
  /** Restarts since this version was deployed (by the supervisor or `restart()`). */
  readonly restarts: number;
  readonly supervision: SupervisionPolicy;
  /** The service's circuit breaker: `closed`, `open` or `half_open`, and the failures counted while closed. */
  readonly breaker: { readonly state: BreakerState; readonly consecutiveFailures: number };
  readonly tags: readonly string[];
  readonly metadata: ServiceMeta["metadata"];
  /** The powers the deployment was granted. */
  readonly grants: Readonly<Record<string, unknown>>;
}

/** One deployed version of a service, as `versions()` lists it. */
export interface ServiceVersion {
  readonly version: number;
  readonly deployedAt: string;
  /** The source's size in UTF-8 bytes, and its SHA-256 (lower-case hex): what `source()` returns. */
  readonly codeBytes: number;
  readonly sha256: string;
  /** The powers this version was granted. */
  readonly grants: Readonly<Record<string, unknown>>;
  /** Whether this is the version the service runs now (or would run again after `restart()`). */
  readonly current: boolean;
}

/** One version's source, exactly as it was deployed (TypeScript keeps its types). */
export interface ServiceSource {
  readonly tenant: string;
  readonly service: string;
  readonly version: number;
  readonly deployedAt: string;
  readonly sha256: string;
  readonly code: string;
}

/** One line a service logged. */
export interface LogEntry {
  readonly tenant: string;
  readonly service: string;
  readonly level: "debug" | "info" | "warn" | "error";
  readonly text: string;
  readonly at: string;
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
  /** The most recent log lines of a service (up to 200). */
  logs(tenant: string, service: string): LogEntry[];
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

/** Tokens: grant, derive, list and revoke. */
export interface TokensApi {
  /**
   * Makes a token. The embedder may grant any tenant anything; a token with `tokens:grant` only
   * what it holds itself, within its reach (the new token is its child, as with `attenuate`).
   */
  grant(spec: TokenSpec): Promise<GrantedToken>;
  /** Lists the tokens the principal can see (never the tokens themselves). */
  list(filter?: { readonly tenant?: string | null }): Promise<TokenInfo[]>;
  /** Revokes a token and every token derived from it, at once and for good. */
  revoke(id: string): Promise<{ readonly revoked: readonly string[] }>;
}

/** Creating a tenant. */
export interface TenantCreateOptions {
  /** Overrides of the kernel's default tenant limits. */
  readonly limits?: Partial<TenantLimits>;
  /** Allow a name whose earlier tenant was deleted (the new tenant does not see the old one's events). */
  readonly reuseName?: boolean;
}

/** What deleting a tenant did. */
export interface TenantDeletion {
  readonly tenant: string;
  readonly services: number;
  readonly tokensRevoked: number;
  readonly secretsDeleted: number;
}

/** Tenants: kernel-wide, for the embedder and unscoped tokens. */
export interface TenantsApi {
  create(name: string, options?: TenantCreateOptions): Promise<TenantInfo>;
  list(): Promise<TenantInfo[]>;
  get(name: string): Promise<TenantInfo>;
  /** Replaces the tenant's limit overrides (omitted limits go back to the defaults). */
  update(name: string, limits: Partial<TenantLimits>): Promise<TenantInfo>;
  /**
   * Stops every service of the tenant (with `terminate`), revokes its tokens, deletes its secrets,
   * storage and deployments, and records `tenant_deleted`. Its events stay in the log (still
   * verifiable); the name is not reused unless asked for.
   */
  delete(name: string): Promise<TenantDeletion>;
}

/** A tenant's secrets. Values go in, and out only to services granted them. */
export interface SecretsApi {
  put(tenant: string, name: string, value: string): Promise<SecretInfo>;
  delete(tenant: string, name: string): Promise<boolean>;
  list(tenant: string): Promise<SecretInfo[]>;
}

/** The vault's keys. */
export interface VaultApi {
  status(): Promise<VaultStatus>;
  /** A new data key; secrets are re-sealed under it in the background (with `wait`, before resolving). */
  rotate(options?: { readonly wait?: boolean }): Promise<VaultStatus>;
  /**
   * A new master key: every data key is re-wrapped under it at once. With the data directory's
   * key file the kernel makes the key; with `SOLO_MASTER_KEY` give `newKey` (and start with it).
   */
  rotateMasterKey(options?: { readonly newKey?: string }): Promise<VaultStatus>;
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
