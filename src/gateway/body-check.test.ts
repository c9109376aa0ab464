import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { type ClientHttp2Session, connect as http2Connect } from "node:http2";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { brotliCompressSync, gzipSync } from "node:zlib";
import { create, fromBinary, toBinary } from "@bufbuild/protobuf";
import { CallRequestSchema, ErrorDetailSchema, PutSecretRequestSchema } from "../gen/solo/v1/solo_pb.js";
import { type Kernel, openKernel } from "../index.ts";
import { type CertAndKey, createCa, issueCert } from "../tls/certs.ts";
import { envelope } from "./body-check.ts";
import { type Gateway, startGateway } from "./server.ts";

let dir: string;
let kernel: Kernel;
let gateway: Gateway;
let ca: CertAndKey;
let client: CertAndKey;
let token: string;
let session: ClientHttp2Session;

const ECHO = "export default { handleCall(r, s) { return { reply: r ?? null, state: s } } }";
const CALL = "/solo.v1.KernelService/Call";
const DEPLOY = "/solo.v1.KernelService/Deploy";
const PUT_SECRET = "/solo.v1.SecretService/Put";

before(async () => {
  dir = mkdtempSync(join(tmpdir(), "solo-body-"));
  kernel = await openKernel({ dataDir: dir, schedulers: 1 });
  ca = await createCa({ commonName: "solo body test ca" });
  const server = await issueCert(ca, { commonName: "localhost", dnsNames: ["localhost"], ips: ["127.0.0.1"], usage: "server" });
  client = await issueCert(ca, { commonName: "body-client", usage: "client" });
  gateway = await startGateway(kernel, { port: 0, tls: { cert: server.certPem, key: server.keyPem, ca: ca.certPem }, mcp: false });
  token = (await kernel.tokens.grant({ tenant: null, permissions: ["*"] })).token;
  await kernel.tenants.create("acme");
  await kernel.deploy({ tenant: "acme", service: "echo", code: ECHO });
  session = http2Connect(gateway.url, { ca: ca.certPem, cert: client.certPem, key: client.keyPem });
});

after(async () => {
  session?.close();
  await gateway?.close(1000);
  await kernel?.close();
  rmSync(dir, { recursive: true, force: true });
});

interface Answer {
  status: number;
  headers: Record<string, unknown>;
  trailers: Record<string, unknown>;
  body: Buffer;
}

function post(path: string, body: Uint8Array, contentType: string, headers: Record<string, string> = {}): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const req = session.request({
      ":method": "POST",
      ":path": path,
      "content-type": contentType,
      authorization: `Bearer ${token}`,
      ...headers,
    });
    const chunks: Buffer[] = [];
    let head: Record<string, unknown> = {};
    let trailers: Record<string, unknown> = {};
    req.on("response", (h) => {
      head = h;
    });
    req.on("trailers", (t) => {
      trailers = t;
    });
    req.on("data", (c: Buffer) => chunks.push(c));
    req.on("end", () => resolve({ status: Number(head[":status"]), headers: head, trailers, body: Buffer.concat(chunks) }));
    req.on("error", reject);
    req.end(body);
  });
}

/** The code, reason and field of a Connect (unary) error answer. */
function connectError(a: Answer): { code: string; reason: string; field: string; message: string } {
  const e = JSON.parse(a.body.toString("utf8")) as {
    code: string;
    message: string;
    details?: Array<{ debug?: { reason: string; field?: string } }>;
  };
  const debug = e.details?.[0]?.debug;
  return { code: e.code, reason: debug?.reason ?? "", field: debug?.field ?? "", message: e.message };
}

/** The same of a gRPC answer (status in the trailers, or in the headers for a trailers-only answer). */
function grpcError(a: Answer): { status: string; reason: string; field: string } {
  const t = a.trailers["grpc-status"] !== undefined ? a.trailers : a.headers;
  const bin = String(t["grpc-status-details-bin"] ?? "");
  let reason = "";
  let field = "";
  if (bin !== "") {
    // google.rpc.Status { code = 1; message = 2; details = 3 (Any: type_url = 1, value = 2) }
    const status = Buffer.from(bin, "base64");
    const any = lengthDelimited(status, 3);
    const detail = any ? lengthDelimited(any, 2) : undefined;
    if (detail) {
      const d = fromBinary(ErrorDetailSchema, detail);
      reason = d.reason;
      field = d.field;
    }
  }
  return { status: String(t["grpc-status"]), reason, field };
}

