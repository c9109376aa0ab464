import type { SoloEvent, VerifyReport } from "../../api/events.ts";
import { SoloError } from "../../lib/errors/errors.ts";
import { NAME_PATTERN, REQUEST_ID_PATTERN } from "../../lib/names.ts";
import { canonicalJson, overByteLimit } from "../../sandbox/json.ts";
import { eventHash } from "../../store/chain.ts";
import {
  type ChainHead,
  type EventDraft,
  type EventFilter,
  GENESIS_HASH,
  type Mutation,
  type Store,
  type StoredEventRow,
  type WriteOp,
} from "../../store/store.ts";
import { correlation } from "./correlation.ts";
import { isEventType } from "./event-types.ts";

/** What an appender gives. */
export interface EventInput {
  readonly tenant: string | null;
  readonly type: string;
  readonly subject?: string | null;
  readonly payload?: unknown;
  readonly causationId?: number | null;
  readonly correlationId?: string | null;
}

/** The largest payload, in bytes of canonical JSON. */
export const MAX_PAYLOAD_BYTES = 64 * 1024;
/** The longest subject, in bytes. */
export const MAX_SUBJECT_BYTES = 256;
// One commit carries at most this many operations; more wait for the next.
const MAX_BATCH_OPS = 4096;
// Appends waiting beyond this are refused at once rather than queued without bound.
const MAX_QUEUED_OPS = 200_000;
// Recently committed events kept in memory, so live subscribers rarely read the store.
const RECENT_EVENTS = 8192;
const PAGE = 512;

interface Queued {
  readonly op: WriteOp;
  resolve(r: { events: SoloEvent[]; changed: boolean }): void;
  reject(err: unknown): void;
}

/** A filter over events, as subscribers and the in-memory tail apply it. @internal */
export interface LiveFilter {
  readonly tenant?: string | null;
  readonly types?: readonly string[];
  readonly subject?: string;
}

/**
 * The event log: validates events, group-commits them with the kernel's other writes, serves
 * queries and live subscriptions, and verifies the hash chain. One per kernel.
 *
 * Group commit: operations that arrive while a commit is in flight wait and go together in the
 * next one, so concurrent appenders share a transaction and its fsync; each promise resolves only
 * once its transaction is durable.
 * @internal
 */
export class EventLog {
  private readonly store: Store;
  private queue: Queued[] = [];
  private inFlight = false;
  private pumpScheduled = false;
  private committed: ChainHead;
  private recent: SoloEvent[] = [];
  private waiters: Array<() => void> = [];
  private closed = false;
  private idle: Array<() => void> = [];

  private constructor(store: Store, head: ChainHead) {
    this.store = store;
    this.committed = head;
  }

  /** Opens the log over a store, starting from its head. */
  static async open(store: Store): Promise<EventLog> {
    return new EventLog(store, await store.head());
  }

  /** Commits made and operations they carried, since open. */
  readonly counts = { commits: 0, ops: 0 };
  private readonly commitObservers = new Set<(ms: number, ops: number) => void>();

  /** Operations waiting for the next commit. */
  get queued(): number {
    return this.queue.length;
  }

  /** Calls `fn` after every successful commit with its duration and size; returns the unsubscribe. */
  onCommit(fn: (ms: number, ops: number) => void): () => void {
    this.commitObservers.add(fn);
    return () => this.commitObservers.delete(fn);
  }

  /** The last committed event's id. */
  get headId(): number {
    return this.committed.id;
  }

  /** Appends one event; resolves with it once it is durable. */
  async append(input: EventInput): Promise<SoloEvent> {
    const { events } = await this.write([], [input]);
    return events[0] as SoloEvent;
  }

