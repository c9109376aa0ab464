import assert from "node:assert/strict";
import { execFileSync, spawn } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { type ClientHttp2Session, constants as h2, connect as http2Connect } from "node:http2";
import { connect as netConnect, type Socket } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Writable } from "node:stream";
import { after, before, describe, it } from "node:test";
import { connect as tlsConnect } from "node:tls";
import { Code, ConnectError, createClient } from "@connectrpc/connect";
import pino from "pino";
import { until } from "../../test/support/helpers.ts";
import { ErrorDetailSchema, KernelService } from "../gen/solo/v1/solo_pb.js";
import { type Kernel, openKernel } from "../index.ts";
import { type CertAndKey, createCa, issueCert } from "../tls/certs.ts";
import { gatewayTransport } from "./client.ts";
import { connectionLimits } from "./connections.ts";
import { type Gateway, type GatewayOptions, startGateway } from "./server.ts";
import { createTelemetry } from "./telemetry.ts";

let dir: string;
let kernel: Kernel;
let ca: CertAndKey;
let serverCert: CertAndKey;
let client: CertAndKey;
let token: string;
const files = { ca: "", cert: "", key: "" };

before(async () => {
  dir = mkdtempSync(join(tmpdir(), "solo-edge-"));
  kernel = await openKernel({ dataDir: join(dir, "data"), schedulers: 1 });
  ca = await createCa({ commonName: "solo edge test ca" });
  serverCert = await issueCert(ca, { commonName: "localhost", dnsNames: ["localhost"], ips: ["127.0.0.1"], usage: "server" });
  client = await issueCert(ca, { commonName: "edge-client", usage: "client" });
  for (const [name, pem] of [
    ["ca", ca.certPem],
    ["cert", client.certPem],
    ["key", client.keyPem],
  ] as const) {
    files[name] = join(dir, `${name}.pem`);
    writeFileSync(files[name], pem);
  }
  token = (await kernel.tokens.grant({ tenant: null, permissions: ["*"] })).token;
  // The tenant the throttle tests list (a tenant that does not exist would be not_found).
  await kernel.tenants.create("acme");
});

after(async () => {
  await kernel?.close();
  rmSync(dir, { recursive: true, force: true });
});

/** Why the edge closed things, as its log lines say (the first of each reason per 10 s). */
const closures: string[] = [];
const sink = new Writable({
  write(chunk: Buffer, _enc, done) {
    for (const l of chunk.toString().split("\n")) {
      if (l.trim() === "") continue;
      const line = JSON.parse(l) as { msg?: string; why?: string };
      if (line.msg === "edge closed a connection" && line.why) closures.push(line.why);
    }
    done();
  },
});

function gatewayWith(connections: GatewayOptions["connections"]): Promise<Gateway> {
  return startGateway(kernel, {
    port: 0,
    tls: { cert: serverCert.certPem, key: serverCert.keyPem, ca: ca.certPem },
    connections,
    mcp: false,
    telemetry: createTelemetry(pino({ level: "warn" }, sink)),
  });
}

/** Runs `openssl s_client` against the gateway: its exit code and everything it printed. */
function sClient(
  port: number,
  args: readonly string[],
  opts: { input?: string; holdMs?: number } = {},
): Promise<{ code: number | null; out: string }> {
  return new Promise((resolve, reject) => {
    const p = spawn("openssl", [
      "s_client",
      "-connect",
      `127.0.0.1:${port}`,
      "-CAfile",
      files.ca,
      "-cert",
      files.cert,
      "-key",
      files.key,
      ...args,
    ]);
    let out = "";
    p.stdout.on("data", (d: Buffer) => {
      out += d.toString();
    });
    p.stderr.on("data", (d: Buffer) => {
      out += d.toString();
    });
    p.on("error", reject);
    // Input once the handshake has printed its summary; then the client leaves.
    const leave = setTimeout(() => p.stdin.end(), opts.holdMs ?? 2000);
    const poll = setInterval(() => {
      if (!/Verify return code|alert|errno|error:/i.test(out)) return;
      clearInterval(poll);
      if (opts.input) p.stdin.write(opts.input);
      if (!opts.input) {
        clearTimeout(leave);
        p.stdin.end();
      }
    }, 20);
    p.on("close", (code) => {
      clearInterval(poll);
      clearTimeout(leave);
      resolve({ code, out });
    });
  });
}