// The first length-delimited field `no` of a protobuf message (enough to read google.rpc.Status).
function lengthDelimited(b: Buffer, no: number): Buffer | undefined {
  let at = 0;
  while (at < b.length) {
    let key = 0;
    let shift = 0;
    for (;;) {
      const x = b[at++] as number;
      key |= (x & 0x7f) << shift;
      shift += 7;
      if (x < 0x80) break;
    }
    const wire = key & 7;
    if (wire === 0) {
      while ((b[at++] as number) >= 0x80);
      continue;
    }
    if (wire !== 2) return undefined;
    let len = 0;
    shift = 0;
    for (;;) {
      const x = b[at++] as number;
      len |= (x & 0x7f) << shift;
      shift += 7;
      if (x < 0x80) break;
    }
    if (key >>> 3 === no) return b.subarray(at, at + len);
    at += len;
  }
  return undefined;
}

function json(text: string, ...bad: number[][]): Buffer {
  // `text` with `\u0000` marking where each run of raw bytes goes.
  const parts = text.split("\u0000");
  const out: Buffer[] = [];
  parts.forEach((p, i) => {
    out.push(Buffer.from(p, "utf8"));
    if (i < parts.length - 1) out.push(Buffer.from(bad[i] ?? []));
  });
  return Buffer.concat(out);
}

/** A CallRequest to acme/<service> in binary, with the service name's last byte replaced. */
function binaryCall(service: string, lastByte?: number): Buffer {
  const b = Buffer.from(toBinary(CallRequestSchema, create(CallRequestSchema, { ref: { tenant: "acme", service } })));
  if (lastByte !== undefined) b[b.indexOf(Buffer.from(service)) + service.length - 1] = lastByte;
  return b;
}

async function secretNames(): Promise<string[]> {
  return (await kernel.secrets.list("acme")).map((s) => s.name);
}

