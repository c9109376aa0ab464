import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import type { ConnectError } from "@connectrpc/connect";
import { ErrorDetailSchema } from "../gen/solo/v1/solo_pb.js";
import { type Kernel, openKernel } from "../index.ts";
import { gatewayCore, inProcessClients } from "./local.ts";
import { DenialThrottle } from "./throttle.ts";

const MALLORY = { address: "10.0.0.66", certificate: "6d".repeat(32), name: "mallory" };

describe("DenialThrottle", () => {
  it("leaves a requester never denied alone, and charges one denied lately per request", () => {
    const t = new DenialThrottle(1, 3);
    const first = t.admit(MALLORY, {});
    assert.deepEqual([first?.charged, first?.denied], [false, false]);
    t.denied(MALLORY, first);
    // Watched now: each request takes a token as it comes in (2 left), and gives it back if not denied.
    const a = t.admit(MALLORY, {});
    const b = t.admit(MALLORY, {});
    assert.deepEqual([a?.charged, b?.charged], [true, true]);
    assert.equal(t.admit(MALLORY, {}), undefined, "no token left: held");
    t.settle(a as NonNullable<typeof a>);
    const c = t.admit(MALLORY, {});
    assert.equal(c?.charged, true, "the refunded token admits one more");
    // A denial of a charged request is not charged twice.
    t.denied(MALLORY, c);
    t.denied(MALLORY, c);
    t.settle(c as NonNullable<typeof c>);
    assert.equal(t.admit(MALLORY, {}), undefined);
  });

  it("knows a requester by its certificate, wherever it connects from", () => {
    const t = new DenialThrottle(1, 1);
    t.denied({ ...MALLORY, address: "10.0.0.1" });
    assert.equal(t.admit({ ...MALLORY, address: "10.0.0.2" }, {}), undefined);
    assert.notEqual(t.admit({ ...MALLORY, certificate: "00".repeat(32) }, {}), undefined);
  });

  it("counts denials past empty as owed, so a request's own refund cannot outweigh the denials inside it", () => {
    const t = new DenialThrottle(1, 2);
    for (let i = 0; i < 50; i++) t.denied(MALLORY);
    for (let i = 0; i < 5; i++) {
      const ticket = t.admit(MALLORY, {});
      if (ticket) t.settle(ticket);
    }
    assert.equal(t.exhausted(MALLORY), true);
  });
});

describe("the throttle inside an MCP session's calls", () => {
  let dir: string;
  let kernel: Kernel;
  before(async () => {
    dir = mkdtempSync(join(tmpdir(), "solo-throttle-"));
    kernel = await openKernel({ dataDir: dir, schedulers: 1 });
    await kernel.tenants.create("acme");
    await kernel.tenants.create("globex");
  });
  after(async () => {
    await kernel.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it("refuses in-process calls of a requester with no token left before they reach the kernel", async () => {
    const throttle = new DenialThrottle(1, 3);
    const core = gatewayCore(kernel, { throttle });
    const { token } = await kernel.tokens.grant({ tenant: "globex", permissions: ["services:read"] });
    const clients = inProcessClients(core, token, MALLORY);
    const reasons = new Map<string, number>();
    for (let i = 0; i < 50; i++) {
      const err = await clients.kernel.list({ tenant: "acme" }).then(
        () => assert.fail("listed another tenant"),
        (e: unknown) => e as ConnectError,
      );
      const reason = err.findDetails(ErrorDetailSchema)[0]?.reason ?? "";
      reasons.set(reason, (reasons.get(reason) ?? 0) + 1);
    }
    // Its burst of 3 reaches the kernel (one more a second, should the machine be slow); the rest do not.
    const denied = reasons.get("SOLO_ERR_PERMISSION_DENIED") ?? 0;
    assert.ok(denied >= 3 && denied <= 5, JSON.stringify([...reasons]));
    assert.equal(reasons.get("SOLO_ERR_REQUESTER_THROTTLED"), 50 - denied);
  });
});
