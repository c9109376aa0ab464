import pg from "pg";
import { SoloError } from "../../lib/errors/errors.ts";
import { ADMIN_READS, logRowFromRow, numbered, secretFromRow, tenantFromRow, tokenFromRow, vaultKeyFromRow } from "../admin-sql.ts";
import { nowMicros, seal } from "../chain.ts";
import { mutationSteps } from "../mutations.ts";
import { checkTail, deploymentFromRow, opFailure, prefixRun, type Row } from "../rows.ts";
import { EVENT_COLUMNS, type EventRowIn, eventFromRow, eventQuery, eventValues } from "../sql.ts";
import type {
  ChainHead,
  DeploymentRecord,
  EventFilter,
  LogRow,
  Mutation,
  OpResult,
  SecretRow,
  Store,
  StoredEventRow,
  TenantRow,
  TokenRow,
  VaultKeyRow,
  WriteOp,
} from "../store.ts";
import { POSTGRES_MIGRATIONS } from "./schema.ts";

/**
 * Takes the one-kernel lock, waiting up to a second for it: a kernel killed a moment ago still
 * holds it until PostgreSQL has noticed that its connection is gone and ended its session.
 */
async function takeKernelLock(client: pg.PoolClient): Promise<boolean> {
  const until = Date.now() + KERNEL_LOCK_WAIT_MS;
  for (;;) {
    const locked = await client.query("SELECT pg_try_advisory_lock($1) AS ok", [KERNEL_LOCK_KEY]);
    if ((locked.rows[0] as Row).ok) return true;
    if (Date.now() >= until) return false;
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

const KERNEL_LOCK_WAIT_MS = 1000;

// One kernel per database until leases arrive: a session-level advisory lock held for the store's
// life. The key is an arbitrary constant ("SOLO" in ASCII).
const KERNEL_LOCK_KEY = 0x534f4c4f;
const MIGRATION_LOCK_KEY = 0x534f4c50;

/**
 * Opens the PostgreSQL store at `url`: connects, takes the one-kernel lock, runs migrations and
 * checks the log's tail. Rejects with a precise error on each failure.
 * @internal
 */
export async function openPostgresStore(url: string): Promise<Store> {
  const location = redact(url);
  const pool = new pg.Pool({ connectionString: url, max: 4, application_name: "solo" });
  // An idle client whose connection drops emits on the pool; the next query reports it.
  pool.on("error", () => undefined);
  // Durability does not depend on the server's defaults: every write transaction sets
  // synchronous_commit itself (SET LOCAL, see commitNow), so no query runs at connect.
  let lockClient: pg.PoolClient | undefined;
  try {
    lockClient = await pool.connect().catch((err: unknown) => {
      throw new SoloError(
        "SOLO_ERR_STORE_OPEN",
        `cannot connect to PostgreSQL at ${location}: ${(err as Error).message}`,
        { database: location, hint: "check that the server is up and the URL (host, port, user, database) is right" },
        { cause: err },
      );
    });
    // The lock's connection stays checked out for the store's life, out of the pool's error
    // handling: losing it must not crash the process (the store reports it on the next write).
    lockClient.on("error", () => undefined);
    if (!(await takeKernelLock(lockClient))) {
      throw new SoloError("SOLO_ERR_STORE_LOCKED", `another Solo kernel is using the PostgreSQL database ${location}`, {
        database: location,
        hint: "stop that kernel first, or give this one its own database",
      });
    }
    await migrate(pool, location);
    const head = await loadHead(pool, location);
    return new PostgresStore(pool, lockClient, location, head);
  } catch (err) {
    lockClient?.release(true);
    await pool.end();
    if (err instanceof SoloError) throw err;
    throw new SoloError(
      "SOLO_ERR_STORE_OPEN",
      `opening the PostgreSQL store ${location} failed: ${(err as Error).message}`,
      { database: location },
      { cause: err },
    );
  }
}

async function migrate(pool: pg.Pool, location: string): Promise<void> {
  const client = await pool.connect();
  try {
    await client.query("BEGIN");
    await client.query("SELECT pg_advisory_xact_lock($1)", [MIGRATION_LOCK_KEY]);
    await client.query("CREATE TABLE IF NOT EXISTS solo_schema (version INTEGER PRIMARY KEY, applied_at BIGINT NOT NULL)");
    const found = Number(((await client.query("SELECT COALESCE(MAX(version), 0) AS v FROM solo_schema")).rows[0] as Row).v);
    if (found > POSTGRES_MIGRATIONS.length) {
      throw new SoloError(
        "SOLO_ERR_STORE_SCHEMA_NEWER",
        `the PostgreSQL store ${location} has schema version ${found}, newer than this kernel's ${POSTGRES_MIGRATIONS.length}`,
        { database: location, found, supported: POSTGRES_MIGRATIONS.length, hint: "run a newer Solo against this database" },
      );
    }
    for (let v = found; v < POSTGRES_MIGRATIONS.length; v++) {
      await client.query(POSTGRES_MIGRATIONS[v] as string);
      await client.query("INSERT INTO solo_schema (version, applied_at) VALUES ($1, $2)", [v + 1, Date.now()]);
    }
    await client.query("COMMIT");
  } catch (err) {
    await client.query("ROLLBACK").catch(() => undefined);
    throw err;
  } finally {
    client.release();
  }
}

async function loadHead(pool: pg.Pool, location: string): Promise<ChainHead> {
  const h = (await pool.query("SELECT id, timestamp, hash FROM log_head WHERE one = 1")).rows[0] as Row | undefined;
  const last = (await pool.query(`SELECT ${EVENT_COLUMNS} FROM events ORDER BY id DESC LIMIT 1`)).rows[0] as EventRowIn | undefined;
  return checkTail(h, last, `the PostgreSQL store ${location}`, { database: location });
}

class PostgresStore implements Store {
  readonly kind = "postgres";
  readonly location: string;
  private readonly pool: pg.Pool;
  private readonly lockClient: pg.PoolClient;
  private closing: Promise<void> | undefined;
  private lastHead: ChainHead;
  // Everything started before close() is let finish before the pool ends: pg's pool neither runs
  // nor rejects requests still waiting for a connection once it has ended.
  private readonly inFlight = new Set<Promise<unknown>>();

  constructor(pool: pg.Pool, lockClient: pg.PoolClient, location: string, head: ChainHead) {
    this.pool = pool;
    this.lockClient = lockClient;
    this.location = location;
    this.lastHead = head;
  }

  private unavailable(err: unknown, what: string): SoloError {
    if (err instanceof SoloError) return err;
    return new SoloError(
      "SOLO_ERR_STORE_UNAVAILABLE",
      `${what} the PostgreSQL store ${this.location} failed: ${(err as Error).message}`,
      { database: this.location },
      { cause: err },
    );
  }

  private track<T>(work: () => Promise<T>): Promise<T> {
    if (this.closing) return Promise.reject(new SoloError("SOLO_ERR_STORE_CLOSED", `the PostgreSQL store ${this.location} is closed`));
    const p = work();
    this.inFlight.add(p);
    const done = (): void => {
      this.inFlight.delete(p);
    };
    p.then(done, done);
    return p;
  }

  private query(text: string, values: unknown[] = []): Promise<Row[]> {
    return this.track(async () => {
      try {
        return (await this.pool.query(text, values)).rows as Row[];
      } catch (err) {
        throw this.unavailable(err, "reading");
      }
    });
  }

  commit(ops: readonly WriteOp[]): Promise<OpResult[]> {
    return this.track(() => this.commitNow(ops));
  }

  private async commitNow(ops: readonly WriteOp[]): Promise<OpResult[]> {
    const client = await this.pool.connect().catch((err: unknown) => {
      throw this.unavailable(err, "connecting to");
    });
    const results: OpResult[] = [];
    try {
      await client.query("BEGIN");
      // Durability must not rest on the session's setting (a pooler may not keep it).
      await client.query("SET LOCAL synchronous_commit = on");
      // The head row is the log's one lock: whoever holds it assigns the next ids, so ids stay
      // gap-free and in commit order however many connections (or kernels) append.
      const h = (await client.query("SELECT id, timestamp, hash FROM log_head WHERE one = 1 FOR UPDATE")).rows[0] as Row;
      const start: ChainHead = { id: Number(h.id), timestamp: Number(h.timestamp), hash: String(h.hash) };
      let head = start;
      const now = nowMicros();
      const rows: StoredEventRow[] = [];
      for (const op of ops) {
        const guarded = op.mutations.length > 0;
        if (guarded) await client.query("SAVEPOINT op");
        try {
          let changed = false;
          for (const m of op.mutations) changed = (await this.apply(client, m, head.id)) || changed;
          if (guarded) {
            // Events of a guarded operation go in with it, so its savepoint covers them.
            const sealed = seal(head, op.events, now);
            await insertEvents(client, sealed.rows);
            await client.query("RELEASE SAVEPOINT op");
            head = sealed.head;
            results.push({ ok: true, events: sealed.rows, changed });
          } else {
            const sealed = seal(head, op.events, now);
            rows.push(...sealed.rows);
            head = sealed.head;
            results.push({ ok: true, events: sealed.rows, changed });
          }
        } catch (err) {
          // One operation's failure (a quota, or input the database refuses) is its own alone.
          if (!guarded) throw err;
          await client.query("ROLLBACK TO SAVEPOINT op");
          await client.query("RELEASE SAVEPOINT op");
          results.push({ ok: false, error: opFailure(err, this.location).toData() });
        }
      }
      await insertEvents(client, rows);
      if (head.id !== start.id) {
        await client.query("UPDATE log_head SET id = $1, timestamp = $2, hash = $3 WHERE one = 1", [head.id, head.timestamp, head.hash]);
      }
      await client.query("COMMIT");
      this.lastHead = head;
      client.release();
      return results;
    } catch (err) {
      await client.query("ROLLBACK").catch(() => undefined);
      client.release(true);
      throw this.unavailable(err, "writing to");
    }
  }

  private async apply(client: pg.PoolClient, m: Mutation, eventsAfter: number): Promise<boolean> {
    const steps = mutationSteps(m, eventsAfter);
    let step = steps.next();
    while (!step.done) {
      const r = await client.query(numbered(step.value.sql), step.value.params as unknown[]);
      step = steps.next({ rows: r.rows as Row[], changes: r.rowCount ?? 0 });
    }
    return step.value;
  }

  async head(): Promise<ChainHead> {
    const h = (await this.query("SELECT id, timestamp, hash FROM log_head WHERE one = 1"))[0];
    if (!h) return this.lastHead;
    return { id: Number(h.id), timestamp: Number(h.timestamp), hash: String(h.hash) };
  }

  async queryEvents(filter: EventFilter): Promise<StoredEventRow[]> {
    const q = eventQuery(filter, (n) => `$${n}`);
    return ((await this.query(q.text, q.values)) as unknown as EventRowIn[]).map(eventFromRow);
  }

  async activeDeployments(): Promise<DeploymentRecord[]> {
    const rows = await this.query(
      `SELECT v.tenant, v.service, v.version, v.code, v.args, v.limits, v.supervision, v.meta, v.grants, v.file, v.deployed_at
         FROM deployments d JOIN deployment_versions v
           ON v.tenant = d.tenant AND v.service = d.service AND v.version = d.version
        WHERE d.active ORDER BY v.tenant, v.service`,
    );
    return rows.map(deploymentFromRow);
  }

  async deploymentHistory(tenant: string, service: string): Promise<DeploymentRecord[]> {
    const rows = await this.query(
      "SELECT tenant, service, version, code, args, limits, supervision, meta, grants, file, deployed_at FROM deployment_versions WHERE tenant = $1 AND service = $2 ORDER BY version",
      [tenant, service],
    );
    return rows.map(deploymentFromRow);
  }

  async latestVersions(): Promise<Array<{ tenant: string; service: string; version: number }>> {
    const rows = await this.query("SELECT tenant, service, MAX(version) AS version FROM deployment_versions GROUP BY tenant, service");
    return rows.map((r) => ({ tenant: String(r.tenant), service: String(r.service), version: Number(r.version) }));
  }

  async kvGet(tenant: string, service: string, key: string): Promise<string | undefined> {
    const r = (await this.query("SELECT value FROM kv WHERE tenant = $1 AND service = $2 AND key = $3", [tenant, service, key]))[0];
    return r ? String(r.value) : undefined;
  }

  async kvList(tenant: string, service: string, prefix: string, after: string, limit: number): Promise<Array<[string, string]>> {
    // Both bounds compared by the database, in its (byte, COLLATE "C") order of keys.
    const rows =
      after === ""
        ? await this.query("SELECT key, value FROM kv WHERE tenant = $1 AND service = $2 AND key >= $3 ORDER BY key LIMIT $4", [
            tenant,
            service,
            prefix,
            limit,
          ])
        : await this.query(
            "SELECT key, value FROM kv WHERE tenant = $1 AND service = $2 AND key >= $3 AND key > $4 ORDER BY key LIMIT $5",
            [tenant, service, prefix, after, limit],
          );
    return prefixRun(rows, prefix);
  }

  async kvUsage(tenant: string, service: string): Promise<{ bytes: number; keys: number }> {
    const r = (await this.query("SELECT bytes, keys FROM kv_usage WHERE tenant = $1 AND service = $2", [tenant, service]))[0];
    return r ? { bytes: Number(r.bytes), keys: Number(r.keys) } : { bytes: 0, keys: 0 };
  }

  async logLines(): Promise<LogRow[]> {
    return (await this.query(ADMIN_READS.logLines)).map(logRowFromRow);
  }

  async tenants(): Promise<TenantRow[]> {
    return (await this.query(ADMIN_READS.tenants)).map(tenantFromRow);
  }

  async tokens(): Promise<TokenRow[]> {
    return (await this.query(ADMIN_READS.tokens)).map(tokenFromRow);
  }

  async vaultKeys(): Promise<VaultKeyRow[]> {
    return (await this.query(ADMIN_READS.vaultKeys)).map(vaultKeyFromRow);
  }

  async secret(tenant: string, name: string): Promise<SecretRow | undefined> {
    const r = (await this.query(numbered(ADMIN_READS.secret), [tenant, name]))[0];
    return r ? secretFromRow(r) : undefined;
  }

  async secrets(tenant: string): Promise<SecretRow[]> {
    return (await this.query(numbered(ADMIN_READS.secrets), [tenant])).map(secretFromRow);
  }

  async secretsNotUnder(keyId: number, limit: number): Promise<SecretRow[]> {
    return (await this.query(numbered(ADMIN_READS.secretsNotUnder), [keyId, limit])).map(secretFromRow);
  }

  close(): Promise<void> {
    this.closing ??= (async () => {
      await Promise.allSettled([...this.inFlight]);
      await this.lockClient.query("SELECT pg_advisory_unlock($1)", [KERNEL_LOCK_KEY]).catch(() => undefined);
      this.lockClient.release();
      await this.pool.end();
    })();
    return this.closing;
  }
}

// One statement for any number of events: eleven arrays, one per column, unnested into rows. It
// sends far fewer parameters than a VALUES list and PostgreSQL plans it once per shape.
const INSERT_EVENTS = `INSERT INTO events (${EVENT_COLUMNS})
  SELECT * FROM unnest($1::bigint[], $2::bigint[], $3::bigint[], $4::text[], $5::text[], $6::text[], $7::text[], $8::bigint[], $9::text[], $10::text[], $11::text[])`;

async function insertEvents(client: pg.PoolClient, rows: readonly StoredEventRow[]): Promise<void> {
  if (rows.length === 0) return;
  const columns: Array<Array<string | number | null>> = Array.from({ length: 11 }, () => new Array(rows.length));
  for (let i = 0; i < rows.length; i++) {
    const values = eventValues(rows[i] as StoredEventRow);
    for (let c = 0; c < 11; c++) (columns[c] as Array<string | number | null>)[i] = values[c] ?? null;
  }
  await client.query(INSERT_EVENTS, columns);
}

/** The URL without its password, for messages and `location`. @internal */
export function redact(url: string): string {
  try {
    const u = new URL(url);
    if (u.password) u.password = "***";
    // pg also takes secrets as query parameters.
    for (const key of [...u.searchParams.keys()]) if (/pass|key|secret|token/i.test(key)) u.searchParams.set(key, "***");
    return u.toString();
  } catch {
    return "<an unparseable PostgreSQL URL>";
  }
}
