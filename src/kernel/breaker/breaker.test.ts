import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, describe, it } from "node:test";
import { ManualClock, rejection, until } from "../../../test/support/helpers.ts";
import { type Kernel, openKernel } from "../index.ts";
import { CircuitBreaker } from "./circuit.ts";

describe("CircuitBreaker", () => {
  it("opens after the threshold of consecutive failures; a success in between starts the count again", () => {
    const b = new CircuitBreaker(3, 1000);
    for (const outcome of ["failure", "failure", "success", "failure", "failure"] as const) {
      assert.equal(b.admit(0).ok, true);
      assert.equal(b.settle(false, outcome, 0), undefined);
    }
    assert.equal(b.state(0), "closed");
    assert.equal(b.settle(false, "failure", 0), "opened");
    assert.equal(b.state(10), "open");
    assert.deepEqual(b.admit(10), { ok: false, retryAfterMs: 990 });
  });

  it("lets exactly one trial through when half-open: success closes it, failure opens it for another cool-down", () => {
    const b = new CircuitBreaker(1, 1000);
    b.admit(0);
    assert.equal(b.settle(false, "failure", 0), "opened");
    assert.equal(b.state(1000), "half_open");
    assert.deepEqual(b.admit(1000), { ok: true, trial: true });
    assert.equal(b.admit(1000).ok, false, "a second call waits for the trial");
    assert.equal(b.settle(true, "failure", 1200), "opened");
    assert.deepEqual(b.admit(1300), { ok: false, retryAfterMs: 900 });
    assert.deepEqual(b.admit(2200), { ok: true, trial: true });
    assert.equal(b.settle(true, "success", 2200), "closed");
    assert.equal(b.state(2200), "closed");
  });

  it("counts nothing for neutral outcomes, and a neutral trial frees the next trial", () => {
    const b = new CircuitBreaker(1, 100);
    b.admit(0);
    b.settle(false, "failure", 0);
    assert.deepEqual(b.admit(100), { ok: true, trial: true });
    assert.equal(b.settle(true, "neutral", 100), undefined);
    assert.equal(b.state(100), "half_open");
    assert.deepEqual(b.admit(100), { ok: true, trial: true });
  });
});

const dirs: string[] = [];
const kernels: Kernel[] = [];
after(async () => {
  for (const k of kernels) await k.close();
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

describe("a service's circuit breaker", () => {
  it("opens after 5 crashing calls, refuses calls and casts at once, and closes after a good trial call", async () => {
    const clock = new ManualClock();
    const dataDir = mkdtempSync(join(tmpdir(), "solo-breaker-"));
    dirs.push(dataDir);
    const k = await openKernel({ dataDir, schedulers: 1, clock });
    kernels.push(k);
    const code = `export default {
      init() { return 0 },
      handleCall(req, n) { if (req === "boom") throw new Error("bad request"); return { reply: n + 1, state: n + 1 } },
      handleCast(m, n) { return { state: n } },
    };`;
    await k.deploy({ tenant: "cb", service: "flaky", code, supervision: { maxRestarts: 100, backoffMs: 10, breakerCooldownMs: 5000 } });
    for (let i = 1; i <= 5; i++) {
      assert.equal((await rejection(k.call("cb", "flaky", "boom"))).reason, "SOLO_ERR_HANDLER_THREW");
      await until("restarting", () => k.status("cb", "flaky").state === "restarting");
      clock.advance(1000);
      await until("running", () => k.status("cb", "flaky").state === "running");
      assert.equal(k.status("cb", "flaky").breaker.state, i < 5 ? "closed" : "open");
    }
    const refused = await rejection(k.call("cb", "flaky", "inc"));
    assert.equal(refused.reason, "SOLO_ERR_CIRCUIT_OPEN");
    assert.equal(refused.code, "unavailable");
    assert.ok(typeof refused.details.retryAfterMs === "number" && refused.details.retryAfterMs > 0);
    assert.equal((await rejection(k.cast("cb", "flaky", 1))).reason, "SOLO_ERR_CIRCUIT_OPEN");

    clock.advance(5000);
    assert.equal(k.status("cb", "flaky").breaker.state, "half_open");
    assert.equal(await k.call("cb", "flaky", "inc"), 1, "the refused call never reached the service");
    assert.equal(k.status("cb", "flaky").breaker.state, "closed");
    await until(
      "breaker events",
      async () => (await k.events({ tenant: "cb", types: ["circuit_breaker_opened", "circuit_breaker_closed"] })).events.length === 2,
    );
    const events = (await k.events({ tenant: "cb", types: ["circuit_breaker_opened", "circuit_breaker_closed"] })).events;
    assert.deepEqual(
      events.map((e) => e.type),
      ["circuit_breaker_opened", "circuit_breaker_closed"],
    );
    assert.ok(events[0]);
    assert.equal((events[0].payload as { lastFailure: { reason: string } }).lastFailure.reason, "SOLO_ERR_HANDLER_THREW");
  });

  it("starts closed again for a new version", async () => {
    const clock = new ManualClock();
    const dataDir = mkdtempSync(join(tmpdir(), "solo-breaker-"));
    dirs.push(dataDir);
    const k = await openKernel({ dataDir, schedulers: 1, clock });
    kernels.push(k);
    const code = `export default { init() { return 0 }, handleCall(req, n) { if (req === "boom") throw new Error("x"); return { reply: n, state: n } } };`;
    await k.deploy({ tenant: "cb", service: "v", code, supervision: { restart: "temporary", breakerThreshold: 1 } });
    await rejection(k.call("cb", "v", "boom"));
    assert.equal(k.status("cb", "v").breaker.state, "open");
    await k.deploy({ tenant: "cb", service: "v", code });
    assert.equal(k.status("cb", "v").breaker.state, "closed");
    assert.equal(await k.call("cb", "v", "ok"), 0);
  });
});
