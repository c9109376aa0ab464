import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, describe, it } from "node:test";
import { ManualClock, rejection, until } from "../../../test/support/helpers.ts";
import type { Clock } from "../../api/kernel.ts";
import { type Kernel, openKernel } from "../index.ts";
import { DEFAULT_SUPERVISION, decide, resolveSupervision } from "./policy.ts";

const dirs: string[] = [];
const kernels: Kernel[] = [];
after(async () => {
  for (const k of kernels) await k.close();
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

async function kernelWith(clock: Clock): Promise<Kernel> {
  const dataDir = mkdtempSync(join(tmpdir(), "solo-sup-"));
  dirs.push(dataDir);
  const k = await openKernel({ dataDir, schedulers: 1, clock });
  kernels.push(k);
  return k;
}

const CRASHY = `export default {
  init(args) { return { n: 0 } },
  handleCall(req, state) {
    if (req === "boom") throw new Error("kaboom");
    state.n++;
    return { reply: state.n, state };
  },
};`;

describe("decide()", () => {
  const policy = { ...DEFAULT_SUPERVISION, maxRestarts: 3, periodMs: 1000, backoffMs: 100, maxBackoffMs: 350 };

  it("restarts with a backoff that doubles per restart in the period, capped, with ±50% jitter", () => {
    assert.deepEqual(decide(policy, [], true, 10_000, 0.5), { action: "restart", delayMs: 100 });
    assert.deepEqual(decide(policy, [9_500], true, 10_000, 0.5), { action: "restart", delayMs: 200 });
    assert.deepEqual(decide(policy, [9_400, 9_500], true, 10_000, 0.5), { action: "restart", delayMs: 350 });
    assert.deepEqual(decide(policy, [], true, 10_000, 0), { action: "restart", delayMs: 50 });
    assert.deepEqual(decide(policy, [], true, 10_000, 0.999), { action: "restart", delayMs: 150 });
  });

  it("fails past the intensity, counting only restarts inside the period", () => {
    assert.deepEqual(decide(policy, [9_100, 9_500, 9_900], true, 10_000, 0.5), { action: "fail", restartsInPeriod: 3 });
    assert.equal(decide(policy, [8_000, 9_500, 9_900], true, 10_000, 0.5).action, "restart");
  });

  it("never restarts a temporary service, and a transient one only after an abnormal end", () => {
    assert.deepEqual(decide({ ...policy, restart: "temporary" }, [], true, 0, 0.5), { action: "stay_down" });
    assert.deepEqual(decide({ ...policy, restart: "transient" }, [], false, 0, 0.5), { action: "stay_down" });
    assert.equal(decide({ ...policy, restart: "transient" }, [], true, 0, 0.5).action, "restart");
  });
});

describe("resolveSupervision()", () => {
  it("uses OTP's intensity (1 restart in 5 s) and a permanent restart type by default", () => {
    assert.equal(DEFAULT_SUPERVISION.restart, "permanent");
    assert.equal(DEFAULT_SUPERVISION.maxRestarts, 1);
    assert.equal(DEFAULT_SUPERVISION.periodMs, 5000);
    assert.deepEqual(resolveSupervision({ maxRestarts: 5 }, DEFAULT_SUPERVISION), { ...DEFAULT_SUPERVISION, maxRestarts: 5 });
  });

  it("rejects unknown settings, bad restart types and out-of-range numbers with the field", () => {
    for (const [input, field] of [
      [{ restart: "always" }, "supervision.restart"],
      [{ maxRestarts: -1 }, "supervision.maxRestarts"],
      [{ periodMs: 0 }, "supervision.periodMs"],
      [{ backoffMs: 1.5 }, "supervision.backoffMs"],
      [{ nope: 1 }, "supervision.nope"],
      ["fast", "supervision"],
    ] as const) {
      assert.throws(
        () => resolveSupervision(input, DEFAULT_SUPERVISION),
        (e: { reason?: string; details?: { field?: string } }) => e.reason === "SOLO_ERR_SUPERVISION_INVALID" && e.details?.field === field,
      );
    }
  });
});

describe("the tenant supervisor", () => {
  it("restarts a permanent service after its backoff; calls meanwhile get a retry hint", async () => {
    const clock = new ManualClock();
    const k = await kernelWith(clock);
    await k.deploy({ tenant: "sup", service: "svc", code: CRASHY, supervision: { backoffMs: 200 } });
    assert.equal(await k.call("sup", "svc", "inc"), 1);
    assert.equal((await rejection(k.call("sup", "svc", "boom"))).reason, "SOLO_ERR_HANDLER_THREW");
    await until("restarting", () => k.status("sup", "svc").state === "restarting");
    const waiting = await rejection(k.call("sup", "svc", "inc"));
    assert.equal(waiting.reason, "SOLO_ERR_SERVICE_RESTARTING");
    assert.equal(waiting.code, "unavailable");
    assert.equal(waiting.details.retryAfterMs, 200);
    clock.advance(199);
    assert.equal(k.status("sup", "svc").state, "restarting");
    clock.advance(1);
    await until("running again", () => k.status("sup", "svc").state === "running");
    const st = k.status("sup", "svc");
    assert.equal(st.restarts, 1);
    assert.equal(st.version, 1);
    assert.equal(st.crash?.message.includes("kaboom"), true);
    assert.equal(await k.call("sup", "svc", "inc"), 1, "a restart runs init again: the in-memory state starts over");
    const { events } = await k.events({ tenant: "sup" });
    const types = events.map((e) => e.type);
    assert.deepEqual(types, ["tenant_created", "service_deployed", "service_crashed", "service_restarted"]);
    const [, deployed, crashed, restarted] = events;
    assert.equal(crashed?.causationId, deployed?.id);
    assert.equal(restarted?.causationId, crashed?.id);
    assert.deepEqual(restarted?.payload, { version: 1, restarts: 1, delayMs: 200, by: "supervisor" });
  });

  it("gives a service up as failed past its intensity, and an operator's restart revives it", async () => {
    const clock = new ManualClock();
    const k = await kernelWith(clock);
    await k.deploy({ tenant: "sup", service: "loop", code: CRASHY, supervision: { maxRestarts: 2, periodMs: 10_000, backoffMs: 10 } });
    for (let round = 0; round < 2; round++) {
      await rejection(k.call("sup", "loop", "boom"));
      await until("restarting", () => k.status("sup", "loop").state === "restarting");
      clock.advance(1000);
      await until("running", () => k.status("sup", "loop").state === "running");
    }
    await rejection(k.call("sup", "loop", "boom"));
    await until("failed", () => k.status("sup", "loop").state === "failed");
    assert.equal(clock.pending, 0, "no restart is scheduled for a failed service");
    const err = await rejection(k.call("sup", "loop", "inc"));
    assert.equal(err.reason, "SOLO_ERR_SERVICE_FAILED");
    await until("service_failed recorded", async () => (await k.events({ tenant: "sup", types: ["service_failed"] })).events.length === 1);
    const failed = (await k.events({ tenant: "sup", types: ["service_failed"] })).events[0];
    const lastCrash = (await k.events({ tenant: "sup", types: ["service_crashed"], order: "desc", limit: 1 })).events[0];
    assert.ok(failed && lastCrash);
    assert.equal(failed.causationId, lastCrash.id);
    assert.equal((failed.payload as { restartsInPeriod: number }).restartsInPeriod, 2);

    await k.restart("sup", "loop");
    assert.equal(k.status("sup", "loop").state, "running");
    assert.equal(await k.call("sup", "loop", "inc"), 1);
    const restarted = (await k.events({ tenant: "sup", types: ["service_restarted"], order: "desc", limit: 1 })).events[0];
    assert.ok(restarted);
    assert.equal((restarted.payload as { by: string }).by, "operator");
  });

  it("leaves a temporary service crashed, and a kill cancels a pending restart", async () => {
    const clock = new ManualClock();
    const k = await kernelWith(clock);
    await k.deploy({ tenant: "sup", service: "tmp", code: CRASHY, supervision: { restart: "temporary" } });
    await rejection(k.call("sup", "tmp", "boom"));
    await until("crashed", () => k.status("sup", "tmp").state === "crashed");
    assert.equal(clock.pending, 0);
    assert.equal((await rejection(k.call("sup", "tmp", "inc"))).reason, "SOLO_ERR_SERVICE_CRASHED");

    await k.deploy({ tenant: "sup", service: "perm", code: CRASHY, supervision: { backoffMs: 500 } });
    await rejection(k.call("sup", "perm", "boom"));
    await until("restarting", () => k.status("sup", "perm").state === "restarting");
    await k.kill("sup", "perm");
    assert.equal(clock.pending, 0);
    clock.advance(10_000);
    assert.equal(k.status("sup", "perm").state, "stopped");
  });

  it("lets a new version replace a service while it waits to restart", async () => {
    const clock = new ManualClock();
    const k = await kernelWith(clock);
    await k.deploy({ tenant: "sup", service: "fix", code: CRASHY, supervision: { backoffMs: 500 } });
    await rejection(k.call("sup", "fix", "boom"));
    await until("restarting", () => k.status("sup", "fix").state === "restarting");
    const v2 = await k.deploy({ tenant: "sup", service: "fix", code: CRASHY });
    assert.equal(v2.version, 2);
    assert.equal(clock.pending, 0, "the pending restart of version 1 was cancelled");
    clock.advance(1000);
    assert.equal(k.status("sup", "fix").version, 2);
    assert.equal(await k.call("sup", "fix", "inc"), 1);
  });

  it("restarts a service whose init fails again as one more crash, until it fails", async () => {
    const clock = new ManualClock();
    const k = await kernelWith(clock);
    const code = `export default {
      async init() {
        if (await solo.storage.get("started")) throw new Error("cannot start twice");
        await solo.storage.put("started", true);
        return 0;
      },
      handleCall(req, n) { if (req === "boom") throw new Error("first crash"); return { reply: n, state: n } },
    };`;
    await k.deploy({ tenant: "sup", service: "once", code, supervision: { maxRestarts: 2, periodMs: 60_000, backoffMs: 10 } });
    await rejection(k.call("sup", "once", "boom"));
    await until("restarting", () => k.status("sup", "once").state === "restarting");
    clock.advance(10);
    await until("restarting after the failed start", () => k.status("sup", "once").state === "restarting" && clock.pending === 1);
    clock.advance(20);
    await until("failed", () => k.status("sup", "once").state === "failed");
    assert.match(k.status("sup", "once").crash?.message ?? "", /cannot start twice/);
    await until("two restart crashes recorded", async () => {
      const crashes = (await k.events({ tenant: "sup", types: ["service_crashed"] })).events;
      return crashes.filter((e) => (e.payload as { phase?: string }).phase === "restart").length === 2;
    });
  });
});

describe("a crash loop in one tenant", () => {
  it("does not stop another tenant's calls from succeeding", async () => {
    const dataDir = mkdtempSync(join(tmpdir(), "solo-sup-"));
    dirs.push(dataDir);
    const k = await openKernel({ dataDir, schedulers: 2 });
    kernels.push(k);
    const looping = `export default {
      async init() {
        const n = (await solo.storage.get("starts")) ?? 0;
        await solo.storage.put("starts", n + 1);
        if (n > 0) throw new Error("crash loop " + n);
        return 0;
      },
      handleCall() { throw new Error("boom") },
    };`;
    await k.deploy({ tenant: "loopy", service: "bad", code: looping, supervision: { maxRestarts: 1000, periodMs: 60_000, backoffMs: 0 } });
    await k.deploy({ tenant: "calm", service: "good", code: CRASHY });
    await rejection(k.call("loopy", "bad"));
    let ok = 0;
    for (let i = 0; i < 300; i++) {
      await k.call("calm", "good", "inc");
      ok++;
    }
    assert.equal(ok, 300);
    const loops = (await k.events({ tenant: "loopy", types: ["service_crashed"], limit: 1000 })).events.length;
    assert.ok(loops > 1, `the looping service crashed ${loops} times while the other tenant was called`);
    assert.equal(k.status("calm", "good").restarts, 0);
  });
});
