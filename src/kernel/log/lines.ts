// Each service's recent log lines, by name: a crash, a restart, a swap or a rollback starts a new
// instance but not a new log, so the lines that explain a crash are still there after it. Bounded
// per service (lines and bytes) and per tenant (bytes): past a bound the oldest lines go first.

import type { LogEntry } from "../../api/services.ts";
import type { LogRow, Mutation } from "../../store/store.ts";

/** Lines kept per service. */
export const LINES_PER_SERVICE = 200;
/** Bytes (UTF-16 code units, as held) kept per service. */
export const BYTES_PER_SERVICE = 64 * 1024;
/** Bytes kept per tenant, all its services together. */
export const BYTES_PER_TENANT = 1024 * 1024;
/** What a crash record carries of the lines before it. */
const CRASH_LINES = 20;
const CRASH_LINE_CHARS = 500;
const CRASH_BYTES = 4096;

interface ServiceLog {
  readonly lines: LogEntry[];
  bytes: number;
}

/** What a crash record carries: the service's last lines, clipped. */
export interface CrashLines {
  readonly lines: ReadonlyArray<{ readonly at: string; readonly level: LogEntry["level"]; readonly text: string }>;
  /** Lines before these that the service had kept (read them with logs()). */
  readonly earlier: number;
}

/** How long a line may wait before it is written to the store with the lines after it. */
const FLUSH_MS = 200;

/** Lines a follower may have waiting; past it the oldest go, and it is told how many. */
export const FOLLOW_QUEUE = 1000;

interface Follower {
  readonly queue: LogEntry[];
  dropped: number;
  ended: boolean;
  wake: (() => void) | undefined;
}

export class LogLines {
  private readonly byService = new Map<string, ServiceLog>();
  private readonly tenantBytes = new Map<string, number>();
  private readonly followers = new Map<string, Set<Follower>>();
  /** Each service's last line number, so lines keep their order in the store across restarts. */
  private readonly seqs = new Map<string, number>();
  /** Lines not yet in the store, by service. */
  private pending = new Map<string, LogRow[]>();
  private timer: NodeJS.Timeout | undefined;
  private flushing: Promise<void> = Promise.resolve();
  private readonly persist: ((mutations: Mutation[]) => Promise<unknown>) | undefined;

  /** `persist` writes lines to the store (batched); without it they live only in memory. */
  constructor(persist?: (mutations: Mutation[]) => Promise<unknown>) {
    this.persist = persist;
  }

  /** Takes back the lines the store kept (at open), without writing them again. */
  load(rows: readonly LogRow[]): void {
    for (const r of rows) {
      const level = r.level === "debug" || r.level === "warn" || r.level === "error" ? r.level : "info";
      this.keep({ tenant: r.tenant, service: r.service, level, text: r.text, at: r.at });
      const key = keyOf(r.tenant, r.service);
      this.seqs.set(key, Math.max(this.seqs.get(key) ?? 0, r.seq));
    }
  }

  /** Keeps `entry` as its service's newest line, hands it to its followers, and writes it to the store soon. */
  add(entry: LogEntry): void {
    const key = keyOf(entry.tenant, entry.service);
    if (this.persist) {
      const seq = (this.seqs.get(key) ?? 0) + 1;
      this.seqs.set(key, seq);
      let rows = this.pending.get(key);
      if (!rows) {
        rows = [];
        this.pending.set(key, rows);
      }
      rows.push({ tenant: entry.tenant, service: entry.service, seq, at: entry.at, level: entry.level, text: entry.text });
      // Only the lines the store would keep are worth writing.
      if (rows.length > LINES_PER_SERVICE) rows.shift();
      this.timer ??= setTimeout(() => void this.flush(), FLUSH_MS);
      this.timer.unref();
    }
    for (const f of this.followers.get(key) ?? []) {
      f.queue.push(entry);
      if (f.queue.length > FOLLOW_QUEUE) {
        f.queue.shift();
        f.dropped++;
      }
      f.wake?.();
    }
    this.keep(entry);
  }

  // Keeps a line within the bounds (no followers, no store).
  private keep(entry: LogEntry): void {
    const key = keyOf(entry.tenant, entry.service);
    let log = this.byService.get(key);
    if (!log) {
      log = { lines: [], bytes: 0 };
      this.byService.set(key, log);
    }
    const size = sizeOf(entry);
    log.lines.push(entry);
    log.bytes += size;
    this.tenantBytes.set(entry.tenant, (this.tenantBytes.get(entry.tenant) ?? 0) + size);
    while (log.lines.length > LINES_PER_SERVICE || (log.bytes > BYTES_PER_SERVICE && log.lines.length > 1)) this.dropOldest(log);
    // A tenant past its bound gives up lines of the service that wrote this one first (a noisy
    // service loses its own history before a quiet neighbour's), then of its largest service.
    while ((this.tenantBytes.get(entry.tenant) ?? 0) > BYTES_PER_TENANT && log.lines.length > 1) this.dropOldest(log);
    while ((this.tenantBytes.get(entry.tenant) ?? 0) > BYTES_PER_TENANT) {
      const largest = this.largestOf(entry.tenant);
      if (!largest || largest.lines.length === 0) break;
      this.dropOldest(largest);
    }
  }

  /** The service's kept lines, oldest first. */
  read(tenant: string, service: string): LogEntry[] {
    return [...(this.byService.get(keyOf(tenant, service))?.lines ?? [])];
  }