function negotiated(out: string): { protocol: string; cipher: string; alpn: string } {
  return {
    protocol: /Protocol\s*:\s*(\S+)/.exec(out)?.[1] ?? "",
    cipher: /Cipher is (\S+)/.exec(out)?.[1] ?? "",
    alpn: /ALPN protocol: (\S+)/.exec(out)?.[1] ?? "",
  };
}

function h2Session(gateway: Gateway): Promise<ClientHttp2Session> {
  return new Promise((resolve, reject) => {
    const s = http2Connect(gateway.url, { ca: ca.certPem, cert: client.certPem, key: client.keyPem });
    s.once("connect", () => resolve(s));
    s.once("error", reject);
  });
}

/** The code of the GOAWAY `s` received (-1: none yet). */
function goawayCode(s: ClientHttp2Session): () => number {
  let code = -1;
  s.on("goaway", (c) => {
    code = c;
  });
  return () => code;
}

function closed(s: { once(e: "close", f: () => void): unknown }): Promise<void> {
  return new Promise((resolve) => s.once("close", () => resolve()));
}

async function health(gateway: Gateway): Promise<number> {
  const s = await h2Session(gateway);
  try {
    return await new Promise<number>((resolve, reject) => {
      const req = s.request({
        ":method": "POST",
        ":path": "/solo.v1.KernelService/Health",
        "content-type": "application/json",
        authorization: `Bearer ${token}`,
      });
      req.on("response", (h) => resolve(Number(h[":status"])));
      req.on("error", reject);
      req.end("{}");
    });
  } finally {
    s.close();
  }
}

// openssl is on every machine this project's CI runs on (.ci/run installs it); elsewhere, say why not.
function opensslSkip(): string | false {
  try {
    execFileSync("openssl", ["version"], { encoding: "utf8" });
    return false;
  } catch {
    return process.env.CI === "true" ? false : "openssl is not installed (the TLS matrix is walked with openssl s_client)";
  }
}

describe("the gateway's TLS", { skip: opensslSkip() }, () => {
  let gateway: Gateway;
  before(async () => {
    gateway = await gatewayWith({});
  });
  after(() => gateway.close(1000));

  it("prefers TLS 1.3, with h2", async () => {
    const r = await sClient(gateway.port, ["-alpn", "h2"]);
    assert.deepEqual(negotiated(r.out), { protocol: "TLSv1.3", cipher: "TLS_AES_128_GCM_SHA256", alpn: "h2" }, r.out);
  });

  for (const cipher of ["ECDHE-ECDSA-AES128-GCM-SHA256", "ECDHE-ECDSA-AES256-GCM-SHA384", "ECDHE-ECDSA-CHACHA20-POLY1305"]) {
    it(`accepts TLS 1.2 with the AEAD suite ${cipher}`, async () => {
      const r = await sClient(gateway.port, ["-tls1_2", "-cipher", cipher, "-alpn", "h2"]);
      assert.deepEqual(negotiated(r.out), { protocol: "TLSv1.2", cipher, alpn: "h2" }, r.out);
    });
  }

  // RFC 9113 Appendix A: CBC, SHA-1 MACs, static RSA key exchange are all prohibited with h2.
  for (const cipher of [
    "ECDHE-ECDSA-AES128-SHA",
    "ECDHE-ECDSA-AES256-SHA384",
    "ECDHE-ECDSA-AES128-SHA256",
    "AES128-GCM-SHA256",
    "AES256-SHA",
  ]) {
    it(`refuses TLS 1.2 with the prohibited suite ${cipher}`, async () => {
      const r = await sClient(gateway.port, ["-tls1_2", "-cipher", `${cipher}@SECLEVEL=0`, "-alpn", "h2"]);
      assert.notEqual(r.code, 0, r.out);
      assert.match(r.out, /handshake failure|no cipher|alert/i);
      assert.equal(negotiated(r.out).alpn, "");
    });
  }

  for (const version of ["-tls1_1", "-tls1"]) {
    it(`refuses ${version.slice(1)}`, async () => {
      const r = await sClient(gateway.port, [version, "-cipher", "DEFAULT@SECLEVEL=0"]);
      assert.notEqual(r.code, 0, r.out);
      assert.equal(negotiated(r.out).alpn, "");
    });
  }

  it("refuses renegotiation, frees the socket when the client leaves, and still shuts down at once", async () => {
    const own = await gatewayWith({});
    const before = own.connections;
    for (let i = 0; i < 3; i++) {
      const r = await sClient(own.port, ["-tls1_2", "-alpn", "h2"], { input: "R\n", holdMs: 500 });
      assert.equal(negotiated(r.out).protocol, "TLSv1.2", r.out);
      // The server ends the connection instead of renegotiating: no second handshake is verified.
      const [, afterwards = ""] = r.out.split("RENEGOTIATING");
      assert.doesNotMatch(afterwards, /verify return:1/, r.out);
      assert.notEqual(r.code, 0, r.out);
    }
    await until("every socket is freed", () => own.connections === before);
    await own.close(60_000);
    assert.equal(own.connections, 0);
  });
});

