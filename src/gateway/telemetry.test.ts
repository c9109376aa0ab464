import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { connect as http2Connect } from "node:http2";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Writable } from "node:stream";
import { after, before, describe, it } from "node:test";
import { ConnectError, createClient } from "@connectrpc/connect";
import pino from "pino";
import { KernelService } from "../gen/solo/v1/solo_pb.js";
import { type Kernel, openKernel } from "../index.ts";
import { type CertAndKey, createCa, issueCert } from "../tls/certs.ts";
import { gatewayTransport } from "./client.ts";
import { type Gateway, startGateway } from "./server.ts";
import { createTelemetry } from "./telemetry.ts";

let dir: string;
let kernel: Kernel;
let gateway: Gateway;
let ca: CertAndKey;
let client: CertAndKey;
let token: string;
const lines: Array<Record<string, unknown>> = [];

function get(
  path: string,
  headers: Record<string, string> = {},
): Promise<{ status: number; headers: Record<string, unknown>; body: string }> {
  return new Promise((resolve, reject) => {
    const session = http2Connect(gateway.url, { ca: ca.certPem, cert: client.certPem, key: client.keyPem });
    session.on("error", reject);
    const req = session.request({ ":method": "GET", ":path": path, ...headers });
    let body = "";
    let head: Record<string, unknown> = {};
    req.on("response", (h) => {
      head = h;
    });
    req.setEncoding("utf8");
    req.on("data", (c: string) => {
      body += c;
    });
    req.on("end", () => {
      session.close();
      resolve({ status: Number(head[":status"]), headers: head, body });
    });
    req.on("error", reject);
    req.end();
  });
}

before(async () => {
  dir = mkdtempSync(join(tmpdir(), "solo-telemetry-"));
  kernel = await openKernel({ dataDir: dir, schedulers: 1 });
  ca = await createCa({ commonName: "telemetry test" });
  const server = await issueCert(ca, { commonName: "localhost", dnsNames: ["localhost"], ips: ["127.0.0.1"], usage: "server" });
  client = await issueCert(ca, { commonName: "c", usage: "client" });
  const sink = new Writable({
    write(chunk: Buffer, _enc, done) {
      for (const l of chunk.toString().split("\n")) if (l.trim() !== "") lines.push(JSON.parse(l) as Record<string, unknown>);
      done();
    },
  });
  gateway = await startGateway(kernel, {
    port: 0,
    tls: { cert: server.certPem, key: server.keyPem, ca: ca.certPem },
    telemetry: createTelemetry(pino({ level: "info" }, sink)),
  });
  token = (await kernel.tokens.grant({ tenant: null, permissions: ["*"] })).token;
  await kernel.tenants.create("acme");
});

after(async () => {
  await gateway?.close(1000);
  await kernel?.close();
  rmSync(dir, { recursive: true, force: true });
});

