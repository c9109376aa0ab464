import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, describe, it } from "node:test";
import { rejection } from "../../test/support/helpers.ts";
import { type Kernel, openKernel } from "./index.ts";

const dirs: string[] = [];
const kernels: Kernel[] = [];
after(async () => {
  for (const k of kernels) await k.close();
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

const SVC = "export default { init() { return 0 }, handleCall(r, n) { return { reply: n, state: n } }, codeChange(f, n) { return n } };";

describe("the registry", () => {
  it("finds a tenant's services by tag, with their tags and metadata, across a swap and a restart", async () => {
    const dataDir = mkdtempSync(join(tmpdir(), "solo-reg-"));
    dirs.push(dataDir);
    const k = await openKernel({ dataDir, schedulers: 1 });
    await k.deploy({
      tenant: "shop",
      service: "cart",
      code: SVC,
      tags: ["checkout", "tier:1"],
      metadata: { owner: "agent-7", replicas: 1 },
    });
    await k.deploy({ tenant: "shop", service: "search", code: SVC, tags: ["tier:2"] });
    await k.deploy({ tenant: "other", service: "cart", code: SVC, tags: ["checkout"] });
    assert.deepEqual(
      k.list("shop", { tag: "checkout" }).map((s) => s.service),
      ["cart"],
    );
    assert.deepEqual(k.list("shop", { tag: "nothing" }), []);
    assert.deepEqual(k.status("shop", "cart").tags, ["checkout", "tier:1"]);
    assert.deepEqual(k.status("shop", "cart").metadata, { owner: "agent-7", replicas: 1 });
    assert.deepEqual(k.status("shop", "search").metadata, {});
    await k.swap("shop", "cart", SVC, { rollbackWindowMs: 0 });
    assert.deepEqual(k.status("shop", "cart").tags, ["checkout", "tier:1"]);
    await k.close();
    const k2 = await openKernel({ dataDir, schedulers: 1 });
    kernels.push(k2);
    assert.deepEqual(
      k2.list("shop", { tag: "tier:1" }).map((s) => [s.service, s.version, s.metadata]),
      [["cart", 2, { owner: "agent-7", replicas: 1 }]],
    );
  });

  it("rejects bad tags, metadata and filters with the field, and deploys nothing", async () => {
    const dataDir = mkdtempSync(join(tmpdir(), "solo-reg-"));
    dirs.push(dataDir);
    const k = await openKernel({ dataDir, schedulers: 1 });
    kernels.push(k);
    const cases: Array<[Record<string, unknown>, string]> = [
      [{ tags: "checkout" }, "tags"],
      [{ tags: ["Bad Tag"] }, "tags"],
      [{ tags: ["x".repeat(65)] }, "tags"],
      [{ tags: Array.from({ length: 33 }, (_, i) => `t${i}`) }, "tags"],
      [{ metadata: [] }, "metadata"],
      [{ metadata: { nested: { a: 1 } } }, "metadata.nested"],
      [{ metadata: { n: Number.NaN } }, "metadata.n"],
      [{ metadata: { big: "x".repeat(5000) } }, "metadata"],
    ];
    for (const [extra, field] of cases) {
      const err = await rejection(k.deploy({ tenant: "t", service: "s", code: SVC, ...extra } as never));
      assert.equal(err.reason, "SOLO_ERR_REQUEST_INVALID", JSON.stringify(extra).slice(0, 60));
      assert.equal(err.details.field, field);
    }
    assert.deepEqual(k.list("t"), []);
    assert.equal(
      (() => {
        try {
          k.list("t", { tag: "Not Valid" });
          return "listed";
        } catch (e) {
          return (e as { reason?: string }).reason;
        }
      })(),
      "SOLO_ERR_REQUEST_INVALID",
    );
  });

  it("answers another tenant's service exactly like a missing one", async () => {
    const dataDir = mkdtempSync(join(tmpdir(), "solo-reg-"));
    dirs.push(dataDir);
    const k = await openKernel({ dataDir, schedulers: 1 });
    kernels.push(k);
    await k.deploy({ tenant: "a", service: "secret", code: SVC });
    const theirs = await rejection(k.call("b", "secret"));
    const missing = await rejection(k.call("b", "nothing"));
    assert.equal(theirs.reason, missing.reason);
    assert.equal(theirs.code, "not_found");
    assert.equal(theirs.message.replace("secret", "X"), missing.message.replace("nothing", "X"));
    assert.throws(
      () => k.status("b", "secret"),
      (e: { reason?: string }) => e.reason === "SOLO_ERR_SERVICE_NOT_FOUND",
    );
    await k.tenants.create("b");
    assert.deepEqual(k.list("b"), []);
  });
});
