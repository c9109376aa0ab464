import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { type ClientHttp2Session, createSecureServer, connect as http2Connect, type IncomingHttpHeaders } from "node:http2";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, afterEach, before, describe, it } from "node:test";
import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { StreamableHTTPClientTransport } from "@modelcontextprotocol/sdk/client/streamableHttp.js";
import type { CallToolResult } from "@modelcontextprotocol/sdk/types.js";
import { Agent, fetch as undiciFetch } from "undici";
import { gatewayCore, inProcessClients } from "../gateway/local.ts";
import { type Gateway, startGateway } from "../gateway/server.ts";
import { type Kernel, openKernel } from "../index.ts";
import { type CertAndKey, createCa, issueCert } from "../tls/certs.ts";
import { createMcpHttp, type McpHttp, type McpHttpOptions } from "./http.ts";

// MCP's Streamable HTTP transport at /mcp on the gateway's port, driven by the SDK's own client
// over real HTTP/2 with mutual TLS (undici's fetch: the gateway speaks HTTP/2 only).

const BROKEN = `import fs from "fs";
export default { init() { return 0 }, handleCall(r, n) { return { reply: n, state: n } } };`;
const COUNTER = `export default {
  init() { return 0 },
  handleCall(req, n) { return { reply: n + 1, state: n + 1 } },
};`;
const COUNTER_V2 = `export default {
  init() { return { n: 0 } },
  codeChange(from, n) { return { n } },
  handleCall(req, s) { s.n += 10; return { reply: s.n, state: s } },
};`;
const MAX_BODY = 256 * 1024;
// Replies of 600,000 characters: each tool result carries the reply twice (as text and structured).
const BULKY = `export default {
  init() { return 0 },
  handleCall(req, n) { return { reply: "x".repeat(600000), state: n } },
};`;

let dir: string;
let kernel: Kernel;
let gateway: Gateway;
let ca: CertAndKey;
let clientCert: CertAndKey;
let agent: Agent;
let admin: string;
let clients: Array<{ client: Client; transport: StreamableHTTPClientTransport }> = [];

before(async () => {
  dir = mkdtempSync(join(tmpdir(), "solo-mcp-http-"));
  kernel = await openKernel({ dataDir: dir, schedulers: 1 });
  ca = await createCa({ commonName: "solo mcp test ca" });
  const server = await issueCert(ca, { commonName: "localhost", dnsNames: ["localhost"], ips: ["127.0.0.1"], usage: "server" });
  clientCert = await issueCert(ca, { commonName: "agent", usage: "client" });
  gateway = await startGateway(kernel, {
    port: 0,
    tls: { cert: server.certPem, key: server.keyPem, ca: ca.certPem },
    mcp: { maxSessionsPerTenant: 3, maxBodyBytes: MAX_BODY, allowedOrigins: ["https://console.example"] },
    version: "9.9.9",
  });
  agent = new Agent({ allowH2: true, connect: { ca: ca.certPem, cert: clientCert.certPem, key: clientCert.keyPem } });
  admin = (await kernel.tokens.grant({ tenant: null, permissions: ["*"], label: "mcp http test admin" })).token;
  await kernel.tenants.create("acme");
  await kernel.tenants.create("other");
});

// Each test's sessions end with it, so the per-tenant session limit counts only its own.
afterEach(async () => {
  for (const c of clients) {
    await c.transport.terminateSession().catch(() => undefined);
    await c.client.close();
  }
  clients = [];
});

after(async () => {
  await gateway?.close(1000);
  await kernel?.close();
  await agent?.close();
  rmSync(dir, { recursive: true, force: true });
});

// undici's fetch with the client certificate, as the SDK's client transport takes it.
const h2fetch = ((url: string | URL, init?: RequestInit) =>
  undiciFetch(url, { ...(init as object), dispatcher: agent } as Parameters<typeof undiciFetch>[1])) as unknown as typeof fetch;

async function mcpClient(token: string): Promise<{ client: Client; transport: StreamableHTTPClientTransport }> {
  const transport = new StreamableHTTPClientTransport(new URL(`${gateway.url}/mcp`), {
    fetch: h2fetch,
    requestInit: { headers: { authorization: `Bearer ${token}` } },
  });
  const client = new Client({ name: "solo-http-test-agent", version: "1.0.0" });
  await client.connect(transport);
  clients.push({ client, transport });
  return { client, transport };
}

