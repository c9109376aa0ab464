import assert from "node:assert/strict";
import { EventEmitter, once } from "node:events";
import http from "node:http";
import https from "node:https";
import type { AddressInfo } from "node:net";
import { after, before, describe, it } from "node:test";
import { rejection } from "../../../../test/support/helpers.ts";
import { SoloError } from "../../../lib/errors/errors.ts";
import { type CertAndKey, createCa, issueCert } from "../../../tls/certs.ts";
import { checkFetchGrant, classifyAddress, type FetchGrant, type FetchPolicy, guardedFetch, hostPatternCovers } from "./index.ts";

/** What the echo route saw. */
interface Echo {
  method: string;
  url: string;
  headers: Record<string, string>;
  body: string;
}

/** One handler for the HTTPS and the HTTP test servers; `events` lets tests watch the server side. */
function handler(events: EventEmitter): http.RequestListener {
  return (req, res) => {
    const url = new URL(req.url ?? "/", "http://x");
    events.emit("request", url.pathname);
    const chunks: Buffer[] = [];
    req.on("data", (c: Buffer) => chunks.push(c));
    req.on("end", () => {
      switch (url.pathname) {
        case "/echo": {
          const echo: Echo = {
            method: req.method ?? "",
            url: req.url ?? "",
            headers: req.headers as Record<string, string>,
            body: Buffer.concat(chunks).toString("utf8"),
          };
          res.writeHead(200, { "content-type": "application/json" }).end(JSON.stringify(echo));
          return;
        }
        case "/redirect":
          res.writeHead(Number(url.searchParams.get("status") ?? "302"), { location: url.searchParams.get("to") ?? "/echo" }).end();
          return;
        case "/loop":
          res.writeHead(302, { location: "/loop" }).end();
          return;
        case "/sized":
          res.writeHead(200, { "content-type": "text/plain" }).end("x".repeat(Number(url.searchParams.get("n"))));
          return;
        case "/headers":
          res.setHeader("set-cookie", ["a=1", "b=2"]);
          res.setHeader("x-multi", ["one", "two"]);
          res.writeHead(201, "Made It", { "content-type": "text/plain; charset=utf-8" }).end("héllo ✓");
          return;
        case "/declared-big":
          res.on("close", () => events.emit("declared-closed", res.writableEnded));
          res.writeHead(200, { "content-length": "5000" }).write("x".repeat(10));
          return;
        case "/stream": {
          // Chunked and endless in practice: only the client giving up stops it.
          res.on("close", () => events.emit("stream-closed", res.writableEnded));
          res.writeHead(200, { "content-type": "text/plain" });
          const chunk = Buffer.alloc(16 * 1024, "x");
          let sent = 0;
          const pump = (): void => {
            while (!res.destroyed && sent < 256 * 1024 * 1024) {
              sent += chunk.length;
              if (!res.write(chunk)) {
                res.once("drain", pump);
                return;
              }
            }
            if (!res.destroyed) res.end();
          };
          pump();
          return;
        }
        case "/hang":
          res.on("close", () => events.emit("hang-closed"));
          events.emit("hang");
          return;
        default:
          res.writeHead(404).end("no such route");
      }
    });
  };
}

async function listen(server: http.Server): Promise<number> {
  server.listen(0, "127.0.0.1");
  await once(server, "listening");
  return (server.address() as AddressInfo).port;
}

async function close(server: http.Server): Promise<void> {
  server.closeAllConnections();
  server.close();
  await once(server, "close");
}

function lookupOf(names: Record<string, string[]>, calls?: string[]): NonNullable<FetchPolicy["lookup"]> {
  return async (hostname) => {
    calls?.push(hostname);
    const addresses = names[hostname];
    if (addresses === undefined) throw Object.assign(new Error(`getaddrinfo ENOTFOUND ${hostname}`), { code: "ENOTFOUND" });
    return addresses.map((address) => ({ address, family: address.includes(":") ? (6 as const) : (4 as const) }));
  };
}

const LOCAL_NAMES = {
  "api.test": ["127.0.0.1"],
  "v1.api.test": ["127.0.0.1"],
  "other.test": ["127.0.0.1"],
  "xn--bcher-kva.test": ["127.0.0.1"],
  "wrong.test": ["127.0.0.1"],
};

