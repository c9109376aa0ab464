import { readFileSync, readlinkSync } from "node:fs";

// Six Int32 slots, then one Float64 slot (byte 24), then the ring of messages taken: RING Float64
// entries from byte 32, a cast as 2 * cid, a call as 2 * rid + 1 (0: empty).
const SID = 0;
const SEQ = 1;
const HARD_LIMIT_MS = 2;
const TID = 3;
const STOP = 4;
const KILLING = 5;
const STARTED_AT = 3;
const RING_AT = 4;
/** Messages the ring remembers; the scheduler reports them in its batches well before it wraps. */
export const RING = 4096;
const BYTES = (RING_AT + RING) * 8;

/** What a scheduler is running at one moment, as the control plane reads it. @internal */
export interface Step {
  /** The service whose code runs; 0 when the thread is between two steps. */
  readonly sid: number;
  /** Counts steps: a new number is a new step. */
  readonly seq: number;
  /** When the step began (epoch milliseconds). */
  readonly startedAt: number;
  /** CPU milliseconds after which the control plane stops this step for good. */
  readonly hardLimitMs: number;
}

/**
 * What a scheduler thread is running right now, kept in shared memory so the control plane can
 * read it without asking the thread, which may be stuck inside one long built-in function that
 * QuickJS cannot interrupt. The thread writes it around every entry into guest code; the control
 * plane's watchdog reads it.
 * @internal
 */
export class StepBoard {
  readonly buffer: SharedArrayBuffer;
  private readonly ints: Int32Array;
  private readonly floats: Float64Array;
  /** Scheduler side: where the next ring entry goes. */
  private ringHead = 0;

  constructor(buffer: SharedArrayBuffer = new SharedArrayBuffer(BYTES)) {
    this.buffer = buffer;
    this.ints = new Int32Array(buffer, 0, 6);
    this.floats = new Float64Array(buffer);
  }

  /** Scheduler side: a step of service `sid` begins. */
  begin(sid: number, hardLimitMs: number): void {
    this.floats[STARTED_AT] = Date.now();
    Atomics.store(this.ints, HARD_LIMIT_MS, hardLimitMs);
    Atomics.store(this.ints, SID, sid);
    Atomics.add(this.ints, SEQ, 1);
  }

  /** Scheduler side: the step ended. */
  end(): void {
    Atomics.store(this.ints, SID, 0);
    Atomics.add(this.ints, SEQ, 1);
  }

  /**
   * Scheduler side: a cast from the control plane was consumed (its message started, or it was
   * dropped or refused). Kept in a ring, so that if this thread dies before its next batch
   * reaches the control plane, the control plane still knows which casts it must not deliver again.
   */
  consumed(cid: number): void {
    this.remember(2 * cid);
  }

  /** Scheduler side: a call from the control plane began (its message started, or was refused). */
  started(rid: number): void {
    this.remember(2 * rid + 1);
  }

  private remember(entry: number): void {
    this.floats[RING_AT + (this.ringHead % RING)] = entry;
    this.ringHead++;
  }

  /**
   * Control-plane side, once the thread is gone: the casts (by cid) and calls (by rid) the ring
   * remembers as taken.
   */
  taken(): { readonly casts: Set<number>; readonly calls: Set<number> } {
    const casts = new Set<number>();
    const calls = new Set<number>();
    for (let i = 0; i < RING; i++) {
      const e = this.floats[RING_AT + i] ?? 0;
      if (e === 0) continue;
      if (e % 2 === 0) casts.add(e / 2);
      else calls.add((e - 1) / 2);
    }
    return { casts, calls };
  }

  /** Control-plane side: asks the scheduler to stop service `sid`'s message at its next interrupt check. */
  requestStop(sid: number): void {
    Atomics.store(this.ints, STOP, sid);
  }

  /** Scheduler side: whether service `sid` is being killed (read at every interrupt check). */
  stopRequested(sid: number): boolean {
    return Atomics.load(this.ints, STOP) === sid;
  }

  /**
   * Scheduler side: the kill of `sid` is being carried out (its terminate may run now): its stop
   * request is withdrawn, and the control plane does not raise it again. `0` when it is done.
   */
  killing(sid: number): void {
    if (sid !== 0) Atomics.compareExchange(this.ints, STOP, sid, 0);
    Atomics.store(this.ints, KILLING, sid);
  }

  /** Control-plane side: the service whose kill the scheduler is carrying out, or 0. */
  killingNow(): number {
    return Atomics.load(this.ints, KILLING);
  }

  /** Scheduler side: records the thread's id in the OS, so its CPU time can be read from outside. */
  publishThread(): void {
    Atomics.store(this.ints, TID, ownThreadId());
  }

  /** Control-plane side: the current step, or undefined if it changed while being read. */
  read(): Step | undefined {
    const seq = Atomics.load(this.ints, SEQ);
    const sid = Atomics.load(this.ints, SID);
    const hardLimitMs = Atomics.load(this.ints, HARD_LIMIT_MS);
    const startedAt = this.floats[STARTED_AT] ?? 0;
    if (Atomics.load(this.ints, SEQ) !== seq) return undefined;
    return { sid, seq, startedAt, hardLimitMs };
  }

  /**
   * Control-plane side: the scheduler thread's CPU time in milliseconds, as the OS counts it, or
   * undefined where the OS does not tell (then the watchdog goes by wall time).
   */
  threadCpuMs(): number | undefined {
    const tid = Atomics.load(this.ints, TID);
    return tid > 0 ? threadCpuMsOf(tid) : undefined;
  }
}

// Linux names the calling thread in /proc/thread-self (a link to <pid>/task/<tid>).
function ownThreadId(): number {
  try {
    const m = /task\/(\d+)$/.exec(readlinkSync("/proc/thread-self"));
    return m ? Number(m[1]) : 0;
  } catch {
    return 0; // not Linux: the watchdog uses wall time
  }
}

// Fields 14 and 15 of /proc/<pid>/task/<tid>/stat are the thread's user and system time in clock
// ticks (USER_HZ, 100 on every Linux architecture Node supports). The command name before them is
// in parentheses and may contain spaces, so fields are counted after the last ')'.
function threadCpuMsOf(tid: number): number | undefined {
  try {
    const stat = readFileSync(`/proc/self/task/${tid}/stat`, "latin1");
    const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
    const ticks = Number(fields[11]) + Number(fields[12]);
    return Number.isFinite(ticks) ? ticks * 10 : undefined;
  } catch {
    return undefined;
  }
}

/** The hard limit of one message: past it the watchdog replaces the scheduler. @internal */
export function hardLimitMs(cpuMsPerMessage: number): number {
  return Math.max(1000, 10 * cpuMsPerMessage);
}
