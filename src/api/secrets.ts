// Public types: tenants' secrets as listed, the vault's keys, and the embedding API's `secrets` and
// `vault`.

/** A secret as listed: its name, never its value. */
export interface SecretInfo {
  readonly name: string;
  readonly updatedAt: string;
  /** The vault data key it is sealed under. */
  readonly keyId: number;
}

/** The vault's keys and any rotation in progress. */
export interface VaultStatus {
  /** The master key's id (a hash prefix, never the key); null before the first secret. */
  readonly masterKeyId: string | null;
  /** The data key new secrets are sealed under. */
  readonly activeKeyId: number;
  /** Every data key still held; more than one while a rotation re-seals. */
  readonly keyIds: readonly number[];
  readonly rotating: boolean;
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
