import { hash } from "node:crypto";
import type { ChainHead, EventDraft, StoredEventRow } from "./store.ts";

/** The version of the canonical encoding, hashed into every event so it can change safely. */
const CHAIN_FORMAT = 1;

/**
 * The canonical encoding of an event, which its hash covers: a JSON array of its fields in a fixed
 * order. JSON.stringify of strings, integers and nulls is deterministic, and the payload is
 * already canonical JSON text (sorted keys), so the same event always encodes to the same bytes.
 * @internal
 */
export function canonicalEvent(e: Omit<StoredEventRow, "hash">): string {
  return JSON.stringify([
    CHAIN_FORMAT,
    e.id,
    e.timestamp,
    e.wallTime,
    e.tenant,
    e.type,
    e.subject,
    e.payload,
    e.causationId,
    e.correlationId,
    e.prevHash,
  ]);
}

/** SHA-256 (hex) of an event's canonical encoding, which includes the previous event's hash. @internal */
export function eventHash(e: Omit<StoredEventRow, "hash">): string {
  return hash("sha256", canonicalEvent(e));
}

/**
 * Gives drafts their place after `head`: the next ids (no gaps), timestamps that never go
 * backwards (microseconds, at least one more than the previous event's), and the hash chain.
 * Runs inside the transaction that holds the log's head, so the result is the log's true order.
 * @internal
 */
export function seal(head: ChainHead, drafts: readonly EventDraft[], nowMicros: number): { rows: StoredEventRow[]; head: ChainHead } {
  let { id, timestamp, hash: prevHash } = head;
  const rows: StoredEventRow[] = [];
  for (const d of drafts) {
    id += 1;
    timestamp = Math.max(nowMicros, timestamp + 1);
    const unsealed = { ...d, id, timestamp, prevHash };
    const h = eventHash(unsealed);
    rows.push({ ...unsealed, hash: h });
    prevHash = h;
  }
  return { rows, head: { id, timestamp, hash: prevHash } };
}

/** Microseconds since the epoch, from the wall clock. @internal */
export function nowMicros(): number {
  return Math.floor((performance.timeOrigin + performance.now()) * 1000);
}
