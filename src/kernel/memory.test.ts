/**
 * Memory as the host holds it: a tenant's services together never hold more than the tenant's
 * memoryBytes (the engine refuses to grow past it), a service's limit counts every byte its
 * runtime holds (strings built by concatenation included), the memory comes back when a tenant's
 * services stop, and tenants' limits together fit the kernel's budget.
 */

import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { setFlagsFromString } from "node:v8";
import { runInNewContext } from "node:vm";
import { crashOf, rejection, until } from "../../test/support/helpers.ts";
import { testKernels } from "../../test/support/kernels.ts";
import type { SoloEvent } from "../api/events.ts";
import { type Kernel, type KernelOptions, openKernel } from "./index.ts";
import { clampStoredTenantLimits } from "./limits.ts";

const MiB = 1024 * 1024;
const { freshDir, start } = testKernels("mem");

function kernelWith(options: Omit<KernelOptions, "dataDir"> = {}): Promise<Kernel> {
  return start(freshDir(), { supervision: { restart: "temporary" }, ...options });
}

// Keeps 3 MiB strings, each a real allocation, joined by concatenation into one rope that grows
// on every call until something refuses it: 30 calls would hold 90 MiB.
const HOARD = `export default {
  init() { return { n: 0 } },
  handleCall(req, s) {
    if (req === "size") return { reply: (globalThis.blob ?? "").length, state: s };
    globalThis.blob = (globalThis.blob ?? "") + String(s.n % 10).repeat(3 * 1024 * 1024);
    s.n++;
    return { reply: globalThis.blob.length, state: s };
  },
};`;

// Fills its tenant down to the last bytes on "fill", catching each refusal, and keeps what it has
// (but for a few small pieces); answers any other request with its length.
const FILL = `export default {
  init() { return 0 },
  handleCall(req, s) {
    if (req !== "fill") return { reply: req.length, state: s };
    const keep = (globalThis.keep = []);
    for (const size of [1 << 20, 1 << 16, 1 << 12, 1 << 8, 16]) {
      try { for (;;) keep.push("z".repeat(size) + keep.length) } catch {}
    }
    for (let i = 0; i < 20; i++) keep.pop();
    return { reply: keep.length, state: s };
  },
};`;

/** The tenant's first resource_violation, once it is recorded (it is written in the background). */
async function firstViolation(k: Kernel, tenant: string): Promise<SoloEvent> {
  const violations = async (): Promise<SoloEvent[]> => (await k.events({ tenant, types: ["resource_violation"] })).events;
  await until("the violation recorded", async () => (await violations()).length > 0);
  return (await violations())[0] as SoloEvent;
}

// Answers with a fresh 256 KiB string each call: it needs a little memory to answer at all.
const NEIGHBOUR = `export default {
  init() { return 0 },
  handleCall(req, n) { return { reply: ("n" + n).repeat(64 * 1024).length, state: n + 1 } },
};`;

/** A full garbage collection, now (V8 takes --expose-gc at run time, process-wide). */
function collectGarbage(): void {
  setFlagsFromString("--expose-gc");
  (runInNewContext("gc") as () => void)();
}

