import assert from "node:assert/strict";
import { execFile, execFileSync } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { connect as http2Connect } from "node:http2";
import { request as httpsRequest } from "node:https";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { promisify } from "node:util";
import { Code, ConnectError, createClient } from "@connectrpc/connect";
import { ErrorDetailSchema, KernelService, TokenService } from "../gen/solo/v1/solo_pb.js";
import { type Kernel, openKernel } from "../index.ts";
import { type CertAndKey, createCa, issueCert } from "../tls/certs.ts";
import { gatewayTransport } from "./client.ts";
import { type Gateway, startGateway } from "./server.ts";

const COUNTER = `export default {
  init() { return 0 },
  handleCall(req, n) { return { reply: req && req.add ? n + req.add : n + 1, state: n + 1 } },
  handleCast(m, n) { return { state: n + 1 } },
};`;

let dir: string;
let kernel: Kernel;
let gateway: Gateway;
let ca: CertAndKey;
let server: CertAndKey;
let client: CertAndKey;
let adminToken: string;

function transports(token: string | undefined, cert: CertAndKey = client) {
  const o = { url: gateway.url, ca: ca.certPem, cert: cert.certPem, key: cert.keyPem, ...(token !== undefined ? { token } : {}) };
  return {
    connect: gatewayTransport({ ...o, protocol: "connect" }),
    connectBinary: gatewayTransport({ ...o, protocol: "connect-binary" }),
    grpc: gatewayTransport({ ...o, protocol: "grpc" }),
    grpcWeb: gatewayTransport({ ...o, protocol: "grpc-web" }),
  };
}

async function connectError(p: Promise<unknown>): Promise<ConnectError> {
  try {
    await p;
  } catch (err) {
    assert.ok(err instanceof ConnectError, `expected a ConnectError, got ${String(err)}`);
    return err;
  }
  assert.fail("expected the call to fail");
}

const execFileAsync = promisify(execFile);

// curl is on every machine this project's CI runs on (.ci/run installs it); elsewhere, say why not.
function curlSkip(): string | false {
  try {
    const v = execFileSync("curl", ["--version"], { encoding: "utf8" });
    return v.includes("nghttp2") ? false : "this curl has no HTTP/2 (nghttp2)";
  } catch {
    return process.env.CI === "true" ? false : "curl is not installed";
  }
}

function reasonOf(err: ConnectError): string {
  const [detail] = err.findDetails(ErrorDetailSchema);
  return detail?.reason ?? "";
}

/** One Connect JSON call with node:http2, as `curl --http2 --cert ... -H 'content-type: application/json'` makes it. */
function postJson(path: string, body: string, headers: Record<string, string> = {}): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const session = http2Connect(gateway.url, { ca: ca.certPem, cert: client.certPem, key: client.keyPem });
    session.on("error", reject);
    const req = session.request({ ":method": "POST", ":path": path, "content-type": "application/json", ...headers });
    let data = "";
    let status = 0;
    req.on("response", (h) => {
      status = Number(h[":status"]);
    });
    req.setEncoding("utf8");
    req.on("data", (c: string) => {
      data += c;
    });
    req.on("end", () => {
      session.close();
      resolve({ status, body: data });
    });
    req.on("error", reject);
    req.end(body);
  });
}

before(async () => {
  dir = mkdtempSync(join(tmpdir(), "solo-gateway-"));
  kernel = await openKernel({ dataDir: dir, schedulers: 1 });
  ca = await createCa({ commonName: "solo test ca" });
  server = await issueCert(ca, { commonName: "localhost", dnsNames: ["localhost"], ips: ["127.0.0.1"], usage: "server" });
  client = await issueCert(ca, { commonName: "solo-admin", usage: "client" });
  gateway = await startGateway(kernel, {
    port: 0,
    tls: { cert: server.certPem, key: server.keyPem, ca: ca.certPem },
    readMaxBytes: 1024 * 1024,
  });
  adminToken = (await kernel.tokens.grant({ tenant: null, permissions: ["*"], label: "gateway test admin" })).token;
  await kernel.tenants.create("acme");
});

after(async () => {
  await gateway?.close(1000);
  await kernel?.close();
  rmSync(dir, { recursive: true, force: true });
});

