// Public types: a service as the embedding API deploys, calls, lists and swaps it.
import type { Finding } from "./analyzer.ts";
import type { Crash } from "./crash.ts";
import type { GrantsInput } from "./grants.ts";
import type { LimitsInput, ServiceLimits } from "./limits.ts";
import type { SupervisionInput, SupervisionPolicy } from "./supervision.ts";

/** Options for {@link Kernel.swap}. */
export interface SwapOptions {
  /** How long a crash of the new version rolls it back (0 to 3600000 ms). Default 30000. */
  readonly rollbackWindowMs?: number;
  /**
   * The new version's grants, as `deploy` takes them (over the defaults); omitted: the running
   * version's. A token may give only what it holds, as for a deploy. A rollback restores the
   * grants of the version it returns to.
   */
  readonly grants?: GrantsInput;
  /** The new code's file name, as `deploy` takes it; omitted: the running version's. */
  readonly file?: string;
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
  /**
   * The name of the file as the author has it (`billing.ts`), for syntax errors, findings and
   * crashes to name: 1-128 of letters, digits, `.`, `_`, `-`. Omitted: `<service>.ts` (or `.js`).
   */
  readonly file?: string;
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
  /** Log lines dropped: written without the log grant (which never throws), or over its rate. */
  readonly logDropped: number;
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
  readonly metadata: Readonly<Record<string, string | number | boolean | null>>;
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

/** A circuit breaker's state. */
export type BreakerState = "closed" | "open" | "half_open";
