import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { ConnectError, createClient } from "@connectrpc/connect";
import { ErrorDetailSchema, KernelService } from "../gen/solo/v1/solo_pb.js";
import { type Kernel, openKernel } from "../index.ts";
import { errorData } from "../lib/errors/data.ts";
import { SoloError } from "../lib/errors/errors.ts";
import { createMcpServer } from "../mcp/server.ts";
import { type CertAndKey, createCa, issueCert } from "../tls/certs.ts";
import { gatewayTransport } from "./client.ts";
import { gatewayCore, inProcessClients } from "./local.ts";
import { type Gateway, startGateway } from "./server.ts";

/**
 * One failure, a deploy into a tenant that does not exist, read through each of Solo's interfaces:
 * its hint names the operation that fixes it as that interface's reader knows it.
 */

const CODE = "export default { init() { return 0 }, handleCall(r, s) { return { reply: s, state: s } } };";

let dir: string;
let kernel: Kernel;
let gateway: Gateway;
let ca: CertAndKey;
let client: CertAndKey;
let token: string;

before(async () => {
  dir = mkdtempSync(join(tmpdir(), "solo-hints-"));
  kernel = await openKernel({ dataDir: dir, schedulers: 1 });
  ca = await createCa({ commonName: "solo test ca" });
  const server = await issueCert(ca, { commonName: "localhost", dnsNames: ["localhost"], ips: ["127.0.0.1"], usage: "server" });
  client = await issueCert(ca, { commonName: "solo-admin", usage: "client" });
  gateway = await startGateway(kernel, { port: 0, tls: { cert: server.certPem, key: server.keyPem, ca: ca.certPem } });
  token = (await kernel.tokens.grant({ tenant: null, permissions: ["*"], label: "hints test" })).token;
});

after(async () => {
  await gateway?.close(1000);
  await kernel?.close();
  rmSync(dir, { recursive: true, force: true });
});

async function failure(p: Promise<unknown>): Promise<unknown> {
  try {
    await p;
  } catch (err) {
    return err;
  }
  assert.fail("expected the deploy to fail");
}

function hintOverTheWire(headers: Record<string, string>): Promise<string> {
  const kernelClient = createClient(
    KernelService,
    gatewayTransport({ url: gateway.url, ca: ca.certPem, cert: client.certPem, key: client.keyPem, token, protocol: "connect", headers }),
  );
  return failure(kernelClient.deploy({ ref: { tenant: "nowhere", service: "svc" }, code: CODE })).then((err) => {
    assert.ok(err instanceof ConnectError);
    return err.findDetails(ErrorDetailSchema)[0]?.hint ?? "";
  });
}

describe("a hint", () => {
  it("names the embedding API's call to an embedder", async () => {
    // (The embedder's own kernel.deploy creates the tenant; a token's session does not.)
    const err = await failure(kernel.as(token).deploy({ tenant: "nowhere", service: "svc", code: CODE }));
    assert.ok(err instanceof SoloError);
    assert.equal(err.reason, "SOLO_ERR_TENANT_NOT_FOUND");
    assert.equal(err.details.hint, "tenants.create(name) makes one");
  });

  it("names the RPC to a network client, and a CLI command to the CLI", async () => {
    assert.equal(await hintOverTheWire({}), "TenantService.Create makes one");
    assert.equal(await hintOverTheWire({ "solo-surface": "cli" }), "solo tenant create nowhere makes one");
    // A surface Solo does not have is the network API's.
    assert.equal(await hintOverTheWire({ "solo-surface": "gopher" }), "TenantService.Create makes one");
  });

  it("names the tool to a model, both in the tool's result and through the in-process clients", async () => {
    const clients = inProcessClients(gatewayCore(kernel), token);
    const err = await failure(clients.kernel.deploy({ ref: { tenant: "nowhere", service: "svc" }, code: CODE }));
    assert.equal(errorData(err, "mcp").hint, "the tenant_create tool makes one");

    const server = createMcpServer(clients, "0.0.0");
    const { Client } = await import("@modelcontextprotocol/sdk/client/index.js");
    const { InMemoryTransport } = await import("@modelcontextprotocol/sdk/inMemory.js");
    const [a, b] = InMemoryTransport.createLinkedPair();
    const mcp = new Client({ name: "hints-test", version: "0" });
    await Promise.all([server.connect(a), mcp.connect(b)]);
    try {
      const r = await mcp.callTool({ name: "deploy", arguments: { tenant: "nowhere", service: "svc", code: CODE } });
      assert.equal(r.isError, true);
      const text = (r.content as Array<{ type: string; text: string }>).map((c) => c.text).join("\n");
      assert.match(text, /^hint: the tenant_create tool makes one$/m);
      assert.doesNotMatch(text, /tenants\.create|TenantService/);
    } finally {
      await mcp.close();
      await server.close();
    }
  });
});