  /**
   * Commits mutations together with the events that record them, all or nothing; resolves once
   * durable. `changed` says whether the mutations changed anything.
   */
  write(mutations: readonly Mutation[], inputs: readonly EventInput[]): Promise<{ events: SoloEvent[]; changed: boolean }> {
    try {
      if (this.closed) throw new SoloError("SOLO_ERR_STORE_CLOSED", "the event log is closed");
      if (this.queue.length >= MAX_QUEUED_OPS) {
        throw new SoloError("SOLO_ERR_STORE_UNAVAILABLE", `the event log has ${MAX_QUEUED_OPS} writes waiting for the store`, {
          hint: "the store cannot keep up; retry shortly",
        });
      }
      const wallTime = Date.now();
      const op: WriteOp = { mutations, events: inputs.map((e) => draft(e, wallTime)) };
      return new Promise((resolve, reject) => {
        this.queue.push({ op, resolve, reject });
        this.pumpSoon();
      });
    } catch (err) {
      return Promise.reject(err);
    }
  }

  // The next commit starts one turn later, not at once: writers woken by the previous commit
  // (and everything else in this turn) join it instead of each starting a transaction of one.
  private pumpSoon(): void {
    if (this.pumpScheduled || this.inFlight) return;
    this.pumpScheduled = true;
    setImmediate(() => {
      this.pumpScheduled = false;
      this.pump();
    });
  }

  private pump(): void {
    if (this.inFlight || this.queue.length === 0) return;
    const batch = this.queue.length <= MAX_BATCH_OPS ? this.queue : this.queue.slice(0, MAX_BATCH_OPS);
    this.queue = this.queue.length <= MAX_BATCH_OPS ? [] : this.queue.slice(MAX_BATCH_OPS);
    this.inFlight = true;
    const started = performance.now();
    this.store.commit(batch.map((q) => q.op)).then(
      (results) => {
        this.inFlight = false;
        this.counts.commits++;
        this.counts.ops += batch.length;
        const ms = performance.now() - started;
        for (const fn of this.commitObservers) fn(ms, batch.length);
        const fresh: SoloEvent[] = [];
        for (let i = 0; i < batch.length; i++) {
          const r = results[i];
          const q = batch[i] as Queued;
          if (!r) {
            q.reject(new SoloError("SOLO_ERR_INTERNAL", "the store returned fewer results than operations"));
          } else if (r.ok) {
            const events = r.events.map(toEvent);
            fresh.push(...events);
            q.resolve({ events, changed: r.changed });
          } else {
            q.reject(SoloError.fromData(r.error));
          }
        }
        this.advance(fresh);
        this.pumpSoon();
        this.settleIdle();
      },
      (err: unknown) => {
        this.inFlight = false;
        for (const q of batch) q.reject(err);
        // The store may have committed after all (a reply lost with the connection): learn its
        // head again before anyone reads the tail from memory.
        this.recent = [];
        this.store.head().then(
          (head) => {
            if (head.id > this.committed.id) this.advanceTo(head);
          },
          () => undefined,
        );
        this.pumpSoon();
        this.settleIdle();
      },
    );
  }

  private advance(fresh: readonly SoloEvent[]): void {
    const first = fresh[0];
    const last = fresh[fresh.length - 1];
    if (!first || !last) return;
    // `recent` must hold consecutive ids: after a commit whose outcome was unknown (reported as
    // failed, yet perhaps stored) the next ids may not follow on, and readers go to the store.
    if (first.id !== this.committed.id + 1) this.recent = [];
    this.committed = { id: last.id, timestamp: last.timestamp, hash: last.hash };
    this.recent.push(...fresh);
    if (this.recent.length > RECENT_EVENTS * 2) this.recent = this.recent.slice(-RECENT_EVENTS);
    const waiters = this.waiters;
    this.waiters = [];
    for (const w of waiters) w();
  }

  private advanceTo(head: ChainHead): void {
    this.committed = head;
    this.recent = [];
    const waiters = this.waiters;
    this.waiters = [];
    for (const w of waiters) w();
  }

  private settleIdle(): void {
    if (this.inFlight || this.queue.length > 0) return;
    const idle = this.idle;
    this.idle = [];
    for (const f of idle) f();
  }

  /** Events matching a filter (the caller has validated it). */
  async query(filter: EventFilter): Promise<SoloEvent[]> {
    return (await this.store.queryEvents(filter)).map(toEvent);
  }