describe("telemetry", () => {
  it("counts and times calls by method and code, and reads the kernel's state at each scrape", async () => {
    const c = createClient(
      KernelService,
      gatewayTransport({
        url: gateway.url,
        ca: ca.certPem,
        cert: client.certPem,
        key: client.keyPem,
        token,
        protocol: "connect",
        headers: { "x-request-id": "test-request-1" },
      }),
    );
    await c.deploy({
      ref: { tenant: "acme", service: "counter" },
      code: "export default { handleCall(r, s) { return { reply: 1, state: s } } }",
    });
    await c.call({ ref: { tenant: "acme", service: "counter" } });
    await c.call({ ref: { tenant: "acme", service: "ghost" } }).catch((e: unknown) => assert.ok(e instanceof ConnectError));
    // The request id ties the call's events together.
    const deployed = (await kernel.events({ tenant: "acme", types: ["service_deployed"] })).events[0];
    assert.equal(deployed?.correlationId, "test-request-1");
    const created = (await kernel.events({ tenant: "acme", types: ["tenant_created"] })).events[0];
    assert.equal(created?.correlationId, null, "an event the embedder caused has none");
    const m = await get("/metrics", { authorization: `Bearer ${token}` });
    assert.equal(m.status, 200);
    assert.match(String(m.headers["content-type"]), /text\/plain/);
    assert.match(m.body, /solo_rpc_calls_total\{service="solo\.v1\.KernelService",method="Call",code="ok"\} 1/);
    assert.match(m.body, /solo_rpc_calls_total\{service="solo\.v1\.KernelService",method="Call",code="not_found"\} 1/);
    assert.match(m.body, /solo_rpc_duration_seconds_count\{service="solo\.v1\.KernelService",method="Deploy"\} 1/);
    assert.match(m.body, /solo_services\{tenant="acme",state="running"\} 1/);
    assert.match(m.body, /solo_tenant_memory_bytes\{tenant="acme"\} \d+/);
    assert.match(m.body, /solo_tenant_memory_limit_bytes\{tenant="acme"\} 67108864/);
    assert.match(m.body, /solo_memory_budget_bytes\{kind="budget"\} \d+/);
    assert.match(m.body, /solo_scheduler_step_seconds\{scheduler="0"\} \d/);
    assert.match(m.body, /solo_event_log_commit_seconds_count [1-9]\d*/);
    assert.match(m.body, /solo_event_log_queue_depth \d+/);
    assert.match(m.body, /solo_breakers\{state="closed"\} \d+/);
    assert.match(m.body, /solo_gateway_shed 0/);
    assert.match(m.body, /solo_token_verifications [1-9]\d*/);
    // The call to a missing service was no denial; none was seen yet.
    assert.match(m.body, /solo_capability_denials\{kind="seen"\} 0\n/);
    assert.match(m.body, /solo_process_resident_memory_bytes \d+/);
  });

  it("logs each call as one structured line with its request id, and echoes the id", async () => {
    const calls = lines.filter((l) => l.msg === "call" || l.msg === "call failed");
    const failed = calls.find((l) => l.code === "not_found");
    assert.ok(failed, JSON.stringify(calls));
    assert.equal(failed.reqId, "test-request-1");
    assert.equal(failed.rpc, "solo.v1.KernelService/Call");
    assert.equal(typeof failed.ms, "number");
    assert.equal(failed.level, 40, "a failed call is a warning");
    assert.ok(calls.some((l) => l.code === "ok" && l.rpc === "solo.v1.KernelService/Deploy"));
    // A hostile request id is replaced by a fresh one, never logged as given.
    const res = await new Promise<Record<string, unknown>>((resolve, reject) => {
      const session = http2Connect(gateway.url, { ca: ca.certPem, cert: client.certPem, key: client.keyPem });
      const req = session.request({
        ":method": "POST",
        ":path": "/solo.v1.KernelService/Health",
        "content-type": "application/json",
        "x-request-id": "bad id\twith {json}",
      });
      req.on("response", (h) => {
        session.close();
        resolve(h);
      });
      req.on("error", reject);
      req.end("{}");
    });
    assert.match(String(res["x-request-id"]), /^[0-9a-f-]{36}$/);
  });

  describe("GET /metrics", () => {
    it("answers a client certificate without a token with 401 and no series, and audits it against the requester", async () => {
      const mark = (await kernel.events({ order: "desc", limit: 1 })).events[0]?.id ?? 0;
      const m = await get("/metrics");
      assert.equal(m.status, 401);
      assert.equal(m.headers["www-authenticate"], 'Bearer realm="solo"');
      assert.match(m.body, /no capability token was given \(SOLO_ERR_TOKEN_MISSING\)/);
      assert.doesNotMatch(m.body, /solo_/);
      const [denial] = (await kernel.events({ afterId: mark, types: ["capability_denied"] })).events;
      assert.equal(denial?.tenant, null);
      const payload = denial?.payload as { operation: string; requester: { address: string; certificate: string; name: string } };
      assert.equal(payload.operation, "metrics");
      assert.deepEqual(payload.requester.address, "127.0.0.1");
      assert.equal(payload.requester.name, "c");
      assert.match(payload.requester.certificate, /^[0-9a-f]{64}$/);
    });

    it("shows a tenant's token only its own tenant's series", async () => {
      await kernel.tenants.create("globex");
      await kernel.deploy({
        tenant: "globex",
        service: "g",
        code: "export default { handleCall(r, s) { return { reply: 1, state: s } } }",
      });
      const acme = (await kernel.tokens.grant({ tenant: "acme", permissions: ["services:read"] })).token;
      const m = await get("/metrics", { authorization: `Bearer ${acme}` });
      assert.equal(m.status, 200);
      assert.match(m.body, /solo_services\{tenant="acme",state="running"\} 1/);
      assert.match(m.body, /# TYPE solo_tenant_memory_bytes gauge/);
      assert.doesNotMatch(m.body, /globex/);
      // Kernel-wide series (every tenant's calls, the process) are the admin's.
      assert.doesNotMatch(m.body, /solo_rpc_calls_total|solo_process_|solo_gateway_shed/);
      for (const line of m.body.trim().split("\n")) if (!line.startsWith("#")) assert.match(line, /tenant="acme"/);
      const all = await get("/metrics", { authorization: `Bearer ${token}` });
      assert.match(all.body, /tenant="globex"/);
      // The refusal before was seen, and written as one record.
      assert.match(all.body, /solo_capability_denials\{kind="seen"\} [1-9]\d*\n/);
      assert.match(all.body, /solo_capability_denials\{kind="written"\} [1-9]\d*\n/);
    });

    it("refuses a token without services:read, naming what it lacks", async () => {
      const caller = (await kernel.tokens.grant({ tenant: "acme", permissions: ["call:*"] })).token;
      const m = await get("/metrics", { authorization: `Bearer ${caller}` });
      assert.equal(m.status, 403);
      assert.match(m.body, /lacks the permission services:read/);
    });
  });
});
