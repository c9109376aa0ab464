import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { until } from "../../test/support/helpers.ts";
import { testKernels } from "../../test/support/kernels.ts";
import { threadClock, threadCpuMs } from "./cpu-clock.ts";

// Burns about `ms` of this thread's CPU time.
function spin(ms: number): void {
  const end = threadCpuMs() + ms;
  while (threadCpuMs() < end) {}
}

describe("the thread's CPU clock", () => {
  it("gives the steps charged since a reading their share of the CPU time the next finds, none more than its wall time", () => {
    const before = threadClock.read();
    const got: number[] = [];
    // Three steps that each spun ~2 ms of CPU time, charged with wall times of 2, 4 and 8 ms.
    for (const wall of [2, 4, 8]) {
      spin(2);
      threadClock.charge(wall, (ms) => got.push(ms));
    }
    assert.deepEqual(got, [], "nothing is settled before the clock is read");
    const after = threadClock.read();
    assert.equal(got.length, 3);
    // The CPU time found (~6 ms) is shared out in proportion to the wall times, capped at each.
    const used = after - before;
    assert.ok(Math.abs(got.reduce((a, b) => a + b, 0) - Math.min(used, 14)) < 1e-9, `${got} of ${used}`);
    assert.ok(got[0] !== undefined && got[1] !== undefined && got[2] !== undefined);
    assert.ok(Math.abs(got[1] / got[0] - 2) < 1e-9 && Math.abs(got[2] / got[0] - 4) < 1e-9, String(got));
    for (const [i, wall] of [2, 4, 8].entries()) assert.ok((got[i] ?? Number.NaN) <= wall);
  });

  it("never hands a step more than its wall time, however much CPU time the host spent besides", () => {
    threadClock.read();
    const got: number[] = [];
    spin(5);
    threadClock.charge(1, (ms) => got.push(ms));
    threadClock.read();
    assert.deepEqual(got, [1]);
  });
});

describe("a service's CPU time", () => {
  const kernels = testKernels("cpu-clock");

  it("counts the short calls whose CPU time the clock settled later, and never more than the calls took", async () => {
    const kernel = await kernels.start(kernels.freshDir());
    await kernel.deploy({
      tenant: "acme",
      service: "busy",
      code: "export default { init() { return 0 }, handleCall(n, s) { let x = 0; for (let i = 0; i < n; i++) x += i; return { reply: x, state: s + 1 } } };",
    });
    const usage = () => kernel.list("acme").find((s) => s.service === "busy")?.usage;
    // What init used (read, not charged), as sampled before the calls.
    await until("init sampled", () => (usage()?.messages ?? 0) >= 1);
    const before = usage()?.cpuMs ?? 0;
    const started = performance.now();
    for (let i = 0; i < 300; i++) await kernel.call("acme", "busy", 20_000);
    const wallMs = performance.now() - started;
    await until("the 300 calls sampled", () => (usage()?.messages ?? 0) >= 301);
    // Counted: each call loops 20,000 times, which takes some CPU time (far more than nothing)...
    await until("their CPU time counted", () => (usage()?.cpuMs ?? 0) - before > 1);
    // ...and no more than the calls took from first to last, on one thread.
    assert.ok((usage()?.cpuMs ?? 0) - before <= wallMs, `${usage()?.cpuMs} ms of CPU in ${wallMs} ms`);
  });
});