  /**
   * Follows the log from `fromId` (inclusive): the stored past, then the live tail, with no gap
   * and no duplicate between them. Pull-based, so a slow reader holds back only itself: nothing
   * is buffered for it beyond one page. Ends when `signal` aborts or the log closes.
   */
  async *follow(filter: LiveFilter, fromId: number, signal?: AbortSignal): AsyncGenerator<SoloEvent, void, undefined> {
    let next = fromId;
    while (!this.closed && !signal?.aborted) {
      const upTo = this.committed.id;
      if (next > upTo) {
        await this.changed(signal);
        continue;
      }
      const first = this.recent[0];
      if (first && next >= first.id) {
        // Served from memory: `recent` holds every committed event from its first id on.
        const slice = this.recent.slice(next - first.id, next - first.id + PAGE);
        if (slice.length > 0 && slice[0]?.id === next) {
          next += slice.length;
          for (const e of slice) if (matches(filter, e)) yield e;
          continue;
        }
        // Not where memory says it should be: read the store instead.
      }
      const end = Math.min(upTo, next + PAGE - 1);
      let rows: StoredEventRow[];
      try {
        rows = await this.store.queryEvents({
          ...(filter.tenant !== undefined ? { tenant: filter.tenant } : {}),
          ...(filter.types ? { types: filter.types } : {}),
          ...(filter.subject !== undefined ? { subject: filter.subject } : {}),
          afterId: next - 1,
          beforeId: end + 1,
          order: "asc",
          limit: PAGE,
        });
      } catch (err) {
        if (this.closed) return; // the kernel closed under the reader: the subscription just ends
        throw err;
      }
      next = end + 1;
      for (const r of rows) yield toEvent(r);
    }
  }

  private changed(signal?: AbortSignal): Promise<void> {
    return new Promise((resolve) => {
      const done = (): void => {
        signal?.removeEventListener("abort", done);
        resolve();
      };
      this.waiters.push(done);
      signal?.addEventListener("abort", done, { once: true });
    });
  }

  /**
   * Walks the chain from the first event to the head: every id present, every link equal to the
   * previous hash, every hash equal to the event's recomputed hash, and the head record agreeing
   * with the last event. Reports the first problem found.
   */
  async verify(): Promise<VerifyReport> {
    const head = await this.store.head();
    let prev = GENESIS_HASH;
    let expected = 1;
    while (expected <= head.id) {
      const rows = await this.store.queryEvents({ afterId: expected - 1, beforeId: head.id + 1, order: "asc", limit: 1000 });
      if (rows.length === 0) break;
      for (const r of rows) {
        if (r.id !== expected) {
          return broken(expected, "missing", `event ${expected} is missing: the next stored event is ${r.id}`, expected - 1);
        }
        if (r.prevHash !== prev) {
          return broken(
            r.id,
            "broken_link",
            `event ${r.id} does not link to event ${r.id - 1}: its prevHash is not that event's hash`,
            r.id - 1,
          );
        }
        if (eventHash(r) !== r.hash) {
          return broken(
            r.id,
            "hash_mismatch",
            `event ${r.id} was changed after it was written: its content does not match its hash`,
            r.id - 1,
          );
        }
        prev = r.hash;
        expected++;
      }
    }
    if (expected <= head.id) {
      return broken(expected, "missing", `events ${expected} to ${head.id} are missing: the log ends at ${expected - 1}`, expected - 1);
    }
    if (prev !== head.hash) {
      return broken(head.id, "head_mismatch", `the log's head record does not match event ${head.id}`, head.id);
    }
    return { ok: true, events: head.id, headHash: head.hash, verifiedUpTo: head.id };
  }

  /** Waits for every write already submitted to be committed (or to fail). */
  flush(): Promise<void> {
    if (!this.inFlight && this.queue.length === 0) return Promise.resolve();
    return new Promise((resolve) => this.idle.push(resolve));
  }

