import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, describe, it } from "node:test";
import { ManualClock, rejection, until } from "../../test/support/helpers.ts";
import { type Kernel, type KernelOptions, openKernel } from "./index.ts";

const dirs: string[] = [];
const kernels: Kernel[] = [];
after(async () => {
  for (const k of kernels) await k.close();
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

async function kernelWith(options: KernelOptions = {}): Promise<{ k: Kernel; dataDir: string }> {
  const dataDir = mkdtempSync(join(tmpdir(), "solo-swap-"));
  dirs.push(dataDir);
  const k = await openKernel({ dataDir, schedulers: 1, ...options });
  kernels.push(k);
  return { k, dataDir };
}

// Version 1 keeps a count; version 2 keeps { count, seen: [...] } and records what it handled.
const V1 = `export default {
  init() { return 0 },
  handleCall(req, n) { if (req === "boom") throw new Error("v1 boom"); return { reply: { v: 1, n: n + 1 }, state: n + 1 } },
};`;
const V2 = `export default {
  init() { return { count: 0 } },
  codeChange(from, state) { return { count: state, from } },
  handleCall(req, s) {
    if (req === "boom") throw new Error("v2 boom");
    s.count++;
    return { reply: { v: 2, n: s.count, from: s.from }, state: s };
  },
};`;

describe("swap()", () => {
  it("replaces the code between two messages and carries the state through codeChange", async () => {
    const { k } = await kernelWith();
    await k.deploy({ tenant: "hs", service: "c", code: V1 });
    await k.call("hs", "c");
    await k.call("hs", "c");
    const v = await k.swap("hs", "c", V2, { rollbackWindowMs: 0 });
    assert.equal(v.version, 2);
    assert.deepEqual(await k.call("hs", "c"), { v: 2, n: 3, from: 1 });
    const st = k.status("hs", "c");
    assert.equal(st.version, 2);
    assert.deepEqual(
      st.handlers,
      ["init", "handleCall", "codeChange"].filter((h) => st.handlers.includes(h)),
    );
    const types = (await k.events({ tenant: "hs" })).events.map((e) => e.type);
    assert.deepEqual(types, ["tenant_created", "service_deployed", "hot_swap_started", "hot_swap_succeeded"]);
  });

  it("loses, reorders and repeats no message when swapped under 64 concurrent callers", async () => {
    const { k } = await kernelWith();
    const counter = (v: number) => `export default {
      init() { return { n: 0 } },
      codeChange(from, s) { return s },
      handleCall(req, s) { s.n++; return { reply: [${v}, s.n], state: s } },
    };`;
    await k.deploy({ tenant: "hs", service: "load", code: counter(1) });
    const replies: Array<[number, number]> = [];
    let stop = false;
    const callers = Array.from({ length: 64 }, async () => {
      while (!stop) replies.push((await k.call("hs", "load")) as [number, number]);
    });
    await until("some calls", () => replies.length > 200);
    await k.swap("hs", "load", counter(2), { rollbackWindowMs: 0 });
    await until("calls on the new version", () => replies.filter((r) => r[0] === 2).length > 200);
    stop = true;
    await Promise.all(callers);
    const ns = replies.map((r) => r[1]).sort((a, b) => a - b);
    assert.deepEqual(
      ns,
      Array.from({ length: ns.length }, (_, i) => i + 1),
      "every count exactly once, none skipped",
    );
    const firstV2 = Math.min(...replies.filter((r) => r[0] === 2).map((r) => r[1]));
    const lastV1 = Math.max(...replies.filter((r) => r[0] === 1).map((r) => r[1]));
    assert.equal(firstV2, lastV1 + 1, "the new version continues exactly where the old one stopped");
  });

  it("leaves the old version running when codeChange throws or returns nothing, or the module does not load or parse", async () => {
    const { k } = await kernelWith();
    await k.deploy({ tenant: "hs", service: "keep", code: V1 });
    await k.call("hs", "keep");
    const bad = [
      ["export default { handleCall(r, s) { return { reply: 0, state: s } }, codeChange() { throw new Error('no') } }", "codeChange"],
      ["export default { handleCall(r, s) { return { reply: 0, state: s } }, codeChange(f, s) {} }", "codeChange"],
      ["const broken = null;\nbroken.field;\nexport default { handleCall(r, s) { return { reply: 0, state: s } } }", "load"],
      ["export default 42", "analyzer"],
      ["export default { handleCall(", "syntax"],
    ] as const;
    let n = 1;
    for (const [code, phase] of bad) {
      const err = await rejection(k.swap("hs", "keep", code));
      if (phase === "syntax") assert.equal(err.reason, "SOLO_ERR_DEPLOY_SYNTAX", code);
      else if (phase === "analyzer") assert.equal(err.reason, "SOLO_ERR_DEPLOY_REJECTED", code);
      else {
        assert.equal(err.reason, "SOLO_ERR_SWAP_FAILED", code);
        assert.equal(err.details.phase, phase, code);
      }
      n++;
      assert.deepEqual(await k.call("hs", "keep"), { v: 1, n }, "the old version runs on with its state");
    }
    assert.equal(k.status("hs", "keep").version, 1);
    const failed = (await k.events({ tenant: "hs", types: ["hot_swap_failed"] })).events;
    assert.equal(failed.length, 5);
  });

  it("rolls back to the previous code and the state captured at the swap when the new version crashes in its window", async () => {
    const clock = new ManualClock();
    const { k } = await kernelWith({ clock });
    await k.deploy({ tenant: "hs", service: "w", code: V1 });
    await k.call("hs", "w");
    await k.call("hs", "w"); // state 2 at the swap
    await k.swap("hs", "w", V2, { rollbackWindowMs: 30_000 });
    assert.deepEqual(await k.call("hs", "w"), { v: 2, n: 3, from: 1 });
    clock.advance(10_000);
    assert.equal((await rejection(k.call("hs", "w", "boom"))).reason, "SOLO_ERR_HANDLER_THREW");
    await until("rolled back", () => k.status("hs", "w").state === "running" && k.status("hs", "w").version === 1);
    assert.deepEqual(await k.call("hs", "w"), { v: 1, n: 3 }, "version 1 again, from the state captured at the swap (2)");
    await until("rollback event", async () => (await k.events({ tenant: "hs", types: ["hot_swap_rolled_back"] })).events.length === 1);
    const [rolled] = (await k.events({ tenant: "hs", types: ["hot_swap_rolled_back"] })).events;
    assert.ok(rolled);
    assert.deepEqual({ ...(rolled.payload as object), crash: undefined }, { from: 2, to: 1, by: "watchdog", crash: undefined });
  });

  it("keeps the new version once the window has passed: a later crash is supervised as usual", async () => {
    const clock = new ManualClock();
    const { k } = await kernelWith({ clock });
    await k.deploy({ tenant: "hs", service: "ok", code: V1 });
    await k.swap("hs", "ok", V2, { rollbackWindowMs: 1000 });
    clock.advance(1000);
    await until("succeeded", async () => (await k.events({ tenant: "hs", types: ["hot_swap_succeeded"] })).events.length === 1);
    await rejection(k.call("hs", "ok", "boom"));
    await until("restarting", () => k.status("hs", "ok").state === "restarting");
    clock.advance(1000);
    await until("running", () => k.status("hs", "ok").state === "running");
    assert.equal(k.status("hs", "ok").version, 2);
  });

  it("persists the swapped version, so a restarted kernel runs it", async () => {
    const { k, dataDir } = await kernelWith();
    await k.deploy({ tenant: "hs", service: "p", code: V1 });
    await k.swap("hs", "p", V2, { rollbackWindowMs: 0 });
    await k.close();
    const k2 = await openKernel({ dataDir, schedulers: 1 });
    kernels.push(k2);
    assert.equal(k2.status("hs", "p").version, 2);
    assert.deepEqual(await k2.call("hs", "p"), { v: 2, n: 1 }, "version 2's init ran (the state was in memory)");
  });

  it("rejects bad swap requests and leaves the service alone", async () => {
    const { k } = await kernelWith();
    await k.deploy({ tenant: "hs", service: "s", code: V1 });
    assert.equal((await rejection(k.swap("hs", "s", ""))).reason, "SOLO_ERR_REQUEST_INVALID");
    assert.equal((await rejection(k.swap("hs", "s", V2, { rollbackWindowMs: -1 }))).reason, "SOLO_ERR_REQUEST_INVALID");
    assert.equal((await rejection(k.swap("hs", "nope", V2))).reason, "SOLO_ERR_SERVICE_NOT_FOUND");
    assert.equal((await rejection(k.swap("other", "s", V2))).reason, "SOLO_ERR_SERVICE_NOT_FOUND");
    assert.equal(k.status("hs", "s").version, 1);
  });
});

describe("rollback()", () => {
  it("returns to an earlier version explicitly, carrying the state through that version's codeChange", async () => {
    const { k } = await kernelWith();
    const counter = (v: number) => `export default {
      init() { return 0 },
      codeChange(from, n) { return n },
      handleCall(req, n) { return { reply: [${v}, n + 1], state: n + 1 } },
    };`;
    await k.deploy({ tenant: "hs", service: "r", code: counter(1) });
    await k.call("hs", "r");
    await k.swap("hs", "r", counter(2), { rollbackWindowMs: 0 });
    await k.call("hs", "r");
    await k.swap("hs", "r", counter(3), { rollbackWindowMs: 0 });
    assert.deepEqual(await k.call("hs", "r"), [3, 3]);
    const back = await k.rollback("hs", "r", 1);
    assert.equal(back.version, 1);
    assert.deepEqual(await k.call("hs", "r"), [1, 4]);
    assert.equal((await rejection(k.rollback("hs", "r", 9))).reason, "SOLO_ERR_VERSION_NOT_FOUND");
    assert.equal((await rejection(k.rollback("hs", "r", 1))).reason, "SOLO_ERR_VERSION_NOT_FOUND");
    const rolled = (await k.events({ tenant: "hs", types: ["hot_swap_rolled_back"] })).events;
    assert.deepEqual(rolled[0]?.payload, { from: 3, to: 1, by: "operator" });
  });
});

describe("versions() and source()", () => {
  it("list every version with the current one marked, and return each version's source as deployed", async () => {
    const { k, dataDir } = await kernelWith();
    const ts = `export default { init(): number { return 0 }, handleCall(r: unknown, n: number) { return { reply: n, state: n } } };`;
    await k.deploy({ tenant: "hist", service: "c", code: V1 });
    await k.swap("hist", "c", V2, { rollbackWindowMs: 0 });
    await k.swap("hist", "c", `${ts}\n`, { rollbackWindowMs: 0 });
    await k.rollback("hist", "c", 2);
    const vs = await k.versions("hist", "c");
    assert.deepEqual(
      vs.map((v) => [v.version, v.current]),
      [
        [1, false],
        [2, true],
        [3, false],
      ],
    );
    assert.equal(vs[2]?.codeBytes, Buffer.byteLength(`${ts}\n`));
    assert.match(vs[0]?.sha256 ?? "", /^[0-9a-f]{64}$/);
    assert.deepEqual(vs[0]?.grants, (await k.versions("hist", "c"))[1]?.grants);
    assert.equal((await k.source("hist", "c")).code, V2);
    const v3 = await k.source("hist", "c", 3);
    assert.equal(v3.code, `${ts}\n`, "TypeScript comes back with its types, byte for byte");
    assert.equal(v3.sha256, vs[2]?.sha256);

    // A killed service's history stays readable, also after the kernel reopens.
    await k.kill("hist", "c");
    await k.close();
    const again = await openKernel({ dataDir, schedulers: 1 });
    kernels.push(again);
    assert.deepEqual(
      (await again.versions("hist", "c")).map((v) => v.version),
      [1, 2, 3],
    );
    assert.equal((await again.source("hist", "c", 1)).code, V1);
  });

  it("refuses an unknown service, a missing version and a malformed one precisely", async () => {
    const { k } = await kernelWith();
    await k.deploy({ tenant: "hist", service: "c", code: V1 });
    assert.equal((await rejection(k.versions("hist", "nope"))).reason, "SOLO_ERR_SERVICE_NOT_FOUND");
    assert.equal((await rejection(k.source("nobody", "c"))).reason, "SOLO_ERR_SERVICE_NOT_FOUND");
    const missing = await rejection(k.source("hist", "c", 7));
    assert.equal(missing.reason, "SOLO_ERR_VERSION_NOT_FOUND");
    assert.deepEqual(missing.details.versions, [1]);
    for (const bad of [0, -1, 1.5, Number.NaN]) {
      const e = await rejection(k.source("hist", "c", bad));
      assert.equal(e.reason, "SOLO_ERR_REQUEST_INVALID");
      assert.equal(e.details.field, "version");
    }
    assert.equal((await rejection(k.versions("hist", "../etc"))).code, "invalid_argument");
  });
});
