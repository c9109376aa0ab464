import { existsSync } from "node:fs";
import { DatabaseSync, type StatementSync } from "node:sqlite";
import { SoloError } from "../../lib/errors/errors.ts";
import { ADMIN_READS, logRowFromRow, secretFromRow, tenantFromRow, tokenFromRow, vaultKeyFromRow } from "../admin-sql.ts";
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
  StoredEventRow,
  TenantRow,
  TokenRow,
  VaultKeyRow,
  WriteOp,
} from "../store.ts";
import { SQLITE_MIGRATIONS } from "./schema.ts";

/**
 * The SQLite backend's synchronous core, run on its own thread by `sqlite-store.ts` so that
 * fsync never blocks the control plane. WAL with `synchronous=FULL`: a commit returns only once
 * its WAL frames are on disk. One connection, one writer: the data directory's lock guarantees no
 * other kernel writes the file, so the log's head is kept in memory and re-read only at open.
 * @internal
 */
export class SqliteEngine {
  readonly path: string;
  private readonly db: DatabaseSync;
  private head: ChainHead;
  private readonly insertEvent: StatementSync;
  private readonly statements = new Map<string, StatementSync>();
  private readonly updateHead: StatementSync;

  constructor(path: string) {
    this.path = path;
    const existed = existsSync(path);
    try {
      this.db = new DatabaseSync(path);
    } catch (err) {
      throw new SoloError(
        "SOLO_ERR_STORE_OPEN",
        `cannot open the SQLite store ${path}: ${(err as Error).message}`,
        { file: path },
        { cause: err },
      );
    }
    try {
      this.configure(existed);
      this.migrate();
      this.head = this.checkHead();
      // Takes the exclusive lock now, not at the first write, so a second opener is refused at once.
      this.db.exec("BEGIN EXCLUSIVE");
      this.db.exec("COMMIT");
    } catch (err) {
      this.db.close();
      throw err;
    }
    this.insertEvent = this.stmt(`INSERT INTO events (${EVENT_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`);
    this.updateHead = this.stmt("UPDATE log_head SET id = ?, timestamp = ?, hash = ? WHERE one = 1");
  }

  private configure(existed: boolean): void {
    try {
      // A dead holder's locks go with its process, so a short wait is enough to tell "in use".
      this.db.exec("PRAGMA busy_timeout = 250");
      // A second guard behind the data directory's lock: this connection holds SQLite's lock from
      // its first access until it closes, so no other connection can write the file meanwhile.
      this.db.exec("PRAGMA locking_mode = EXCLUSIVE");
      this.db.exec("PRAGMA journal_mode = WAL");
      this.db.exec("PRAGMA synchronous = FULL");
      this.db.exec("PRAGMA wal_autocheckpoint = 4000");
      if (existed) {
        const rows = this.stmt("PRAGMA quick_check(5)").all() as Row[];
        const problems = rows.map((r) => String(Object.values(r)[0])).filter((m) => m !== "ok");
        if (problems.length > 0) {
          throw corrupt(this.path, `SQLite's integrity check failed: ${problems.join("; ")}`, "quick_check");
        }
      }
    } catch (err) {
      if (err instanceof SoloError) throw err;
      if (/database is locked/i.test((err as Error).message)) {
        throw new SoloError("SOLO_ERR_STORE_LOCKED", `the SQLite store ${this.path} is in use by another process`, {
          file: this.path,
          hint: "stop the kernel (or tool) that has it open",
        });
      }
      // "file is not a database", "database disk image is malformed": the file is not usable.
      throw corrupt(this.path, `the file is not a readable SQLite database (${(err as Error).message})`, "open", err);
    }
  }