describe("the gateway's timeouts", () => {
  it("closes a TCP connection that never sends a ClientHello after the handshake timeout", async () => {
    const gateway = await gatewayWith({ handshakeTimeoutMs: 300 });
    try {
      const socket = netConnect(gateway.port, "127.0.0.1");
      socket.on("error", () => undefined);
      await closed(socket);
      assert.equal(socket.bytesRead, 0);
      await until("the socket is freed", () => gateway.connections === 0);
    } finally {
      await gateway.close(1000);
    }
  });

  it("closes a connection that sends no request after the headers timeout, with GOAWAY", async () => {
    const gateway = await gatewayWith({ headersTimeoutMs: 300 });
    try {
      const s = await h2Session(gateway);
      s.on("error", () => undefined);
      const goaway = goawayCode(s);
      await closed(s);
      assert.equal(goaway(), h2.NGHTTP2_NO_ERROR);
    } finally {
      await gateway.close(1000);
    }
  });

  it("closes an idle connection after its last request, with GOAWAY", async () => {
    const gateway = await gatewayWith({ idleTimeoutMs: 400 });
    try {
      const s = await h2Session(gateway);
      s.on("error", () => undefined);
      const goaway = goawayCode(s);
      const status = await new Promise<number>((resolve, reject) => {
        const req = s.request({ ":method": "POST", ":path": "/solo.v1.KernelService/Health", "content-type": "application/json" });
        req.on("response", (h) => resolve(Number(h[":status"])));
        req.on("error", reject);
        req.resume();
        req.end("{}");
      });
      assert.equal(status, 200);
      await closed(s);
      assert.equal(goaway(), h2.NGHTTP2_NO_ERROR);
    } finally {
      await gateway.close(1000);
    }
  });

  it("resets a request whose body arrives slower than the minimum rate, while other clients are served", async () => {
    const gateway = await gatewayWith({ bodyMinBytesPerSecond: 1000, bodyWindowMs: 300 });
    const s = await h2Session(gateway);
    try {
      const goaway = goawayCode(s);
      s.on("error", () => undefined);
      // 20 streams, each dribbling one byte every 50 ms (20 bytes/s).
      const streams = Array.from({ length: 20 }, () => {
        const req = s.request({
          ":method": "POST",
          ":path": "/solo.v1.KernelService/Deploy",
          "content-type": "application/json",
          authorization: `Bearer ${token}`,
        });
        req.on("error", () => undefined);
        const drip = setInterval(() => {
          if (!req.closed) req.write("{");
        }, 50);
        return new Promise<number>((resolve) =>
          req.once("close", () => {
            clearInterval(drip);
            resolve(req.rstCode ?? -1);
          }),
        );
      });
      assert.equal(await health(gateway), 200);
      assert.deepEqual(new Set(await Promise.all(streams)), new Set([h2.NGHTTP2_CANCEL]));
      // Its connection was sent GOAWAY (its client goes on over a new one).
      assert.equal(goaway(), h2.NGHTTP2_NO_ERROR);
      assert.equal(await health(gateway), 200);
    } finally {
      s.close();
      await gateway.close(1000);
    }
  });

  /** Feeds a request's body at a good rate (10 KiB/s) until the edge resets it; its reset code. */
  async function feedUntilReset(path: string, contentType: string): Promise<number | undefined> {
    const gateway = await gatewayWith({ requestTimeoutMs: 1000, bodyWindowMs: 200, bodyMinBytesPerSecond: 100 });
    const s = await h2Session(gateway);
    try {
      const req = s.request({ ":method": "POST", ":path": path, "content-type": contentType, authorization: `Bearer ${token}` });
      req.on("error", () => undefined);
      const feed = setInterval(() => {
        if (!req.closed) req.write(" ".repeat(200));
      }, 20);
      await closed(req);
      clearInterval(feed);
      return req.rstCode;
    } finally {
      s.close();
      await gateway.close(1000);
    }
  }

  it("resets a request that outlives the request timeout even at a good rate", async () => {
    assert.equal(await feedUntilReset("/solo.v1.KernelService/Deploy", "application/json"), h2.NGHTTP2_CANCEL);
    assert.ok(closures.includes("request_timeout"), closures.join());
  });

  it("holds a stream (FollowEvents) to the request timeout until its request has arrived", async () => {
    assert.equal(await feedUntilReset("/solo.v1.KernelService/FollowEvents", "application/connect+json"), h2.NGHTTP2_CANCEL);
  });
});

