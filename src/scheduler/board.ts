import { readFileSync, readlinkSync } from "node:fs";

// Int32 slots, then one Float64 slot (byte 16), then the ring of consumed casts: its head (byte
// 24) and RING entries (from byte 28).
const SID = 0;
const SEQ = 1;
const HARD_LIMIT_MS = 2;
const TID = 3;
const STARTED_AT = 2;
const RING_HEAD = 6;
const RING_AT = 7;
/** Casts the ring remembers; the scheduler reports them in its batches well before it wraps. */
export const RING = 4096;
const BYTES = (RING_AT + RING) * 4;

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

  constructor(buffer: SharedArrayBuffer = new SharedArrayBuffer(BYTES)) {
    this.buffer = buffer;
    this.ints = new Int32Array(buffer);
    this.floats = new Float64Array(buffer, 0, 3);
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
    const head = Atomics.load(this.ints, RING_HEAD);
    Atomics.store(this.ints, RING_AT + (head % RING), cid);
    Atomics.store(this.ints, RING_HEAD, head + 1);
  }

  /** Control-plane side: the casts the ring remembers as consumed. */
  consumedCasts(): Set<number> {
    const head = Atomics.load(this.ints, RING_HEAD);
    const out = new Set<number>();
    for (let i = Math.max(0, head - RING); i < head; i++) out.add(Atomics.load(this.ints, RING_AT + (i % RING)));
    return out;
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
