import type { Row } from "./rows.ts";
import type { LogRow, Mutation, SecretRow, TenantRow, TokenRow, VaultKeyRow } from "./store.ts";

/**
 * SQL shared by both backends for the tables of tenants, capability tokens and the vault: plain
 * statements with `?` placeholders (PostgreSQL's are numbered by {@link numbered}), so each
 * backend only runs them. Timestamps are integers (ms), never booleans, so one text fits both.
 * @internal
 */
export interface Statement {
  readonly sql: string;
  readonly params: ReadonlyArray<string | number | null>;
}

/** The mutations this module writes. @internal */
export type AdminMutation = Extract<Mutation, { t: `tenant.${string}` | `token.${string}` | `vault.${string}` | `secret.${string}` }>;

/** Whether a mutation is one of this module's. @internal */
export function isAdminMutation(m: Mutation): m is AdminMutation {
  // Named, not excluded: a new family of mutations is not taken for one of these by default.
  return m.t.startsWith("tenant.") || m.t.startsWith("token.") || m.t.startsWith("vault.") || m.t.startsWith("secret.");
}

const SECRET_COLUMNS = "tenant, name, key_id, sealed, updated_at";

/**
 * The statements that apply one mutation, in order. `eventsAfter` is the id just before the first
 * event of the mutation's operation (what a new tenant's reads start after). The mutation changed
 * something if any statement changed a row.
 * @internal
 */