describe("the gateway's caps", () => {
  it("at the cap for one address, closes its oldest idle connection to admit a new one, and refuses one only when all are busy", async () => {
    const gateway = await gatewayWith({ maxConnectionsPerAddress: 3 });
    const sessions: ClientHttp2Session[] = [];
    const tryConnect = (): Promise<string> =>
      new Promise<string>((resolve) => {
        const t = tlsConnect({
          port: gateway.port,
          host: "127.0.0.1",
          ca: ca.certPem,
          cert: client.certPem,
          key: client.keyPem,
          servername: "localhost",
        });
        t.once("secureConnect", () => {
          t.destroy();
          resolve("connected");
        });
        t.once("error", (err: NodeJS.ErrnoException) => resolve(err.code ?? err.message));
        t.once("close", () => resolve("closed"));
      });
    try {
      for (let i = 0; i < 3; i++) sessions.push(await h2Session(gateway));
      // Each connection busy: a request whose body is still coming, then an answered one behind it
      // (frames on one connection are handled in order, so the first is open by then).
      const held = sessions.map((s) => {
        const req = s.request({ ":method": "POST", ":path": "/solo.v1.KernelService/Deploy", "content-type": "application/json" });
        req.on("error", () => undefined);
        req.write(" ");
        return req;
      });
      for (const s of sessions) {
        await new Promise<void>((resolve, reject) => {
          const req = s.request({
            ":method": "POST",
            ":path": "/solo.v1.KernelService/Health",
            "content-type": "application/json",
            authorization: `Bearer ${token}`,
          });
          req.on("response", () => resolve());
          req.on("error", reject);
          req.resume();
          req.end("{}");
        });
      }
      assert.notEqual(await tryConnect(), "connected", "every connection is busy: the new one is refused");
      // The first connection's request ends: it is idle now, and the next connection takes its place.
      const first = sessions.shift() as ClientHttp2Session;
      const firstGone = closed(first);
      (held[0] as ReturnType<ClientHttp2Session["request"]>).close();
      await until("the first connection's requests are done", () => (held[0] as { closed: boolean }).closed);
      assert.equal(await health(gateway), 200);
      await firstGone;
      // The busy ones were kept.
      for (const s of sessions) assert.equal(s.closed || s.destroyed, false);
    } finally {
      for (const s of sessions) s.destroy();
      await gateway.close(1000);
    }
  });

  it("resets a request whose body would take its address over the bytes it may have held", async () => {
    const gateway = await gatewayWith({ maxBodyBytesPerClient: 64 * 1024 });
    const s = await h2Session(gateway);
    try {
      // Three unfinished 30 KiB bodies: the third goes over 64 KiB and is reset, the others are held.
      const open = (): ReturnType<ClientHttp2Session["request"]> => {
        const req = s.request({ ":method": "POST", ":path": "/solo.v1.KernelService/Deploy", "content-type": "application/json" });
        req.on("error", () => undefined);
        req.write(" ".repeat(30 * 1024));
        return req;
      };
      const first = open();
      const second = open();
      await until("the first two bodies are held", () => first.bufferSize === 0 && second.bufferSize === 0);
      const third = open();
      await closed(third);
      assert.equal(third.rstCode, h2.NGHTTP2_CANCEL);
      assert.ok(closures.includes("body_bytes"), closures.join());
      assert.deepEqual([first.closed, second.closed], [false, false]);
      // Answered or gone, a request lets its bytes go: there is room again.
      first.close(h2.NGHTTP2_CANCEL);
      await closed(first);
      // The reset's connection was sent GOAWAY: what it had open goes on, new requests go on a new one.
      assert.equal(second.closed, false);
      const again = await h2Session(gateway);
      const fourth = again.request({ ":method": "POST", ":path": "/solo.v1.KernelService/Deploy", "content-type": "application/json" });
      fourth.write(" ".repeat(30 * 1024));
      fourth.end("{}");
      const status = await new Promise<number>((resolve) => fourth.on("response", (h) => resolve(Number(h[":status"]))));
      assert.equal(status, 400);
      second.close(h2.NGHTTP2_CANCEL);
      again.close();
    } finally {
      s.close();
      await gateway.close(1000);
    }
  });

  it("tells each connection how many requests it may hold open at once", async () => {
    const gateway = await gatewayWith({ maxStreamsPerConnection: 7 });
    const s = await h2Session(gateway);
    try {
      if (!s.remoteSettings.maxConcurrentStreams || s.remoteSettings.maxConcurrentStreams > 7) {
        await new Promise((resolve) => s.once("remoteSettings", resolve));
      }
      assert.equal(s.remoteSettings.maxConcurrentStreams, 7);
    } finally {
      s.close();
      await gateway.close(1000);
    }
  });

  it("refuses a limit out of range, naming it", () => {
    assert.throws(
      () => connectionLimits({ idleTimeoutMs: 5 }),
      (err: Error & { reason?: string; details?: { field?: string } }) =>
        err.reason === "SOLO_ERR_KERNEL_OPTIONS_INVALID" && err.details?.field === "idleTimeoutMs",
    );
    assert.throws(() => connectionLimits({ bogus: 1 } as never), /unknown connection limit "bogus"/);
    // A name every object inherits is not a limit either.
    assert.throws(() => connectionLimits({ constructor: 1 } as never), /unknown connection limit "constructor"/);
  });
});

