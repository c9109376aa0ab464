import { adminStatements, isAdminMutation, type Statement } from "./admin-sql.ts";
import { checkQuota, type Row } from "./rows.ts";
import { kvEntryBytes, type Mutation } from "./store.ts";

/** One statement of a mutation: `?` placeholders (PostgreSQL's numbered by its backend); `query` when its rows are wanted. @internal */
export interface Step extends Statement {
  readonly query: boolean;
}

/** What running a step gave: its rows (for a query) and the rows it changed (otherwise). @internal */
export interface StepResult {
  readonly rows: readonly Row[];
  readonly changes: number;
}

/**
 * How one mutation is applied, written once for both backends: the statements in order, each
 * fed its result back (so reads can decide later writes), inside the backend's transaction.
 * SQLite drives it synchronously, PostgreSQL with `await`; the SQL text suits both (booleans
 * are `TRUE`/`FALSE`, which SQLite reads as 1/0). Returns whether anything changed.
 * @internal
 */
export function* mutationSteps(m: Mutation, eventsAfter: number): Generator<Step, boolean, StepResult> {
  if (isAdminMutation(m)) {
    let changed = false;
    for (const st of adminStatements(m, eventsAfter)) changed = (yield { ...st, query: false }).changes > 0 || changed;
    return changed;
  }
  switch (m.t) {
    case "deployment.put": {
      const d = m.deployment;
      yield {
        sql: "INSERT INTO deployment_versions (tenant, service, version, code, args, limits, supervision, meta, grants, file, deployed_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        params: [
          d.tenant,
          d.service,
          d.version,
          d.code,
          d.args,
          d.limits,
          d.supervision ?? "",
          d.meta ?? "",
          d.grants ?? "",
          d.file ?? "",
          d.deployedAt,
        ],
        query: false,
      };
      yield {
        sql: "INSERT INTO deployments (tenant, service, version, active) VALUES (?, ?, ?, TRUE) ON CONFLICT (tenant, service) DO UPDATE SET version = excluded.version, active = TRUE",
        params: [d.tenant, d.service, d.version],
        query: false,
      };
      return true;
    }
    case "deployment.kill": {
      yield { sql: "DELETE FROM service_logs WHERE tenant = ? AND service = ?", params: [m.tenant, m.service], query: false };
      const r = yield {
        sql: "UPDATE deployments SET active = FALSE WHERE tenant = ? AND service = ? AND active",
        params: [m.tenant, m.service],
        query: false,
      };
      return r.changes > 0;
    }
    case "deployment.activate": {
      yield {
        sql: "UPDATE deployments SET version = ?, active = TRUE WHERE tenant = ? AND service = ?",
        params: [m.version, m.tenant, m.service],
        query: false,
      };
      return true;
    }
    case "kv.put": {
      const [old] = (yield { sql: KV_VALUE, params: [m.tenant, m.service, m.key], query: true }).rows;
      const usage = usageOf((yield { sql: KV_USAGE, params: [m.tenant, m.service], query: true }).rows[0]);
      const bytes = usage.bytes - (old ? kvEntryBytes(m.key, String(old.value)) : 0) + kvEntryBytes(m.key, m.value);
      const keys = usage.keys + (old ? 0 : 1);
      checkQuota(m, bytes, keys);
      yield {
        sql: "INSERT INTO kv (tenant, service, key, value) VALUES (?, ?, ?, ?) ON CONFLICT (tenant, service, key) DO UPDATE SET value = excluded.value",
        params: [m.tenant, m.service, m.key, m.value],
        query: false,
      };
      yield { sql: SET_USAGE, params: [m.tenant, m.service, bytes, keys], query: false };
      return true;
    }
    case "logs.append": {
      let last = 0;
      for (const l of m.lines) {
        yield {
          sql: "INSERT INTO service_logs (tenant, service, seq, at, level, text) VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (tenant, service, seq) DO NOTHING",
          params: [m.tenant, m.service, l.seq, l.at, l.level, l.text],
          query: false,
        };
        last = Math.max(last, l.seq);
      }
      yield {
        sql: "DELETE FROM service_logs WHERE tenant = ? AND service = ? AND seq <= ?",
        params: [m.tenant, m.service, last - m.keep],
        query: false,
      };
      return m.lines.length > 0;
    }
    case "kv.delete": {
      const [old] = (yield { sql: KV_VALUE, params: [m.tenant, m.service, m.key], query: true }).rows;
      if (!old) return false;
      yield { sql: "DELETE FROM kv WHERE tenant = ? AND service = ? AND key = ?", params: [m.tenant, m.service, m.key], query: false };
      const usage = usageOf((yield { sql: KV_USAGE, params: [m.tenant, m.service], query: true }).rows[0]);
      yield {
        sql: SET_USAGE,
        params: [m.tenant, m.service, usage.bytes - kvEntryBytes(m.key, String(old.value)), usage.keys - 1],
        query: false,
      };
      return true;
    }
  }
}

const KV_VALUE = "SELECT value FROM kv WHERE tenant = ? AND service = ? AND key = ?";
const KV_USAGE = "SELECT bytes, keys FROM kv_usage WHERE tenant = ? AND service = ?";
const SET_USAGE =
  "INSERT INTO kv_usage (tenant, service, bytes, keys) VALUES (?, ?, ?, ?) ON CONFLICT (tenant, service) DO UPDATE SET bytes = excluded.bytes, keys = excluded.keys";

function usageOf(r: Row | undefined): { bytes: number; keys: number } {
  return r ? { bytes: Number(r.bytes), keys: Number(r.keys) } : { bytes: 0, keys: 0 };
}
