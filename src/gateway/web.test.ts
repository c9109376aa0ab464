import assert from "node:assert/strict";
import { mkdtempSync, rmSync, utimesSync, writeFileSync } from "node:fs";
import { connect as http2Connect, type IncomingHttpHeaders } from "node:http2";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { type TLSSocket, connect as tlsConnect } from "node:tls";
import { Code, ConnectError, createClient } from "@connectrpc/connect";
import { createConnectTransport, createGrpcTransport, createGrpcWebTransport } from "@connectrpc/connect-node";
import type { Client } from "@modelcontextprotocol/sdk/client/index.js";
import type { CallToolResult } from "@modelcontextprotocol/sdk/types.js";
import { Agent, fetch as undiciFetch } from "undici";
import { until } from "../../test/support/helpers.ts";
import { type CaFetch, caFetch, mcpOverHttp } from "../../test/support/web.ts";
import { KernelService, TokenService } from "../gen/solo/v1/solo_pb.js";
import { type Kernel, openKernel } from "../index.ts";
import { type CertAndKey, createCa, issueCert } from "../tls/certs.ts";
import { bearer } from "./client.ts";
import { type Gateway, startGateway } from "./server.ts";
import { createLogger, createTelemetry } from "./telemetry.ts";
import { CookieSessions, SECURITY_HEADERS, SESSION_COOKIE } from "./web-auth.ts";

// The web listener, driven by real clients over real TLS: the MCP SDK's client over HTTP/1.1 and
// HTTP/2 with only a bearer token, Connect and gRPC-Web clients, browsers' cookies by hand, and
// hostile clients on raw sockets.

const COUNTER = `export default {
  init() { return 0 },
  handleCall(req, n) { return { reply: n + 1, state: n + 1 } },
};`;

let dir: string;
let kernel: Kernel;
let gateway: Gateway;
let web: string;
let ca: CertAndKey;
let admin: string;
let acme: string;
let serverPair: CertAndKey;
const agents: Agent[] = [];
const fetches: CaFetch[] = [];

before(async () => {
  dir = mkdtempSync(join(tmpdir(), "solo-web-"));
  kernel = await openKernel({ dataDir: dir, schedulers: 1 });
  ca = await createCa({ commonName: "solo web test ca" });
  serverPair = await issueCert(ca, { commonName: "localhost", dnsNames: ["localhost"], ips: ["127.0.0.1"], usage: "server" });
  gateway = await startGateway(kernel, {
    port: 0,
    tls: { cert: serverPair.certPem, key: serverPair.keyPem, ca: ca.certPem },
    web: { port: 0 },
    mcp: { maxBodyBytes: 64 * 1024 },
    // The hostile cases below are denied many times from one address: not throttled here (the
    // throttle has its own tests), and the slow-client limits short enough to see them act.
    connections: { denialBurst: 100_000, headersTimeoutMs: 1000, bodyWindowMs: 1000, bodyMinBytesPerSecond: 1024 },
  });
  assert.ok(gateway.web);
  web = gateway.web.url;
  admin = (await kernel.tokens.grant({ tenant: null, permissions: ["*"], label: "web test admin" })).token;
  await kernel.tenants.create("acme");
  await kernel.tenants.create("other");
  acme = (await kernel.tokens.grant({ tenant: "acme", permissions: ["*"], label: "acme" })).token;
  h1fetch = fetchFor(false).fetch;
});

after(async () => {
  await gateway?.close(1000);
  await kernel?.close();
  for (const a of agents) await a.close();
  for (const f of fetches) await f.close();
  rmSync(dir, { recursive: true, force: true });
});

/** A fetch trusting the test CA, over HTTP/2 or HTTP/1.1, closed after the file's tests. */
function fetchFor(h2: boolean): CaFetch {
  const f = caFetch(ca.certPem, h2);
  fetches.push(f);
  return f;
}

const mcpClient = (f: typeof fetch, token: string) => mcpOverHttp(`${web}/mcp`, f, token, "solo-web-test");

async function tool(c: Client, name: string, args: Record<string, unknown>): Promise<CallToolResult> {
  return (await c.callTool({ name, arguments: args })) as CallToolResult;
}

// Over HTTP/1.1 (undici's default), made once the CA is.
let h1fetch: typeof fetch;

/** One request over HTTP/1.1: its status, headers and body. */
async function send(
  method: string,
  path: string,
  headers: Record<string, string> = {},
  body?: string | Buffer,
): Promise<{ status: number; headers: Headers; body: string; json: () => Record<string, unknown> }> {
  const res = await h1fetch(`${web}${path}`, {
    method,
    headers,
    ...(body !== undefined ? { body: typeof body === "string" ? body : new Uint8Array(body) } : {}),
  });
  const text = await res.text();
  return { status: res.status, headers: res.headers, body: text, json: () => JSON.parse(text) as Record<string, unknown> };
}

const initialize = JSON.stringify({
  jsonrpc: "2.0",
  id: 1,
  method: "initialize",
  params: { protocolVersion: "2025-11-25", capabilities: {}, clientInfo: { name: "raw", version: "1" } },
});
const MCP_HEADERS = { "content-type": "application/json", accept: "application/json, text/event-stream" };

