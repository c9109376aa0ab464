// The clock the kernel keeps time by: the system's, or a manual one a test injects (openKernel's
// `clock` option). Supervision's backoff, breakers' cooldowns, rollback windows and tokens' expiry
// read it.

/** Time as the kernel sees it; tests inject a manual clock. */
export interface Clock {
  now(): number;
  setTimeout(fn: () => void, ms: number): unknown;
  clearTimeout(handle: unknown): void;
  /** A number in [0, 1), for jitter. */
  random(): number;
}

/** The real clock. */
export const SYSTEM_CLOCK: Clock = {
  now: () => Date.now(),
  setTimeout: (fn, ms) => setTimeout(fn, ms),
  clearTimeout: (handle) => clearTimeout(handle as NodeJS.Timeout),
  random: () => Math.random(),
};
