import type { ErrorData } from "../errors.ts";

/**
 * The storage contract every backend implements: an append-only, hash-chained event log and the
 * kernel's durable tables (deployments with their version history, services' key-value storage),
 * written together in transactions. Asynchronous throughout, so an in-process SQLite file and a
 * shared PostgreSQL server fit the same interface.
 *
 * The store trusts its input: the event log and the kernel validate at the edge, the store only
 * makes writes atomic, ordered and durable.
 * @internal
 */
export interface Store {
  /** `sqlite` or `postgres`. */
  readonly kind: StoreKind;
  /** Where the data lives: a file path, or a PostgreSQL URL without its password. */
  readonly location: string;
  /**
   * Applies a batch of operations in one transaction and makes it durable before resolving. Each
   * operation's mutations are all-or-nothing (a failing one, such as a storage quota, fails only
   * its own operation); its events get the next ids and links of the hash chain in batch order.
   */
  commit(ops: readonly WriteOp[]): Promise<OpResult[]>;
  /** The last event's id, timestamp and hash (id 0 and the genesis hash for an empty log). */
  head(): Promise<ChainHead>;
  /** Events matching a filter, in id order (ascending or descending), at most `limit`. */
  queryEvents(filter: EventFilter): Promise<StoredEventRow[]>;
  /** Services that are deployed and not killed, each with its latest version. */
  activeDeployments(): Promise<DeploymentRecord[]>;
  /** Every version ever deployed of one service, oldest first. */
  deploymentHistory(tenant: string, service: string): Promise<DeploymentRecord[]>;
  /** The highest version each service has ever had (so versions never repeat). */
  latestVersions(): Promise<Array<{ tenant: string; service: string; version: number }>>;
  /** One key of a service's storage, or undefined. */
  kvGet(tenant: string, service: string, key: string): Promise<string | undefined>;
  /** Keys (with values) of a service's storage that start with `prefix`, after `after`, in key order. */
  kvList(tenant: string, service: string, prefix: string, after: string, limit: number): Promise<Array<[string, string]>>;
  /** A service's storage usage. */
  kvUsage(tenant: string, service: string): Promise<{ bytes: number; keys: number }>;
  /** Releases connections and files. Commits in flight finish first. */
  close(): Promise<void>;
}

export type StoreKind = "sqlite" | "postgres";

/** The hash a chain starts from. */
export const GENESIS_HASH = "0".repeat(64);

/** The end of the chain, which the next event links to. @internal */
export interface ChainHead {
  readonly id: number;
  /** Monotonic microseconds since the epoch of the last event. */
  readonly timestamp: number;
  readonly hash: string;
}

/** An event as an appender gives it, validated and with its payload already canonical JSON. @internal */
export interface EventDraft {
  /** Null for kernel-wide events (kernel_started, ...). */
  readonly tenant: string | null;
  readonly type: string;
  readonly subject: string | null;
  /** Canonical JSON text (sorted keys): exactly the bytes that are hashed and stored. */
  readonly payload: string;
  readonly causationId: number | null;
  readonly correlationId: string | null;
  /** Date.now() when the event was appended. */
  readonly wallTime: number;
}

/** An event as stored: the draft plus its place in the log. */
export interface StoredEventRow extends EventDraft {
  readonly id: number;
  readonly timestamp: number;
  readonly prevHash: string;
  readonly hash: string;
}

/** A filter over the log. All fields narrow; `tenant: null` means kernel-wide events only. @internal */
export interface EventFilter {
  /** Omitted: every tenant (the admin read). A string: that tenant only. */
  readonly tenant?: string | null;
  readonly types?: readonly string[];
  readonly subject?: string;
  /** Ids strictly greater than this. */
  readonly afterId?: number;
  /** Ids strictly less than this. */
  readonly beforeId?: number;
  /** Timestamps (µs) at or after this. */
  readonly since?: number;
  /** Timestamps (µs) before this. */
  readonly until?: number;
  readonly order: "asc" | "desc";
  readonly limit: number;
}

/** A deployed version of a service, as the store keeps it. @internal */
export interface DeploymentRecord {
  readonly tenant: string;
  readonly service: string;
  readonly version: number;
  /** The author's source, exactly as deployed. */
  readonly code: string;
  /** The args JSON text given to `init` ("" for none). */
  readonly args: string;
  /** The resolved limits, as JSON text. */
  readonly limits: string;
  /** The resolved supervision policy, as JSON text ("" when deployed before it existed). */
  readonly supervision?: string;
  /** Tags and metadata given at deploy, as JSON text ("" when none). */
  readonly meta?: string;
  readonly deployedAt: number;
}

/** A change to the kernel's tables, applied with an operation's events. @internal */
export type Mutation =
  | { readonly t: "deployment.put"; readonly deployment: DeploymentRecord }
  | { readonly t: "deployment.kill"; readonly tenant: string; readonly service: string }
  /** Makes an existing version the one that runs (and is recovered): a rollback. */
  | { readonly t: "deployment.activate"; readonly tenant: string; readonly service: string; readonly version: number }
  | {
      readonly t: "kv.put";
      readonly tenant: string;
      readonly service: string;
      readonly key: string;
      readonly value: string;
      readonly maxBytes: number;
      readonly maxKeys: number;
    }
  | { readonly t: "kv.delete"; readonly tenant: string; readonly service: string; readonly key: string };

/** One operation of a batch: mutations and the events that record them. @internal */
export interface WriteOp {
  readonly mutations: readonly Mutation[];
  readonly events: readonly EventDraft[];
}

/** What one operation of a batch came to. @internal */
export type OpResult =
  | { readonly ok: true; readonly events: StoredEventRow[]; readonly changed: boolean }
  | { readonly ok: false; readonly error: ErrorData };

/** Bytes a key-value entry counts against its service's quota: its key and its value, in UTF-8. @internal */
export function kvEntryBytes(key: string, value: string): number {
  return Buffer.byteLength(key) + Buffer.byteLength(value);
}
