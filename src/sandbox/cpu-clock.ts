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

/** A CPU clock as a sandbox reads it: `read()` now, `recent()` a reading at most 2 ms old. @internal */
export interface CpuClock {
  read(): number;
  recent(): number;
}

const RECENT_MS = 2;

/**
 * The scheduler thread's CPU time, read once per step: a step begins at the reading that ended
 * the step before it (the host's work in between is counted against the next message, which
 * makes the budget stricter by microseconds, never looser), unless that reading is stale.
 * @internal
 */
export const threadClock: CpuClock = (() => {
  let last = 0;
  let at = Number.NEGATIVE_INFINITY;
  return {
    read(): number {
      last = threadCpuMs();
      at = performance.now();
      return last;
    },
    recent(): number {
      return performance.now() - at < RECENT_MS ? last : this.read();
    },
  };
})();