describe("a tenant's memory", () => {
  it("is a hard cap: a service hoarding past it crashes with SOLO_ERR_LIMIT_MEMORY, the process does not grow past it, other tenants never notice", async () => {
    const k = await kernelWith();
    await k.tenants.create("capped", { limits: { memoryBytes: 32 * MiB } });
    await k.deploy({ tenant: "capped", service: "hoard", code: HOARD, limits: { memoryBytes: 1024 * MiB } });
    await k.deploy({ tenant: "bystander", service: "n", code: NEIGHBOUR });
    const rssBefore = process.memoryUsage.rss();
    let error: Awaited<ReturnType<typeof rejection>> | undefined;
    for (let i = 0; i < 40 && !error; i++) {
      error = await k.call("capped", "hoard", "more").then(
        () => undefined,
        (e: unknown) => e as Awaited<ReturnType<typeof rejection>>,
      );
      assert.equal(typeof (await k.call("bystander", "n", null)), "number", "the other tenant is served throughout");
    }
    assert.ok(error, "the hoard was never refused");
    assert.equal(error.reason, "SOLO_ERR_LIMIT_MEMORY");
    const crash = crashOf(error);
    assert.equal(crash.kind, "memory_limit");
    assert.equal(crash.resource, "tenant_memory");
    assert.match(crash.message, /tenant capped's memory is full/);
    // Without the cap the hoard would have taken 120 MiB; the host held at most the cap for it.
    const grown = process.memoryUsage.rss() - rssBefore;
    assert.ok(grown < 96 * MiB, `the process grew by ${Math.round(grown / MiB)} MiB`);
    const violation = await firstViolation(k, "capped");
    assert.equal(violation.subject, "hoard");
    assert.deepEqual(
      [(violation.payload as { resource: string }).resource, (violation.payload as { limit: number }).limit],
      ["tenant_memory", 32 * MiB],
    );
  });

  it("stops an array bomb at the tenant's cap, not at the host's expense", async () => {
    const k = await kernelWith();
    await k.tenants.create("bomb", { limits: { memoryBytes: 32 * MiB } });
    const bomb = `export default {
      init() { return 0 },
      handleCall(req, n) { const a = []; for (;;) a.push({ n: a.length, s: "item" + a.length }); },
    };`;
    await k.deploy({ tenant: "bomb", service: "b", code: bomb, limits: { memoryBytes: 1024 * MiB, cpuMsPerMessage: 60_000 } });
    const rssBefore = process.memoryUsage.rss();
    const error = await rejection(k.call("bomb", "b", null, { timeoutMs: 60_000 }));
    const grown = process.memoryUsage.rss() - rssBefore;
    assert.equal(error.reason, "SOLO_ERR_LIMIT_MEMORY");
    assert.equal(crashOf(error).resource, "tenant_memory");
    assert.ok(grown < 96 * MiB, `the process grew by ${Math.round(grown / MiB)} MiB`);
  });

  it("never reports more than the cap, and a neighbour allocating while it is full gets the precise error", async () => {
    const k = await kernelWith();
    await k.tenants.create("full", { limits: { memoryBytes: 32 * MiB } });
    await k.deploy({ tenant: "full", service: "n", code: NEIGHBOUR });
    await k.deploy({ tenant: "full", service: "hog", code: FILL, limits: { memoryBytes: 1024 * MiB, cpuMsPerMessage: 5000 } });
    assert.ok(Number(await k.call("full", "hog", "fill")) > 100);
    const error = await rejection(k.call("full", "n", null));
    assert.equal(error.reason, "SOLO_ERR_LIMIT_MEMORY");
    assert.equal(crashOf(error).resource, "tenant_memory");
    assert.equal(k.status("full", "hog").state, "running", "the hog kept its memory and runs on");
    await until("a usage sample", () => k.tenantUsage("full").memoryBytes > 0);
    const usage = k.tenantUsage("full");
    assert.ok(usage.memoryBytes <= 32 * MiB, `the tenant holds ${usage.memoryBytes} bytes`);
    assert.ok(usage.heapBytes <= usage.memoryBytes);
  });

  it("refuses a large request into a full tenant precisely, without the host writing it anywhere: the sibling runs on", async () => {
    const k = await kernelWith();
    await k.tenants.create("brim", { limits: { memoryBytes: 16 * MiB } });
    await k.deploy({ tenant: "brim", service: "sibling", code: NEIGHBOUR.replace("64 * 1024", "1"), limits: { memoryBytes: 2 * MiB } });
    await k.deploy({ tenant: "brim", service: "hog", code: FILL, limits: { memoryBytes: 64 * MiB, cpuMsPerMessage: 5000 } });
    await k.call("brim", "hog", "fill");
    const error = await rejection(k.call("brim", "hog", "x".repeat(100_000)));
    assert.equal(error.reason, "SOLO_ERR_LIMIT_MEMORY");
    assert.equal(crashOf(error).resource, "tenant_memory");
    assert.equal(k.status("brim", "sibling").state, "running");
    assert.equal(typeof (await k.call("brim", "sibling", null)), "number", "the instance is intact");
    const violation = await firstViolation(k, "brim");
    const largest = (violation.payload as { largest: Array<{ service: string; bytes: number }> }).largest;
    assert.equal(largest[0]?.service, "hog");
    assert.ok((largest[0]?.bytes ?? 0) > 8 * MiB, "measured when it happened");
  });

  it("refuses a deploy into a full tenant precisely, and its services run on untouched", async () => {
    const k = await kernelWith();
    await k.tenants.create("packed", { limits: { memoryBytes: 16 * MiB } });
    await k.deploy({ tenant: "packed", service: "n", code: NEIGHBOUR.replace("64 * 1024", "1") });
    await k.deploy({ tenant: "packed", service: "hog", code: FILL, limits: { memoryBytes: 64 * MiB, cpuMsPerMessage: 5000 } });
    await k.call("packed", "hog", "fill");
    const error = await rejection(k.deploy({ tenant: "packed", service: "late", code: NEIGHBOUR }));
    assert.equal(error.reason, "SOLO_ERR_LIMIT_MEMORY");
    assert.match(error.message, /tenant packed's memory is full/);
    assert.equal(typeof (await k.call("packed", "n", null)), "number");
    assert.equal(k.status("packed", "hog").state, "running");
  });

  it("comes back to the host when the tenant's services stop: the next deploy starts on a fresh instance", async () => {
    const k = await kernelWith();
    await k.tenants.create("back", { limits: { memoryBytes: 64 * MiB } });
    await k.deploy({ tenant: "back", service: "hoard", code: HOARD, limits: { memoryBytes: 1024 * MiB } });
    for (let i = 0; i < 8; i++) await k.call("back", "hoard", "more");
    await until("the instance grew", () => k.tenantUsage("back").memoryBytes > 32 * MiB);
    const held = process.memoryUsage.rss();
    await k.kill("back", "hoard");
    await until("the instance given back", () => k.tenantUsage("back").memoryBytes === 0);
    // The host really has it back: the process shrinks by most of what the instance held.
    await until("the process shrank", () => process.memoryUsage.rss() < held - 16 * MiB);
    await k.deploy({ tenant: "back", service: "n", code: NEIGHBOUR });
    await k.call("back", "n", null);
    await until("a usage sample", () => k.tenantUsage("back").memoryBytes > 0);
    assert.equal(k.tenantUsage("back").memoryBytes, 16 * MiB, "a fresh instance at the engine's initial size");
  });
});

describe("messages waiting for a tenant", () => {
  it("hold at most its memory limit: a flood of casts is refused past it, and the process does not grow by it", async () => {
    const k = await kernelWith();
    await k.tenants.create("flood", { limits: { memoryBytes: 16 * MiB } });
    const slow = `export default {
      init() { return 0 },
      handleCast(m, n) { const t = Date.now(); while (Date.now() - t < 50) {} return { state: n + 1 } },
    };`;
    await k.deploy({ tenant: "flood", service: "slow", code: slow, limits: { cpuMsPerMessage: 1000 } });
    const payload = "c".repeat(512 * 1024); // 1 MiB as the host may hold it
    // The test itself makes 200 such strings: collected before each reading, what the process
    // still holds after the flood is what the kernel kept, whatever the GC had got round to.
    collectGarbage();
    const rssBefore = process.memoryUsage.rss();
    const outcomes = await Promise.all(
      Array.from({ length: 200 }, (_, i) =>
        k.cast("flood", "slow", payload + i).then(
          () => "sent",
          (e: { reason?: string; details?: { resource?: string } }) => `${e.reason}/${e.details?.resource}`,
        ),
      ),
    );
    collectGarbage();
    const grown = process.memoryUsage.rss() - rssBefore;
    assert.ok(outcomes.filter((o) => o === "sent").length <= 16, "at most the limit's worth was sent");
    assert.ok(outcomes.includes("SOLO_ERR_MAILBOX_FULL/queued_bytes"), outcomes.slice(-3).join(","));
    assert.ok(grown < 96 * MiB, `the process grew by ${Math.round(grown / MiB)} MiB`);
  });

  it("hold at most its memory limit in timers too: sendAfter past it is refused inside the service", async () => {
    const k = await kernelWith();
    await k.tenants.create("alarms", { limits: { memoryBytes: 16 * MiB } });
    const arming = `export default {
      init() { return 0 },
      handleInfo(m, n) { return { state: n } },
      handleCall(req, n) {
        const body = "t".repeat(512 * 1024);
        let armed = 0;
        try { for (;;) { solo.sendAfter(3600000, body); armed++ } } catch (e) { return { reply: [armed, e.reason, e.details.resource], state: n } }
      },
    };`;
    await k.deploy({ tenant: "alarms", service: "a", code: arming, limits: { cpuMsPerMessage: 5000 } });
    const [armed, reason, resource] = (await k.call("alarms", "a", null)) as [number, string, string];
    assert.deepEqual([reason, resource], ["SOLO_ERR_LIMIT_TIMERS", "queued_bytes"]);
    assert.ok(armed > 0 && armed <= 16, `${armed} timers armed`);
  });
});

describe("the count of waiting messages", () => {
  it("comes back to zero when nothing waits, whatever deploys, swaps and timers came before", async () => {
    const k = await kernelWith({ supervision: { restart: "permanent" } });
    await k.tenants.create("count", { limits: { memoryBytes: 16 * MiB } });
    // Its init sets a timer and awaits storage: the timer fires while it is still starting.
    const ticker = (v: number) => `export default {
      async init(args) { solo.sendAfter(0, "tick"); await solo.storage.get("x"); return { v: ${v}, ticks: 0, pad: args.length } },
      codeChange(from, s) { return s },
      handleInfo(m, s) { return { state: { ...s, ticks: s.ticks + 1 } } },
      handleCall(req, s) { return { reply: s, state: s } },
    };`;
    const args = "a".repeat(400_000);
    await k.deploy({ tenant: "count", service: "t", code: ticker(1), args, limits: { cpuMsPerMessage: 5000 } });
    await until("the first tick, delivered after init", async () => ((await k.call("count", "t", null)) as { ticks: number }).ticks === 1);
    for (let v = 2; v <= 4; v++) await k.swap("count", "t", `${ticker(v)}\n// ${"p".repeat(300_000)}`, { rollbackWindowMs: 0 });
    await k.kill("count", "t");
    await k.deploy({ tenant: "count", service: "t", code: ticker(5), args, limits: { cpuMsPerMessage: 5000 } });
    await until("the count sampled", () => k.tenantUsage("count").memoryBytes > 0);
    await until("nothing counted as waiting", () => k.tenantUsage("count").queuedBytes === 0);
    // And the whole limit is there for waiting messages again: 7 casts of 2 MB fit.
    const sink = `export default { init() { return 0 }, handleCast(m, n) { return { state: n + 1 } } };`;
    await k.deploy({ tenant: "count", service: "sink", code: sink });
    for (let i = 0; i < 7; i++) await k.cast("count", "sink", "c".repeat(1000 * 1024));
  });
});

describe("giving memory back", () => {
  // Counts its ticks in its state: a timer every 10 ms, and calls that read the count.
  const TICKER = `export default {
    init() { solo.sendAfter(10, "tick"); return { ticks: 0, calls: 0 } },
    handleInfo(msg, s) { solo.sendAfter(10, "tick"); return { state: { ...s, ticks: s.ticks + 1 } } },
    handleCall(req, s) { return { reply: s, state: { ...s, calls: s.calls + 1 } } },
  };`;

  it("moves a tenant's services to a fresh instance once they hold far less than it grew to, keeping their state and timers", async () => {
    const k = await kernelWith();
    await k.tenants.create("shrink", { limits: { memoryBytes: 128 * MiB } });
    await k.deploy({ tenant: "shrink", service: "ticker", code: TICKER });
    await k.deploy({ tenant: "shrink", service: "hoard", code: HOARD, limits: { memoryBytes: 1024 * MiB } });
    for (let i = 0; i < 20; i++) await k.call("shrink", "hoard", "more");
    await until("the instance grew", () => k.tenantUsage("shrink").memoryBytes > 64 * MiB);
    const before = (await k.call("shrink", "ticker", null)) as { ticks: number; calls: number };
    await k.kill("shrink", "hoard");
    await until("the instance replaced", () => k.tenantUsage("shrink").memoryBytes === 16 * MiB);
    const after = (await k.call("shrink", "ticker", null)) as { ticks: number; calls: number };
    assert.equal(after.calls, before.calls + 1, "the state moved with the service");
    await until(
      "ticking on the fresh instance",
      async () => ((await k.call("shrink", "ticker", null)) as { ticks: number }).ticks > after.ticks + 3,
    );
    assert.equal(k.status("shrink", "ticker").state, "running");
    assert.equal(k.status("shrink", "ticker").restarts, 0, "moved, not restarted");
  });

  it("applies a raised tenant limit to the running tenant", async () => {
    const k = await kernelWith();
    await k.tenants.create("raise", { limits: { memoryBytes: 32 * MiB } });
    const probe = `export default {
      init() { return 0 },
      handleCall(req, n) {
        try { return { reply: "x".repeat(40 * 1024 * 1024).length, state: n } } catch { return { reply: "full", state: n + 1 } }
      },
    };`;
    await k.deploy({ tenant: "raise", service: "p", code: probe, limits: { memoryBytes: 1024 * MiB, cpuMsPerMessage: 5000 } });
    assert.equal(await k.call("raise", "p", null), "full");
    await k.tenants.update("raise", { memoryBytes: 96 * MiB });
    await until("the raised limit applies", async () => (await k.call("raise", "p", null)) === 40 * MiB);
    assert.equal(k.status("raise", "p").state, "running");
  });
});

describe("a service's memory limit", () => {
  it("counts strings built by concatenation: a 4 MiB service cannot keep a 24 MiB rope", async () => {
    const k = await kernelWith();
    await k.deploy({ tenant: "rope", service: "r", code: HOARD, limits: { memoryBytes: 4 * MiB } });
    const error = await rejection(k.call("rope", "r", "more").then(() => k.call("rope", "r", "more")));
    assert.equal(error.reason, "SOLO_ERR_LIMIT_MEMORY");
    const crash = crashOf(error);
    assert.equal(crash.kind, "memory_limit");
    assert.equal(crash.resource, undefined, "its own limit, not the tenant's");
    assert.match(crash.message, /memory limit of 4194304 bytes/);
  });

  it("reports a reply it has no memory left to hand over as a memory breach, not an engine fault", async () => {
    const k = await kernelWith();
    const reply = `export default { init() { return 0 }, handleCall(n, s) { return { reply: "é".repeat(n), state: s } } };`;
    await k.deploy({ tenant: "accents", service: "r", code: reply, limits: { memoryBytes: 4 * MiB, messageBytes: 16 * MiB } });
    const error = await rejection(k.call("accents", "r", 1_300_000));
    assert.equal(error.reason, "SOLO_ERR_LIMIT_MEMORY");
    assert.equal(crashOf(error).kind, "memory_limit");
  });

  it("reports what the service holds, ropes included", async () => {
    const k = await kernelWith();
    await k.deploy({ tenant: "usage", service: "r", code: HOARD, limits: { memoryBytes: 64 * MiB } });
    await k.call("usage", "r", "more");
    await k.call("usage", "r", "more");
    await until("a usage sample", () => k.status("usage", "r").usage.messages >= 3);
    const held = k.status("usage", "r").usage.memoryBytes;
    assert.ok(held >= 6 * MiB && held < 8 * MiB, `reported ${held} bytes for 6 MiB of strings`);
  });
});

describe("the kernel's memory budget", () => {
  it("refuses a tenant whose memory does not fit, naming what is left; a raise past it too", async () => {
    const k = await kernelWith({ memoryBudgetBytes: 96 * MiB });
    await k.tenants.create("a", { limits: { memoryBytes: 64 * MiB } });
    const error = await rejection(k.tenants.create("b", { limits: { memoryBytes: 64 * MiB } }));
    assert.equal(error.reason, "SOLO_ERR_MEMORY_BUDGET");
    assert.equal(error.code, "resource_exhausted");
    assert.equal(error.details.available, 32 * MiB);
    assert.equal(error.details.budget, 96 * MiB);
    assert.equal(error.details.field, "limits.memoryBytes");
    await assert.rejects(k.tenants.get("b"), /no tenant named b/);
    await k.tenants.create("b", { limits: { memoryBytes: 32 * MiB } });
    const raise = await rejection(k.tenants.update("a", { memoryBytes: 80 * MiB }));
    assert.equal(raise.reason, "SOLO_ERR_MEMORY_BUDGET");
    assert.equal((await k.tenants.get("a")).limits.memoryBytes, 64 * MiB, "the refused raise changed nothing");
    await k.tenants.update("a", { memoryBytes: 16 * MiB });
    await k.tenants.create("c", { limits: { memoryBytes: 48 * MiB } });
  });

  it("counts a tenant whose limit was lowered at its old limit until its memory is really given back", async () => {
    const k = await kernelWith({ memoryBudgetBytes: 96 * MiB });
    await k.tenants.create("big", { limits: { memoryBytes: 64 * MiB } });
    // Its state (24 MiB) cannot move into a 16 MiB instance: the old one stays.
    const holder = `export default { init() { return "s".repeat(12 * 1024 * 1024) }, handleCall(r, s) { return { reply: s.length, state: s } } };`;
    await k.deploy({
      tenant: "big",
      service: "h",
      code: holder,
      limits: { memoryBytes: 1024 * MiB, stateBytes: 64 * MiB, cpuMsPerMessage: 5000 },
    });
    await k.tenants.update("big", { memoryBytes: 16 * MiB });
    await until("the old instance reported", () => k.stats().memory.committedBytes === 64 * MiB);
    const error = await rejection(k.tenants.create("other", { limits: { memoryBytes: 48 * MiB } }));
    assert.equal(error.reason, "SOLO_ERR_MEMORY_BUDGET");
    assert.equal(error.details.committed, 64 * MiB);
    await k.kill("big", "h");
    await until("the instance given back", () => k.stats().memory.committedBytes === 16 * MiB);
    await k.tenants.create("other", { limits: { memoryBytes: 48 * MiB } });
  });

  it("refuses a deploy into a new tenant when the default tenant memory does not fit", async () => {
    const k = await kernelWith({ memoryBudgetBytes: 100 * MiB });
    await k.deploy({ tenant: "first", service: "n", code: NEIGHBOUR });
    const error = await rejection(k.deploy({ tenant: "second", service: "n", code: NEIGHBOUR }));
    assert.equal(error.reason, "SOLO_ERR_MEMORY_BUDGET");
    assert.throws(() => k.list("second"), { reason: "SOLO_ERR_TENANT_NOT_FOUND" }, "the refused deploy made no tenant");
  });

  it("refuses a budget smaller than one tenant at the engine's minimum", async () => {
    const error = await rejection(openKernel({ dataDir: freshDir(), memoryBudgetBytes: 1024 }));
    assert.equal(error.reason, "SOLO_ERR_KERNEL_OPTIONS_INVALID");
    assert.equal(error.details.field, "memoryBudgetBytes");
  });

  it("brings tenant limits stored before the engine's minimum into range instead of refusing to open", () => {
    assert.deepEqual(clampStoredTenantLimits({ memoryBytes: 4 * MiB, maxServices: 3 }), { memoryBytes: 16 * MiB, maxServices: 3 });
    assert.deepEqual(clampStoredTenantLimits({ memoryBytes: 2 ** 40 }), { memoryBytes: 2048 * MiB });
    assert.deepEqual(clampStoredTenantLimits({ maxServices: 3 }), { maxServices: 3 });
  });
});