/** Logs in with `token`; the session cookie as a `cookie` header value. */
async function login(token: string): Promise<string> {
  const r = await send("POST", "/login", { "content-type": "application/json", origin: web }, JSON.stringify({ token }));
  assert.equal(r.status, 200, r.body);
  const set = r.headers.get("set-cookie") ?? "";
  const m = new RegExp(`${SESSION_COOKIE}=([^;]+)`).exec(set);
  assert.ok(m, set);
  return `${SESSION_COOKIE}=${m[1]}`;
}

/** Waits for `socket` to close; what the server sent on it. */
function closed(socket: TLSSocket): Promise<string> {
  let text = "";
  socket.on("data", (d: Buffer) => {
    text += d.toString("latin1");
  });
  return new Promise((resolve) => socket.once("close", () => resolve(text)));
}

function rawTls(alpn: string[] = ["http/1.1"]): Promise<TLSSocket> {
  const url = new URL(web);
  return new Promise((resolve, reject) => {
    const s = tlsConnect({ host: url.hostname, port: Number(url.port), ca: ca.certPem, ALPNProtocols: alpn }, () => resolve(s));
    s.once("error", reject);
  });
}

describe("the web listener", () => {
  describe("MCP at /mcp with a bearer token (no client certificate)", () => {
    for (const h2 of [false, true]) {
      it(`serves the MCP SDK's client over HTTP/${h2 ? "2" : "1.1"}: initialize, tools, deploy, call`, async () => {
        const { fetch: f, protocols } = fetchFor(h2);
        const { client, transport } = await mcpClient(f, acme);
        const tools = await client.listTools();
        assert.ok(tools.tools.some((t) => t.name === "deploy"));
        const service = h2 ? "counter2" : "counter1";
        const deployed = await tool(client, "deploy", { tenant: "acme", service, code: COUNTER });
        assert.ok(!deployed.isError, JSON.stringify(deployed.content));
        const called = await tool(client, "call", { tenant: "acme", service });
        assert.ok(!called.isError, JSON.stringify(called.content));
        assert.match(JSON.stringify(called.structuredContent), /1/);
        assert.deepEqual(
          kernel
            .list("acme")
            .map((s) => s.service)
            .filter((s) => s === service),
          [service],
        );
        await transport.terminateSession();
        await client.close();
        // What the connection really spoke, as negotiated on the wire.
        assert.ok(protocols.length > 0);
        assert.deepEqual([...new Set(protocols)], [h2 ? "h2" : "http/1.1"]);
      });
    }

    it("refuses no token, a malformed one and an unknown one with 401, precisely, opening no session", async () => {
      const before = gateway.mcpSessions;
      for (const [auth, reason] of [
        [undefined, "SOLO_ERR_TOKEN_MISSING"],
        ["Bearer not-a-token", "SOLO_ERR_TOKEN_MALFORMED"],
        ["Basic dXNlcjpwYXNz", "SOLO_ERR_TOKEN_MALFORMED"],
      ] as const) {
        const r = await send("POST", "/mcp", { ...MCP_HEADERS, ...(auth ? { authorization: auth } : {}) }, initialize);
        assert.equal(r.status, 401, r.body);
        assert.equal(r.headers.get("www-authenticate"), 'Bearer realm="solo"');
        assert.equal((r.json().error as { data: { reason: string } }).data.reason, reason, r.body);
      }
      assert.equal(gateway.mcpSessions, before);
    });

    it("keeps a tenant's token to its tenant: it can neither see nor touch another's services", async () => {
      await kernel.deploy({ tenant: "other", service: "secret-counter", code: COUNTER });
      const { client, transport } = await mcpClient(h1fetch, acme);
      const listed = await tool(client, "list", { tenant: "other" });
      assert.equal(listed.isError, true);
      const killed = await tool(client, "kill", { tenant: "other", service: "secret-counter" });
      assert.equal(killed.isError, true);
      assert.match(JSON.stringify(killed.structuredContent), /SOLO_ERR_PERMISSION_DENIED/);
      assert.equal(kernel.list("other").find((s) => s.service === "secret-counter")?.state, "running");
      await transport.terminateSession();
      await client.close();
    });
  });

  describe("the Connect API (Connect and gRPC-Web; bearer only)", () => {
    for (const httpVersion of ["1.1", "2"] as const) {
      for (const [name, make] of [
        ["Connect", createConnectTransport],
        ["gRPC-Web", createGrpcWebTransport],
      ] as const) {
        it(`serves ${name} over HTTP/${httpVersion} with a bearer token`, async () => {
          const transport = make({ baseUrl: web, httpVersion, nodeOptions: { ca: ca.certPem }, interceptors: [bearer(acme)] });
          const me = await createClient(TokenService, transport).whoAmI({});
          assert.equal(me.info?.tenant, "acme");
          const denied = await createClient(KernelService, transport)
            .list({ tenant: "other" })
            .then(
              () => undefined,
              (e: unknown) => ConnectError.from(e),
            );
          assert.equal(denied?.code, Code.PermissionDenied);
        });
      }
    }

    it("refuses a call that carries only a session cookie, saying the API takes a bearer token", async () => {
      const cookie = await login(admin);
      const r = await send("POST", "/solo.v1.TokenService/WhoAmI", { "content-type": "application/json", cookie, origin: web }, "{}");
      assert.equal(r.status, 401, r.body);
      assert.match(r.body, /bearer token; a session cookie is not accepted/);
      assert.match(r.body, /SOLO_ERR_WEB_COOKIE_REFUSED/);
    });

    it("refuses the gRPC protocol precisely (unimplemented), pointing at the main port", async () => {
      const transport = createGrpcTransport({ baseUrl: web, nodeOptions: { ca: ca.certPem }, interceptors: [bearer(admin)] });
      const err = await createClient(TokenService, transport)
        .whoAmI({})
        .then(
          () => undefined,
          (e: unknown) => ConnectError.from(e),
        );
      assert.equal(err?.code, Code.Unimplemented);
      assert.match(err?.rawMessage ?? "", /serves the API in Connect and gRPC-Web, not gRPC/);
    });
  });

  describe("session cookies", () => {
    it("logs in with a token, says who you are, serves /mcp by cookie from its own origin, and logs out", async () => {
      const r = await send("POST", "/login", { "content-type": "application/x-www-form-urlencoded", origin: web }, `token=${acme}`);
      assert.equal(r.status, 200, r.body);
      const set = r.headers.get("set-cookie") ?? "";
      assert.match(set, new RegExp(`^${SESSION_COOKIE}=[A-Za-z0-9_-]{43}; Max-Age=\\d+; Path=/; Secure; HttpOnly; SameSite=Strict$`));
      // The cookie is a random id, not the token.
      assert.ok(!set.includes(acme));
      const cookie = set.split(";")[0] as string;
      const who = await send("GET", "/session", { cookie });
      assert.equal(who.status, 200, who.body);
      assert.equal(who.json().tenant, "acme");
      assert.equal(who.json().via, "cookie");
      const init = await send("POST", "/mcp", { ...MCP_HEADERS, cookie, origin: web }, initialize);
      assert.equal(init.status, 200, init.body);
      const sid = init.headers.get("mcp-session-id") as string;
      assert.equal((await send("DELETE", "/mcp", { cookie, origin: web, "mcp-session-id": sid })).status, 200);
      const out = await send("POST", "/logout", { cookie, origin: web });
      assert.equal(out.status, 200);
      assert.equal(out.json().ended, true);
      assert.match(out.headers.get("set-cookie") ?? "", /Max-Age=0/);
      const gone = await send("GET", "/session", { cookie });
      assert.equal(gone.status, 401);
      assert.equal(gone.json().reason, "SOLO_ERR_WEB_SESSION_ENDED");
    });

    it("refuses a cookie sent from another origin, and a state-changing cookie request with no Origin (CSRF)", async () => {
      const cookie = await login(acme);
      const foreign = await send("POST", "/mcp", { ...MCP_HEADERS, cookie, origin: "https://evil.example" }, initialize);
      assert.equal(foreign.status, 403, foreign.body);
      assert.equal(foreign.json().reason, "SOLO_ERR_WEB_ORIGIN_DENIED");
      const none = await send("POST", "/mcp", { ...MCP_HEADERS, cookie }, initialize);
      assert.equal(none.status, 403, none.body);
      assert.match(none.body, /must say where it comes from/);
      const crossSite = await send("POST", "/logout", { cookie, "sec-fetch-site": "cross-site" });
      assert.equal(crossSite.status, 403);
      // The refused logout did not end the session.
      assert.equal((await send("GET", "/session", { cookie })).status, 200);
      const sameSite = await send("POST", "/mcp", { ...MCP_HEADERS, cookie, "sec-fetch-site": "same-origin" }, initialize);
      assert.equal(sameSite.status, 200, sameSite.body);
      await send("DELETE", "/mcp", { cookie, origin: web, "mcp-session-id": sameSite.headers.get("mcp-session-id") as string });
      const loginFromAfar = await send(
        "POST",
        "/login",
        { "content-type": "application/json", origin: "https://evil.example" },
        JSON.stringify({ token: acme }),
      );
      assert.equal(loginFromAfar.status, 403);
      assert.equal(loginFromAfar.headers.get("set-cookie"), null);
      // Nor may another site's form clear the browser's cookie, with the cookie or without it.
      const logoutFromAfar = await send("POST", "/logout", { origin: "https://evil.example" });
      assert.equal(logoutFromAfar.status, 403);
      assert.equal(logoutFromAfar.headers.get("set-cookie"), null);
    });

    it("keeps one token's logins from ending others' sessions: a token holds at most 16, and a full table refuses logins", async () => {
      const kept = await login(admin);
      const first = await login(acme);
      for (let i = 0; i < 16; i++) await login(acme);
      // acme's own oldest session went; the admin's did not.
      assert.equal((await send("GET", "/session", { cookie: first })).status, 401);
      assert.equal((await send("GET", "/session", { cookie: kept })).status, 200);
    });

    it("makes a cookie that expires with its token", async () => {
      const t = await kernel.tokens.grant({ tenant: "acme", permissions: ["*"], label: "short", ttlMs: 60_000 });
      const r = await send("POST", "/login", { "content-type": "application/json", origin: web }, JSON.stringify({ token: t.token }));
      assert.equal(r.status, 200, r.body);
      const maxAge = Number(/Max-Age=(\d+)/.exec(r.headers.get("set-cookie") ?? "")?.[1]);
      assert.ok(maxAge > 0 && maxAge <= 60, String(maxAge));
      assert.equal(r.json().expiresAt, t.expiresAt);
    });

    it("ends a revoked token's cookie sessions at once, as it refuses its bearer", async () => {
      const t = await kernel.tokens.grant({ tenant: "acme", permissions: ["*"], label: "to revoke" });
      const cookie = await login(t.token);
      assert.equal((await send("GET", "/session", { cookie })).status, 200);
      await kernel.tokens.revoke(t.id);
      const byBearer = await send("GET", "/session", { authorization: `Bearer ${t.token}` });
      assert.equal(byBearer.status, 401);
      assert.equal(byBearer.json().reason, "SOLO_ERR_TOKEN_REVOKED");
      const byCookie = await send("GET", "/session", { cookie });
      assert.equal(byCookie.status, 401);
      assert.equal(byCookie.json().reason, "SOLO_ERR_TOKEN_REVOKED");
      const mcp = await send("POST", "/mcp", { ...MCP_HEADERS, cookie, origin: web }, initialize);
      assert.equal(mcp.status, 401);
      // And the session is gone for good.
      assert.equal((await send("GET", "/session", { cookie })).json().reason, "SOLO_ERR_WEB_SESSION_ENDED");
    });

    it("refuses garbage, oversized and tokenless logins precisely, making no session", async () => {
      const before = gateway.web?.cookieSessions;
      const cases: Array<[Record<string, string>, string | Buffer, RegExp]> = [
        [{ "content-type": "application/json" }, "{not json", /not JSON/],
        [{ "content-type": "application/json" }, "{}", /has no token/],
        [{ "content-type": "application/json" }, '{"token": 42}', /has no token/],
        [{ "content-type": "text/plain" }, acme, /content-type must be application\/json or a form/],
        [{ "content-type": "application/json" }, Buffer.from([0x7b, 0xff, 0xfe, 0x7d]), /not valid UTF-8/],
        [{ "content-type": "application/json" }, JSON.stringify({ token: "x".repeat(10_000) }), /over 4096 bytes/],
      ];
      for (const [headers, body, message] of cases) {
        const r = await send("POST", "/login", headers, body);
        assert.equal(r.status, 400, r.body);
        assert.equal(r.json().reason, "SOLO_ERR_WEB_LOGIN_INVALID");
        assert.match(String(r.json().message), message);
        assert.equal(r.headers.get("set-cookie"), null);
      }
      const bad = await send("POST", "/login", { "content-type": "application/json" }, JSON.stringify({ token: "solo_nope" }));
      assert.equal(bad.status, 401);
      assert.equal(gateway.web?.cookieSessions, before);
    });
  });

  describe("what else it serves", () => {
    it("answers /healthz with its status only, unauthenticated, and anything unknown with a JSON 404", async () => {
      const h = await send("GET", "/healthz");
      assert.equal(h.status, 200);
      assert.deepEqual(h.json(), { status: "ok" });
      const nowhere = await send("GET", "/etc/passwd");
      assert.equal(nowhere.status, 404);
      assert.equal(nowhere.json().reason, "SOLO_ERR_WEB_NOT_FOUND");
      const wrongMethod = await send("GET", "/login");
      assert.equal(wrongMethod.status, 404);
      assert.match(String(wrongMethod.json().message), /takes POST, not GET/);
    });

    it("sends strict security headers on every response", async () => {
      for (const r of [await send("GET", "/healthz"), await send("GET", "/nowhere"), await send("POST", "/mcp", MCP_HEADERS, initialize)]) {
        assert.equal(
          r.headers.get("content-security-policy"),
          "default-src 'none'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'",
        );
        assert.equal(r.headers.get("x-content-type-options"), "nosniff");
        assert.equal(r.headers.get("referrer-policy"), "no-referrer");
        assert.match(r.headers.get("strict-transport-security") ?? "", /max-age=\d+/);
        // And every other header of the listener's policy, as it is written.
        for (const [k, v] of Object.entries(SECURITY_HEADERS)) assert.equal(r.headers.get(k), v, k);
      }
    });
  });

  describe("hostile clients", () => {
    it("times out a client that dribbles its headers over HTTP/1.1, and keeps serving others meanwhile", { timeout: 30_000 }, async () => {
      const socket = await rawTls();
      const done = closed(socket);
      socket.write("POST /mcp HTTP/1.1\r\nHost: x\r\n");
      let served = 0;
      const dribble = setInterval(() => {
        if (!socket.destroyed) socket.write(`x-slow-${served}: y\r\n`);
      }, 100);
      // Others are served while it dribbles.
      while (!socket.destroyed && served < 3) {
        assert.equal((await send("GET", "/healthz")).status, 200);
        served++;
      }
      const text = await done;
      clearInterval(dribble);
      assert.match(text, /^HTTP\/1\.1 408 /);
    });

    it("cuts off a request body that arrives too slowly, over HTTP/1.1 and HTTP/2", { timeout: 30_000 }, async () => {
      const socket = await rawTls();
      const done = closed(socket);
      socket.write(
        `POST /mcp HTTP/1.1\r\nHost: x\r\nauthorization: Bearer ${admin}\r\ncontent-type: application/json\r\ncontent-length: 100000\r\n\r\n{`,
      );
      const dribble = setInterval(() => {
        if (!socket.destroyed) socket.write(" ");
      }, 100);
      assert.equal((await send("GET", "/healthz")).status, 200);
      await done;
      clearInterval(dribble);
      const session = http2Connect(web, { ca: ca.certPem });
      session.on("error", () => undefined);
      const stream = session.request({
        ":method": "POST",
        ":path": "/login",
        "content-type": "application/json",
      });
      const trickle = setInterval(() => {
        if (!stream.closed) stream.write(" ");
      }, 100);
      const code = await new Promise<number>((resolve) => stream.once("close", () => resolve(stream.rstCode ?? -1)));
      clearInterval(trickle);
      session.destroy();
      assert.notEqual(code, 0);
    });

    it("refuses oversized headers over HTTP/1.1 (431) and HTTP/2, and oversized bodies", async () => {
      const socket = await rawTls();
      const done = closed(socket);
      socket.write(`GET /healthz HTTP/1.1\r\nHost: x\r\nx-big: ${"a".repeat(20_000)}\r\n\r\n`);
      assert.match(await done, /^HTTP\/1\.1 431 /);
      const session = http2Connect(web, { ca: ca.certPem, maxSendHeaderBlockLength: 1 << 20 } as Parameters<typeof http2Connect>[1]);
      session.on("error", () => undefined);
      const stream = session.request({ ":path": "/healthz", "x-big": "a".repeat(20_000) });
      stream.on("error", () => undefined);
      const outcome = await new Promise<string>((resolve) => {
        stream.once("response", (h: IncomingHttpHeaders) => resolve(String(h[":status"])));
        stream.once("close", () => resolve(`reset ${stream.rstCode}`));
      });
      session.destroy();
      assert.notEqual(outcome, "200");
      const big = await send("POST", "/mcp", { ...MCP_HEADERS, authorization: `Bearer ${admin}` }, "x".repeat(200_000));
      assert.ok(big.status === 413, big.body);
      assert.equal((await send("GET", "/healthz")).status, 200);
    });

    it("caps the streams one HTTP/2 connection may open (1,000 asked), and keeps serving others", { timeout: 60_000 }, async () => {
      const session = http2Connect(web, { ca: ca.certPem });
      session.on("error", () => undefined);
      await new Promise<void>((resolve) => session.once("remoteSettings", () => resolve()));
      assert.equal(session.remoteSettings.maxConcurrentStreams, 100);
      // Logins whose bodies never end hold their streams open.
      const streams = Array.from({ length: 1000 }, () => {
        const s = session.request({ ":method": "POST", ":path": "/login", "content-type": "application/json" });
        s.on("error", () => undefined);
        s.write("{");
        return s;
      });
      // The server keeps serving other connections meanwhile.
      assert.equal((await send("GET", "/healthz")).status, 200);
      const other2 = http2Connect(web, { ca: ca.certPem });
      const status = await new Promise<number>((resolve, reject) => {
        const s = other2.request({ ":path": "/healthz" });
        s.on("response", (h) => resolve(Number(h[":status"])));
        s.on("error", reject);
        s.resume();
      });
      other2.close();
      assert.equal(status, 200);
      // Ending the held streams lets the queued ones through: all 1,000 are answered (400, no token).
      const answered = await Promise.all(
        streams.map(
          (s) =>
            new Promise<number>((resolve) => {
              s.once("response", (h) => resolve(Number(h[":status"])));
              s.once("close", () => resolve(-1));
              s.resume();
              s.end("}");
            }),
        ),
      );
      session.close();
      assert.equal(answered.filter((s) => s === 400).length, 1000);
    });
  });
});

