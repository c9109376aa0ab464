/**
 * The watchdog outside the scheduler threads: a message stuck inside one built-in call, where
 * QuickJS never polls its interrupt handler, is still stopped. The culprit crashes with
 * SOLO_ERR_LIMIT_CPU; the services that shared its thread come back on a fresh one and the calls
 * queued for them are answered; an operator's kill of such a service does not wait for the
 * built-in to return.
 */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { crashOf, rejection, until } from "../../test/support/helpers.ts";
import { testKernels } from "../../test/support/kernels.ts";
import { STUCK_SERVICE as STUCK } from "../../test/support/services.ts";
import type { Kernel, KernelOptions, SoloError } from "../index.ts";

const { freshDir, start } = testKernels("watch");

function kernelWith(options: Omit<KernelOptions, "dataDir"> = {}): Promise<Kernel> {
  return start(freshDir(), options);
}

/** Sends a call that will not finish and waits until its message runs on the (only) scheduler; `failed` is its error. */
async function running(k: Kernel, tenant: string, service: string, request: unknown): Promise<{ failed: Promise<SoloError> }> {
  const failed = rejection(k.call(tenant, service, request, { timeoutMs: 60_000 }));
  await until("the message is running", () => k.stats().schedulers[0]?.running?.service === service);
  return { failed };
}

const COUNTER = `export default {
  init() { return 0 },
  handleCall(req, n) { return { reply: n + 1, state: n + 1 } },
  handleCast(msg, n) { return { state: n + 1 } },
};`;