/** An MCP endpoint of its own on a port, to drive its sweep directly. */
async function endpoint(options: Partial<McpHttpOptions> = {}): Promise<{ http: McpHttp; url: string; close: () => Promise<void> }> {
  const cert = await issueCert(ca, { commonName: "localhost", dnsNames: ["localhost"], ips: ["127.0.0.1"], usage: "server" });
  const core = gatewayCore(kernel);
  const http = createMcpHttp({ kernel, clientsFor: (token) => inProcessClients(core, token), version: "9.9.9", ...options });
  const server = createSecureServer(
    { cert: cert.certPem, key: cert.keyPem, ca: ca.certPem, requestCert: true, rejectUnauthorized: true },
    (req, res) => http.handle(req, res),
  );
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  return {
    http,
    url: `https://127.0.0.1:${(server.address() as AddressInfo).port}`,
    close: async () => {
      await http.close();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

/** MCP by hand over one HTTP/2 connection: a request to /mcp, its status, an initialize that answers its session id, and a session's standing event stream. */
function byHand(session: ClientHttp2Session) {
  const request = (headers: Record<string, string>, body?: string) => session.request({ ":path": "/mcp", ...headers }).end(body);
  const status = (stream: ReturnType<typeof request>) =>
    new Promise<number>((resolve) => stream.on("response", (h) => resolve(Number(h[":status"]))));
  const open = async (auth: { authorization: string }): Promise<string> => {
    const init = request({ ":method": "POST", ...JSON_HEADERS, ...auth }, initialize);
    const sid = await new Promise<string>((resolve) => init.on("response", (h) => resolve(String(h["mcp-session-id"]))));
    init.resume();
    return sid;
  };
  const standing = (auth: { authorization: string }, sid: string) =>
    request({ ":method": "GET", accept: "text/event-stream", ...auth, "mcp-session-id": sid, "mcp-protocol-version": "2025-11-25" });
  return { request, status, open, standing };
}

async function tool(c: Client, name: string, args: Record<string, unknown>): Promise<CallToolResult> {
  return (await c.callTool({ name, arguments: args })) as CallToolResult;
}

function data<T>(r: CallToolResult): T {
  assert.ok(!r.isError, `expected success, got ${JSON.stringify(r.content)}`);
  return r.structuredContent as T;
}

function failure(r: CallToolResult): { code: string; reason: string; message: string; details?: Record<string, unknown> } {
  assert.equal(r.isError, true, `expected a tool error, got ${JSON.stringify(r.structuredContent)}`);
  return (r.structuredContent as { error: { code: string; reason: string; message: string; details?: Record<string, unknown> } }).error;
}

/** One raw HTTP/2 request to the gateway with the client certificate, as any HTTP client would make it. */
function raw(
  method: string,
  headers: Record<string, string>,
  body?: string | Buffer,
  enough?: (text: string) => boolean,
): Promise<{ status: number; headers: IncomingHttpHeaders; body: string }> {
  return new Promise((resolve, reject) => {
    const session = http2Connect(gateway.url, { ca: ca.certPem, cert: clientCert.certPem, key: clientCert.keyPem });
    session.on("error", reject);
    const req = session.request({ ":method": method, ":path": "/mcp", ...headers });
    let text = "";
    let status = 0;
    let got: IncomingHttpHeaders = {};
    req.on("response", (h) => {
      status = Number(h[":status"]);
      got = h;
    });
    req.setEncoding("utf8");
    req.on("data", (c: string) => {
      text += c;
      // An event stream stays open: read until what is awaited has arrived.
      if (enough?.(text)) {
        req.close();
        session.close();
        resolve({ status, headers: got, body: text });
      }
    });
    req.on("end", () => {
      session.close();
      resolve({ status, headers: got, body: text });
    });
    req.on("error", reject);
    req.end(body);
  });
}

const JSON_HEADERS = { "content-type": "application/json", accept: "application/json, text/event-stream" };
const initialize = JSON.stringify({
  jsonrpc: "2.0",
  id: 1,
  method: "initialize",
  params: { protocolVersion: "2025-11-25", capabilities: {}, clientInfo: { name: "raw", version: "1" } },
});

function rpcError(body: string): { code: number; message: string; data: { code: string; reason: string; hint?: string } } {
  return (JSON.parse(body) as { error: { code: number; message: string; data: { code: string; reason: string; hint?: string } } }).error;
}

async function servicesOf(tenant: string): Promise<string[]> {
  return kernel.list(tenant).map((s) => `${s.service}@${s.version}:${s.state}`);
}

describe("MCP over Streamable HTTP at /mcp", () => {
  it("runs an agent's loop through the SDK's client: broken code, findings, fixed code, call, swap, history, events", async () => {
    const { client, transport } = await mcpClient(admin);
    assert.ok(transport.sessionId, "the gateway gave the session an id");
    assert.equal(client.getServerVersion()?.version, "9.9.9");
    const names = (await client.listTools()).tools.map((t) => t.name);
    for (const n of [
      "deploy",
      "swap",
      "rollback",
      "call",
      "cast",
      "list",
      "status",
      "kill",
      "restart",
      "events",
      "verify",
      "history",
      "source",
    ]) {
      assert.ok(names.includes(n), `tool ${n} is listed`);
    }

    const refused = failure(await tool(client, "deploy", { tenant: "acme", service: "counter", code: BROKEN }));
    assert.equal(refused.reason, "SOLO_ERR_DEPLOY_REJECTED");
    const findings = refused.details?.findings as Array<{ rule: string; line: number; column: number; hint: string }>;
    assert.ok(
      findings.some((f) => f.rule === "no-import" && f.line === 1 && f.column === 1 && f.hint.length > 0),
      JSON.stringify(findings),
    );
    assert.deepEqual(await servicesOf("acme"), [], "nothing was deployed");

    assert.equal(data<{ version: number }>(await tool(client, "deploy", { tenant: "acme", service: "counter", code: COUNTER })).version, 1);
    assert.equal(data<{ reply: number }>(await tool(client, "call", { tenant: "acme", service: "counter" })).reply, 1);
    assert.equal(data<{ reply: number }>(await tool(client, "call", { tenant: "acme", service: "counter" })).reply, 2);
    assert.equal(
      data<{ version: number }>(await tool(client, "swap", { tenant: "acme", service: "counter", code: COUNTER_V2 })).version,
      2,
    );
    assert.equal(
      data<{ reply: number }>(await tool(client, "call", { tenant: "acme", service: "counter" })).reply,
      12,
      "the count survived the swap",
    );

    const history = data<{ versions: Array<{ version: number; current: boolean }> }>(
      await tool(client, "history", { tenant: "acme", service: "counter" }),
    );
    assert.deepEqual(
      history.versions.map((v) => [v.version, v.current]),
      [
        [1, false],
        [2, true],
      ],
    );
    assert.equal(data<{ code: string }>(await tool(client, "source", { tenant: "acme", service: "counter", version: 1 })).code, COUNTER);

    const events = data<{ events: Array<{ type: string }> }>(await tool(client, "events", { tenant: "acme" }));
    const types = events.events.map((e) => e.type);
    for (const t of ["service_deployed", "hot_swap_started"]) assert.ok(types.includes(t), types.join(" "));
    assert.equal(data<{ ok: boolean }>(await tool(client, "verify", {})).ok, true);

    // DELETE ends the session; the gateway forgets it.
    const before = gateway.mcpSessions;
    await transport.terminateSession();
    assert.equal(gateway.mcpSessions, before - 1);
  });

  it("serves each service's source and history as resources, the guide, and the write_service prompt", async () => {
    const { client } = await mcpClient(admin);
    await tool(client, "deploy", { tenant: "other", service: "echo", code: COUNTER });
    const listed = (await client.listResources()).resources.map((r) => r.uri);
    for (const uri of [
      "solo://guide/programming-model",
      "solo://services/acme/counter/source",
      "solo://services/acme/counter/history",
      "solo://services/other/echo/source",
    ]) {
      assert.ok(listed.includes(uri), `${uri} in ${listed.join(" ")}`);
    }
    const templates = (await client.listResourceTemplates()).resourceTemplates.map((t) => t.uriTemplate);
    assert.ok(templates.includes("solo://services/{tenant}/{service}/versions/{version}/source"), templates.join(" "));

    const source = await client.readResource({ uri: "solo://services/acme/counter/source" });
    assert.equal((source.contents[0] as { text: string }).text, COUNTER_V2);
    const v1 = await client.readResource({ uri: "solo://services/acme/counter/versions/1/source" });
    assert.equal((v1.contents[0] as { text: string }).text, COUNTER);
    const history = JSON.parse(
      ((await client.readResource({ uri: "solo://services/acme/counter/history" })).contents[0] as { text: string }).text,
    ) as {
      versions: Array<{ version: number; source: string }>;
    };
    assert.deepEqual(
      history.versions.map((v) => v.source),
      ["solo://services/acme/counter/versions/1/source", "solo://services/acme/counter/versions/2/source"],
    );
    const guide = await client.readResource({ uri: "solo://guide/programming-model" });
    assert.match((guide.contents[0] as { text: string }).text, /^# The service programming model/);

    await assert.rejects(client.readResource({ uri: "solo://services/acme/nope/source" }), /SOLO_ERR_SERVICE_NOT_FOUND/);
    await assert.rejects(client.readResource({ uri: "solo://services/acme/counter/versions/0/source" }), /not a positive integer/);
    await assert.rejects(client.readResource({ uri: "solo://services/ACME/counter/source" }), /is not a name/);

    const prompts = (await client.listPrompts()).prompts.map((p) => p.name);
    assert.ok(prompts.includes("write_service"));
    const prompt = await client.getPrompt({ name: "write_service", arguments: { task: "count page views per path", tenant: "acme" } });
    const texts = prompt.messages.map((m) =>
      m.content.type === "text" ? m.content.text : m.content.type === "resource" ? m.content.resource.uri : "",
    );
    assert.match(texts[0] ?? "", /handleCall\(request, state, ctx\) -> \{ reply, state \}/);
    assert.match(texts[0] ?? "", /solo\.storage\.get/);
    assert.equal(texts[1], "solo://guide/programming-model");
    assert.match(texts[2] ?? "", /count page views per path[\s\S]*tenant acme/);
  });

  it("shows a token scoped to one tenant only that tenant, in tools and resources", async () => {
    const scoped = (await kernel.tokens.grant({ tenant: "other", permissions: ["services:read", "call:echo", "events:read"] })).token;
    const { client } = await mcpClient(scoped);
    assert.deepEqual(
      data<{ services: Array<{ service: string }> }>(await tool(client, "list", { tenant: "other" })).services.map((s) => s.service),
      ["echo"],
    );
    const denied = failure(await tool(client, "list", { tenant: "acme" }));
    assert.equal(denied.code, "permission_denied");
    assert.equal(failure(await tool(client, "source", { tenant: "acme", service: "counter" })).code, "permission_denied");
    assert.equal(failure(await tool(client, "kill", { tenant: "other", service: "echo" })).reason, "SOLO_ERR_PERMISSION_DENIED");
    const uris = (await client.listResources()).resources.map((r) => r.uri).filter((u) => u.startsWith("solo://services/"));
    assert.deepEqual(uris.sort(), ["solo://services/other/echo/history", "solo://services/other/echo/source"]);
    assert.deepEqual(await servicesOf("other"), ["echo@1:running"], "the refused kill changed nothing");
  });

  it("refuses a request without a valid bearer token with 401 and audits it, opening no session", async () => {
    const sessions = gateway.mcpSessions;
    const none = await raw("POST", JSON_HEADERS, initialize);
    assert.equal(none.status, 401);
    assert.equal(none.headers["www-authenticate"], 'Bearer realm="solo"');
    assert.equal(rpcError(none.body).data.reason, "SOLO_ERR_TOKEN_MISSING");
    const unknown = await raw("POST", { ...JSON_HEADERS, authorization: `Bearer solo_${"A".repeat(43)}` }, initialize);
    assert.equal(unknown.status, 401);
    assert.equal(rpcError(unknown.body).data.reason, "SOLO_ERR_TOKEN_UNKNOWN");
    const malformed = await raw("POST", { ...JSON_HEADERS, authorization: "Basic dXNlcjpwYXNz" }, initialize);
    assert.equal(malformed.status, 401);
    assert.equal(rpcError(malformed.body).data.reason, "SOLO_ERR_TOKEN_MALFORMED");
    const revoked = await kernel.tokens.grant({ tenant: "acme", permissions: ["*"] });
    await kernel.tokens.revoke(revoked.id);
    const late = await raw("POST", { ...JSON_HEADERS, authorization: `Bearer ${revoked.token}` }, initialize);
    assert.equal(rpcError(late.body).data.reason, "SOLO_ERR_TOKEN_REVOKED");
    assert.equal(gateway.mcpSessions, sessions);
    const denials = (await kernel.events({ types: ["capability_denied"], order: "desc", limit: 4 })).events;
    assert.deepEqual(denials.map((e) => (e.payload as { reason: string }).reason).sort(), [
      "SOLO_ERR_TOKEN_MALFORMED",
      "SOLO_ERR_TOKEN_MISSING",
      "SOLO_ERR_TOKEN_REVOKED",
      "SOLO_ERR_TOKEN_UNKNOWN",
    ]);
    for (const e of denials) assert.ok(!JSON.stringify(e).includes(revoked.token), "no token in the log");
  });

  it("answers a session only for the token that opened it; an unknown session is 404", async () => {
    const { transport } = await mcpClient(admin);
    const sid = transport.sessionId as string;
    const other = (await kernel.tokens.grant({ tenant: null, permissions: ["*"] })).token;
    const list = JSON.stringify({ jsonrpc: "2.0", id: 2, method: "tools/list" });
    const stolen = await raw("POST", { ...JSON_HEADERS, authorization: `Bearer ${other}`, "mcp-session-id": sid }, list);
    assert.equal(stolen.status, 403);
    assert.equal(rpcError(stolen.body).data.reason, "SOLO_ERR_MCP_SESSION_FORBIDDEN");
    const gone = await raw("POST", { ...JSON_HEADERS, authorization: `Bearer ${admin}`, "mcp-session-id": "no-such-session" }, list);
    assert.equal(gone.status, 404);
    assert.equal(rpcError(gone.body).data.reason, "SOLO_ERR_MCP_SESSION_NOT_FOUND");
    const mine = await raw("POST", { ...JSON_HEADERS, authorization: `Bearer ${admin}`, "mcp-session-id": sid }, list);
    assert.equal(mine.status, 200);
    assert.match(mine.body, /"deploy"/);
  });

  it("refuses malformed, oversized and hostile requests precisely, changes nothing, and keeps serving", async () => {
    const before = await servicesOf("acme");
    const auth = { ...JSON_HEADERS, authorization: `Bearer ${admin}` };
    const notJson = await raw("POST", auth, "{ not json");
    assert.equal(notJson.status, 400);
    assert.equal(rpcError(notJson.body).code, -32700);
    assert.equal(rpcError(notJson.body).data.reason, "SOLO_ERR_MCP_REQUEST_INVALID");
    // Invalid UTF-8 is refused, not read as U+FFFD into a tool's arguments.
    const badUtf8 = await raw(
      "POST",
      auth,
      Buffer.concat([
        Buffer.from('{"jsonrpc":"2.0","id":9,"method":"tools/list","params":{"x":"a'),
        Buffer.from([0xff]),
        Buffer.from('"}}'),
      ]),
    );
    assert.equal(badUtf8.status, 400);
    assert.equal(rpcError(badUtf8.body).data.reason, "SOLO_ERR_MCP_REQUEST_INVALID");
    assert.match(rpcError(badUtf8.body).message, /not valid UTF-8/);
    const huge = await raw("POST", auth, Buffer.alloc(MAX_BODY + 1, 0x20));
    assert.equal(huge.status, 413);
    assert.equal(rpcError(huge.body).data.reason, "SOLO_ERR_MCP_REQUEST_TOO_LARGE");
    const noSession = await raw("POST", auth, JSON.stringify({ jsonrpc: "2.0", id: 3, method: "tools/list" }));
    assert.equal(noSession.status, 400);
    assert.match(rpcError(noSession.body).data.hint ?? "", /initialize first/);
    const page = await raw("POST", { ...auth, origin: "https://evil.example" }, initialize);
    assert.equal(page.status, 403);
    assert.equal(rpcError(page.body).data.reason, "SOLO_ERR_MCP_ORIGIN_DENIED");
    const allowed = await raw("POST", { ...auth, origin: "https://console.example" }, initialize);
    assert.equal(allowed.status, 200);
    const closed = await raw("DELETE", { authorization: auth.authorization, "mcp-session-id": String(allowed.headers["mcp-session-id"]) });
    assert.equal(closed.status, 200);
    const put = await raw("PUT", auth, initialize);
    assert.equal(put.status, 400);
    assert.match(rpcError(put.body).message, /POST, GET and DELETE, not PUT/);

    const { client } = await mcpClient(admin);
    const wrongType = await tool(client, "deploy", { tenant: "acme", service: 42, code: COUNTER });
    assert.equal(wrongType.isError, true);
    assert.match(JSON.stringify(wrongType.content), /service/);
    const badName = await tool(client, "deploy", { tenant: "acme", service: "../etc", code: COUNTER });
    assert.equal(badName.isError, true);
    assert.match(JSON.stringify(badName.content), /1-63 of a-z/);
    const unknownTool = await tool(client, "format_disk", {});
    assert.equal(unknownTool.isError, true);
    assert.match(JSON.stringify(unknownTool.content), /format_disk/);
    // 100,000 nested arrays as a call's request: refused, the server stays up.
    const deep = `${"[".repeat(100_000)}${"]".repeat(100_000)}`;
    const nested = failure(await tool(client, "call", { tenant: "acme", service: "counter", request: JSON.parse(deep) }));
    assert.equal(nested.reason, "SOLO_ERR_REQUEST_INVALID");
    assert.match(nested.message, /request is nested deeper than 64 levels/);
    assert.deepEqual(await servicesOf("acme"), before, "nothing changed");
    assert.equal(data<{ reply: number }>(await tool(client, "call", { tenant: "acme", service: "counter" })).reply, 22);
  });

  it("ends a refused request whose body it did not read, rather than leave its stream open for good", { timeout: 60_000 }, async (t) => {
    const server = await issueCert(ca, { commonName: "localhost", dnsNames: ["localhost"], ips: ["127.0.0.1"], usage: "server" });
    const tls = { cert: server.certPem, key: server.keyPem, ca: ca.certPem };
    const second = await startGateway(kernel, { port: 0, tls, mcp: { maxBodyBytes: MAX_BODY } });
    const session = http2Connect(second.url, { ca: ca.certPem, cert: clientCert.certPem, key: clientCert.keyPem });
    // Should the gateway hang, the test's timeout ends the connection and the gateway.
    t.signal.addEventListener("abort", () => {
      session.destroy();
      void second.close(0);
    });
    const refused = async (headers: Record<string, string>, body: Buffer) => {
      const req = session.request({ ":method": "POST", ":path": "/mcp", ...headers });
      req.on("error", () => undefined);
      const status = new Promise<number>((resolve) => req.on("response", (h) => resolve(Number(h[":status"]))));
      const closed = new Promise<void>((resolve) => req.on("close", () => resolve()));
      req.resume();
      req.end(body);
      const answer = await status;
      // The client cannot send the rest unless the gateway reads it or ends the request.
      await closed;
      return answer;
    };
    // Bodies larger than HTTP/2's initial flow-control window (64 KiB): refused while or before being read.
    assert.equal(await refused({ ...JSON_HEADERS, authorization: `Bearer ${admin}` }, Buffer.alloc(MAX_BODY * 2, 0x20)), 413);
    assert.equal(await refused({ ...JSON_HEADERS, authorization: "Bearer nope" }, Buffer.alloc(100_000, 0x20)), 401);
    const list = Buffer.from(JSON.stringify({ jsonrpc: "2.0", id: 1, method: "tools/list", pad: "x".repeat(100_000) }));
    assert.equal(await refused({ ...JSON_HEADERS, authorization: `Bearer ${admin}`, "mcp-session-id": "no-such-session" }, list), 404);
    // Nothing of them is left open: a closing gateway does not wait out a grace far longer than the test may run.
    await second.close(3_600_000);
    session.destroy();
  });

  it("refuses a deploy whose grants nest deeper than 64 levels precisely, as it does args", async () => {
    const { client } = await mcpClient(admin);
    for (const depth of [100, 100_000]) {
      const grants = { call: JSON.parse(`${"[".repeat(depth)}${"]".repeat(depth)}`) as unknown };
      const refused = failure(await tool(client, "deploy", { tenant: "acme", service: "granted", code: COUNTER, grants }));
      assert.equal(refused.reason, "SOLO_ERR_REQUEST_INVALID", `${depth} levels: ${refused.message}`);
      assert.match(refused.message, /grants is nested deeper than 64 levels/);
    }
    assert.ok(!(await servicesOf("acme")).some((s) => s.startsWith("granted@")), "nothing was deployed");
  });

  it("limits the sessions a tenant may hold open; other tenants are not affected", async () => {
    const token = (await kernel.tokens.grant({ tenant: "acme", permissions: ["services:read"] })).token;
    const held = [];
    for (let i = 0; i < 3; i++) held.push(await mcpClient(token));
    const refused = await raw("POST", { ...JSON_HEADERS, authorization: `Bearer ${token}` }, initialize);
    assert.equal(refused.status, 429);
    assert.equal(rpcError(refused.body).data.reason, "SOLO_ERR_OVERLOADED");
    assert.ok(Number(refused.headers["retry-after"]) >= 1);
    const otherTenant = (await kernel.tokens.grant({ tenant: "other", permissions: ["services:read"] })).token;
    await mcpClient(otherTenant);
    // A closed session frees its place.
    await held[0]?.transport.terminateSession();
    await mcpClient(token);
  });

  it("lets a client resume a response stream with Last-Event-ID", async () => {
    const auth = { ...JSON_HEADERS, authorization: `Bearer ${admin}` };
    const init = await raw("POST", auth, initialize);
    const sid = init.headers["mcp-session-id"] as string;
    assert.ok(sid);
    const inSession = { ...auth, "mcp-session-id": sid, "mcp-protocol-version": "2025-11-25" };
    await raw("POST", inSession, JSON.stringify({ jsonrpc: "2.0", method: "notifications/initialized" }));
    const first = await raw(
      "POST",
      inSession,
      JSON.stringify({ jsonrpc: "2.0", id: 7, method: "tools/call", params: { name: "verify", arguments: {} } }),
    );
    assert.equal(first.status, 200);
    const ids = [...first.body.matchAll(/^id: (\S+)$/gm)].map((m) => m[1] as string);
    assert.ok(ids.length >= 2, `a priming event and the response, each with an id: ${first.body}`);
    assert.match(first.body, /"id":7/);
    // The client lost the stream after the priming event: it asks again from there.
    const resumed = await raw(
      "GET",
      { accept: "text/event-stream", authorization: `Bearer ${admin}`, "mcp-session-id": sid, "last-event-id": ids[0] as string },
      undefined,
      (text) => text.includes('"id":7'),
    );
    assert.equal(resumed.status, 200);
    assert.match(resumed.body, /"id":7[\s\S]*"ok":true|"ok":true[\s\S]*"id":7/);
  });

  it("keeps at most 4 MiB of a session's messages for Last-Event-ID, however few messages that is", async () => {
    await kernel.deploy({ tenant: "other", service: "bulky", code: BULKY });
    const auth = { ...JSON_HEADERS, authorization: `Bearer ${admin}` };
    const init = await raw("POST", auth, initialize);
    const sid = init.headers["mcp-session-id"] as string;
    const inSession = { ...auth, "mcp-session-id": sid, "mcp-protocol-version": "2025-11-25" };
    await raw("POST", inSession, JSON.stringify({ jsonrpc: "2.0", method: "notifications/initialized" }));
    const primed: string[] = [];
    for (let i = 0; i < 8; i++) {
      const call = { name: "call", arguments: { tenant: "other", service: "bulky" } };
      const r = await raw("POST", inSession, JSON.stringify({ jsonrpc: "2.0", id: 100 + i, method: "tools/call", params: call }));
      assert.equal(r.status, 200);
      assert.ok(r.body.length > 1_200_000, "the reply came back whole, twice");
      primed.push(/^id: (\S+)$/m.exec(r.body)?.[1] as string);
    }
    const resume = (last: string, enough?: (text: string) => boolean) =>
      raw(
        "GET",
        { accept: "text/event-stream", authorization: auth.authorization, "mcp-session-id": sid, "last-event-id": last },
        undefined,
        enough,
      );
    // Eight results of over a megabyte each (fewer than the 256 messages kept): the oldest are no longer held...
    const oldest = await resume(primed[0] as string, (text) => text.includes('"id":100'));
    assert.equal(oldest.status, 400, "the oldest result is no longer kept");
    // ...the newest still are.
    const newest = await resume(primed[7] as string, (text) => text.includes('"id":107'));
    assert.equal(newest.status, 200);
    assert.match(newest.body, /"id":107/);
    await raw("DELETE", { authorization: auth.authorization, "mcp-session-id": sid });
  });

  it("ends its sessions' standing event streams when the gateway closes, instead of waiting for them", { timeout: 60_000 }, async () => {
    const server = await issueCert(ca, { commonName: "localhost", dnsNames: ["localhost"], ips: ["127.0.0.1"], usage: "server" });
    const second = await startGateway(kernel, { port: 0, tls: { cert: server.certPem, key: server.keyPem, ca: ca.certPem } });
    const session = http2Connect(second.url, { ca: ca.certPem, cert: clientCert.certPem, key: clientCert.keyPem });
    try {
      const mcp = byHand(session);
      const auth = { authorization: `Bearer ${admin}` };
      const stream = mcp.standing(auth, await mcp.open(auth));
      assert.equal(await mcp.status(stream), 200, "the standing stream is open");
      assert.equal(second.mcpSessions, 1);
      const ended = new Promise<void>((resolve) => stream.on("close", () => resolve()));
      stream.resume();
      // A grace far longer than the test may run: closing must not wait for it.
      await second.close(3_600_000);
      await ended;
      assert.equal(second.mcpSessions, 0);
    } finally {
      session.destroy();
    }
  });

  it("ends streams resumed with Last-Event-ID when the gateway closes, as it does standing ones", { timeout: 60_000 }, async (t) => {
    const server = await issueCert(ca, { commonName: "localhost", dnsNames: ["localhost"], ips: ["127.0.0.1"], usage: "server" });
    const second = await startGateway(kernel, { port: 0, tls: { cert: server.certPem, key: server.keyPem, ca: ca.certPem } });
    const session = http2Connect(second.url, { ca: ca.certPem, cert: clientCert.certPem, key: clientCert.keyPem });
    // Should closing hang, the test's timeout ends the connection, and with it the gateway.
    t.signal.addEventListener("abort", () => session.destroy());
    try {
      const { request, open } = byHand(session);
      const text = (stream: ReturnType<typeof request>, until: (t: string) => boolean) =>
        new Promise<string>((resolve) => {
          let t = "";
          stream.setEncoding("utf8");
          stream.on("data", (c: string) => {
            t += c;
            if (until(t)) resolve(t);
          });
          stream.on("end", () => resolve(t));
        });
      const auth = { authorization: `Bearer ${admin}` };
      const sid = await open(auth);
      const inSession = { ":method": "POST", ...JSON_HEADERS, ...auth, "mcp-session-id": sid, "mcp-protocol-version": "2025-11-25" };
      request(inSession, JSON.stringify({ jsonrpc: "2.0", method: "notifications/initialized" })).resume();
      const verify = { jsonrpc: "2.0", id: 7, method: "tools/call", params: { name: "verify", arguments: {} } };
      const answered = await text(request(inSession, JSON.stringify(verify)), (t) => t.includes('"id":7'));
      const primed = /^id: (\S+)$/m.exec(answered)?.[1] as string;
      // The client lost the response after its priming event and resumes it: the SDK keeps the resumed stream open.
      const resumed = request({ ":method": "GET", accept: "text/event-stream", ...auth, "mcp-session-id": sid, "last-event-id": primed });
      const ended = new Promise<void>((resolve) => resumed.on("close", () => resolve()));
      assert.match(await text(resumed, (t) => t.includes('"id":7')), /"id":7/);
      // A grace far longer than the test may run: closing must not wait for it.
      await second.close(3_600_000);
      await ended;
      assert.equal(second.mcpSessions, 0);
    } finally {
      session.destroy();
    }
  });

  it("closes a session whose token was revoked, with the stream it holds open, and frees its place", async (t) => {
    const mcp = await endpoint({ maxSessionsPerTenant: 1 });
    const session = http2Connect(mcp.url, { ca: ca.certPem, cert: clientCert.certPem, key: clientCert.keyPem });
    t.after(async () => {
      session.destroy();
      await mcp.close();
    });
    const { request, status, open, standing: standingOf } = byHand(session);
    const granted = await kernel.tokens.grant({ tenant: "acme", permissions: ["services:read"] });
    const auth = { authorization: `Bearer ${granted.token}` };
    const standing = standingOf(auth, await open(auth));
    assert.equal(await status(standing), 200);
    standing.resume();
    const ended = new Promise<void>((resolve) => standing.on("close", () => resolve()));
    assert.equal(mcp.http.sessions, 1);

    await kernel.tokens.revoke(granted.id);
    mcp.http.sweep();
    assert.equal(mcp.http.sessions, 0, "the revoked token's session is closed");
    await ended;
    // Its place in the tenant's count is free again.
    const other = (await kernel.tokens.grant({ tenant: "acme", permissions: ["services:read"] })).token;
    const next = request({ ":method": "POST", ...JSON_HEADERS, authorization: `Bearer ${other}` }, initialize);
    assert.equal(await status(next), 200);
    next.resume();
  });

  it("verifies a tool call's token once: the tool acts on the session its HTTP request verified", async (t) => {
    // The real kernel, with its sessions made for a request (with via) counted.
    let made = 0;
    const counted = new Proxy(kernel, {
      get(target, key) {
        if (key === "as") {
          return (token: string | undefined, via?: Parameters<Kernel["as"]>[1]) => {
            if (via !== undefined) made++;
            return target.as(token, via);
          };
        }
        const v = Reflect.get(target, key, target) as unknown;
        return typeof v === "function" ? v.bind(target) : v;
      },
    });
    const core = gatewayCore(counted);
    const mcp = await endpoint({
      kernel: counted,
      clientsFor: (token, requester, verified) => inProcessClients(core, token, requester, verified),
    });
    const transport = new StreamableHTTPClientTransport(new URL(`${mcp.url}/mcp`), {
      fetch: h2fetch,
      requestInit: { headers: { authorization: `Bearer ${admin}` } },
    });
    const client = new Client({ name: "solo-verify-once", version: "1.0.0" });
    t.after(async () => {
      await transport.terminateSession().catch(() => undefined);
      await client.close();
      await mcp.close();
    });
    await client.connect(transport);
    await tool(client, "deploy", { tenant: "acme", service: "once", code: COUNTER });
    for (let i = 1; i <= 3; i++) {
      made = 0;
      const r = await tool(client, "call", { tenant: "acme", service: "once", request: "inc" });
      assert.equal(r.isError, undefined, JSON.stringify(r.content));
      assert.equal(made, 1, "one session, verified once, for the HTTP request and the tool's call");
    }
  });

  it("refuses an initialize over 64 KiB: a session keeps its client's capabilities for as long as it is open", async (t) => {
    const mcp = await endpoint();
    const session = http2Connect(mcp.url, { ca: ca.certPem, cert: clientCert.certPem, key: clientCert.keyPem });
    t.after(async () => {
      session.destroy();
      await mcp.close();
    });
    const post = (body: string) =>
      new Promise<{ status: number; body: string }>((resolve, reject) => {
        const req = session.request({ ":method": "POST", ":path": "/mcp", ...JSON_HEADERS, authorization: `Bearer ${admin}` });
        let status = 0;
        let text = "";
        req.on("response", (h) => {
          status = Number(h[":status"]);
        });
        req.setEncoding("utf8");
        req.on("data", (c: string) => {
          text += c;
        });
        req.on("end", () => resolve({ status, body: text }));
        req.on("error", reject);
        req.end(body);
      });
    const withCapabilities = (bytes: number) => {
      const init = JSON.parse(initialize) as { params: { capabilities: Record<string, unknown> } };
      init.params.capabilities = { experimental: { padding: { text: "x".repeat(bytes) } } };
      return JSON.stringify(init);
    };
    const large = await post(withCapabilities(100_000));
    assert.equal(large.status, 413);
    assert.equal(rpcError(large.body).data.reason, "SOLO_ERR_MCP_REQUEST_TOO_LARGE");
    assert.equal(mcp.http.sessions, 0);
    assert.equal((await post(withCapabilities(1000))).status, 200, "a real client's initialize is far smaller");
    assert.equal(mcp.http.sessions, 1);
  });
});
