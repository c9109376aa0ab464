import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, it } from "node:test";
import { Code, ConnectError, createClient } from "@connectrpc/connect";
import { rejection } from "../../test/support/helpers.ts";
import { ErrorDetailSchema, KernelService } from "../gen/solo/v1/solo_pb.js";
import { openKernel } from "../index.ts";
import { createCa, issueCert } from "../tls/certs.ts";
import { gatewayTransport } from "./client.ts";
import { startGateway } from "./server.ts";
import { Shedder } from "./shedder.ts";

const settled = (): Promise<void> => new Promise((r) => setImmediate(r));

describe("the shedder", () => {
  it("admits up to a lane's limit at once, queues up to its queue limit, and refuses beyond it at once", async () => {
    const s = new Shedder({ maxInFlight: 100, maxInFlightPerLane: 2, maxQueuedPerLane: 1 });
    await s.admit("a");
    await s.admit("a");
    let third = false;
    const queued = s.admit("a").then(() => {
      third = true;
    });
    const refused = await rejection(s.admit("a"));
    assert.equal(refused.reason, "SOLO_ERR_OVERLOADED");
    assert.equal(refused.code, "resource_exhausted");
    assert.equal(refused.details.retryAfterMs, 100);
    assert.equal(refused.details.tenant, "a");
    assert.deepEqual({ ...s.stats }, { running: 2, queued: 1, admitted: 2, shed: 1 });
    await s.admit("b"); // another lane is not held up
    await settled();
    assert.equal(third, false);
    s.release("a");
    await queued;
    assert.equal(third, true);
    assert.deepEqual({ ...s.stats }, { running: 3, queued: 0, admitted: 4, shed: 1 });
  });

  it("names no tenant for the lanes that are no one tenant's: unscoped tokens and unauthenticated callers", async () => {
    const s = new Shedder({ maxInFlight: 100, maxInFlightPerLane: 1, maxQueuedPerLane: 0 });
    for (const [lane, who] of [
      ["*", "unscoped tokens"],
      ["", "unauthenticated callers"],
    ] as const) {
      await s.admit(lane);
      const refused = await rejection(s.admit(lane));
      assert.equal(refused.details.tenant, null);
      assert.match(refused.message, new RegExp(`at capacity for ${who}:`));
    }
  });

  it("gives freed slots to waiting lanes in turn, so a flooding lane never takes another lane's turn", async () => {
    const s = new Shedder({ maxInFlight: 2, maxInFlightPerLane: 2, maxQueuedPerLane: 100 });
    await s.admit("flood");
    await s.admit("flood");
    const order: string[] = [];
    const waits = [
      ...Array.from({ length: 5 }, (_, i) => s.admit("flood").then(() => order.push(`flood${i}`))),
      s.admit("quiet").then(() => order.push("quiet")),
    ];
    s.release("flood");
    await settled();
    s.release("flood");
    await settled();
    assert.deepEqual(order, ["flood0", "quiet"], "the quiet lane got the second free slot");
    for (let i = 0; i < 6; i++) {
      s.release(order[order.length - 1]?.startsWith("flood") ? "flood" : "quiet");
      await settled();
    }
    await Promise.all(waits);
    assert.equal(order.length, 6);
  });

  it("drops a waiting call whose caller gave up, without leaking its place", async () => {
    const s = new Shedder({ maxInFlight: 1, maxInFlightPerLane: 1, maxQueuedPerLane: 1 });
    await s.admit("a");
    const abort = new AbortController();
    const waiting = s.admit("a", abort.signal);
    abort.abort();
    assert.equal((await rejection(waiting)).reason, "SOLO_ERR_CALL_CANCELED");
    assert.equal(s.stats.queued, 0);
    const next = s.admit("a"); // the queue has room again
    s.release("a");
    await next;
    assert.equal(s.stats.running, 1);
  });
});

