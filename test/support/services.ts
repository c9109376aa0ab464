// Services that test a limit, shared by the tests and the benchmarks.

/**
 * A service whose call "stuck" runs one String.prototype.indexOf over 1 MiB with a 2 KiB needle
 * that almost matches everywhere: about 17 s inside a single built-in on this engine, with no
 * bytecode branch for QuickJS to poll, so only the watchdog stops it. Any other call answers.
 */
export const STUCK_SERVICE = `export default {
  init() { return 0 },
  handleCall(req, n) {
    if (req === "stuck") return { reply: "a".repeat(1 << 20).indexOf("a".repeat(2000) + "b"), state: n };
    return { reply: n, state: n };
  },
};`;
