import { GENESIS_HASH } from "../store.ts";

/**
 * The PostgreSQL schema, one entry per version; `solo_schema` records which have run. Append new
 * versions, never edit old ones. The SQLite schema has the same versions.
 * @internal
 */
export const POSTGRES_MIGRATIONS: readonly string[] = [
  `CREATE TABLE events (
     id BIGINT PRIMARY KEY,
     timestamp BIGINT NOT NULL,
     wall_time BIGINT NOT NULL,
     tenant TEXT,
     type TEXT NOT NULL,
     subject TEXT,
     payload TEXT NOT NULL,
     causation_id BIGINT,
     correlation_id TEXT,
     prev_hash TEXT NOT NULL,
     hash TEXT NOT NULL
   );
   CREATE INDEX events_by_tenant ON events (tenant, id);
   CREATE TABLE log_head (
     one INTEGER PRIMARY KEY CHECK (one = 1),
     id BIGINT NOT NULL,
     timestamp BIGINT NOT NULL,
     hash TEXT NOT NULL
   );
   INSERT INTO log_head VALUES (1, 0, 0, '${GENESIS_HASH}');
   CREATE TABLE deployment_versions (
     tenant TEXT NOT NULL,
     service TEXT NOT NULL,
     version INTEGER NOT NULL,
     code TEXT NOT NULL,
     args TEXT NOT NULL,
     limits TEXT NOT NULL,
     deployed_at BIGINT NOT NULL,
     PRIMARY KEY (tenant, service, version)
   );
   CREATE TABLE deployments (
     tenant TEXT NOT NULL,
     service TEXT NOT NULL,
     version INTEGER NOT NULL,
     active BOOLEAN NOT NULL,
     PRIMARY KEY (tenant, service)
   );
   CREATE TABLE kv (
     tenant TEXT NOT NULL,
     service TEXT NOT NULL,
     key TEXT COLLATE "C" NOT NULL,
     value TEXT NOT NULL,
     PRIMARY KEY (tenant, service, key)
   );
   CREATE TABLE kv_usage (
     tenant TEXT NOT NULL,
     service TEXT NOT NULL,
     bytes BIGINT NOT NULL,
     keys BIGINT NOT NULL,
     PRIMARY KEY (tenant, service)
   );`,
  // 2: each version's supervision policy (restart type, intensity, backoff).
  `ALTER TABLE deployment_versions ADD COLUMN supervision TEXT NOT NULL DEFAULT '';`,
  // 3: each version's tags and metadata.
  `ALTER TABLE deployment_versions ADD COLUMN meta TEXT NOT NULL DEFAULT '';`,
  // 4: tenants (every incarnation of a name), capability tokens (hashes only), the vault, and
  // each version's grants. Tenants
  // that existed before are registered with default limits; their reads start at the first event.
  `CREATE TABLE tenants (
     name TEXT COLLATE "C" NOT NULL,
     incarnation INTEGER NOT NULL,
     limits TEXT NOT NULL,
     created_at BIGINT NOT NULL,
     events_after BIGINT NOT NULL,
     deleted_at BIGINT,
     PRIMARY KEY (name, incarnation)
   );
   CREATE UNIQUE INDEX tenants_live ON tenants (name) WHERE deleted_at IS NULL;
   INSERT INTO tenants (name, incarnation, limits, created_at, events_after, deleted_at)
     SELECT tenant, 1, '{}', (extract(epoch FROM now()) * 1000)::bigint, 0, NULL
       FROM (SELECT tenant FROM deployment_versions UNION SELECT tenant FROM kv_usage) AS t;
   CREATE TABLE tokens (
     id TEXT COLLATE "C" PRIMARY KEY,
     hash TEXT NOT NULL UNIQUE,
     tenant TEXT,
     permissions TEXT NOT NULL,
     expires_at BIGINT,
     created_at BIGINT NOT NULL,
     creator TEXT NOT NULL,
     parent TEXT,
     label TEXT NOT NULL,
     revoked_at BIGINT
   );
   CREATE TABLE vault_keys (
     id BIGINT PRIMARY KEY,
     master_key_id TEXT NOT NULL,
     wrapped TEXT NOT NULL,
     created_at BIGINT NOT NULL
   );
   CREATE TABLE secrets (
     tenant TEXT COLLATE "C" NOT NULL,
     name TEXT COLLATE "C" NOT NULL,
     key_id BIGINT NOT NULL,
     sealed TEXT NOT NULL,
     updated_at BIGINT NOT NULL,
     PRIMARY KEY (tenant, name)
   );
   CREATE INDEX secrets_by_key ON secrets (key_id);
   ALTER TABLE deployment_versions ADD COLUMN grants TEXT NOT NULL DEFAULT '';`,
  // 5: each service's recent log lines, so they outlive a kernel restart.
  `CREATE TABLE service_logs (
     tenant TEXT NOT NULL,
     service TEXT NOT NULL,
     seq BIGINT NOT NULL,
     at TEXT NOT NULL,
     level TEXT NOT NULL,
     text TEXT NOT NULL,
     PRIMARY KEY (tenant, service, seq)
   );`,
  // 6: the file name each version was deployed as.
  `ALTER TABLE deployment_versions ADD COLUMN file TEXT NOT NULL DEFAULT '';`,
];