describe("the watchdog", () => {
  it("stops a message stuck in one built-in past its hard limit: the culprit crashes, the calls queued behind it for other services are answered", async () => {
    const k = await kernelWith({ supervision: { backoffMs: 1 } });
    await k.deploy({ tenant: "villain", service: "stuck", code: STUCK, limits: { cpuMsPerMessage: 20 } });
    await k.deploy({ tenant: "victim", service: "counter", code: COUNTER });
    assert.equal(await k.call("victim", "counter", null), 1);
    const culprit = rejection(k.call("villain", "stuck", "stuck", { timeoutMs: 60_000 }));
    // Queued on the same thread, behind the stuck message: three casts, then three calls.
    for (let i = 0; i < 3; i++) await k.cast("victim", "counter", null);
    const queued = Promise.all([1, 2, 3].map(() => k.call("victim", "counter", null, { timeoutMs: 60_000 })));
    const error = await culprit;
    assert.equal(error.reason, "SOLO_ERR_LIMIT_CPU");
    const crash = crashOf(error);
    assert.equal(crash.kind, "cpu_limit");
    assert.match(crash.message, /past its hard limit of 1000 ms/);
    // Its tenant cools down: nothing of it starts until its neighbours are back.
    const held = await rejection(k.deploy({ tenant: "villain", service: "another", code: COUNTER }));
    assert.equal(held.reason, "SOLO_ERR_TENANT_COOLDOWN");
    assert.equal(held.code, "unavailable");
    assert.ok(Number(held.details.retryAfterMs) > 0 && Number(held.details.retryAfterMs) <= 1000);
    assert.equal(held.details.strikes, 1);
    // The victim came back on a fresh scheduler from init; the casts it had not started were
    // delivered to it again, then every queued call was answered.
    assert.deepEqual(await queued, [4, 5, 6]);
    const [replaced] = (await k.events({ types: ["scheduler_replaced"] })).events;
    assert.ok(replaced, "one event names what happened");
    const p = replaced.payload as { reason: string; culprit: { tenant: string; service: string }; hardLimitMs: number; services: number };
    assert.deepEqual(
      [p.reason, p.culprit, p.hardLimitMs, p.services],
      ["cpu_limit", { tenant: "villain", service: "stuck", version: 1 }, 1000, 2],
    );
    const [victimCrash] = (await k.events({ tenant: "victim", types: ["service_crashed"] })).events;
    assert.ok(victimCrash);
    assert.equal((victimCrash.payload as { crash: { kind: string } }).crash.kind, "scheduler_failed");
    await until("the villain restarted", () => k.status("villain", "stuck").state === "running");
    assert.equal(await k.call("villain", "stuck", "fine"), 0, "the culprit is supervised like any crash");
    assert.equal(k.status("victim", "counter").restarts, 1);
  });

  it("carries out an operator's kill of a service stuck in a built-in without waiting for it to return", { timeout: 60_000 }, async () => {
    const k = await kernelWith();
    // A budget of a minute puts its hard limit at ten: only the kill can stop it in time.
    await k.deploy({ tenant: "slow", service: "stuck", code: STUCK, limits: { cpuMsPerMessage: 60_000 } });
    await k.deploy({ tenant: "other", service: "counter", code: COUNTER });
    const { failed: stuck } = await running(k, "slow", "stuck", "stuck");
    await k.kill("slow", "stuck");
    assert.equal(k.status("slow", "stuck").state, "stopped");
    const error = await stuck;
    assert.equal(error.reason, "SOLO_ERR_SERVICE_STOPPED");
    await until("the neighbour restarted", () => k.status("other", "counter").state === "running");
    assert.equal(await k.call("other", "counter", null), 1, "the neighbour runs again, from init");
    const [replaced] = (await k.events({ types: ["scheduler_replaced"] })).events;
    assert.ok(replaced);
    assert.equal((replaced.payload as { reason: string }).reason, "killed");
    assert.deepEqual(
      (await k.events({ tenant: "slow" })).events.map((e) => e.type),
      ["tenant_created", "service_deployed", "service_killed"],
      "the killed service is stopped, not crashed",
    );
  });

  it("kills a service busy in an ordinary loop at its next interrupt check, without replacing its scheduler", async () => {
    const k = await kernelWith();
    const loop = `export default { init() { return 0 }, handleCall(r, s) { let x = 0; for (;;) x++ } };`;
    await k.deploy({ tenant: "busy", service: "loop", code: loop, limits: { cpuMsPerMessage: 60_000 } });
    await k.deploy({ tenant: "other", service: "counter", code: COUNTER });
    assert.equal(await k.call("other", "counter", null), 1);
    const { failed: looping } = await running(k, "busy", "loop", null);
    await k.kill("busy", "loop");
    assert.equal((await looping).reason, "SOLO_ERR_SERVICE_STOPPED");
    assert.equal(await k.call("other", "counter", null), 2, "the neighbour kept its state");
    assert.equal((await k.events({ types: ["scheduler_replaced"] })).events.length, 0);
  });

  it("carries out an operator's restart of a service stuck in a built-in: it runs again from init", { timeout: 60_000 }, async () => {
    const k = await kernelWith();
    await k.deploy({ tenant: "again", service: "stuck", code: STUCK, limits: { cpuMsPerMessage: 60_000 } });
    const { failed: stuck } = await running(k, "again", "stuck", "stuck");
    await k.restart("again", "stuck");
    assert.equal((await stuck).reason, "SOLO_ERR_SERVICE_STOPPED");
    assert.equal(k.status("again", "stuck").state, "running");
    // Its thread had to be replaced, so its tenant cools down before it is served again.
    const held = await rejection(k.call("again", "stuck", "fine"));
    assert.equal(held.reason, "SOLO_ERR_TENANT_COOLDOWN");
    await until("the cooldown over", async () => (await k.call("again", "stuck", "fine").catch(() => -1)) === 0);
  });

  it("kills a service whose init is stuck in a built-in: its deploy fails as stopped, within the kill's grace", {
    timeout: 60_000,
  }, async () => {
    const k = await kernelWith();
    const stuckInit = STUCK.replace("init() { return 0 }", 'init() { return "a".repeat(1 << 20).indexOf("a".repeat(2000) + "b") }');
    const deploying = rejection(k.deploy({ tenant: "starting", service: "s", code: stuckInit, limits: { cpuMsPerMessage: 60_000 } }));
    await until("init is running", () => k.stats().schedulers[0]?.running?.service === "s", 5000);
    await k.kill("starting", "s");
    const error = await deploying;
    assert.equal(error.reason, "SOLO_ERR_SERVICE_STOPPED");
    assert.equal(k.list("starting").length, 0, "nothing was deployed");
  });

  it("lets a kill during an operator's restart win: the service stays stopped", async () => {
    const k = await kernelWith();
    await k.deploy({ tenant: "race", service: "s", code: COUNTER });
    await k.call("race", "s", null);
    const restarting = k.restart("race", "s").then(
      () => "restarted",
      (e: { reason?: string }) => e.reason,
    );
    await k.kill("race", "s");
    assert.equal(await restarting, "SOLO_ERR_SERVICE_STOPPED");
    assert.equal(k.status("race", "s").state, "stopped");
    assert.equal((await rejection(k.call("race", "s", null))).reason, "SOLO_ERR_SERVICE_STOPPED");
    const types = (await k.events({ tenant: "race" })).events.map((e) => e.type);
    assert.deepEqual(types, ["tenant_created", "service_deployed", "service_killed"]);
  });

  it("completes a kill of a service queued behind another's runaway once the watchdog replaces the thread", {
    timeout: 60_000,
  }, async () => {
    const k = await kernelWith();
    await k.deploy({ tenant: "jam", service: "stuck", code: STUCK, limits: { cpuMsPerMessage: 20 } });
    await k.deploy({ tenant: "bystander", service: "counter", code: COUNTER });
    const { failed: stuck } = await running(k, "jam", "stuck", "stuck");
    await k.kill("bystander", "counter");
    assert.equal(k.status("bystander", "counter").state, "stopped");
    assert.equal((await stuck).reason, "SOLO_ERR_LIMIT_CPU");
    const types = (await k.events({ tenant: "bystander" })).events.map((e) => e.type);
    assert.ok(types.includes("service_killed"), types.join(","));
    await assert.rejects(k.call("bystander", "counter", null), /stopped/);
  });

  it("tells a call waiting for its service to come back that the kernel closed, at once", { timeout: 60_000 }, async () => {
    const k = await kernelWith({ supervision: { backoffMs: 30_000 } });
    await k.deploy({ tenant: "villain", service: "stuck", code: STUCK, limits: { cpuMsPerMessage: 20 } });
    await k.deploy({ tenant: "victim", service: "counter", code: COUNTER });
    const culprit = rejection(k.call("villain", "stuck", "stuck", { timeoutMs: 60_000 }));
    const waiting = rejection(k.call("victim", "counter", null, { timeoutMs: 60_000 }));
    await culprit;
    await until("the victim restarting", () => k.status("victim", "counter").state === "restarting");
    await k.close();
    assert.equal((await waiting).reason, "SOLO_ERR_KERNEL_CLOSED");
  });

  it("cools down a tenant whose message held its thread far past its budget, even when the built-in returned in time for the watchdog", async () => {
    const k = await kernelWith();
    // About 0.3 s of CPU in one indexOf: well under the 1 s hard limit, 15 times the 20 ms budget.
    const slow = STUCK.replace('a".repeat(2000)', 'a".repeat(80)').replace(
      "return { reply: n, state: n };",
      'if (req === "warm") "a".repeat(1 << 12).indexOf("a".repeat(80) + "b");\n    return { reply: n, state: n };',
    );
    await k.deploy({ tenant: "slow", service: "s", code: slow, limits: { cpuMsPerMessage: 20 } });
    // The engine's code for indexOf is compiled on first use; warmed, the measured call is steady.
    await k.call("slow", "s", "warm");
    const error = await rejection(k.call("slow", "s", "stuck"));
    assert.equal(error.reason, "SOLO_ERR_LIMIT_CPU");
    const held = await rejection(k.deploy({ tenant: "slow", service: "t", code: COUNTER }));
    assert.equal(held.reason, "SOLO_ERR_TENANT_COOLDOWN");
    assert.equal((await k.events({ types: ["scheduler_replaced"] })).events.length, 0, "the watchdog did not have to step in");
  });
});