describe("guardedFetch()", () => {
  const events = new EventEmitter();
  let ca: CertAndKey;
  let tlsServer: https.Server;
  let plainServer: http.Server;
  let port: number;
  let httpPort: number;
  let policy: FetchPolicy;
  let base: string;

  /** A grant for the local servers; `hosts` carries the random ports. */
  const grant = (over: Partial<FetchGrant> = {}): FetchGrant => ({
    hosts: [`api.test:${port}`, `other.test:${port}`, `bücher.test:${port}`, `wrong.test:${port}`],
    allowHttp: false,
    maxResponseBytes: 64 * 1024,
    maxRequestBytes: 1024,
    timeoutMs: 10_000, // a backstop: no test here waits for it unless it is about timeouts
    maxRedirects: 5,
    ...over,
  });

  before(async () => {
    ca = await createCa({ commonName: "fetch test CA" });
    const leaf = await issueCert(ca, {
      commonName: "api.test",
      dnsNames: ["api.test", "other.test", "xn--bcher-kva.test", "*.api.test"],
      ips: ["127.0.0.1"],
      usage: "server",
    });
    tlsServer = https.createServer({ key: leaf.keyPem, cert: leaf.certPem }, handler(events));
    plainServer = http.createServer(handler(events));
    port = await listen(tlsServer);
    httpPort = await listen(plainServer);
    policy = { allowAddresses: ["127.0.0.1/32"], ca: ca.certPem, lookup: lookupOf(LOCAL_NAMES) };
    base = `https://api.test:${port}`;
  });

  after(async () => {
    await close(tlsServer);
    await close(plainServer);
  });

  describe("requests that are allowed", () => {
    it("sends a GET with its headers and returns status, headers, body and final url", async () => {
      const res = await guardedFetch(
        { url: `${base}/echo?q=1&r=%20`, method: "get", headers: { "X-Trace": "abc", Accept: "application/json" } },
        grant(),
        policy,
      );
      assert.equal(res.status, 200);
      assert.equal(res.statusText, "OK");
      assert.equal(res.headers["content-type"], "application/json");
      assert.equal(res.url, `${base}/echo?q=1&r=%20`);
      assert.equal(res.redirected, false);
      assert.equal(res.bytes, Buffer.byteLength(res.body));
      const echo = JSON.parse(res.body) as Echo;
      assert.equal(echo.method, "GET");
      assert.equal(echo.url, "/echo?q=1&r=%20");
      assert.equal(echo.headers["x-trace"], "abc");
      assert.equal(echo.headers.accept, "application/json");
      assert.equal(echo.headers.host, `api.test:${port}`, "Host is the URL's host, not the pinned address");
      assert.equal(echo.headers["accept-encoding"], "identity");
      assert.equal(echo.headers.connection, "close", "no socket is kept for reuse");
      assert.equal(echo.body, "");
    });

    it("sends a POST body as UTF-8 with its length and a default content type", async () => {
      const res = await guardedFetch({ url: `${base}/echo`, method: "POST", body: "héllo" }, grant(), policy);
      const echo = JSON.parse(res.body) as Echo;
      assert.deepEqual(
        [echo.method, echo.body, echo.headers["content-length"], echo.headers["content-type"]],
        ["POST", "héllo", "6", "text/plain;charset=UTF-8"],
      );
      const json = await guardedFetch(
        { url: `${base}/echo`, method: "put", headers: { "Content-Type": "application/json" }, body: '{"a":1}' },
        grant(),
        policy,
      );
      const put = JSON.parse(json.body) as Echo;
      assert.deepEqual([put.method, put.body, put.headers["content-type"]], ["PUT", '{"a":1}', "application/json"]);
    });

    it("returns repeated headers joined, drops set-cookie, and decodes UTF-8", async () => {
      const res = await guardedFetch({ url: `${base}/headers` }, grant(), policy);
      assert.equal(res.status, 201);
      assert.equal(res.statusText, "Made It");
      assert.equal(res.headers["x-multi"], "one, two");
      assert.equal(res.headers["set-cookie"], undefined);
      assert.equal(res.body, "héllo ✓");
      assert.equal(res.bytes, Buffer.byteLength("héllo ✓"));
      assert.ok(Object.keys(res.headers).every((k) => k === k.toLowerCase()));
    });

    it("answers HEAD without a body", async () => {
      const res = await guardedFetch({ url: `${base}/sized?n=100`, method: "HEAD" }, grant(), policy);
      assert.deepEqual([res.status, res.body, res.bytes], [200, "", 0]);
    });

    it("matches international and trailing-dot host names in their ASCII form", async () => {
      const idn = await guardedFetch({ url: `https://BÜCHER.test:${port}/echo` }, grant(), policy);
      assert.equal(idn.url, `https://xn--bcher-kva.test:${port}/echo`);
      assert.equal((JSON.parse(idn.body) as Echo).headers.host, `xn--bcher-kva.test:${port}`);
      const dotted = await guardedFetch({ url: `https://API.test.:${port}/echo` }, grant(), policy);
      assert.equal(dotted.status, 200);
    });

    it("reaches an IP literal in the grant, checking the certificate's IP names", async () => {
      const res = await guardedFetch({ url: `https://127.0.0.1:${port}/echo` }, grant({ hosts: [`127.0.0.1:${port}`] }), policy);
      assert.equal((JSON.parse(res.body) as Echo).headers.host, `127.0.0.1:${port}`);
    });

    it("resolves each name once and connects to the address it checked", async () => {
      const calls: string[] = [];
      const counting: FetchPolicy = { ...policy, lookup: lookupOf(LOCAL_NAMES, calls) };
      await guardedFetch({ url: `${base}/redirect?to=${encodeURIComponent(`https://other.test:${port}/echo`)}` }, grant(), counting);
      assert.deepEqual(calls, ["api.test", "other.test"]);
    });

    it("allows http only when the grant does", async () => {
      const url = `http://api.test:${httpPort}/echo`;
      const hosts = [`api.test:${httpPort}`];
      const denied = await rejection(guardedFetch({ url }, grant({ hosts }), policy));
      assert.equal(denied.reason, "SOLO_ERR_FETCH_DENIED");
      assert.match(String(denied.details.hint), /allowHttp/);
      const res = await guardedFetch({ url }, grant({ hosts, allowHttp: true }), policy);
      assert.equal((JSON.parse(res.body) as Echo).headers.host, `api.test:${httpPort}`);
    });
  });

  describe("hosts and addresses", () => {
    it("refuses a host that is not in the grant, naming it and the grant entry to add", async () => {
      const err = await rejection(guardedFetch({ url: `https://evil.test:${port}/echo` }, grant(), policy));
      assert.equal(err.reason, "SOLO_ERR_FETCH_DENIED");
      assert.equal(err.details.host, "evil.test");
      assert.match(err.message, /evil\.test/);
      assert.match(String(err.details.hint), new RegExp(`"evil\\.test:${port}"`));
    });

    it("allows only the scheme's default port to an entry without a port", async () => {
      const err = await rejection(guardedFetch({ url: `${base}/echo` }, grant({ hosts: ["api.test"] }), policy));
      assert.equal(err.reason, "SOLO_ERR_FETCH_DENIED");
    });

    it("matches wildcards to sub-domains only", async () => {
      const res = await guardedFetch({ url: `https://v1.api.test:${port}/echo` }, grant({ hosts: [`*.api.test:${port}`] }), policy);
      assert.equal(res.status, 200);
      const err = await rejection(guardedFetch({ url: `${base}/echo` }, grant({ hosts: [`*.api.test:${port}`] }), policy));
      assert.equal(err.reason, "SOLO_ERR_FETCH_DENIED");
    });

    it("refuses loopback, private and special addresses however the URL spells them", async () => {
      const strict: FetchPolicy = {};
      const cases: Array<[string, string, string]> = [
        ["http://[::ffff:127.0.0.1]/", "[::ffff:127.0.0.1]", "::ffff:7f00:1"],
        ["http://2130706433/", "127.0.0.1", "127.0.0.1"],
        ["http://0x7f.1/", "127.0.0.1", "127.0.0.1"],
        ["http://0.0.0.0/", "0.0.0.0", "0.0.0.0"],
        ["http://0/", "0.0.0.0", "0.0.0.0"],
        ["http://[::1]/", "[::1]", "::1"],
        ["http://169.254.169.254/latest/meta-data/", "169.254.169.254", "169.254.169.254"],
        ["http://10.0.0.1/", "10.0.0.1", "10.0.0.1"],
        ["http://[fd00::1]/", "[fd00::1]", "fd00::1"],
      ];
      for (const [url, host, address] of cases) {
        const err = await rejection(guardedFetch({ url }, grant({ hosts: [host], allowHttp: true }), strict));
        assert.equal(err.reason, "SOLO_ERR_FETCH_DENIED", url);
        assert.equal(err.details.address, address, url);
        assert.match(String(err.details.hint), /allowAddresses/, url);
      }
    });

    it("refuses a name whose default resolution is loopback", async () => {
      const err = await rejection(guardedFetch({ url: `https://localhost:${port}/echo` }, grant({ hosts: [`localhost:${port}`] }), {}));
      assert.equal(err.reason, "SOLO_ERR_FETCH_DENIED");
      assert.ok(err.details.address === "127.0.0.1" || err.details.address === "::1", String(err.details.address));
      assert.match(err.message, /localhost resolves to/);
    });

    it("refuses a name if any of its addresses is private, whatever the order", async () => {
      for (const addresses of [
        ["93.184.215.14", "10.0.0.1"],
        ["10.0.0.1", "93.184.215.14"],
        ["2606:4700::1", "::1"],
      ]) {
        const mixed: FetchPolicy = { lookup: lookupOf({ "api.test": addresses }) };
        const err = await rejection(guardedFetch({ url: "https://api.test/" }, grant({ hosts: ["api.test"] }), mixed));
        assert.equal(err.reason, "SOLO_ERR_FETCH_DENIED", addresses.join());
        assert.equal(
          err.details.address,
          addresses.find((a) => classifyAddress(a) !== null),
        );
      }
    });

    it("reports a name that does not resolve", async () => {
      const err = await rejection(
        guardedFetch({ url: `https://nowhere.test:${port}/` }, grant({ hosts: [`nowhere.test:${port}`] }), policy),
      );
      assert.deepEqual([err.reason, err.details.cause, err.details.host], ["SOLO_ERR_FETCH_FAILED", "ENOTFOUND", "nowhere.test"]);
      const garbage: FetchPolicy = { ...policy, lookup: async () => [{ address: "not-an-ip", family: 4 }] };
      const bad = await rejection(guardedFetch({ url: `${base}/` }, grant(), garbage));
      assert.equal(bad.reason, "SOLO_ERR_FETCH_FAILED");
    });

    it("refuses a refused connection and an untrusted or mismatched certificate", async () => {
      const spare = http.createServer();
      const closedPort = await listen(spare);
      await close(spare);
      const refused = await rejection(
        guardedFetch({ url: `https://api.test:${closedPort}/` }, grant({ hosts: [`api.test:${closedPort}`] }), policy),
      );
      assert.deepEqual([refused.reason, refused.details.cause], ["SOLO_ERR_FETCH_FAILED", "ECONNREFUSED"]);

      const untrusted = await rejection(
        guardedFetch({ url: `${base}/echo` }, grant(), { allowAddresses: ["127.0.0.1/32"], lookup: lookupOf(LOCAL_NAMES) }),
      );
      assert.deepEqual([untrusted.reason, untrusted.details.cause], ["SOLO_ERR_FETCH_FAILED", "tls"]);

      // wrong.test resolves to the server, but the certificate is checked against the name.
      const mismatch = await rejection(guardedFetch({ url: `https://wrong.test:${port}/echo` }, grant(), policy));
      assert.deepEqual(
        [mismatch.reason, mismatch.details.cause, mismatch.details.tlsCode],
        ["SOLO_ERR_FETCH_FAILED", "tls", "ERR_TLS_CERT_ALTNAME_INVALID"],
      );
    });
  });

  describe("redirects", () => {
    const via = (to: string, status = 302): string => `${base}/redirect?status=${status}&to=${encodeURIComponent(to)}`;

    it("follows a redirect within the grant and reports the final url", async () => {
      const res = await guardedFetch({ url: via(`https://other.test:${port}/echo?x=1`) }, grant(), policy);
      assert.equal(res.redirected, true);
      assert.equal(res.url, `https://other.test:${port}/echo?x=1`);
      assert.equal((JSON.parse(res.body) as Echo).headers.host, `other.test:${port}`);
      const relative = await guardedFetch({ url: via("/echo?y=2", 301) }, grant(), policy);
      assert.equal(relative.url, `${base}/echo?y=2`);
    });

    it("refuses a redirect off the grant, naming the target", async () => {
      const err = await rejection(guardedFetch({ url: via(`https://evil.test:${port}/steal?token=s3cret`) }, grant(), policy));
      assert.equal(err.reason, "SOLO_ERR_FETCH_DENIED");
      assert.equal(err.details.host, "evil.test");
      assert.match(err.message, /redirect from https:\/\/api\.test:\d+ to https:\/\/evil\.test/);
      assert.doesNotMatch(err.message, /s3cret/, "paths and queries may hold secrets");
    });

    it("checks each hop's scheme and addresses again", async () => {
      const downgrade = await rejection(
        guardedFetch(
          { url: via(`http://api.test:${httpPort}/echo`) },
          grant({ hosts: [`api.test:${port}`, `api.test:${httpPort}`] }),
          policy,
        ),
      );
      assert.equal(downgrade.reason, "SOLO_ERR_FETCH_DENIED");
      assert.match(downgrade.message, /https only/);
      const inward = await rejection(
        guardedFetch(
          { url: via("http://169.254.169.254/") },
          grant({ hosts: [`api.test:${port}`, "169.254.169.254"], allowHttp: true }),
          policy,
        ),
      );
      assert.deepEqual([inward.reason, inward.details.address], ["SOLO_ERR_FETCH_DENIED", "169.254.169.254"]);
      const ftp = await rejection(guardedFetch({ url: via("ftp://other.test/") }, grant(), policy));
      assert.equal(ftp.reason, "SOLO_ERR_FETCH_DENIED");
      const creds = await rejection(guardedFetch({ url: via(`https://user:pw@other.test:${port}/echo`) }, grant(), policy));
      assert.equal(creds.reason, "SOLO_ERR_FETCH_DENIED");
      assert.doesNotMatch(creds.message, /pw/);
    });

    it("gives up after maxRedirects hops", async () => {
      let hits = 0;
      const count = (path: string): void => {
        if (path === "/loop") hits++;
      };
      events.on("request", count);
      try {
        const err = await rejection(guardedFetch({ url: `${base}/loop` }, grant({ maxRedirects: 2 }), policy));
        assert.deepEqual([err.reason, err.details.cause, err.details.limit], ["SOLO_ERR_FETCH_FAILED", "redirects", 2]);
        assert.equal(hits, 3, "the first request and two redirects");
        const none = await rejection(guardedFetch({ url: via("/echo") }, grant({ maxRedirects: 0 }), policy));
        assert.equal(none.details.cause, "redirects");
      } finally {
        events.off("request", count);
      }
    });

    it("turns 303, and 301/302 after POST, into a GET without body; 307 and 308 keep both", async () => {
      const send = async (status: number): Promise<Echo> => {
        const res = await guardedFetch(
          { url: via("/echo", status), method: "POST", headers: { "content-type": "application/json" }, body: "{}" },
          grant(),
          policy,
        );
        return JSON.parse(res.body) as Echo;
      };
      for (const status of [301, 302, 303]) {
        const echo = await send(status);
        assert.deepEqual([echo.method, echo.body, echo.headers["content-type"]], ["GET", "", undefined], String(status));
      }
      for (const status of [307, 308]) {
        const echo = await send(status);
        assert.deepEqual([echo.method, echo.body, echo.headers["content-type"]], ["POST", "{}", "application/json"], String(status));
      }
      const put = await guardedFetch({ url: via("/echo", 302), method: "PUT", body: "x" }, grant(), policy);
      assert.equal((JSON.parse(put.body) as Echo).method, "PUT", "302 changes only POST");
    });

    it("drops authorization and cookie when a redirect changes origin, and keeps them otherwise", async () => {
      const headers = { Authorization: "Bearer s3cret", Cookie: "sid=1", "X-Keep": "yes" };
      const cross = JSON.parse(
        (await guardedFetch({ url: via(`https://other.test:${port}/echo`), headers }, grant(), policy)).body,
      ) as Echo;
      assert.deepEqual([cross.headers.authorization, cross.headers.cookie, cross.headers["x-keep"]], [undefined, undefined, "yes"]);
      const same = JSON.parse((await guardedFetch({ url: via("/echo"), headers }, grant(), policy)).body) as Echo;
      assert.deepEqual([same.headers.authorization, same.headers.cookie], ["Bearer s3cret", "sid=1"]);
    });
  });

  describe("limits", () => {
    it("reads a body of exactly maxResponseBytes and refuses one byte more", async () => {
      const ok = await guardedFetch({ url: `${base}/sized?n=1000` }, grant({ maxResponseBytes: 1000 }), policy);
      assert.equal(ok.bytes, 1000);
      const err = await rejection(guardedFetch({ url: `${base}/sized?n=1001` }, grant({ maxResponseBytes: 1000 }), policy));
      assert.deepEqual([err.reason, err.details.limit], ["SOLO_ERR_FETCH_TOO_LARGE", 1000]);
    });

    it("refuses a declared Content-Length over the limit before reading it", async () => {
      const closed = once(events, "declared-closed");
      const err = await rejection(guardedFetch({ url: `${base}/declared-big` }, grant({ maxResponseBytes: 1000 }), policy));
      assert.deepEqual([err.reason, err.details.limit], ["SOLO_ERR_FETCH_TOO_LARGE", 1000]);
      assert.match(err.message, /declares 5000 bytes/);
      assert.deepEqual(await closed, [false], "the connection was dropped");
    });

    it("aborts a chunked body that grows past the limit and drops the connection", async () => {
      const closed = once(events, "stream-closed");
      const err = await rejection(guardedFetch({ url: `${base}/stream` }, grant({ maxResponseBytes: 64 * 1024 }), policy));
      assert.deepEqual([err.reason, err.details.limit], ["SOLO_ERR_FETCH_TOO_LARGE", 64 * 1024]);
      assert.deepEqual(await closed, [false], "the server saw the connection close before it finished");
    });

    it("times out a server that never answers, and closes the connection", async () => {
      const closed = once(events, "hang-closed");
      const err = await rejection(guardedFetch({ url: `${base}/hang` }, grant({ timeoutMs: 200 }), policy));
      assert.deepEqual(
        [err.reason, err.code, err.details.limit, err.details.timeoutMs],
        ["SOLO_ERR_FETCH_TIMEOUT", "deadline_exceeded", 200, 200],
      );
      await closed;
    });

    it("times out a name resolution that never answers", async () => {
      const stuck: FetchPolicy = { lookup: () => new Promise(() => {}) };
      const err = await rejection(guardedFetch({ url: "https://api.test/" }, grant({ hosts: ["api.test"], timeoutMs: 100 }), stuck));
      assert.equal(err.reason, "SOLO_ERR_FETCH_TIMEOUT");
    });

    it("stops when the caller's signal aborts", async () => {
      const controller = new AbortController();
      const arrived = once(events, "hang");
      const closed = once(events, "hang-closed");
      const pending = guardedFetch({ url: `${base}/hang` }, grant(), policy, controller.signal);
      await arrived;
      controller.abort();
      const err = await rejection(pending);
      assert.deepEqual([err.reason, err.details.cause], ["SOLO_ERR_FETCH_FAILED", "aborted"]);
      await closed;
      const early = await rejection(guardedFetch({ url: `${base}/echo` }, grant(), policy, AbortSignal.abort()));
      assert.equal(early.details.cause, "aborted");
    });
  });

  describe("malformed requests", () => {
    it("refuses each with SOLO_ERR_FETCH_INVALID naming the field", async () => {
      const url = `${base}/echo`;
      const cases: Array<[unknown, string]> = [
        [null, "request"],
        [url, "request"],
        [[url], "request"],
        [{ url: 5 }, "url"],
        [{}, "url"],
        [{ url: "not a url" }, "url"],
        [{ url: "/relative" }, "url"],
        [{ url: `https://${"a".repeat(9000)}.test/` }, "url"],
        [{ url: "ftp://api.test/" }, "url"],
        [{ url: "file:///etc/passwd" }, "url"],
        [{ url: "javascript:alert(1)" }, "url"],
        [{ url, method: "TRACE" }, "method"],
        [{ url, method: "CONNECT" }, "method"],
        [{ url, method: 5 }, "method"],
        [{ url, headers: "x: y" }, "headers"],
        [{ url, headers: [["x", "y"]] }, "headers"],
        [{ url, headers: { Host: "evil.test" } }, "headers.Host"],
        [{ url, headers: { connection: "keep-alive" } }, "headers.connection"],
        [{ url, headers: { "Content-Length": "5" } }, "headers.Content-Length"],
        [{ url, headers: { "transfer-encoding": "chunked" } }, "headers.transfer-encoding"],
        [{ url, headers: { upgrade: "websocket" } }, "headers.upgrade"],
        [{ url, headers: { te: "trailers" } }, "headers.te"],
        [{ url, headers: { trailer: "x" } }, "headers.trailer"],
        [{ url, headers: { "keep-alive": "1" } }, "headers.keep-alive"],
        [{ url, headers: { "Proxy-Authorization": "x" } }, "headers.Proxy-Authorization"],
        [{ url, headers: { Expect: "100-continue" } }, "headers.Expect"],
        [{ url, headers: { "accept-encoding": "gzip" } }, "headers.accept-encoding"],
        [{ url, headers: { "bad name": "x" } }, "headers.bad name"],
        [{ url, headers: { ":authority": "x" } }, "headers.:authority"],
        [{ url, headers: { "x-a\r\n": "x" } }, "headers.x-a\r\n"],
        [{ url, headers: { "x-a": 5 } }, "headers.x-a"],
        [{ url, headers: { Accept: "a", accept: "b" } }, "headers.accept"],
        [{ url, headers: Object.fromEntries(Array.from({ length: 101 }, (_, i) => [`x-${i}`, "v"])) }, "headers"],
        [{ url, body: "x" }, "body"],
        [{ url, method: "HEAD", body: "" }, "body"],
        [{ url, method: "POST", body: { a: 1 } }, "body"],
        [{ url, method: "POST", body: "x".repeat(1025) }, "body"],
        [{ url, redirect: "manual" }, "redirect"],
      ];
      for (const [request, field] of cases) {
        const err = await rejection(guardedFetch(request, grant(), policy));
        assert.equal(err.reason, "SOLO_ERR_FETCH_INVALID", JSON.stringify(request)?.slice(0, 100));
        assert.equal(err.details.field, field, JSON.stringify(request)?.slice(0, 100));
      }
    });

    it("never repeats credentials, header values or bodies in the error", async () => {
      const url = `${base}/echo`;
      for (const request of [
        { url: `https://alice:hunter2@api.test:${port}/` },
        { url, headers: { "x-token": "hunter2\r\nX-Injected: 1" } },
        { url, headers: { "x-token": "hunter2\u0000" } },
        { url, headers: { Authorization: "hunter2", "Proxy-Authorization": "hunter2" } },
        { url, body: "hunter2" },
        { url, method: "POST", body: `hunter2${"x".repeat(2000)}` },
      ]) {
        const err = await rejection(guardedFetch(request, grant(), policy));
        assert.equal(err.reason, "SOLO_ERR_FETCH_INVALID");
        assert.doesNotMatch(JSON.stringify(err.toData()), /hunter2/);
      }
    });

    it("states the limit for an oversized body", async () => {
      const err = await rejection(guardedFetch({ url: `${base}/echo`, method: "POST", body: "é".repeat(600) }, grant(), policy));
      assert.deepEqual([err.details.limit, err.details.bytes], [1024, 1200]);
    });
  });
});

describe("classifyAddress()", () => {
  it("passes public unicast and names the range of everything else", () => {
    const table: Array<[string, string | null]> = [
      ["8.8.8.8", null],
      ["1.1.1.1", null],
      ["93.184.215.14", null],
      ["100.63.255.255", null],
      ["100.128.0.0", null],
      ["172.15.255.255", null],
      ["172.32.0.0", null],
      ["198.17.255.255", null],
      ["198.20.0.0", null],
      ["223.255.255.255", null],
      ["2606:4700:4700::1111", null],
      ["::ffff:8.8.8.8", null],
      ["64:ff9b::808:808", null],
      ["2002:808:808::1", null],
      ["0.0.0.0", "0.0.0.0/8"],
      ["0.255.255.255", "0.0.0.0/8"],
      ["10.1.2.3", "10.0.0.0/8"],
      ["100.64.0.1", "100.64.0.0/10"],
      ["100.127.255.255", "100.64.0.0/10"],
      ["127.0.0.1", "127.0.0.0/8"],
      ["127.255.255.254", "127.0.0.0/8"],
      ["169.254.169.254", "169.254.0.0/16"],
      ["172.16.0.1", "172.16.0.0/12"],
      ["172.31.255.255", "172.16.0.0/12"],
      ["192.0.0.8", "192.0.0.0/24"],
      ["192.0.2.1", "192.0.2.0/24"],
      ["192.168.1.1", "192.168.0.0/16"],
      ["198.18.0.1", "198.18.0.0/15"],
      ["198.19.255.255", "198.18.0.0/15"],
      ["198.51.100.7", "198.51.100.0/24"],
      ["203.0.113.9", "203.0.113.0/24"],
      ["224.0.0.1", "224.0.0.0/4"],
      ["239.255.255.250", "224.0.0.0/4"],
      ["240.0.0.1", "240.0.0.0/4"],
      ["255.255.255.255", "255.255.255.255/32"],
      ["::", "::/128"],
      ["::1", "::1/128"],
      ["0:0:0:0:0:0:0:1", "::1/128"],
      ["::ffff:127.0.0.1", "::ffff:0:0/96"],
      ["::ffff:7f00:1", "::ffff:0:0/96"],
      ["::FFFF:10.0.0.1", "::ffff:0:0/96"],
      ["::ffff:0.0.0.0", "::ffff:0:0/96"],
      ["64:ff9b::a00:1", "64:ff9b::/96"],
      ["64:ff9b::127.0.0.1", "64:ff9b::/96"],
      ["::127.0.0.1", "::/96"],
      ["2002:7f00:1::", "2002::/16"],
      ["100::1", "100::/64"],
      ["2001:db8::1", "2001:db8::/32"],
      ["fc00::1", "fc00::/7"],
      ["fd12:3456::1", "fc00::/7"],
      ["fe80::1", "fe80::/10"],
      ["febf:ffff::1", "fe80::/10"],
      ["ff02::1", "ff00::/8"],
      ["not an ip", "-"],
      ["fe80::1%eth0", "-"],
      ["", "-"],
    ];
    for (const [address, cidr] of table) assert.equal(classifyAddress(address)?.cidr ?? null, cidr, address);
  });

  it("says which IPv4 address an IPv6 form carries", () => {
    assert.match(classifyAddress("::ffff:169.254.169.254")?.label ?? "", /169\.254\.169\.254: link-local/);
  });
});

describe("checkFetchGrant()", () => {
  const field = "grants.fetch";
  const fails = (input: unknown, at: string): SoloError => {
    try {
      checkFetchGrant(input, field);
    } catch (err) {
      assert.ok(err instanceof SoloError, String(err));
      assert.equal(err.reason, "SOLO_ERR_GRANTS_INVALID", JSON.stringify(input)?.slice(0, 100));
      assert.equal(err.details.field, at, JSON.stringify(input)?.slice(0, 100));
      assert.equal(typeof err.details.hint, "string");
      assert.ok(err.message.length < 400, "the message stays short whatever the input");
      return err;
    }
    return assert.fail(`accepted ${JSON.stringify(input)?.slice(0, 100)}`);
  };

  it("fills in defaults and normalises hosts", () => {
    const grant = checkFetchGrant(
      { hosts: ["API.Example.com.", "*.Example.ORG", "bücher.example", "[0:0::1]:8443", "::1", "203.0.113.7:80"] },
      field,
    );
    assert.deepEqual(grant, {
      hosts: ["api.example.com", "*.example.org", "xn--bcher-kva.example", "[::1]:8443", "[::1]", "203.0.113.7:80"],
      allowHttp: false,
      maxResponseBytes: 1024 * 1024,
      maxRequestBytes: 256 * 1024,
      timeoutMs: 10_000,
      maxRedirects: 5,
    });
    assert.ok(Object.isFrozen(grant) && Object.isFrozen(grant.hosts));
    const full = {
      hosts: ["a.example"],
      allowHttp: true,
      maxResponseBytes: 16 * 1024 * 1024,
      maxRequestBytes: 0,
      timeoutMs: 100,
      maxRedirects: 0,
    };
    assert.deepEqual(checkFetchGrant(full, field), full);
  });

  it("refuses what is not a grant object", () => {
    for (const input of [null, undefined, "a.com", 5, [], ["a.com"]]) fails(input, field);
    fails({ hosts: ["a.com"], extra: 1 }, `${field}.extra`);
    fails(JSON.parse('{"hosts":["a.com"],"__proto__":{"allowHttp":true}}'), `${field}.__proto__`);
  });

  it("refuses a missing, empty, oversized or non-array host list", () => {
    for (const hosts of [undefined, [], "a.com", { 0: "a.com" }, Array.from({ length: 65 }, (_, i) => `h${i}.example`)])
      fails({ hosts }, `${field}.hosts`);
    assert.equal(checkFetchGrant({ hosts: Array.from({ length: 64 }, (_, i) => `h${i}.example`) }, field).hosts.length, 64);
  });

  it("names the exact host entry at fault", () => {
    const bad = [
      "",
      "*",
      "*.com",
      "a.*.com",
      "*a.com",
      "https://a.com",
      "a.com/path",
      "user@a.com",
      "a.com:0",
      "a.com:65536",
      "a.com:08",
      "a.com:",
      "a.com:http",
      "a b.com",
      "a.com\n",
      "a\u0000.com",
      "2130706433",
      "0x7f.0.0.1",
      "1.2.3",
      "*.1.2.3.4",
      "-a.com",
      "a-.com",
      `${"a".repeat(64)}.com`,
      "x".repeat(100_000),
      "[::1",
      "[nope]",
      "[::1]x",
      "[::1]:",
      "fe80::1%eth0",
      "a..com",
      "%61.com",
    ];
    for (const host of bad) fails({ hosts: ["ok.example", "ok2.example", host] }, `${field}.hosts[2]`);
    fails({ hosts: ["ok.example", 5] }, `${field}.hosts[1]`);
    fails({ hosts: [null] }, `${field}.hosts[0]`);
  });

  it("refuses flags and numbers of the wrong type or out of range", () => {
    const hosts = ["a.example"];
    for (const allowHttp of ["yes", 1, null]) fails({ hosts, allowHttp }, `${field}.allowHttp`);
    const cases: Array<[string, unknown]> = [
      ["maxResponseBytes", 0],
      ["maxResponseBytes", 16 * 1024 * 1024 + 1],
      ["maxResponseBytes", 1.5],
      ["maxResponseBytes", "1"],
      ["maxResponseBytes", Number.NaN],
      ["maxResponseBytes", Number.POSITIVE_INFINITY],
      ["maxRequestBytes", -1],
      ["maxRequestBytes", 16 * 1024 * 1024 + 1],
      ["timeoutMs", 99],
      ["timeoutMs", 60_001],
      ["maxRedirects", 11],
      ["maxRedirects", -1],
      ["maxRedirects", 2 ** 53],
    ];
    for (const [key, value] of cases) fails({ hosts, [key]: value }, `${field}.${key}`);
  });
});

describe("hostPatternCovers()", () => {
  it("admits the same entry and sub-domains of a wildcard, with equal ports", () => {
    const table: Array<[unknown, unknown, boolean]> = [
      ["api.a.com", "api.a.com", true],
      ["API.a.com.", "api.a.com", true],
      ["*.a.com", "x.a.com", true],
      ["*.a.com", "y.x.a.com", true],
      ["*.a.com", "*.x.a.com", true],
      ["*.a.com", "*.a.com", true],
      ["*.a.com:8443", "x.a.com:8443", true],
      ["127.0.0.1", "127.0.0.1", true],
      ["[::1]", "::1", true],
      ["[::1]:443", "[0::1]:443", true],
      ["bücher.example", "xn--bcher-kva.example", true],
      ["*.a.com", "a.com", false],
      ["a.com", "*.a.com", false],
      ["x.a.com", "*.a.com", false],
      ["*.x.a.com", "*.a.com", false],
      ["*.a.com", "x.b.com", false],
      ["*.a.com", "xa.com", false],
      ["*.a.com", "*.xa.com", false],
      ["api.a.com:8443", "api.a.com", false],
      ["api.a.com", "api.a.com:443", false],
      ["*.a.com:8443", "x.a.com", false],
      ["127.0.0.1", "127.0.0.2", false],
      ["*", "a.com", false],
      ["bad pattern", "bad pattern", false],
      ["a.com", "bad pattern", false],
      [5, "a.com", false],
      ["a.com", undefined, false],
    ];
    for (const [outer, inner, expected] of table)
      assert.equal(hostPatternCovers(outer as string, inner as string), expected, `${String(outer)} ⊇ ${String(inner)}`);
  });
});