  /** The last lines before a crash, clipped, for its service_crashed record. */
  forCrash(tenant: string, service: string): CrashLines {
    const lines = this.byService.get(keyOf(tenant, service))?.lines ?? [];
    const out: Array<{ at: string; level: LogEntry["level"]; text: string }> = [];
    let bytes = 0;
    for (let i = lines.length - 1; i >= 0 && out.length < CRASH_LINES; i--) {
      const l = lines[i] as LogEntry;
      const text = l.text.length > CRASH_LINE_CHARS ? `${l.text.slice(0, CRASH_LINE_CHARS)}...` : l.text;
      bytes += text.length;
      if (bytes > CRASH_BYTES && out.length > 0) break;
      out.push({ at: l.at, level: l.level, text });
    }
    out.reverse();
    return { lines: out, earlier: lines.length - out.length };
  }

  /**
   * The service's kept lines, then each new one as it is logged, until `signal` aborts, the
   * iterator is returned, or `close()`. Nothing is missed or repeated between the two: the kept
   * lines and the follow start in one step. A follower that falls more than {@link FOLLOW_QUEUE}
   * lines behind loses the oldest and is told how many, in a line of its own.
   */
  follow(tenant: string, service: string, signal?: AbortSignal): AsyncIterableIterator<LogEntry> {
    const key = keyOf(tenant, service);
    const f: Follower = { queue: this.read(tenant, service), dropped: 0, ended: false, wake: undefined };
    let set = this.followers.get(key);
    if (!set) {
      set = new Set();
      this.followers.set(key, set);
    }
    set.add(f);
    const end = (): void => {
      f.ended = true;
      const s = this.followers.get(key);
      s?.delete(f);
      if (s?.size === 0) this.followers.delete(key);
      f.wake?.();
    };
    signal?.addEventListener("abort", end, { once: true });
    if (signal?.aborted) end();
    const it: AsyncIterableIterator<LogEntry> = {
      next: async () => {
        for (;;) {
          if (f.dropped > 0) {
            const n = f.dropped;
            f.dropped = 0;
            const text = `${n} log lines not delivered: this follower fell more than ${FOLLOW_QUEUE} lines behind`;
            return { done: false, value: { tenant, service, level: "warn", text, at: new Date().toISOString() } };
          }
          const next = f.queue.shift();
          if (next) return { done: false, value: next };
          if (f.ended) return { done: true, value: undefined };
          await new Promise<void>((resolve) => {
            f.wake = resolve;
          });
          f.wake = undefined;
        }
      },
      return: async () => {
        end();
        return { done: true, value: undefined };
      },
      [Symbol.asyncIterator]: () => it,
    };
    return it;
  }

  /** Writes the lines waiting for the store; resolves once they are in (or failed, which is reported). */
  flush(): Promise<void> {
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
    if (!this.persist || this.pending.size === 0) return this.flushing;
    const batch = this.pending;
    this.pending = new Map();
    // The store keeps what memory keeps of each service (its line, byte and tenant bounds applied),
    // so a kernel that reopens holds no more than the one that closed.
    const mutations: Mutation[] = [...batch.entries()].map(([key, lines]) => ({
      t: "logs.append",
      tenant: (lines[0] as LogRow).tenant,
      service: (lines[0] as LogRow).service,
      lines,
      keep: Math.max(1, this.byService.get(key)?.lines.length ?? LINES_PER_SERVICE),
    }));
    const persist = this.persist;
    this.flushing = this.flushing
      .then(() => persist(mutations))
      .then(
        () => undefined,
        (err: unknown) => console.error("solo: writing log lines to the store failed:", err),
      );
    return this.flushing;
  }

  /**
   * A service was killed: the store drops its lines with the kill, so the ones still waiting are
   * not written. They stay readable (terminate's last words among them) until the kernel closes.
   */
  killed(tenant: string, service: string): void {
    this.pending.delete(keyOf(tenant, service));
  }

  /** Ends every follow (the kernel closes). */
  close(): void {
    this.endFollowers(() => true);
  }

  /**
   * Forgets a tenant's lines (its deletion), and ends its followers: a follower of a deleted
   * tenant's service must not go on, nor see the lines of a new tenant given the same name.
   */
  forgetTenant(tenant: string): void {
    const ofTenant = (key: string): boolean => key.startsWith(`${tenant}\0`);
    for (const key of [...this.byService.keys()]) if (ofTenant(key)) this.byService.delete(key);
    for (const key of [...this.pending.keys()]) if (ofTenant(key)) this.pending.delete(key);
    this.endFollowers(ofTenant);
    this.tenantBytes.delete(tenant);
  }

  private endFollowers(of: (key: string) => boolean): void {
    for (const [key, set] of this.followers) {
      if (!of(key)) continue;
      for (const f of set) {
        f.ended = true;
        f.wake?.();
      }
      this.followers.delete(key);
    }
  }

  /** Bytes kept for `tenant`'s lines. */
  bytesOf(tenant: string): number {
    return this.tenantBytes.get(tenant) ?? 0;
  }

  private largestOf(tenant: string): ServiceLog | undefined {
    let largest: ServiceLog | undefined;
    for (const [key, log] of this.byService) {
      if (key.startsWith(`${tenant}\0`) && (!largest || log.bytes > largest.bytes)) largest = log;
    }
    return largest;
  }

  private dropOldest(log: ServiceLog): void {
    const gone = log.lines.shift();
    if (!gone) return;
    const size = sizeOf(gone);
    log.bytes -= size;
    this.tenantBytes.set(gone.tenant, (this.tenantBytes.get(gone.tenant) ?? size) - size);
  }
}

function keyOf(tenant: string, service: string): string {
  return `${tenant}\0${service}`;
}

function sizeOf(e: LogEntry): number {
  return e.text.length + e.at.length + e.level.length + 16;
}