export function adminStatements(m: AdminMutation, eventsAfter: number): Statement[] {
  switch (m.t) {
    case "tenant.create":
      return [
        {
          sql: `INSERT INTO tenants (name, incarnation, limits, created_at, events_after, deleted_at)
                VALUES (?, (SELECT COALESCE(MAX(incarnation), 0) + 1 FROM tenants WHERE name = ?), ?, ?, ?, NULL)`,
          params: [m.name, m.name, m.limits, m.createdAt, eventsAfter],
        },
      ];
    case "tenant.limits":
      return [{ sql: "UPDATE tenants SET limits = ? WHERE name = ? AND deleted_at IS NULL", params: [m.limits, m.name] }];
    case "tenant.delete":
      return [
        { sql: "UPDATE tenants SET deleted_at = ? WHERE name = ? AND deleted_at IS NULL", params: [m.deletedAt, m.name] },
        { sql: "DELETE FROM kv WHERE tenant = ?", params: [m.name] },
        { sql: "DELETE FROM kv_usage WHERE tenant = ?", params: [m.name] },
        { sql: "DELETE FROM service_logs WHERE tenant = ?", params: [m.name] },
        { sql: "DELETE FROM secrets WHERE tenant = ?", params: [m.name] },
        { sql: "DELETE FROM deployments WHERE tenant = ?", params: [m.name] },
        { sql: "DELETE FROM deployment_versions WHERE tenant = ?", params: [m.name] },
        { sql: "UPDATE tokens SET revoked_at = ? WHERE tenant = ? AND revoked_at IS NULL", params: [m.deletedAt, m.name] },
      ];
    case "token.put": {
      const k = m.token;
      return [
        {
          sql: `INSERT INTO tokens (id, hash, tenant, permissions, expires_at, created_at, creator, parent, label, revoked_at)
                VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
          params: [k.id, k.hash, k.tenant, k.permissions, k.expiresAt, k.createdAt, k.creator, k.parent, k.label, k.revokedAt],
        },
      ];
    }
    case "token.revoke":
      return m.ids.map((id) => ({
        sql: "UPDATE tokens SET revoked_at = ? WHERE id = ? AND revoked_at IS NULL",
        params: [m.revokedAt, id],
      }));
    case "vault.key":
      return [
        {
          sql: "INSERT INTO vault_keys (id, master_key_id, wrapped, created_at) VALUES (?, ?, ?, ?)",
          params: [m.key.id, m.key.masterKeyId, m.key.wrapped, m.key.createdAt],
        },
      ];
    case "vault.rewrap":
      return m.keys.map((k) => ({
        sql: "UPDATE vault_keys SET master_key_id = ?, wrapped = ? WHERE id = ?",
        params: [k.masterKeyId, k.wrapped, k.id],
      }));
    case "vault.retire":
      return [{ sql: "DELETE FROM vault_keys WHERE id = ? AND NOT EXISTS (SELECT 1 FROM secrets WHERE key_id = ?)", params: [m.id, m.id] }];
    case "secret.put": {
      const s = m.secret;
      return [
        {
          sql: `INSERT INTO secrets (${SECRET_COLUMNS}) VALUES (?, ?, ?, ?, ?)
                ON CONFLICT (tenant, name) DO UPDATE SET key_id = excluded.key_id, sealed = excluded.sealed, updated_at = excluded.updated_at`,
          params: [s.tenant, s.name, s.keyId, s.sealed, s.updatedAt],
        },
      ];
    }
    case "secret.reseal": {
      const s = m.secret;
      return [
        {
          sql: "UPDATE secrets SET key_id = ?, sealed = ? WHERE tenant = ? AND name = ? AND key_id = ?",
          params: [s.keyId, s.sealed, s.tenant, s.name, m.fromKeyId],
        },
      ];
    }
    case "secret.delete":
      return [{ sql: "DELETE FROM secrets WHERE tenant = ? AND name = ?", params: [m.tenant, m.name] }];
  }
}

/** The reads of these tables, with `?` placeholders. @internal */
export const ADMIN_READS = {
  tenants: "SELECT name, incarnation, limits, created_at, events_after, deleted_at FROM tenants ORDER BY name, incarnation",
  logLines: "SELECT tenant, service, seq, at, level, text FROM service_logs ORDER BY tenant, service, seq",
  tokens:
    "SELECT id, hash, tenant, permissions, expires_at, created_at, creator, parent, label, revoked_at FROM tokens ORDER BY created_at, id",
  vaultKeys: "SELECT id, master_key_id, wrapped, created_at FROM vault_keys ORDER BY id",
  secret: `SELECT ${SECRET_COLUMNS} FROM secrets WHERE tenant = ? AND name = ?`,
  secrets: `SELECT ${SECRET_COLUMNS} FROM secrets WHERE tenant = ? ORDER BY name`,
  secretsNotUnder: `SELECT ${SECRET_COLUMNS} FROM secrets WHERE key_id <> ? ORDER BY tenant, name LIMIT ?`,
} as const;

/** `?` placeholders as PostgreSQL's `$1, $2, ...` (the statements above hold no `?` in literals). @internal */
export function numbered(sql: string): string {
  let n = 0;
  return sql.replace(/\?/g, () => `$${++n}`);
}

const nullableNumber = (v: unknown): number | null => (v === null || v === undefined ? null : Number(v));

/** @internal */
export function tenantFromRow(r: Row): TenantRow {
  return {
    name: String(r.name),
    incarnation: Number(r.incarnation),
    limits: String(r.limits),
    createdAt: Number(r.created_at),
    eventsAfter: Number(r.events_after),
    deletedAt: nullableNumber(r.deleted_at),
  };
}

/** @internal */
export function tokenFromRow(r: Row): TokenRow {
  return {
    id: String(r.id),
    hash: String(r.hash),
    tenant: r.tenant === null || r.tenant === undefined ? null : String(r.tenant),
    permissions: String(r.permissions),
    expiresAt: nullableNumber(r.expires_at),
    createdAt: Number(r.created_at),
    creator: String(r.creator),
    parent: r.parent === null || r.parent === undefined ? null : String(r.parent),
    label: String(r.label),
    revokedAt: nullableNumber(r.revoked_at),
  };
}

/** @internal */
export function vaultKeyFromRow(r: Row): VaultKeyRow {
  return { id: Number(r.id), masterKeyId: String(r.master_key_id), wrapped: String(r.wrapped), createdAt: Number(r.created_at) };
}

/** @internal */
export function secretFromRow(r: Row): SecretRow {
  return {
    tenant: String(r.tenant),
    name: String(r.name),
    keyId: Number(r.key_id),
    sealed: String(r.sealed),
    updatedAt: Number(r.updated_at),
  };
}

/** @internal */
export function logRowFromRow(r: Record<string, unknown>): LogRow {
  return {
    tenant: String(r.tenant),
    service: String(r.service),
    seq: Number(r.seq),
    at: String(r.at),
    level: String(r.level),
    text: String(r.text),
  };
}