describe("the gateway's shutdown", () => {
  it("frees every socket after the grace, whatever state clients left them in", async () => {
    const gateway = await gatewayWith({});
    const sockets: Socket[] = [];
    // One that never says hello, one mid-request that never finishes, one idle h2 session.
    const silent = netConnect(gateway.port, "127.0.0.1");
    silent.on("error", () => undefined);
    sockets.push(silent);
    const s = await h2Session(gateway);
    s.on("error", () => undefined);
    const req = s.request({ ":method": "POST", ":path": "/solo.v1.KernelService/Deploy", "content-type": "application/json" });
    req.on("error", () => undefined);
    req.write("{");
    const idle = await h2Session(gateway);
    idle.on("error", () => undefined);
    await until("all three are connected", () => gateway.connections >= 3);
    await gateway.close(300);
    await Promise.all([closed(silent), closed(s), closed(idle)]);
    assert.equal(gateway.connections, 0);
  });
});

describe("the gateway's throttle", () => {
  it("holds and refuses a requester that keeps being denied, in its protocol, and only that requester", async () => {
    const gateway = await gatewayWith({ denialBurst: 3, denialsPerSecond: 1 });
    const other = await issueCert(ca, { commonName: "other-machine", usage: "client" });
    const clientOf = (cert: CertAndKey, protocol: "connect" | "grpc", bearer?: string) =>
      createClient(
        KernelService,
        gatewayTransport({
          url: gateway.url,
          ca: ca.certPem,
          cert: cert.certPem,
          key: cert.keyPem,
          protocol,
          ...(bearer ? { token: bearer } : {}),
        }),
      );
    try {
      const anonymous = clientOf(client, "connect");
      const call = () => anonymous.list({ tenant: "acme" });
      for (let i = 0; i < 3; i++) assert.equal(reasonOf(await failure(call())), "SOLO_ERR_TOKEN_MISSING");
      // The bucket is empty: requests now wait and are refused at the edge, in each protocol, even
      // one with a good token (it is the requester that is slowed).
      const follow = async (protocol: "connect" | "grpc"): Promise<ConnectError> => {
        try {
          for await (const _ of clientOf(client, protocol).followEvents({})) assert.fail("a throttled stream yields nothing");
        } catch (err) {
          assert.ok(err instanceof ConnectError, String(err));
          return err;
        }
        assert.fail("the stream ended without an error");
      };
      const [held, viaGrpc, withToken, connectStream, grpcStream] = await Promise.all([
        failure(call()),
        failure(clientOf(client, "grpc").list({ tenant: "acme" })),
        failure(clientOf(client, "connect", token).list({ tenant: "acme" })),
        follow("connect"),
        follow("grpc"),
      ]);
      for (const e of [held, viaGrpc, withToken, connectStream, grpcStream]) {
        assert.deepEqual([e.code, reasonOf(e)], [Code.ResourceExhausted, "SOLO_ERR_REQUESTER_THROTTLED"], e.message);
      }
      // ...while another certificate from the same address is served at once.
      assert.deepEqual((await clientOf(other, "connect", token).list({ tenant: "acme" })).services, []);
    } finally {
      await gateway.close(1000);
    }
  });
});