  private migrate(): void {
    const version = Number((this.stmt("PRAGMA user_version").get() as Row).user_version);
    if (version > SQLITE_MIGRATIONS.length) {
      throw new SoloError(
        "SOLO_ERR_STORE_SCHEMA_NEWER",
        `the SQLite store ${this.path} has schema version ${version}, newer than this kernel's ${SQLITE_MIGRATIONS.length}`,
        { file: this.path, found: version, supported: SQLITE_MIGRATIONS.length, hint: "run a newer Solo on this data directory" },
      );
    }
    for (let v = version; v < SQLITE_MIGRATIONS.length; v++) {
      this.db.exec("BEGIN IMMEDIATE");
      try {
        this.db.exec(SQLITE_MIGRATIONS[v] as string);
        this.db.exec(`PRAGMA user_version = ${v + 1}`);
        this.db.exec("COMMIT");
      } catch (err) {
        this.db.exec("ROLLBACK");
        throw new SoloError(
          "SOLO_ERR_STORE_OPEN",
          `migrating the SQLite store ${this.path} to schema version ${v + 1} failed: ${(err as Error).message}`,
          { file: this.path, version: v + 1 },
          { cause: err },
        );
      }
    }
  }

  private checkHead(): ChainHead {
    const head = this.stmt("SELECT id, timestamp, hash FROM log_head WHERE one = 1").get() as Row | undefined;
    const last = this.stmt(`SELECT ${EVENT_COLUMNS} FROM events ORDER BY id DESC LIMIT 1`).get() as EventRowIn | undefined;
    return checkTail(head, last, `the SQLite store ${this.path}`, { file: this.path });
  }

  commit(ops: readonly WriteOp[]): OpResult[] {
    const results: OpResult[] = [];
    let head = this.head;
    this.db.exec("BEGIN IMMEDIATE");
    try {
      const now = nowMicros();
      for (const op of ops) {
        const guarded = op.mutations.length > 0;
        if (guarded) this.db.exec("SAVEPOINT op");
        try {
          let changed = false;
          for (const m of op.mutations) changed = this.apply(m, head.id) || changed;
          const sealed = seal(head, op.events, now);
          for (const row of sealed.rows) this.insertEvent.run(...eventValues(row));
          if (guarded) this.db.exec("RELEASE op");
          head = sealed.head;
          results.push({ ok: true, events: sealed.rows, changed });
        } catch (err) {
          // One operation's failure (a quota, or input the database refuses) is its own alone.
          if (!guarded) throw err;
          this.db.exec("ROLLBACK TO op");
          this.db.exec("RELEASE op");
          results.push({ ok: false, error: opFailure(err, this.path).toData() });
        }
      }
      if (head.id !== this.head.id) this.updateHead.run(head.id, head.timestamp, head.hash);
      this.db.exec("COMMIT");
    } catch (err) {
      if (this.db.isTransaction) this.db.exec("ROLLBACK");
      throw new SoloError(
        "SOLO_ERR_STORE_UNAVAILABLE",
        `writing to the SQLite store ${this.path} failed: ${(err as Error).message}`,
        { file: this.path },
        { cause: err },
      );
    }
    this.head = head;
    return results;
  }

  private apply(m: Mutation, eventsAfter: number): boolean {
    const steps = mutationSteps(m, eventsAfter);
    let step = steps.next();
    while (!step.done) {
      const st = this.stmt(step.value.sql);
      const params = step.value.params;
      step = steps.next(
        step.value.query ? { rows: st.all(...params) as Row[], changes: 0 } : { rows: [], changes: Number(st.run(...params).changes) },
      );
    }
    return step.value;
  }

  usage(tenant: string, service: string): { bytes: number; keys: number } {
    const r = this.stmt("SELECT bytes, keys FROM kv_usage WHERE tenant = ? AND service = ?").get(tenant, service) as Row | undefined;
    return r ? { bytes: Number(r.bytes), keys: Number(r.keys) } : { bytes: 0, keys: 0 };
  }

  // Prepared once per distinct SQL text: preparing costs more than running most of these.
  private stmt(sql: string): StatementSync {
    let s = this.statements.get(sql);
    if (!s) {
      s = this.db.prepare(sql);
      this.statements.set(sql, s);
    }
    return s;
  }

  getHead(): ChainHead {
    return this.head;
  }

