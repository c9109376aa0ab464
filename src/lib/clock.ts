// The clock the kernel keeps time by: the system's, or a manual one a test injects (openKernel's
// `clock` option). Supervision's backoff, breakers' cooldowns, rollback windows and tokens' expiry
// read it. Its shape is the public `Clock` (src/api/kernel.ts), written out here because lib/
// imports nothing; the kernel, which takes it as a `Clock`, checks that it is one.

/** The real clock. */
export const SYSTEM_CLOCK = {
  now: (): number => Date.now(),
  setTimeout: (fn: () => void, ms: number): unknown => setTimeout(fn, ms),
  clearTimeout: (handle: unknown): void => clearTimeout(handle as NodeJS.Timeout),
  random: (): number => Math.random(),
};