describe("login sessions", () => {
  it("end at the cap on their length (12 hours) even while their token lives on, and at once when the token expires", () => {
    let now = 0;
    const sessions = new CookieSessions({ now: () => now });
    const capped = sessions.open("solo_lasting", null);
    assert.equal(capped.maxAgeSeconds, 12 * 60 * 60);
    const short = sessions.open("solo_short", 60_000);
    assert.equal(short.maxAgeSeconds, 60);
    now = 60_000;
    assert.equal(sessions.tokenOf(short.id), undefined, "gone with its token's expiry");
    assert.equal(sessions.tokenOf(capped.id), "solo_lasting");
    now = 12 * 60 * 60 * 1000;
    assert.equal(sessions.tokenOf(capped.id), undefined, "gone at the cap");
  });

  it("refuse a login when the table is full of others' live sessions, ending none of them", async () => {
    const g = await startGateway(kernel, {
      port: 0,
      tls: { cert: serverPair.certPem, key: serverPair.keyPem, ca: ca.certPem },
      web: { port: 0, maxCookieSessions: 2 },
      connections: { denialBurst: 100_000 },
    });
    try {
      const post = (token: string) =>
        h1fetch(`${g.web?.url}/login`, {
          method: "POST",
          headers: { "content-type": "application/json", origin: g.web?.url as string },
          body: JSON.stringify({ token }),
        });
      const cookieOf = (r: Response) => (r.headers.get("set-cookie") ?? "").split(";")[0] as string;
      const [a, b] = [await post(admin), await post(acme)];
      assert.deepEqual([a.status, b.status], [200, 200]);
      const full = await post(acme);
      assert.equal(full.status, 429);
      assert.equal((JSON.parse(await full.text()) as { reason: string }).reason, "SOLO_ERR_OVERLOADED");
      assert.ok(Number(full.headers.get("retry-after")) >= 1, "says when to try again");
      for (const r of [a, b]) {
        const who = await h1fetch(`${g.web?.url}/session`, { headers: { cookie: cookieOf(r) } });
        assert.equal(who.status, 200, "no one's session was ended to make room");
      }
    } finally {
      await g.close(500);
    }
  });
});