async function failure(p: Promise<unknown>): Promise<ConnectError> {
  try {
    await p;
  } catch (err) {
    assert.ok(err instanceof ConnectError, String(err));
    return err;
  }
  assert.fail("expected the call to fail");
}

function reasonOf(err: ConnectError): string {
  return err.findDetails(ErrorDetailSchema)[0]?.reason ?? "";
}

describe("the gateway's throttle under concurrent floods", () => {
  it("lets a throttled requester's waves reach the kernel only as fast as its bucket refills", async () => {
    const gateway = await gatewayWith({ denialBurst: 3, denialsPerSecond: 1 });
    try {
      const anonymous = createClient(
        KernelService,
        gatewayTransport({ url: gateway.url, ca: ca.certPem, cert: client.certPem, key: client.keyPem, protocol: "grpc" }),
      );
      const wave = async (): Promise<Map<string, number>> => {
        const reasons = await Promise.all(
          Array.from({ length: 100 }, async () => reasonOf(await failure(anonymous.list({ tenant: "acme" })))),
        );
        const m = new Map<string, number>();
        for (const r of reasons) m.set(r, (m.get(r) ?? 0) + 1);
        return m;
      };
      // A requester never denied before is not held back: its first wave reaches the kernel.
      assert.equal((await wave()).get("SOLO_ERR_TOKEN_MISSING"), 100);
      // From then on each request is charged a token as it comes in: the next waves are held.
      for (let i = 0; i < 2; i++) {
        const next = await wave();
        assert.ok((next.get("SOLO_ERR_TOKEN_MISSING") ?? 0) <= 3, JSON.stringify([...next]));
        assert.ok((next.get("SOLO_ERR_REQUESTER_THROTTLED") ?? 0) >= 97, JSON.stringify([...next]));
      }
    } finally {
      await gateway.close(1000);
    }
  });
});
