import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { rejection, until } from "../../test/support/helpers.ts";
import { testKernels } from "../../test/support/kernels.ts";
import { type Kernel, type KernelOptions, openKernel } from "./index.ts";

const { freshDir, start } = testKernels("res");

function kernelWith(options: Omit<KernelOptions, "dataDir"> = {}): Promise<Kernel> {
  return start(freshDir(), { supervision: { restart: "temporary" }, ...options });
}

// Each message keeps the service busy for a while, so a burst sent at once waits in the mailbox.
const BUSY = `export default {
  init() { return 0 },
  handleCall(req, n) { const end = Date.now() + 5; while (Date.now() < end) {} return { reply: n + 1, state: n + 1 } },
  handleCast(msg, n) { const end = Date.now() + 5; while (Date.now() < end) {} return { state: n + 1 } },
};`;

describe("the mailbox limit", () => {
  it("refuses calls beyond it at once with SOLO_ERR_MAILBOX_FULL, and serves the ones it took", async () => {
    const k = await kernelWith();
    await k.deploy({ tenant: "mb", service: "busy", code: BUSY, limits: { mailbox: 3 } });
    const results = await Promise.allSettled(Array.from({ length: 10 }, () => k.call("mb", "busy", null)));
    const served = results.filter((r) => r.status === "fulfilled").length;
    const refused = results.flatMap((r) =>
      r.status === "rejected" ? [r.reason as { reason?: string; code?: string; details?: { limit?: number } }] : [],
    );
    assert.equal(served, 3);
    assert.equal(refused.length, 7);
    for (const e of refused) {
      assert.equal(e.reason, "SOLO_ERR_MAILBOX_FULL");
      assert.equal(e.code, "resource_exhausted");
      assert.equal(e.details?.limit, 3);
    }
    assert.equal(k.status("mb", "busy").state, "running");
    assert.equal(await k.call("mb", "busy", null), 4);
  });

  it("counts casts dropped beyond it and records them as a resource_violation, never silently", async () => {
    const k = await kernelWith();
    await k.deploy({ tenant: "mb", service: "sink", code: BUSY, limits: { mailbox: 2 } });
    await Promise.all(Array.from({ length: 12 }, () => k.cast("mb", "sink", null)));
    await until("dropped casts in usage", () => k.status("mb", "sink").usage.dropped === 10);
    await until("the violation event", async () => (await k.events({ tenant: "mb", types: ["resource_violation"] })).events.length > 0);
    const events = (await k.events({ tenant: "mb", types: ["resource_violation"] })).events;
    const total = events.reduce((sum, e) => sum + (e.payload as { dropped: number }).dropped, 0);
    assert.equal(total, 10);
    assert.deepEqual(
      events.map((e) => [e.subject, (e.payload as { resource: string; limit: number }).resource, (e.payload as { limit: number }).limit]),
      events.map(() => ["sink", "mailbox", 2]),
    );
    assert.equal(k.tenantUsage("mb").dropped, 10);
    await until("the two taken casts handled", () => k.status("mb", "sink").usage.messages === 3); // init + 2 casts
  });

  it("rejects a solo.call into a full mailbox inside the calling service", async () => {
    const k = await kernelWith();
    await k.deploy({ tenant: "mb", service: "target", code: BUSY, limits: { mailbox: 1 } });
    await k.deploy({
      tenant: "mb",
      service: "caller",
      grants: { call: ["target"] },
      code: `export default {
        init() { return null },
        async handleCall(req, s) {
          const outcomes = await Promise.allSettled([solo.call("target", 1), solo.call("target", 2), solo.call("target", 3)]);
          return { reply: outcomes.map((o) => (o.status === "fulfilled" ? "ok" : o.reason.reason)), state: s };
        },
      };`,
    });
    assert.deepEqual(await k.call("mb", "caller", null), ["ok", "SOLO_ERR_MAILBOX_FULL", "SOLO_ERR_MAILBOX_FULL"]);
  });
});

describe("tenant limits", () => {
  it("refuses a deploy beyond the tenant's service count, not counting killed services or a redeploy of a name", async () => {
    const k = await kernelWith({ tenantLimits: { maxServices: 2 } });
    await k.deploy({ tenant: "t", service: "a", code: BUSY });
    await k.deploy({ tenant: "t", service: "b", code: BUSY });
    const err = await rejection(k.deploy({ tenant: "t", service: "c", code: BUSY }));
    assert.equal(err.reason, "SOLO_ERR_TENANT_LIMIT");
    assert.equal(err.code, "resource_exhausted");
    assert.equal(err.details.resource, "services");
    assert.equal(err.details.limit, 2);
    await k.deploy({ tenant: "other", service: "c", code: BUSY }); // another tenant has its own count
    await k.kill("t", "b");
    await k.deploy({ tenant: "t", service: "c", code: BUSY });
    await k.kill("t", "c");
    await k.deploy({ tenant: "t", service: "c", code: BUSY }); // a name again, as its next version
    assert.equal(k.tenantUsage("t").services, 2);
  });

  it("rejects bad tenant limits with the field", async () => {
    const err = await rejection(openKernel({ dataDir: freshDir(), tenantLimits: { maxServices: 0 } }));
    assert.equal(err.reason, "SOLO_ERR_LIMITS_INVALID");
    assert.equal(err.details.field, "tenantLimits.maxServices");
  });
});
