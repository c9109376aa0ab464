import { SoloError } from "../lib/errors/errors.ts";
import { eventHash } from "./chain.ts";
import { type EventRowIn, eventFromRow } from "./sql.ts";
import { type ChainHead, type DeploymentRecord, GENESIS_HASH, type Mutation } from "./store.ts";

/** A row as a driver returns it. @internal */
export type Row = Record<string, unknown>;

/** Keys are selected from the prefix on in byte order, so the matches are a leading run. @internal */
export function prefixRun(rows: readonly Row[], prefix: string): Array<[string, string]> {
  const out: Array<[string, string]> = [];
  for (const r of rows) {
    const key = String(r.key);
    if (!key.startsWith(prefix)) break;
    out.push([key, String(r.value)]);
  }
  return out;
}

/** Throws the quota error for a put that would take a service's storage over its limits. @internal */
export function checkQuota(m: Extract<Mutation, { t: "kv.put" }>, bytes: number, keys: number): void {
  if (bytes > m.maxBytes) {
    throw new SoloError(
      "SOLO_ERR_STORAGE_QUOTA",
      `solo.storage: this write would bring the service's storage to ${bytes} bytes, over its quota of ${m.maxBytes}`,
      {
        limit: m.maxBytes,
        would: bytes,
        hint: "delete keys you no longer need, or deploy with a larger limits.storageBytes",
      },
    );
  }
  if (keys > m.maxKeys) {
    throw new SoloError("SOLO_ERR_STORAGE_QUOTA", `solo.storage: the service already has ${m.maxKeys} keys, its quota`, {
      limit: m.maxKeys,
      hint: "delete keys you no longer need, or deploy with a larger limits.storageKeys",
    });
  }
}

/** Maps a deployment row of either backend. @internal */
export function deploymentFromRow(r: Row): DeploymentRecord {
  return {
    tenant: String(r.tenant),
    service: String(r.service),
    version: Number(r.version),
    code: String(r.code),
    args: String(r.args),
    limits: String(r.limits),
    ...(typeof r.supervision === "string" && r.supervision !== "" ? { supervision: r.supervision } : {}),
    ...(typeof r.meta === "string" && r.meta !== "" ? { meta: r.meta } : {}),
    ...(typeof r.grants === "string" && r.grants !== "" ? { grants: r.grants } : {}),
    ...(typeof r.file === "string" && r.file !== "" ? { file: r.file } : {}),
    deployedAt: Number(r.deployed_at),
  };
}

/**
 * Checks that the log's head record and its last event agree and that the last event hashes to
 * what it says, so a truncated or hand-edited tail is reported at open rather than by a later
 * verify(). Returns the head. `what` names the store in messages.
 * @internal
 */
export function checkTail(
  head: Row | undefined,
  lastRow: EventRowIn | undefined,
  what: string,
  where: { readonly file: string } | { readonly database: string },
): ChainHead {
  const fail = (message: string, check: string): SoloError =>
    new SoloError("SOLO_ERR_STORE_CORRUPT", `${what} is damaged: ${message}`, {
      ...where,
      check,
      hint: "restore from a backup; Solo never resets a damaged store by itself",
    });
  if (!head) throw fail("the log's head record is missing", "log_head");
  const h: ChainHead = { id: Number(head.id), timestamp: Number(head.timestamp), hash: String(head.hash) };
  if (!lastRow) {
    if (h.id !== 0 || h.hash !== GENESIS_HASH)
      throw fail(`the log's head says event ${h.id} was written, but the log is empty`, "log_head");
    return h;
  }
  const last = eventFromRow(lastRow);
  if (last.id !== h.id || last.hash !== h.hash) {
    throw fail(
      `the log's head says the last event is ${h.id}, but the last event stored is ${last.id}${last.id === h.id ? " with another hash" : ""}`,
      "log_head",
    );
  }
  if (eventHash(last) !== last.hash) throw fail(`the last event (${last.id}) does not match its hash`, "event_hash");
  return h;
}

/** An operation's own failure inside a batch: its SoloError, or what the database refused. @internal */
export function opFailure(err: unknown, where: string): SoloError {
  if (err instanceof SoloError) return err;
  return new SoloError("SOLO_ERR_STORE_UNAVAILABLE", `the store ${where} refused a write: ${(err as Error).message}`, {}, { cause: err });
}
