import type { ErrorData } from "../lib/errors/errors.ts";

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
  /** Every tenant ever created, live and deleted, by name and incarnation. */
  tenants(): Promise<TenantRow[]>;
  /** Every service's kept log lines, by tenant, service and `seq`. */
  logLines(): Promise<LogRow[]>;
  /** Every capability token ever granted (hashes only), revoked ones included. */
  tokens(): Promise<TokenRow[]>;
  /** The vault's data keys, each wrapped under a master key. */
  vaultKeys(): Promise<VaultKeyRow[]>;
  /** One sealed secret, or undefined. */
  secret(tenant: string, name: string): Promise<SecretRow | undefined>;
  /** A tenant's secrets (sealed), in name order. */
  secrets(tenant: string): Promise<SecretRow[]>;
  /** Up to `limit` secrets sealed under a data key other than `keyId`: what a key rotation still has to re-seal. */
  secretsNotUnder(keyId: number, limit: number): Promise<SecretRow[]>;
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

/** One log line of a service, as the store keeps it. @internal */
export interface LogRow {
  readonly tenant: string;
  readonly service: string;
  readonly seq: number;
  readonly at: string;
  readonly level: string;
  readonly text: string;
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
  /** The powers granted, as JSON text ("" when deployed before grants existed: the defaults). */
  readonly grants?: string;
  /** The file name the author deployed it as ("" when not given). */
  readonly file?: string;
  readonly deployedAt: number;
}

/** One incarnation of a tenant. A deleted tenant's row stays, so its name is not reused by accident. @internal */
export interface TenantRow {
  readonly name: string;
  /** 1 for the first tenant of that name, 2 after it was deleted and created again, ... */
  readonly incarnation: number;
  /** The tenant's limits, as JSON text. */
  readonly limits: string;
  readonly createdAt: number;
  /** Events with ids above this belong to this incarnation (those at or below it, to earlier ones). */
  readonly eventsAfter: number;
  readonly deletedAt: number | null;
}

/** A capability token as stored: never the token itself, only its SHA-256. @internal */
export interface TokenRow {
  /** Public id (`tok_...`): how tokens are listed and revoked. */
  readonly id: string;
  /** SHA-256 of the token, lower-case hex. */
  readonly hash: string;
  /** Null for an admin token. */
  readonly tenant: string | null;
  /** The permissions, as a JSON array of strings. */
  readonly permissions: string;
  /** Expiry (ms since the epoch), or null for none. */
  readonly expiresAt: number | null;
  readonly createdAt: number;
  /** The token id of whoever granted it, or `system` (the embedder). */
  readonly creator: string;
  /** The token it was derived from: revoking that one revokes this one. */
  readonly parent: string | null;
  readonly label: string;
  readonly revokedAt: number | null;
}

/** A vault data key, wrapped (AES-256-GCM) under the master key `masterKeyId` names. @internal */
export interface VaultKeyRow {
  readonly id: number;
  readonly masterKeyId: string;
  /** Base64 of nonce, ciphertext and tag. */
  readonly wrapped: string;
  readonly createdAt: number;
}

/** A secret, sealed under vault data key `keyId`. @internal */
export interface SecretRow {
  readonly tenant: string;
  readonly name: string;
  readonly keyId: number;
  /** Base64 of nonce, ciphertext and tag. */
  readonly sealed: string;
  readonly updatedAt: number;
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
  | { readonly t: "kv.delete"; readonly tenant: string; readonly service: string; readonly key: string }
  /** Appends a service's log lines (numbered by `seq`) and keeps only its last `keep`. */
  | {
      readonly t: "logs.append";
      readonly tenant: string;
      readonly service: string;
      readonly lines: readonly LogRow[];
      readonly keep: number;
    }
  /** A new incarnation of a tenant; its `eventsAfter` is the id before its operation's first event. */
  | { readonly t: "tenant.create"; readonly name: string; readonly limits: string; readonly createdAt: number }
  | { readonly t: "tenant.limits"; readonly name: string; readonly limits: string }
  /** Marks the tenant deleted and removes its deployments, storage, secrets and (by revoking) tokens. */
  | { readonly t: "tenant.delete"; readonly name: string; readonly deletedAt: number }
  | { readonly t: "token.put"; readonly token: TokenRow }
  | { readonly t: "token.revoke"; readonly ids: readonly string[]; readonly revokedAt: number }
  | { readonly t: "vault.key"; readonly key: VaultKeyRow }
  /** Replaces data keys' wrapping (a master key rotation): each listed key's master key id and wrapped form. */
  | { readonly t: "vault.rewrap"; readonly keys: readonly Omit<VaultKeyRow, "createdAt">[] }
  /** Deletes a data key no secret is sealed under any more (changes nothing otherwise). */
  | { readonly t: "vault.retire"; readonly id: number }
  | { readonly t: "secret.put"; readonly secret: SecretRow }
  /** Re-seals a secret under a new key, only if it is still sealed under `fromKeyId` (a put since wins). */
  | { readonly t: "secret.reseal"; readonly secret: SecretRow; readonly fromKeyId: number }
  | { readonly t: "secret.delete"; readonly tenant: string; readonly name: string };

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