  /** Stops accepting writes, waits for those submitted, and ends every subscription. */
  async close(): Promise<void> {
    if (this.closed) return;
    await this.flush();
    this.closed = true;
    const waiters = this.waiters;
    this.waiters = [];
    for (const w of waiters) w();
  }
}

function broken(
  at: number,
  problem: "missing" | "broken_link" | "hash_mismatch" | "head_mismatch",
  message: string,
  upTo: number,
): VerifyReport {
  return { ok: false, at, problem, message, verifiedUpTo: upTo };
}

/** Whether an event passes a live filter (the same rules as the SQL filter). @internal */
export function matches(f: LiveFilter, e: SoloEvent): boolean {
  if (f.tenant !== undefined && e.tenant !== f.tenant) return false;
  if (f.types && f.types.length > 0 && !f.types.includes(e.type)) return false;
  if (f.subject !== undefined && e.subject !== f.subject) return false;
  return true;
}

function toEvent(r: StoredEventRow): SoloEvent {
  return {
    id: r.id,
    timestamp: r.timestamp,
    wallTime: r.wallTime,
    tenant: r.tenant,
    type: r.type,
    subject: r.subject,
    payload: JSON.parse(r.payload) as unknown,
    causationId: r.causationId,
    correlationId: r.correlationId,
    prevHash: r.prevHash,
    hash: r.hash,
  };
}

function hasControl(s: string): boolean {
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c < 0x20 || c === 0x7f) return true;
  }
  return false;
}

function invalid(message: string, field: string): SoloError {
  return new SoloError("SOLO_ERR_EVENT_INVALID", message, { field });
}

/** Validates an event and encodes its payload canonically; throws a precise error, writes nothing. @internal */
export function draft(e: EventInput, wallTime: number): EventDraft {
  if (e.tenant !== null && (typeof e.tenant !== "string" || !NAME_PATTERN.test(e.tenant))) {
    throw invalid("event tenant must be null or a valid tenant name", "tenant");
  }
  if (typeof e.type !== "string" || !isEventType(e.type)) {
    throw invalid(`event type ${JSON.stringify(String(e.type).slice(0, 80))} is not a kernel event type or svc.<service>.<name>`, "type");
  }
  const subject = e.subject ?? null;
  if (subject !== null) {
    if (typeof subject !== "string" || subject === "" || hasControl(subject)) {
      throw invalid("event subject must be a non-empty string without control characters", "subject");
    }
    if (overByteLimit(subject, MAX_SUBJECT_BYTES)) {
      throw new SoloError("SOLO_ERR_EVENT_TOO_LARGE", `event subject is over ${MAX_SUBJECT_BYTES} bytes`, {
        field: "subject",
        limit: MAX_SUBJECT_BYTES,
      });
    }
  }
  const payload = canonicalJson(e.payload === undefined ? null : e.payload, "the event payload");
  if (overByteLimit(payload, MAX_PAYLOAD_BYTES)) {
    throw new SoloError(
      "SOLO_ERR_EVENT_TOO_LARGE",
      `the event payload is ${Buffer.byteLength(payload)} bytes of JSON, over the limit of ${MAX_PAYLOAD_BYTES}`,
      { field: "payload", limit: MAX_PAYLOAD_BYTES, hint: "record a summary or a reference in the event, not the data itself" },
    );
  }
  const causationId = e.causationId ?? null;
  if (causationId !== null && (!Number.isSafeInteger(causationId) || causationId < 1)) {
    throw invalid("event causationId must be null or the id of an earlier event", "causationId");
  }
  // An explicit null means none (a count of many requests); omitted, the request being served.
  const correlationId = e.correlationId === undefined ? (correlation() ?? null) : e.correlationId;
  if (correlationId !== null && (typeof correlationId !== "string" || !REQUEST_ID_PATTERN.test(correlationId))) {
    throw invalid("event correlationId must be 1-128 characters of A-Z a-z 0-9 . _ : -", "correlationId");
  }
  return { tenant: e.tenant, type: e.type, subject, payload, causationId, correlationId, wallTime };
}