describe("the web listener against abuse from its clients' own address", () => {
  it("throttles requests with no credential or a bad one apart from those of a valid token's holder", async () => {
    // The default denial limits (the file's gateway lifts them): 20 at once, then 5 a second.
    const g = await startGateway(kernel, {
      port: 0,
      tls: { cert: serverPair.certPem, key: serverPair.keyPem, ca: ca.certPem },
      web: { port: 0 },
    });
    try {
      const at = async (path: string, headers: Record<string, string> = {}): Promise<number> => {
        const r = await h1fetch(`${g.web?.url}${path}`, { headers });
        await r.text();
        return r.status;
      };
      // What an <img> on any web page (or any local process) can send, ten at a time, for as long
      // as the test runs: no credential, or a made-up one.
      const seen: number[] = [];
      let flooding = true;
      const flood = (async () => {
        while (flooding) {
          seen.push(
            ...(await Promise.all(
              Array.from({ length: 10 }, (_, i) => at("/session", i % 2 ? { authorization: "Bearer solo_made_up" } : {})),
            )),
          );
        }
      })();
      try {
        await until("the anonymous requests to be throttled", () => seen.includes(429));
        // A valid token's holder at the same address is served all the while.
        for (let i = 0; i < 5; i++) assert.equal(await at("/session", { authorization: `Bearer ${admin}` }), 200);
        assert.ok(seen.filter((x) => x === 429).length > 0);
      } finally {
        flooding = false;
        await flood;
      }
    } finally {
      await g.close(500);
    }
  });

  it("answers MCP's event streams no-store, as every other response, over HTTP/1.1 and HTTP/2", async () => {
    for (const h2 of [false, true]) {
      const f = fetchFor(h2).fetch;
      const open = await f(`${web}/mcp`, {
        method: "POST",
        headers: { ...MCP_HEADERS, authorization: `Bearer ${admin}` },
        body: initialize,
      });
      await open.text();
      const sid = open.headers.get("mcp-session-id") as string;
      assert.equal(open.headers.get("cache-control"), "no-store");
      const stream = await f(`${web}/mcp`, {
        method: "GET",
        headers: { accept: "text/event-stream", authorization: `Bearer ${admin}`, "mcp-session-id": sid },
      });
      assert.equal(stream.headers.get("content-type"), "text/event-stream");
      assert.equal(stream.headers.get("cache-control"), "no-store");
      await stream.body?.cancel();
      await f(`${web}/mcp`, { method: "DELETE", headers: { authorization: `Bearer ${admin}`, "mcp-session-id": sid } });
    }
  });
});