describe("admission at the gateway", () => {
  it("keeps a quiet tenant's calls succeeding while another tenant floods past its lane", async () => {
    const dir = mkdtempSync(join(tmpdir(), "solo-shed-"));
    const kernel = await openKernel({ dataDir: dir, schedulers: 1 });
    const ca = await createCa({ commonName: "shed test" });
    const server = await issueCert(ca, { commonName: "localhost", dnsNames: ["localhost"], ips: ["127.0.0.1"], usage: "server" });
    const client = await issueCert(ca, { commonName: "c", usage: "client" });
    const gateway = await startGateway(kernel, {
      port: 0,
      tls: { cert: server.certPem, key: server.keyPem, ca: ca.certPem },
      admission: { maxInFlight: 16, maxInFlightPerLane: 4, maxQueuedPerLane: 4 },
    });
    try {
      // A handler that takes a little CPU, so the flood's calls overlap.
      const code = `export default { handleCall(r, s) { let x = 0; for (let i = 0; i < 200000; i++) x += i; return { reply: x > 0, state: s } } }`;
      for (const t of ["noisy", "quiet"]) {
        await kernel.tenants.create(t);
        await kernel.deploy({ tenant: t, service: "work", code });
      }
      const clientFor = async (tenant: string) => {
        const { token } = await kernel.tokens.grant({ tenant, permissions: ["call:*"] });
        const transport = gatewayTransport({
          url: gateway.url,
          ca: ca.certPem,
          cert: client.certPem,
          key: client.keyPem,
          token,
          protocol: "connect",
        });
        return createClient(KernelService, transport);
      };
      const noisy = await clientFor("noisy");
      const quiet = await clientFor("quiet");
      const flood = Array.from({ length: 200 }, () =>
        noisy.call({ ref: { tenant: "noisy", service: "work" } }).then(
          () => "ok",
          (err: unknown) => (err instanceof ConnectError ? (err.findDetails(ErrorDetailSchema)[0]?.reason ?? Code[err.code]) : "other"),
        ),
      );
      let quietOk = 0;
      for (let i = 0; i < 50; i++) {
        await quiet.call({ ref: { tenant: "quiet", service: "work" } });
        quietOk++;
      }
      const outcomes = await Promise.all(flood);
      assert.equal(quietOk, 50, "every quiet call succeeded");
      assert.ok(outcomes.includes("SOLO_ERR_OVERLOADED"), "the flood was shed");
      assert.ok(outcomes.includes("ok"), "the flood's admitted calls were served");
      assert.deepEqual([...new Set(outcomes)].sort(), ["SOLO_ERR_OVERLOADED", "ok"], "nothing failed but by shedding");
      assert.ok(gateway.admission.shed >= outcomes.filter((o) => o !== "ok").length);
    } finally {
      await gateway.close(1000);
      await kernel.close();
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe("streams at the gateway", () => {
  it("caps a tenant's open event streams, refusing the one over at once, and frees the slot when a stream ends", async () => {
    const dir = mkdtempSync(join(tmpdir(), "solo-streams-"));
    const kernel = await openKernel({ dataDir: dir, schedulers: 1 });
    const ca = await createCa({ commonName: "streams test" });
    const server = await issueCert(ca, { commonName: "localhost", dnsNames: ["localhost"], ips: ["127.0.0.1"], usage: "server" });
    const client = await issueCert(ca, { commonName: "c", usage: "client" });
    const gateway = await startGateway(kernel, {
      port: 0,
      tls: { cert: server.certPem, key: server.keyPem, ca: ca.certPem },
      streams: { maxInFlight: 100, maxInFlightPerLane: 2, maxQueuedPerLane: 0 },
    });
    try {
      await kernel.tenants.create("acme");
      const { token } = await kernel.tokens.grant({ tenant: "acme", permissions: ["events:read"] });
      const c = createClient(
        KernelService,
        gatewayTransport({ url: gateway.url, ca: ca.certPem, cert: client.certPem, key: client.keyPem, token, protocol: "connect" }),
      );
      // Each stream replays from event 1, so its first message proves it is open.
      const open = async (signal: AbortSignal): Promise<string> => {
        const it = c.followEvents({ fromId: 1n }, { signal })[Symbol.asyncIterator]();
        try {
          await it.next();
          return "open";
        } catch (err) {
          return err instanceof ConnectError ? (err.findDetails(ErrorDetailSchema)[0]?.reason ?? Code[err.code]) : "other";
        }
      };
      const a = new AbortController();
      const b = new AbortController();
      assert.equal(await open(a.signal), "open");
      assert.equal(await open(b.signal), "open");
      const third = new AbortController();
      assert.equal(await open(third.signal), "SOLO_ERR_OVERLOADED");
      a.abort();
      // The slot comes back once the server sees the stream end.
      let again = "";
      for (let i = 0; i < 50 && again !== "open"; i++) {
        const next = new AbortController();
        again = await open(next.signal);
        if (again !== "open") await new Promise((r) => setTimeout(r, 20));
        else next.abort();
      }
      assert.equal(again, "open");
      b.abort();
      third.abort();
    } finally {
      await gateway.close(1000);
      await kernel.close();
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
