/**
 * The clocks a message's CPU budget is counted on: the scheduler thread's CPU time, as the OS
 * reports it for this thread alone.
 * @internal
 */
/** The scheduler thread's CPU time, in milliseconds: what a message's budget counts. */
export function threadCpuMs(): number {
  const u = process.threadCpuUsage();
  return (u.user + u.system) / 1000;
}

/**
 * A CPU clock as a sandbox reads it: `read()` now, `recent()` a reading at most
 * {@link RECENT_MS} old, and `charge()` for a step whose CPU time need not be known at once.
 * @internal
 */
export interface CpuClock {
  read(): number;
  recent(): number;
  /**
   * Counts a step of `wallMs` that ended just now without reading the clock: at its next reading
   * the clock hands `to` the step's share of the CPU time used since the reading before, never more
   * than `wallMs` (a thread's CPU time does not run ahead of the wall clock). Optional: a clock
   * without it is read at the end of every step.
   */
  charge?(wallMs: number, to: (cpuMs: number) => void): void;
}

/**
 * How old a reading may be to stand for the start of a step. What the thread did between the
 * reading and the step's start (other steps, the host's work) is counted against the step when
 * its CPU time is read at its end: stricter by at most this much, never looser.
 */
const RECENT_MS = 0.25;

/**
 * The scheduler thread's CPU time. Reading it is a system call, which on virtual machines with
 * kernel page-table isolation costs a microsecond or two: a third of a short call's cost when
 * done for every message. So the reading that starts a step may be {@link RECENT_MS} old, and a
 * step that cannot have broken its budget is charged (below) rather than read; the steps charged
 * since a reading share the CPU time the next one finds, in proportion to their wall time.
 * @internal
 */
export const threadClock: Required<CpuClock> = (() => {
  let last = threadCpuMs();
  let at = performance.now();
  let pending: Array<{ wallMs: number; to: (cpuMs: number) => void }> = [];
  let pendingWallMs = 0;
  const read = (): number => {
    const now = threadCpuMs();
    if (pending.length > 0) {
      const share = pendingWallMs > 0 ? Math.min(1, (now - last) / pendingWallMs) : 0;
      const settled = pending;
      pending = [];
      pendingWallMs = 0;
      for (const p of settled) p.to(p.wallMs * share);
    }
    last = now;
    at = performance.now();
    return last;
  };
  return {
    read,
    recent(): number {
      return performance.now() - at < RECENT_MS ? last : read();
    },
    charge(wallMs, to): void {
      pending.push({ wallMs, to });
      pendingWallMs += wallMs;
    },
  };
})();
