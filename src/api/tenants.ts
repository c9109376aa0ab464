// Public types: tenants, their usage, and the embedding API's `tenants`.
import type { TenantLimits } from "./limits.ts";

/** A tenant as `tenants.list()` shows it. */
export interface TenantInfo {
  readonly name: string;
  /** 1 for the first tenant of this name; higher if an earlier one was deleted. */
  readonly incarnation: number;
  /** The limits in force (the kernel's defaults, overridden by `overrides`). */
  readonly limits: TenantLimits;
  /** The limits set for this tenant itself. */
  readonly overrides: Partial<TenantLimits>;
  readonly createdAt: string;
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