describe("bad input at the gateway", () => {
  describe("JSON", () => {
    it("refuses invalid UTF-8 inside a call's request as invalid_argument naming the field", async () => {
      const a = await post(
        CALL,
        json('{"ref":{"tenant":"acme","service":"echo"},"request":{"text":"caf\u0000"}}', [0xc3, 0x28]),
        "application/json",
      );
      assert.equal(a.status, 400);
      const e = connectError(a);
      assert.deepEqual([e.code, e.reason, e.field], ["invalid_argument", "SOLO_ERR_REQUEST_INVALID", "request.text"]);
      assert.match(e.message, /not valid UTF-8/);
    });

    it("refuses invalid UTF-8 in a secret's value and stores nothing", async () => {
      const a = await post(PUT_SECRET, json('{"tenant":"acme","name":"BAD","value":"x\u0000y"}', [0xff]), "application/json");
      assert.deepEqual([a.status, connectError(a).field], [400, "value"]);
      assert.ok(!(await secretNames()).includes("BAD"));
      // A lone surrogate half encoded as UTF-8 (CESU) is invalid too.
      const b = await post(PUT_SECRET, json('{"tenant":"acme","name":"BAD","value":"\u0000"}', [0xed, 0xa0, 0x80]), "application/json");
      assert.deepEqual([b.status, connectError(b).field], [400, "value"]);
      assert.ok(!(await secretNames()).includes("BAD"));
    });

    it("refuses an escaped lone surrogate, which no UTF-8 can hold, naming the field", async () => {
      const a = await post(
        CALL,
        Buffer.from('{"ref":{"tenant":"acme","service":"echo"},"request":{"t":["ok","x\\udfff"]}}'),
        "application/json",
      );
      const e = connectError(a);
      assert.deepEqual([a.status, e.reason, e.field], [400, "SOLO_ERR_REQUEST_INVALID", "request.t[1]"]);
      // A pair is a character like any other.
      const ok = await post(CALL, Buffer.from('{"ref":{"tenant":"acme","service":"echo"},"request":"\\ud83d\\ude00"}'), "application/json");
      assert.deepEqual([ok.status, JSON.parse(ok.body.toString())], [200, { reply: "\u{1F600}" }]);
    });

    it("refuses a compressed body that is cut short as invalid_argument, not internal", async () => {
      const whole = gzipSync(Buffer.from('{"ref":{"tenant":"acme","service":"echo"},"request":"hi"}'));
      const a = await post(CALL, whole.subarray(0, whole.length - 6), "application/json", { "content-encoding": "gzip" });
      const e = connectError(a);
      assert.deepEqual([a.status, e.code, e.reason], [400, "invalid_argument", "SOLO_ERR_REQUEST_INVALID"], e.message);
      const g = await post(CALL, envelope(1, gzipSync(binaryCall("echo")).subarray(0, 12)), "application/grpc", {
        te: "trailers",
        "grpc-encoding": "gzip",
      });
      assert.equal(grpcError(g).status, "3");
    });

    it("says at which byte when the invalid UTF-8 is outside any string", async () => {
      const a = await post(CALL, json('{"ref":{"tenant":"acme","service":"echo"}\u0000}', [0xfe]), "application/json");
      const e = connectError(a);
      assert.deepEqual([e.code, e.reason], ["invalid_argument", "SOLO_ERR_REQUEST_INVALID"]);
      assert.match(e.message, /byte 41/);
    });

    it("refuses a number JSON cannot hold (1e400) in a request, in args and in an integer field, naming each", async () => {
      for (const [path, body, field] of [
        [CALL, '{"ref":{"tenant":"acme","service":"echo"},"request":1e400}', "request"],
        [CALL, '{"ref":{"tenant":"acme","service":"echo"},"request":{"n":[1,-1e999]}}', "request"],
        [CALL, '{"ref":{"tenant":"acme","service":"echo"},"timeoutMs":1e400}', "timeout_ms"],
        [DEPLOY, '{"ref":{"tenant":"acme","service":"nan"},"code":"export default {}","args":{"a":1e400}}', "args"],
      ] as const) {
        const a = await post(path, Buffer.from(body), "application/json");
        const e = connectError(a);
        assert.deepEqual([a.status, e.code, e.reason, e.field], [400, "invalid_argument", "SOLO_ERR_REQUEST_INVALID", field], body);
      }
      assert.ok(!kernel.list("acme").some((s) => s.service === "nan"));
    });

    it("refuses a misspelled field on a deploy instead of running with the defaults", async () => {
      const a = await post(
        DEPLOY,
        Buffer.from('{"ref":{"tenant":"acme","service":"typo"},"code":"export default {}","grantz":{"call":["x"]}}'),
        "application/json",
      );
      const e = connectError(a);
      assert.deepEqual([e.code, e.reason, e.field], ["invalid_argument", "SOLO_ERR_REQUEST_INVALID", "grantz"]);
      assert.ok(!kernel.list("acme").some((s) => s.service === "typo"));
    });

    it("refuses 100,000 unknown fields at the first, and stays up", async () => {
      const fields = Array.from({ length: 100_000 }, (_, i) => `"f${i}":1`).join(",");
      const a = await post(CALL, Buffer.from(`{"ref":{"tenant":"acme","service":"echo"},${fields}}`), "application/json");
      assert.deepEqual([connectError(a).code, connectError(a).field], ["invalid_argument", "f0"]);
      const ok = await post(CALL, Buffer.from('{"ref":{"tenant":"acme","service":"echo"},"request":"hi"}'), "application/json");
      assert.deepEqual([ok.status, JSON.parse(ok.body.toString())], [200, { reply: "hi" }]);
    });
  });

  describe("binary", () => {
    it("refuses invalid UTF-8 in a string field as invalid_argument naming it, over Connect, gRPC and gRPC-Web", async () => {
      const bad = binaryCall("echo", 0xff);
      const c = await post(CALL, bad, "application/proto");
      assert.equal(c.status, 400);
      assert.deepEqual([connectError(c).reason, connectError(c).field], ["SOLO_ERR_REQUEST_INVALID", "ref.service"]);
      for (const ct of ["application/grpc", "application/grpc-web+proto"]) {
        const g = await post(CALL, envelope(0, bad), ct, ct.startsWith("application/grpc-web") ? {} : { te: "trailers" });
        if (ct === "application/grpc")
          assert.deepEqual(grpcError(g), { status: "3", reason: "SOLO_ERR_REQUEST_INVALID", field: "ref.service" });
        else assert.match(g.body.toString("latin1"), /grpc-status:\s*3/);
      }
    });

    it("refuses a secret value with invalid UTF-8 in binary and stores nothing", async () => {
      const msg = Buffer.from(
        toBinary(PutSecretRequestSchema, create(PutSecretRequestSchema, { tenant: "acme", name: "BIN", value: "okay" })),
      );
      msg[msg.indexOf(Buffer.from("okay")) + 1] = 0xc0;
      const a = await post(PUT_SECRET, msg, "application/proto");
      assert.deepEqual([a.status, connectError(a).field], [400, "value"]);
      assert.ok(!(await secretNames()).includes("BIN"));
    });

    it("refuses a body that is not a protobuf message as invalid_argument, not internal", async () => {
      for (const body of [
        Buffer.from([0xff, 0xff, 0xff, 0xff, 0x0f]),
        Buffer.from([0x0a, 0x50, 0x01]),
        Buffer.from("{not protobuf at all}"),
      ]) {
        const a = await post(CALL, body, "application/proto");
        const e = connectError(a);
        assert.deepEqual([a.status, e.code, e.reason], [400, "invalid_argument", "SOLO_ERR_REQUEST_INVALID"], e.message);
        const g = await post(CALL, envelope(0, body), "application/grpc", { te: "trailers" });
        assert.equal(grpcError(g).status, "3");
      }
    });

    it("checks a compressed body after decompressing it", async () => {
      const a = await post(CALL, envelope(1, gzipSync(binaryCall("echo", 0xfe))), "application/grpc", {
        te: "trailers",
        "grpc-encoding": "gzip",
      });
      assert.deepEqual(grpcError(a), { status: "3", reason: "SOLO_ERR_REQUEST_INVALID", field: "ref.service" });
      const ok = await post(CALL, envelope(1, gzipSync(binaryCall("echo"))), "application/grpc", {
        te: "trailers",
        "grpc-encoding": "gzip",
      });
      assert.equal(ok.trailers["grpc-status"], "0");
    });

    it("reads only the first message of a body, so many compressed envelopes cost no more than one", async () => {
      // 20 envelopes of 30 MiB of zeros each, brotli-compressed to a few dozen bytes apiece.
      const bomb = brotliCompressSync(Buffer.alloc(30 * 1024 * 1024));
      const body = Buffer.concat(Array.from({ length: 20 }, () => envelope(1, bomb)));
      assert.ok(body.length < 4096);
      const a = await post("/solo.v1.KernelService/Health", body, "application/grpc", { te: "trailers", "grpc-encoding": "br" });
      // Refused (it is not one Health request), and the gateway goes on serving.
      assert.notEqual(grpcError(a).status, "0");
      const ok = await post(CALL, binaryCall("echo"), "application/proto");
      assert.equal(ok.status, 200);
    });

    it("refuses a field number the schema does not have", async () => {
      const withUnknown = Buffer.concat([binaryCall("echo"), Buffer.from([0xf8, 0x06, 0x01])]);
      const a = await post(CALL, withUnknown, "application/proto");
      const e = connectError(a);
      assert.deepEqual([e.code, e.field], ["invalid_argument", "#111"]);
      assert.match(e.message, /field number 111 is not a field of solo\.v1\.CallRequest/);
    });

    it("passes a good binary body on unchanged", async () => {
      const a = await post(CALL, binaryCall("echo"), "application/proto");
      assert.equal(a.status, 200);
    });
  });
});