  queryEvents(filter: EventFilter): StoredEventRow[] {
    const q = eventQuery(filter, () => "?");
    return (this.stmt(q.text).all(...q.values) as unknown as EventRowIn[]).map(eventFromRow);
  }

  activeDeployments(): DeploymentRecord[] {
    return this.stmt(
      `SELECT v.tenant, v.service, v.version, v.code, v.args, v.limits, v.supervision, v.meta, v.grants, v.file, v.deployed_at
           FROM deployments d JOIN deployment_versions v
             ON v.tenant = d.tenant AND v.service = d.service AND v.version = d.version
          WHERE d.active = 1 ORDER BY v.tenant, v.service`,
    )
      .all()
      .map(deploymentFromRow);
  }

  deploymentHistory(tenant: string, service: string): DeploymentRecord[] {
    return this.stmt(
      "SELECT tenant, service, version, code, args, limits, supervision, meta, grants, file, deployed_at FROM deployment_versions WHERE tenant = ? AND service = ? ORDER BY version",
    )
      .all(tenant, service)
      .map(deploymentFromRow);
  }

  latestVersions(): Array<{ tenant: string; service: string; version: number }> {
    return this.stmt("SELECT tenant, service, MAX(version) AS version FROM deployment_versions GROUP BY tenant, service")
      .all()
      .map((r) => ({ tenant: String(r.tenant), service: String(r.service), version: Number(r.version) }));
  }

  kvGet(tenant: string, service: string, key: string): string | undefined {
    const r = this.stmt("SELECT value FROM kv WHERE tenant = ? AND service = ? AND key = ?").get(tenant, service, key) as Row | undefined;
    return r ? String(r.value) : undefined;
  }

  kvList(tenant: string, service: string, prefix: string, after: string, limit: number): Array<[string, string]> {
    // Both bounds compared by the database, in its (byte) order of keys.
    const rows = (
      after === ""
        ? this.stmt("SELECT key, value FROM kv WHERE tenant = ? AND service = ? AND key >= ? ORDER BY key LIMIT ?").all(
            tenant,
            service,
            prefix,
            limit,
          )
        : this.stmt("SELECT key, value FROM kv WHERE tenant = ? AND service = ? AND key >= ? AND key > ? ORDER BY key LIMIT ?").all(
            tenant,
            service,
            prefix,
            after,
            limit,
          )
    ) as Row[];
    return prefixRun(rows, prefix);
  }

  tenants(): TenantRow[] {
    return this.stmt(ADMIN_READS.tenants).all().map(tenantFromRow);
  }

  logLines(): LogRow[] {
    return this.stmt(ADMIN_READS.logLines)
      .all()
      .map((r) => logRowFromRow(r as Record<string, unknown>));
  }

  tokens(): TokenRow[] {
    return this.stmt(ADMIN_READS.tokens).all().map(tokenFromRow);
  }

  vaultKeys(): VaultKeyRow[] {
    return this.stmt(ADMIN_READS.vaultKeys).all().map(vaultKeyFromRow);
  }

  secret(tenant: string, name: string): SecretRow | undefined {
    const r = this.stmt(ADMIN_READS.secret).get(tenant, name) as Row | undefined;
    return r ? secretFromRow(r) : undefined;
  }

  secrets(tenant: string): SecretRow[] {
    return this.stmt(ADMIN_READS.secrets).all(tenant).map(secretFromRow);
  }

  secretsNotUnder(keyId: number, limit: number): SecretRow[] {
    return this.stmt(ADMIN_READS.secretsNotUnder).all(keyId, limit).map(secretFromRow);
  }

  close(): void {
    if (this.db.isOpen) this.db.close();
  }
}

function corrupt(file: string, message: string, check: string, cause?: unknown): SoloError {
  return new SoloError(
    "SOLO_ERR_STORE_CORRUPT",
    `the SQLite store ${file} is damaged: ${message}`,
    { file, check, hint: "restore the data directory from a backup; Solo never resets a damaged store by itself" },
    cause === undefined ? undefined : { cause },
  );
}
