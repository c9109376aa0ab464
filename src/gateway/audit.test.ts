import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { ConnectError, createClient } from "@connectrpc/connect";
import { KernelService, TokenService } from "../gen/solo/v1/solo_pb.js";
import { type Kernel, openKernel, type SoloEvent } from "../index.ts";
import { type CertAndKey, createCa, issueCert } from "../tls/certs.ts";
import { gatewayTransport } from "./client.ts";
import { type Gateway, startGateway } from "./server.ts";

let dir: string;
let kernel: Kernel;
let gateway: Gateway;
let ca: CertAndKey;
let machineB: CertAndKey;

// Every bad request reaches the kernel: what the ledger records (throttling has its own test).
const LEDGER_ONLY = { denialBurst: 1_000_000, denialsPerSecond: 1_000_000 };
const COUNTER = "export default { init() { return 0 }, handleCall(r, n) { return { reply: n, state: n + 1 } } }";

function clients(token: string | undefined, requestId?: string) {
  const transport = gatewayTransport({
    url: gateway.url,
    ca: ca.certPem,
    cert: machineB.certPem,
    key: machineB.keyPem,
    ...(token !== undefined ? { token } : {}),
    protocol: "connect",
    ...(requestId ? { headers: { "x-request-id": requestId } } : {}),
  });
  return { kernel: createClient(KernelService, transport), tokens: createClient(TokenService, transport) };
}

async function head(): Promise<number> {
  return (await kernel.events({ order: "desc", limit: 1 })).events[0]?.id ?? 0;
}

async function denialsSince(mark: number): Promise<SoloEvent[]> {
  return (await kernel.events({ afterId: mark, types: ["capability_denied"], limit: 1000 })).events;
}

before(async () => {
  dir = mkdtempSync(join(tmpdir(), "solo-audit-"));
  kernel = await openKernel({ dataDir: dir, schedulers: 1 });
  ca = await createCa({ commonName: "solo audit test ca" });
  const server = await issueCert(ca, { commonName: "localhost", dnsNames: ["localhost"], ips: ["127.0.0.1"], usage: "server" });
  machineB = await issueCert(ca, { commonName: "machine-b", usage: "client" });
  gateway = await startGateway(kernel, {
    port: 0,
    tls: { cert: server.certPem, key: server.keyPem, ca: ca.certPem },
    connections: LEDGER_ONLY,
  });
  await kernel.tenants.create("acme");
  await kernel.tenants.create("globex");
  await kernel.deploy({ tenant: "acme", service: "counter", code: COUNTER });
});

after(async () => {
  await gateway?.close(1000);
  await kernel?.close();
  rmSync(dir, { recursive: true, force: true });
});

describe("audit of denials at the gateway", () => {
  it("records a flood of calls without a token as a handful of records against the requester, none in the tenant named", async () => {
    const mark = await head();
    const anonymous = clients(undefined);
    const flood = 600;
    let refused = 0;
    for (let i = 0; i < flood; i += 50) {
      const batch = Array.from({ length: 50 }, () =>
        anonymous.kernel.call({ ref: { tenant: "acme", service: "counter" } }).catch((err: unknown) => {
          assert.ok(err instanceof ConnectError);
          refused++;
        }),
      );
      await Promise.all(batch);
    }
    assert.equal(refused, flood);
    // The first at once; the rest counted (a window ends every 10 s, so a slow machine may have
    // written a count already).
    const denials = await denialsSince(mark);
    assert.ok(denials.length >= 1 && denials.length <= 3, JSON.stringify(denials));
    const first = denials[0] as SoloEvent;
    assert.equal(first.tenant, null, "filed in the kernel's chain, not acme's");
    const { requester } = first.payload as { requester: { address: string; certificate: string; name: string } };
    assert.deepEqual([requester.address, requester.name], ["127.0.0.1", "machine-b"]);
    assert.match(requester.certificate, /^[0-9a-f]{64}$/);
    assert.equal((await kernel.events({ afterId: mark, tenant: "acme", limit: 1000 })).events.length, 0);
    // At close, what was counted is written with its count: every denial is accounted for.
    const { count } = await closeAndCount(mark);
    assert.equal(count, flood);
  });

  it("records a denied stream with the stream's request id as its correlation id", async () => {
    const mark = await head();
    const stream = clients(undefined, "follow-req-7").kernel.followEvents({ filter: { tenant: "acme" } });
    const err = await (async () => {
      try {
        for await (const _ of stream) assert.fail("a stream without a token yields nothing");
      } catch (e) {
        return e;
      }
      return undefined;
    })();
    assert.ok(err instanceof ConnectError, String(err));
    const denial = (await denialsSince(mark))[0] as SoloEvent;
    assert.equal(denial.correlationId, "follow-req-7");
    assert.equal((denial.payload as { operation: string }).operation, "subscribe");
  });

  it("records a revoke outside the token's reach, the same whether the token exists or not", async () => {
    const acme = await kernel.tokens.grant({ tenant: "acme", permissions: ["call:*"] });
    const victim = await kernel.tokens.grant({ tenant: "globex", permissions: ["*"] });
    const mark = await head();
    const c = clients(acme.token, "revoke-req-1");
    for (const id of [victim.id, "tok_doesnotexist"]) {
      const err = await c.tokens.revoke({ id }).then(
        () => assert.fail("revoked"),
        (e: unknown) => e as ConnectError,
      );
      assert.match(err.message, /within this principal's reach/);
    }
    const denials = await denialsSince(mark);
    assert.deepEqual(
      denials.map((e) => [e.tenant, e.subject, (e.payload as { reason: string }).reason, (e.payload as { tokenId: string }).tokenId]),
      [
        ["acme", victim.id, "SOLO_ERR_TOKEN_NOT_FOUND", acme.id],
        ["acme", "tok_doesnotexist", "SOLO_ERR_TOKEN_NOT_FOUND", acme.id],
      ],
    );
    assert.equal(denials[0]?.correlationId, "revoke-req-1");
    assert.equal((await kernel.tokens.list()).find((t) => t.id === victim.id)?.state, "active");
  });
});

// Closes the gateway and kernel, reopens the kernel and reads the counted record back.
async function closeAndCount(mark: number): Promise<{ count: number }> {
  await gateway.close(1000);
  await kernel.close();
  kernel = await openKernel({ dataDir: dir, schedulers: 1 });
  const denials = await denialsSince(mark);
  const counted = denials.reduce((n, e) => n + ((e.payload as { count?: number }).count ?? 1), 0);
  const server = await issueCert(ca, { commonName: "localhost", dnsNames: ["localhost"], ips: ["127.0.0.1"], usage: "server" });
  gateway = await startGateway(kernel, {
    port: 0,
    tls: { cert: server.certPem, key: server.keyPem, ca: ca.certPem },
    connections: LEDGER_ONLY,
  });
  return { count: counted };
}
