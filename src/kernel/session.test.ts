import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { rejection } from "../../test/support/helpers.ts";
import { testKernels } from "../../test/support/kernels.ts";

const kernels = testKernels("session");
const COUNTER = "export default { init() { return 0 }, handleCall(r, n) { return { reply: n + 1, state: n + 1 } } };";
const VIA = { requester: { address: "10.0.0.7" }, correlationId: "req-1" };

describe("a session's token checks", () => {
  it("verifies a session without via at every operation: a revocation stops its next one", async () => {
    const k = await kernels.start(kernels.freshDir());
    await k.deploy({ tenant: "acme", service: "counter", code: COUNTER });
    const { token, id } = await k.tokens.grant({ tenant: "acme", permissions: ["call:*", "services:read"] });
    const session = k.as(token);
    assert.equal(await session.call("acme", "counter"), 1);
    await k.tokens.revoke(id);
    assert.equal((await rejection(session.call("acme", "counter"))).reason, "SOLO_ERR_TOKEN_REVOKED");
    assert.equal((await rejection(session.list("acme"))).reason, "SOLO_ERR_TOKEN_REVOKED");
    assert.deepEqual(session.reach(), { valid: false, tenant: null });
  });

  it("verifies a request's session (made with via) once: its operations share that verification, and the next request's session sees the revocation", async () => {
    const k = await kernels.start(kernels.freshDir());
    await k.deploy({ tenant: "acme", service: "counter", code: COUNTER });
    const { token, id } = await k.tokens.grant({ tenant: "acme", permissions: ["call:*", "services:read"] });
    const request = k.as(token, VIA);
    assert.deepEqual(request.reach(), { valid: true, tenant: "acme" });
    await k.tokens.revoke(id);
    // The request admitted on that verification finishes on it, every kind of operation alike.
    assert.equal(await request.call("acme", "counter"), 1);
    assert.equal((await request.list("acme")).length, 1);
    assert.equal((await request.whoami()).id, id);
    assert.deepEqual(request.reach(), { valid: true, tenant: "acme" });
    // Its permissions are still checked at each operation, and a denial is still audited.
    const denied = await rejection(request.kill("acme", "counter"));
    assert.equal(denied.reason, "SOLO_ERR_PERMISSION_DENIED");
    const records = (await k.events({ types: ["capability_denied"] })).events;
    assert.equal(records.at(-1)?.correlationId, "req-1");
    // The next request's session verifies again.
    assert.equal((await rejection(k.as(token, VIA).call("acme", "counter"))).reason, "SOLO_ERR_TOKEN_REVOKED");
  });

  it("does not remember a token that failed: each operation of a request's session checks it again and fails on its own", async () => {
    const k = await kernels.start(kernels.freshDir());
    await k.tenants.create("acme");
    const request = k.as("solo_not-a-token", VIA);
    assert.deepEqual(request.reach(), { valid: false, tenant: null });
    assert.equal((await rejection(request.list("acme"))).reason, "SOLO_ERR_TOKEN_MALFORMED");
    assert.equal((await rejection(request.call("acme", "counter"))).reason, "SOLO_ERR_TOKEN_MALFORMED");
    await k.close();
    assert.equal((await rejection(request.list("acme"))).reason, "SOLO_ERR_KERNEL_CLOSED");
    assert.deepEqual(request.reach(), { valid: false, tenant: null });
  });
});