describe("the gateway", () => {
  it("serves deploy, call, cast, status and events over Connect, gRPC and gRPC-Web clients alike", async () => {
    const t = transports(adminToken);
    const viaConnect = createClient(KernelService, t.connect);
    const d = await viaConnect.deploy({ ref: { tenant: "acme", service: "counter" }, code: COUNTER });
    assert.equal(d.deployment?.version, 1);
    for (const [name, transport] of Object.entries(t)) {
      const c = createClient(KernelService, transport);
      const reply = await c.call({
        ref: { tenant: "acme", service: "counter" },
        request: { kind: { case: "structValue", value: { fields: {} } } },
      });
      assert.equal(typeof reply.reply?.kind.value, "number", `${name} got a number back`);
    }
    const c = createClient(KernelService, t.grpc);
    await c.cast({ ref: { tenant: "acme", service: "counter" } });
    const status = await c.status({ ref: { tenant: "acme", service: "counter" } });
    assert.equal(status.service?.state, "running");
    assert.deepEqual(status.service?.grants, { call: [], storage: true, secrets: [], emit: true, timers: true, log: { perSecond: 100 } });
    const page = await c.queryEvents({ filter: { tenant: "acme" } });
    assert.deepEqual(
      page.events.map((e) => e.type),
      ["tenant_created", "service_deployed"],
    );
    const verified = await c.verify({});
    assert.equal(verified.ok, true);
    // It says how far it checked: every event, up to the head's id, which the last page ends with.
    const head = (await c.queryEvents({ descending: true, limit: 1 })).events[0]?.id ?? 0n;
    assert.ok(head > 0n);
    assert.equal(verified.verifiedUpTo, head);
    assert.equal(verified.events, head);
  });

  it("serves a service's version history and each version's source, gated by services:read", async () => {
    const c = createClient(KernelService, transports(adminToken).connect);
    const ref = { tenant: "acme", service: "history" };
    await c.deploy({ ref, code: COUNTER });
    const v2 = `// v2\n${COUNTER}`;
    await c.swap({ ref, code: v2 });
    const h = await c.history({ ref });
    assert.deepEqual(
      h.versions.map((v) => [v.version, v.current, v.codeBytes]),
      [
        [1, false, Buffer.byteLength(COUNTER)],
        [2, true, Buffer.byteLength(v2)],
      ],
    );
    assert.equal((await c.source({ ref })).code, v2);
    assert.equal((await c.source({ ref, version: 1 })).code, COUNTER);
    const missing = await connectError(c.source({ ref, version: 9 }));
    assert.equal(missing.code, Code.NotFound);
    assert.equal(reasonOf(missing), "SOLO_ERR_VERSION_NOT_FOUND");
    const bad = await connectError(c.history({ ref: { tenant: "acme", service: "Bad Name" } }));
    assert.equal(bad.code, Code.InvalidArgument);
    const caller = (await kernel.tokens.grant({ tenant: "acme", permissions: ["call:history"] })).token;
    const denied = await connectError(createClient(KernelService, transports(caller).connect).source({ ref }));
    assert.equal(denied.code, Code.PermissionDenied);
    await c.kill({ ref });
  });

  it("follows events as a server stream, resuming from an id", async () => {
    await kernel.deploy({
      tenant: "acme",
      service: "pinger",
      code: `export default { async handleCall(r, s) { await solo.emit("ping", null); return { reply: 1, state: s } } }`,
    });
    await kernel.call("acme", "pinger", null); // one ping in the stored past
    const c2 = createClient(KernelService, transports(adminToken).connect);
    const abort2 = new AbortController();
    const got: string[] = [];
    const follow = (async () => {
      try {
        for await (const e of c2.followEvents(
          { filter: { tenant: "acme", types: ["svc.pinger.ping"] }, fromId: 1n },
          { signal: abort2.signal },
        )) {
          got.push(`${e.type} ${e.subject}`);
          abort2.abort();
        }
      } catch (err) {
        if (!(err instanceof ConnectError && err.code === Code.Canceled)) throw err;
      }
    })();
    await follow;
    assert.deepEqual(got, ["svc.pinger.ping pinger"]);
    // From now on (no fromId): only what happens next, live.
    const abort3 = new AbortController();
    const live: bigint[] = [];
    const following = (async () => {
      try {
        for await (const e of c2.followEvents({ filter: { tenant: "acme", types: ["svc.pinger.ping"] } }, { signal: abort3.signal })) {
          live.push(e.id);
          abort3.abort();
        }
      } catch (err) {
        if (!(err instanceof ConnectError && err.code === Code.Canceled)) throw err;
      }
    })();
    await new Promise((r) => setTimeout(r, 50));
    await kernel.call("acme", "pinger", null);
    await following;
    assert.equal(live.length, 1);
  });

  it("answers Connect JSON from a plain HTTP/2 client with a client certificate, as curl would", async () => {
    const ok = await postJson(
      "/solo.v1.KernelService/Call",
      JSON.stringify({ ref: { tenant: "acme", service: "counter" }, request: { add: 100 } }),
      {
        authorization: `Bearer ${adminToken}`,
      },
    );
    assert.equal(ok.status, 200, ok.body);
    assert.ok((JSON.parse(ok.body) as { reply: number }).reply > 100);
    const denied = await postJson("/solo.v1.KernelService/Call", JSON.stringify({ ref: { tenant: "acme", service: "counter" } }));
    assert.equal(denied.status, 401);
    const body = JSON.parse(denied.body) as { code: string; message: string; details: Array<{ type: string; debug?: { reason: string } }> };
    assert.equal(body.code, "unauthenticated");
    assert.equal(body.details[0]?.type, "solo.v1.ErrorDetail");
    assert.equal(body.details[0]?.debug?.reason, "SOLO_ERR_TOKEN_MISSING");
    const malformed = await postJson("/solo.v1.KernelService/Call", "{not json", { authorization: `Bearer ${adminToken}` });
    assert.equal(malformed.status, 400);
    const wrongType = await postJson("/solo.v1.KernelService/Call", "{}", {
      authorization: `Bearer ${adminToken}`,
      "content-type": "text/plain",
    });
    assert.equal(wrongType.status, 415);
  });

  it("answers a protobuf body it cannot parse with invalid_argument", async () => {
    const garbage = await postJson("/solo.v1.KernelService/Call", "\u0000\u00ff\u0017garbage", {
      authorization: `Bearer ${adminToken}`,
      "content-type": "application/proto",
    });
    assert.equal(garbage.status, 400, garbage.body);
    assert.equal((JSON.parse(garbage.body) as { code: string }).code, "invalid_argument");
  });

  it("refuses oversized bodies and unknown methods precisely, and keeps serving", async () => {
    const big = await postJson(
      "/solo.v1.KernelService/Deploy",
      JSON.stringify({ ref: { tenant: "acme", service: "big" }, code: `// ${"x".repeat(2 * 1024 * 1024)}` }),
      { authorization: `Bearer ${adminToken}` },
    );
    assert.equal(big.status, 429, big.body);
    assert.equal((JSON.parse(big.body) as { code: string }).code, "resource_exhausted");
    const unknown = await postJson("/solo.v1.KernelService/NoSuchMethod", "{}", { authorization: `Bearer ${adminToken}` });
    assert.equal(unknown.status, 404);
    const ok = await postJson("/solo.v1.KernelService/Health", "{}");
    assert.equal(ok.status, 200);
    assert.deepEqual((await kernel.list("acme")).map((x) => x.service).includes("big"), false, "nothing was deployed");
  });

  it("answers curl (HTTP/2, Connect JSON, a client certificate), as docs/api.md shows", {
    skip: curlSkip(),
  }, async () => {
    const files = mkdtempSync(join(tmpdir(), "solo-curl-"));
    try {
      writeFileSync(join(files, "ca.crt"), ca.certPem);
      writeFileSync(join(files, "c.crt"), client.certPem);
      writeFileSync(join(files, "c.key"), client.keyPem, { mode: 0o600 });
      const args = [
        "--silent",
        "--show-error",
        "--http2",
        "--cacert",
        join(files, "ca.crt"),
        "--cert",
        join(files, "c.crt"),
        "--key",
        join(files, "c.key"),
      ];
      // Asynchronously: the gateway answering curl runs in this process.
      const { stdout: out } = await execFileAsync(
        "curl",
        [
          ...args,
          "-H",
          `authorization: Bearer ${adminToken}`,
          "-H",
          "content-type: application/json",
          "-d",
          JSON.stringify({ ref: { tenant: "acme", service: "counter" }, request: { add: 1000 } }),
          `${gateway.url}/solo.v1.KernelService/Call`,
        ],
        { encoding: "utf8" },
      );
      assert.ok((JSON.parse(out) as { reply: number }).reply > 1000, out);
      // Without a client certificate, curl's handshake (or its first request) is refused.
      const refused = await execFileAsync(
        "curl",
        [
          "--silent",
          "--show-error",
          "--http2",
          "--cacert",
          join(files, "ca.crt"),
          "-d",
          "{}",
          `${gateway.url}/solo.v1.KernelService/Health`,
        ],
        { encoding: "utf8", timeout: 20_000 },
      ).then(
        () => false,
        () => true,
      );
      assert.ok(refused, "curl without a certificate was answered");
    } finally {
      rmSync(files, { recursive: true, force: true });
    }
  });

  it("maps the kernel's errors to Connect codes with Solo's reason, field and hint", async () => {
    const c = createClient(KernelService, transports(adminToken).connect);
    const missing = await connectError(c.call({ ref: { tenant: "acme", service: "ghost" } }));
    assert.equal(missing.code, Code.NotFound);
    assert.equal(reasonOf(missing), "SOLO_ERR_SERVICE_NOT_FOUND");
    const invalid = await connectError(c.call({ ref: { tenant: "Not-Valid", service: "counter" } }));
    assert.equal(invalid.code, Code.InvalidArgument);
    assert.equal(reasonOf(invalid), "SOLO_ERR_REQUEST_INVALID");
    assert.equal(invalid.findDetails(ErrorDetailSchema)[0]?.field, "ref.tenant");
    const noRef = await connectError(c.deploy({ code: COUNTER }));
    assert.equal(noRef.findDetails(ErrorDetailSchema)[0]?.field, "ref");
    const rejected = await connectError(
      c.deploy({ ref: { tenant: "acme", service: "bad" }, code: "import x from 'y'; export default {}" }),
    );
    assert.equal(reasonOf(rejected), "SOLO_ERR_DEPLOY_REJECTED");
    const findings = rejected.findDetails(ErrorDetailSchema)[0]?.details?.findings as Array<{ rule: string }> | undefined;
    assert.ok(findings?.some((f) => f.rule === "no-import"));
  });

  it("carries a service's error answer as failed_precondition with the service's code, message and details, and no value as no reply", async () => {
    const c = createClient(KernelService, transports(adminToken).connect);
    await c.deploy({
      ref: { tenant: "acme", service: "picky" },
      code: `export default {
        init() { return 0 },
        handleCall(req, n) {
          if (req === "nothing") return { reply: undefined, state: n + 1 };
          return { error: { code: "not_found", message: "nothing called " + req, details: { asked: req } }, state: n + 1 };
        },
      };`,
    });
    const call = (request: string) =>
      c.call({ ref: { tenant: "acme", service: "picky" }, request: { kind: { case: "stringValue", value: request } } });
    const err = await connectError(call("ghost"));
    assert.equal(err.code, Code.FailedPrecondition);
    assert.equal(err.rawMessage, "service picky answered with an error: not_found: nothing called ghost");
    const [detail] = err.findDetails(ErrorDetailSchema);
    assert.equal(detail?.reason, "SOLO_ERR_APPLICATION_ERROR");
    assert.deepEqual(detail?.details, {
      service: "picky",
      answer: { code: "not_found", message: "nothing called ghost", details: { asked: "ghost" } },
    });
    const none = await call("nothing");
    assert.equal(none.reply, undefined, "no value is an unset reply");
    const status = await c.status({ ref: { tenant: "acme", service: "picky" } });
    assert.equal(status.service?.state, "running");
    assert.equal(status.service?.restarts, 0);
  });

  it("refuses bad tokens with unauthenticated and missing permissions with permission_denied, per call", async () => {
    await kernel.tenants.create("globex");
    const g = await kernel.tokens.grant({ tenant: "globex", permissions: ["*"] });
    const none = createClient(KernelService, transports(undefined).connect);
    assert.equal((await connectError(none.list({ tenant: "acme" }))).code, Code.Unauthenticated);
    const junk = createClient(KernelService, transports("junk").grpc);
    const e = await connectError(junk.list({ tenant: "acme" }));
    assert.equal(e.code, Code.Unauthenticated);
    assert.equal(reasonOf(e), "SOLO_ERR_TOKEN_MALFORMED");
    const other = createClient(KernelService, transports(g.token).grpc);
    assert.equal((await connectError(other.list({ tenant: "acme" }))).code, Code.PermissionDenied);
    assert.deepEqual((await other.list({ tenant: "globex" })).services, []);
    const health = await none.health({});
    assert.equal(health.status, "serving");
  });

  it("grants and attenuates tokens through TokenService, showing the token once", async () => {
    const tokens = createClient(TokenService, transports(adminToken).connect);
    const g = await tokens.grant({ tenant: "acme", permissions: ["call:counter", "events:read"], ttlMs: 3_600_000n });
    assert.match(g.token, /^solo_/);
    assert.equal(g.info?.tenant, "acme");
    const child = await createClient(TokenService, transports(g.token).connect).attenuate({ permissions: ["call:counter"] });
    assert.equal(child.info?.parent, g.info?.id);
    const listed = await tokens.list({ tenant: "acme" });
    assert.ok(listed.tokens.every((t) => !JSON.stringify(t).includes("solo_")));
    const c = createClient(KernelService, transports(child.token).connect);
    assert.equal(typeof (await c.call({ ref: { tenant: "acme", service: "counter" } })).reply?.kind.value, "number");
    await tokens.revoke({ id: g.info?.id ?? "" });
    assert.equal(reasonOf(await connectError(c.call({ ref: { tenant: "acme", service: "counter" } }))), "SOLO_ERR_TOKEN_REVOKED");
  });

  it("closes gracefully: calls in flight finish, new ones are refused", async () => {
    // A second gateway on the same kernel, to close while a slow call runs through it.
    const second = await startGateway(kernel, { port: 0, tls: { cert: server.certPem, key: server.keyPem, ca: ca.certPem } });
    await kernel.deploy({
      tenant: "acme",
      service: "slow",
      code: `export default { handleCall(r, s) { const end = Date.now() + 300; while (Date.now() < end) {} return { reply: "done", state: s } } }`,
      limits: { cpuMsPerMessage: 2000 },
    });
    const t = gatewayTransport({
      url: second.url,
      ca: ca.certPem,
      cert: client.certPem,
      key: client.keyPem,
      token: adminToken,
      protocol: "connect",
    });
    const c = createClient(KernelService, t);
    await c.health({}); // the connection is up
    const inFlight = c.call({ ref: { tenant: "acme", service: "slow" } });
    await new Promise((r) => setTimeout(r, 50));
    const closed = second.close(5000);
    const reply = await inFlight;
    assert.equal(reply.reply?.kind.value, "done", "the call in flight finished");
    await closed;
    const after = await connectError(createClient(KernelService, t).health({}));
    assert.ok([Code.Unavailable, Code.Canceled, Code.Unknown].includes(after.code), after.message);
  });

  it("refuses a client without a certificate, with a foreign certificate, and plaintext HTTP/1.1", async () => {
    const foreignCa = await createCa({ commonName: "someone else" });
    const foreign = await issueCert(foreignCa, { commonName: "mallory", usage: "client" });
    const viaForeign = createClient(KernelService, transports(adminToken, foreign).connect);
    // Under TLS 1.3 the server checks the client's certificate after the client's side of the
    // handshake, so the client sees its stream cut (or the connection refused), never an answer.
    const e = await connectError(viaForeign.health({}));
    assert.ok([Code.Unavailable, Code.Canceled, Code.Unknown].includes(e.code), e.message);
    const noCert = await new Promise<string>((resolve) => {
      const req = httpsRequest(`${gateway.url}/solo.v1.KernelService/Health`, { method: "POST", ca: ca.certPem }, () =>
        resolve("answered"),
      );
      req.on("error", (err) => resolve((err as NodeJS.ErrnoException).code ?? err.message));
      req.end("{}");
    });
    assert.notEqual(noCert, "answered");
    const plain = await fetch(gateway.url.replace("https:", "http:"), { method: "POST" }).then(
      () => "answered",
      () => "refused",
    );
    assert.equal(plain, "refused");
    // The gateway keeps serving everyone else.
    assert.equal((await createClient(KernelService, transports(adminToken).connect).health({})).status, "serving");
  });
});
