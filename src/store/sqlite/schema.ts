import { GENESIS_HASH } from "../store.ts";

/**
 * The SQLite schema, one entry per version; `PRAGMA user_version` records how many have run.
 * Append new versions, never edit old ones. The PostgreSQL schema has the same versions.
 * @internal
 */
export const SQLITE_MIGRATIONS: readonly string[] = [
  `CREATE TABLE events (
     id INTEGER PRIMARY KEY,
     timestamp INTEGER NOT NULL,
     wall_time INTEGER NOT NULL,
     tenant TEXT,
     type TEXT NOT NULL,
     subject TEXT,
     payload TEXT NOT NULL,
     causation_id INTEGER,
     correlation_id TEXT,
     prev_hash TEXT NOT NULL,
     hash TEXT NOT NULL
   ) STRICT;
   CREATE INDEX events_by_tenant ON events (tenant, id);
   CREATE TABLE log_head (
     one INTEGER PRIMARY KEY CHECK (one = 1),
     id INTEGER NOT NULL,
     timestamp INTEGER NOT NULL,
     hash TEXT NOT NULL
   ) STRICT;
   INSERT INTO log_head VALUES (1, 0, 0, '${GENESIS_HASH}');
   CREATE TABLE deployment_versions (
     tenant TEXT NOT NULL,
     service TEXT NOT NULL,
     version INTEGER NOT NULL,
     code TEXT NOT NULL,
     args TEXT NOT NULL,
     limits TEXT NOT NULL,
     deployed_at INTEGER NOT NULL,
     PRIMARY KEY (tenant, service, version)
   ) STRICT;
   CREATE TABLE deployments (
     tenant TEXT NOT NULL,
     service TEXT NOT NULL,
     version INTEGER NOT NULL,
     active INTEGER NOT NULL,
     PRIMARY KEY (tenant, service)
   ) STRICT, WITHOUT ROWID;
   CREATE TABLE kv (
     tenant TEXT NOT NULL,
     service TEXT NOT NULL,
     key TEXT NOT NULL,
     value TEXT NOT NULL,
     PRIMARY KEY (tenant, service, key)
   ) STRICT;
   CREATE TABLE kv_usage (
     tenant TEXT NOT NULL,
     service TEXT NOT NULL,
     bytes INTEGER NOT NULL,
     keys INTEGER NOT NULL,
     PRIMARY KEY (tenant, service)
   ) STRICT, WITHOUT ROWID;`,
  // 2: each version's supervision policy (restart type, intensity, backoff).
  `ALTER TABLE deployment_versions ADD COLUMN supervision TEXT NOT NULL DEFAULT '';`,
  // 3: each version's tags and metadata.
  `ALTER TABLE deployment_versions ADD COLUMN meta TEXT NOT NULL DEFAULT '';`,
  // 4: tenants (every incarnation of a name), capability tokens (hashes only), the vault, and
  // each version's grants. Tenants
  // that existed before are registered with default limits; their reads start at the first event.
  `CREATE TABLE tenants (
     name TEXT NOT NULL,
     incarnation INTEGER NOT NULL,
     limits TEXT NOT NULL,
     created_at INTEGER NOT NULL,
     events_after INTEGER NOT NULL,
     deleted_at INTEGER,
     PRIMARY KEY (name, incarnation)
   ) STRICT;
   CREATE UNIQUE INDEX tenants_live ON tenants (name) WHERE deleted_at IS NULL;
   INSERT INTO tenants (name, incarnation, limits, created_at, events_after, deleted_at)
     SELECT tenant, 1, '{}', CAST(unixepoch('subsec') * 1000 AS INTEGER), 0, NULL
       FROM (SELECT tenant FROM deployment_versions UNION SELECT tenant FROM kv_usage);
   CREATE TABLE tokens (
     id TEXT PRIMARY KEY,
     hash TEXT NOT NULL UNIQUE,
     tenant TEXT,
     permissions TEXT NOT NULL,
     expires_at INTEGER,
     created_at INTEGER NOT NULL,
     creator TEXT NOT NULL,
     parent TEXT,
     label TEXT NOT NULL,
     revoked_at INTEGER
   ) STRICT;
   CREATE TABLE vault_keys (
     id INTEGER PRIMARY KEY,
     master_key_id TEXT NOT NULL,
     wrapped TEXT NOT NULL,
     created_at INTEGER NOT NULL
   ) STRICT;
   CREATE TABLE secrets (
     tenant TEXT NOT NULL,
     name TEXT NOT NULL,
     key_id INTEGER NOT NULL,
     sealed TEXT NOT NULL,
     updated_at INTEGER NOT NULL,
     PRIMARY KEY (tenant, name)
   ) STRICT;
   CREATE INDEX secrets_by_key ON secrets (key_id);
   ALTER TABLE deployment_versions ADD COLUMN grants TEXT NOT NULL DEFAULT '';`,
  // 5: each service's recent log lines, so they outlive a kernel restart (the kernel keeps the
  // last ones per service; a kill or the tenant's deletion removes them).
  `CREATE TABLE service_logs (
     tenant TEXT NOT NULL,
     service TEXT NOT NULL,
     seq INTEGER NOT NULL,
     at TEXT NOT NULL,
     level TEXT NOT NULL,
     text TEXT NOT NULL,
     PRIMARY KEY (tenant, service, seq)
   ) STRICT;`,
  // 6: the file name each version was deployed as.
  `ALTER TABLE deployment_versions ADD COLUMN file TEXT NOT NULL DEFAULT '';`,
];
