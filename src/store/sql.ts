import type { EventFilter, StoredEventRow } from "./store.ts";

/** The event columns, in the order both backends select them. @internal */
export const EVENT_COLUMNS = "id, timestamp, wall_time, tenant, type, subject, payload, causation_id, correlation_id, prev_hash, hash";

/**
 * Builds the SELECT for an event filter. `param(n)` renders the n-th placeholder (`?` for SQLite,
 * `$n` for PostgreSQL), so both backends run the same query.
 * @internal
 */
export function eventQuery(f: EventFilter, param: (n: number) => string): { text: string; values: Array<string | number> } {
  const where: string[] = [];
  const values: Array<string | number> = [];
  const add = (sql: (p: string) => string, value: string | number): void => {
    values.push(value);
    where.push(sql(param(values.length)));
  };
  if (f.tenant === null) where.push("tenant IS NULL");
  else if (f.tenant !== undefined) add((p) => `tenant = ${p}`, f.tenant);
  if (f.types && f.types.length > 0) {
    const ps = f.types.map((t) => {
      values.push(t);
      return param(values.length);
    });
    where.push(`type IN (${ps.join(", ")})`);
  }
  if (f.subject !== undefined) add((p) => `subject = ${p}`, f.subject);
  if (f.afterId !== undefined) add((p) => `id > ${p}`, f.afterId);
  if (f.beforeId !== undefined) add((p) => `id < ${p}`, f.beforeId);
  if (f.since !== undefined) add((p) => `timestamp >= ${p}`, f.since);
  if (f.until !== undefined) add((p) => `timestamp < ${p}`, f.until);
  values.push(f.limit);
  const text =
    `SELECT ${EVENT_COLUMNS} FROM events` +
    (where.length > 0 ? ` WHERE ${where.join(" AND ")}` : "") +
    ` ORDER BY id ${f.order === "asc" ? "ASC" : "DESC"} LIMIT ${param(values.length)}`;
  return { text, values };
}

/** A row as either driver returns it (PostgreSQL gives BIGINT columns as strings). @internal */
export interface EventRowIn {
  readonly id: number | string | bigint;
  readonly timestamp: number | string | bigint;
  readonly wall_time: number | string | bigint;
  readonly tenant: string | null;
  readonly type: string;
  readonly subject: string | null;
  readonly payload: string;
  readonly causation_id: number | string | bigint | null;
  readonly correlation_id: string | null;
  readonly prev_hash: string;
  readonly hash: string;
}

/** Maps a selected row to the store's event shape. @internal */
export function eventFromRow(r: EventRowIn): StoredEventRow {
  return {
    id: Number(r.id),
    timestamp: Number(r.timestamp),
    wallTime: Number(r.wall_time),
    tenant: r.tenant,
    type: r.type,
    subject: r.subject,
    payload: r.payload,
    causationId: r.causation_id === null ? null : Number(r.causation_id),
    correlationId: r.correlation_id,
    prevHash: r.prev_hash,
    hash: r.hash,
  };
}

/** The values of an event row in {@link EVENT_COLUMNS} order. @internal */
export function eventValues(e: StoredEventRow): Array<string | number | null> {
  return [e.id, e.timestamp, e.wallTime, e.tenant, e.type, e.subject, e.payload, e.causationId, e.correlationId, e.prevHash, e.hash];
}