describe("the web listener's operator certificate", () => {
  it("serves the operator's pair, loads it again when the files change, and keeps it when a change does not load", {
    timeout: 60_000,
  }, async () => {
    const certDir = mkdtempSync(join(tmpdir(), "solo-web-cert-"));
    const certFile = join(certDir, "web.crt");
    const keyFile = join(certDir, "web.key");
    const one = await issueCert(ca, { commonName: "one.example", dnsNames: ["localhost"], ips: ["127.0.0.1"], usage: "server" });
    const two = await issueCert(ca, { commonName: "two.example", dnsNames: ["localhost"], ips: ["127.0.0.1"], usage: "server" });
    writeFileSync(certFile, one.certPem);
    writeFileSync(keyFile, one.keyPem);
    const server = await issueCert(ca, { commonName: "localhost", dnsNames: ["localhost"], ips: ["127.0.0.1"], usage: "server" });
    const events: Array<{ loaded: boolean; why?: string }> = [];
    const g = await startGateway(kernel, {
      port: 0,
      tls: { cert: server.certPem, key: server.keyPem, ca: ca.certPem },
      web: { port: 0, certFile, keyFile, certPollMs: 50, onCertificate: (e) => events.push(e) },
    });
    const url = new URL(g.web?.url as string);
    const presented = (): Promise<string> =>
      new Promise((resolve, reject) => {
        const s = tlsConnect({ host: url.hostname, port: Number(url.port), ca: ca.certPem }, () => {
          resolve(String(s.getPeerCertificate().subject?.CN));
          s.destroy();
        });
        s.once("error", reject);
      });
    // The listener notices a change by the files' modification time: each write is given a later
    // one, so that two writes within one tick of the file system's clock (same size, same time)
    // cannot look like no change.
    let tick = 0;
    const replace = (file: string, text: string): void => {
      writeFileSync(file, text);
      const at = new Date(Date.now() + ++tick * 1000);
      utimesSync(file, at, at);
    };
    try {
      assert.equal(await presented(), "one.example");
      replace(certFile, two.certPem);
      replace(keyFile, two.keyPem);
      await until("the new pair loaded", () => events.some((e) => e.loaded));
      assert.equal(await presented(), "two.example");
      // A certificate whose key does not match: the pair in use stays, and why is told.
      replace(certFile, one.certPem);
      await until("the mismatched pair refused", () => events.some((e) => !e.loaded));
      assert.match(events.find((e) => !e.loaded)?.why ?? "", /cannot be used/);
      assert.equal(await presented(), "two.example");
    } finally {
      await g.close(500);
      rmSync(certDir, { recursive: true, force: true });
    }
  });

  it("refuses to start with a key that does not match its certificate, naming both files", async () => {
    const certDir = mkdtempSync(join(tmpdir(), "solo-web-cert-"));
    const a = await issueCert(ca, { commonName: "a", dnsNames: ["localhost"], usage: "server" });
    const b = await issueCert(ca, { commonName: "b", dnsNames: ["localhost"], usage: "server" });
    writeFileSync(join(certDir, "a.crt"), a.certPem);
    writeFileSync(join(certDir, "b.key"), b.keyPem);
    const server = await issueCert(ca, { commonName: "localhost", dnsNames: ["localhost"], usage: "server" });
    await assert.rejects(
      startGateway(kernel, {
        port: 0,
        tls: { cert: server.certPem, key: server.keyPem, ca: ca.certPem },
        web: { port: 0, certFile: join(certDir, "a.crt"), keyFile: join(certDir, "b.key") },
      }),
      (e: Error & { reason?: string }) =>
        e.reason === "SOLO_ERR_KERNEL_OPTIONS_INVALID" && /a\.crt.*b\.key.*cannot be used/.test(e.message),
    );
    rmSync(certDir, { recursive: true, force: true });
  });
});

describe("the web listener beside the main port", () => {
  it("serves /metrics as the main port does: a token with services:read, a tenant's series only to its tenant", async () => {
    const server = await issueCert(ca, { commonName: "localhost", dnsNames: ["localhost"], ips: ["127.0.0.1"], usage: "server" });
    const g = await startGateway(kernel, {
      port: 0,
      tls: { cert: server.certPem, key: server.keyPem, ca: ca.certPem },
      web: { port: 0 },
      telemetry: createTelemetry(createLogger({ level: "silent", pretty: false })),
    });
    const agent = new Agent({ allowH2: false, connect: { ca: ca.certPem } });
    agents.push(agent);
    const metrics = async (token?: string): Promise<{ status: number; text: string }> => {
      const r = await undiciFetch(`${g.web?.url}/metrics`, {
        headers: token ? { authorization: `Bearer ${token}` } : {},
        dispatcher: agent,
      });
      return { status: r.status, text: await r.text() };
    };
    await kernel.deploy({ tenant: "other", service: "metered", code: COUNTER });
    try {
      assert.equal((await metrics()).status, 401);
      const all = await metrics(admin);
      assert.equal(all.status, 200);
      assert.match(all.text, /solo_gateway_calls_in_flight/);
      assert.match(all.text, /tenant="other"/);
      const mine = await metrics(acme);
      assert.equal(mine.status, 200);
      assert.doesNotMatch(mine.text, /tenant="other"/);
    } finally {
      await g.close(500);
    }
  });

  it("closes gracefully over HTTP/1.1: idle kept-alive connections go at once, a request in flight is answered first", {
    timeout: 30_000,
  }, async () => {
    const server = await issueCert(ca, { commonName: "localhost", dnsNames: ["localhost"], ips: ["127.0.0.1"], usage: "server" });
    const g = await startGateway(kernel, {
      port: 0,
      tls: { cert: server.certPem, key: server.keyPem, ca: ca.certPem },
      web: { port: 0 },
    });
    const url = new URL(g.web?.url as string);
    const open = (): Promise<TLSSocket> =>
      new Promise((resolve, reject) => {
        const s = tlsConnect({ host: url.hostname, port: Number(url.port), ca: ca.certPem, ALPNProtocols: ["http/1.1"] }, () => resolve(s));
        s.once("error", reject);
      });
    const received = (s: TLSSocket, what: RegExp): Promise<string> => {
      let text = "";
      return new Promise((resolve) => {
        const on = (d: Buffer): void => {
          text += d.toString("latin1");
          if (what.test(text)) {
            s.off("data", on);
            resolve(text);
          }
        };
        s.on("data", on);
      });
    };
    // A kept-alive connection, idle after one request.
    const idle = await open();
    const answered = received(idle, /\{"status":"ok"\}/);
    idle.write("GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n");
    await answered;
    const idleClosed = closed(idle);
    // A login whose body is still arriving (the server has taken it: it asked for the body).
    const busy = await open();
    const body = JSON.stringify({ token: acme });
    const continued = received(busy, /100 Continue/);
    busy.write(
      `POST /login HTTP/1.1\r\nHost: x\r\ncontent-type: application/json\r\ncontent-length: ${body.length}\r\nexpect: 100-continue\r\n\r\n`,
    );
    await continued;
    const closing = g.close(30_000);
    await idleClosed;
    const answer = received(busy, /"tenant":"acme"/);
    busy.write(body);
    assert.match(await answer, /HTTP\/1\.1 200 /);
    await closed(busy);
    await closing;
  });

  it("caps the connections one address may hold open: an idle one makes room for a new one, and a new one is refused when all are busy", async () => {
    const server = await issueCert(ca, { commonName: "localhost", dnsNames: ["localhost"], ips: ["127.0.0.1"], usage: "server" });
    const g = await startGateway(kernel, {
      port: 0,
      tls: { cert: server.certPem, key: server.keyPem, ca: ca.certPem },
      web: { port: 0 },
      connections: { maxConnectionsPerAddress: 2 },
    });
    const url = new URL(g.web?.url as string);
    const connect = (): Promise<TLSSocket | string> =>
      new Promise((resolve) => {
        const s = tlsConnect({ host: url.hostname, port: Number(url.port), ca: ca.certPem, ALPNProtocols: ["http/1.1"] }, () => resolve(s));
        s.once("error", (e: NodeJS.ErrnoException) => resolve(String(e.code)));
        s.once("close", () => resolve("closed"));
      });
    try {
      const held = [await connect(), await connect()];
      assert.ok(held.every((s) => typeof s !== "string"));
      // Both idle: the next connection takes the oldest one's place.
      const oldestGone = new Promise((resolve) => (held[0] as TLSSocket).once("close", resolve));
      const third = await connect();
      assert.notEqual(typeof third, "string");
      await oldestGone;
      // Both open connections busy (a request whose body is still coming): the next is refused.
      // The server's 100 Continue says it has taken the request (node answers it, then handles it).
      const busy = [held[1], third] as TLSSocket[];
      await Promise.all(
        busy.map(
          (s) =>
            new Promise<void>((resolve) => {
              let seen = "";
              s.on("data", (d: Buffer) => {
                seen += d.toString("latin1");
                if (seen.includes("100 Continue")) resolve();
              });
              s.write(
                "POST /login HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\ncontent-length: 100\r\nexpect: 100-continue\r\n\r\n",
              );
            }),
        ),
      );
      assert.equal(typeof (await connect()), "string");
      for (const s of busy) assert.equal(s.destroyed, false, "a busy connection is never closed to make room");
      for (const s of busy) s.destroy();
    } finally {
      await g.close(500);
    }
  });

  it("shares the main port's MCP session limits per tenant, and closes with the gateway", async () => {
    const server = await issueCert(ca, { commonName: "localhost", dnsNames: ["localhost"], ips: ["127.0.0.1"], usage: "server" });
    const clientCert = await issueCert(ca, { commonName: "agent", usage: "client" });
    const g = await startGateway(kernel, {
      port: 0,
      tls: { cert: server.certPem, key: server.keyPem, ca: ca.certPem },
      web: { port: 0 },
      mcp: { maxSessionsPerTenant: 2 },
    });
    const webUrl = g.web?.url as string;
    const open = async (url: string, agent: Agent): Promise<Response> =>
      (await undiciFetch(`${url}/mcp`, {
        method: "POST",
        headers: { ...MCP_HEADERS, authorization: `Bearer ${acme}` },
        body: initialize,
        dispatcher: agent,
      })) as unknown as Response;
    const mtls = new Agent({ allowH2: true, connect: { ca: ca.certPem, cert: clientCert.certPem, key: clientCert.keyPem } });
    const plain = new Agent({ allowH2: false, connect: { ca: ca.certPem } });
    agents.push(mtls, plain);
    try {
      assert.equal((await open(g.url, mtls)).status, 200);
      assert.equal((await open(webUrl, plain)).status, 200);
      // acme's third session, on either port, is over its limit.
      const third = await open(webUrl, plain);
      assert.equal(third.status, 429);
      assert.match(await third.text(), /tenant acme has 2 MCP sessions open/);
    } finally {
      await g.close(500);
    }
    const url = new URL(webUrl);
    const refused = await new Promise<string>((resolve) => {
      const s = tlsConnect({ host: url.hostname, port: Number(url.port), ca: ca.certPem }, () => resolve("connected"));
      s.once("error", (e: NodeJS.ErrnoException) => resolve(String(e.code)));
    });
    assert.equal(refused, "ECONNREFUSED");
  });
});
