/**
 * The host half of the standard web APIs, driven with requests as the codec decodes them: what a
 * well-formed request answers, and that a malformed or oversized one is refused with a SoloError,
 * never worked on and never a crash of the host. (std-apis.test.ts drives both halves through a
 * real kernel.)
 */
import assert from "node:assert/strict";
import { createHash, createHmac } from "node:crypto";
import { describe, it } from "node:test";
import type { ServiceLimits } from "../../api/limits.ts";
import { SoloError } from "../../lib/errors/errors.ts";
import { decodeHostRequest, type HostRequest } from "../../sandbox/contract.ts";
import { stdCall } from "./std-host.ts";

const KiB = 1024;
const LIMITS: ServiceLimits = {
  memoryBytes: 4 * KiB * KiB,
  stackBytes: 256 * KiB,
  cpuMsPerMessage: 100,
  messageBytes: KiB,
  stateBytes: KiB,
  timers: 10,
  storageBytes: KiB,
  storageKeys: 10,
  mailbox: 10,
};

type Std = Extract<HostRequest, { readonly op: "std" }>;

/** The request the guest's `host("std", fn + "\n" + arg, bytes)` becomes. */
function request(fn: string, arg: string, bytes?: Uint8Array): Std {
  const req = decodeHostRequest("std", `${fn}\n${arg}`, bytes);
  assert.equal(req.op, "std");
  return req as Std;
}

function call(fn: string, arg: string, bytes?: Uint8Array): string | Uint8Array {
  return stdCall(request(fn, arg, bytes), LIMITS);
}

function refusal(f: () => unknown): SoloError {
  try {
    f();
  } catch (err) {
    assert.ok(err instanceof SoloError, `expected a SoloError, got ${String(err)}`);
    return err;
  }
  return assert.fail("expected a refusal");
}

describe("the standard APIs' host half", () => {
  it("answers values as =<json>, web errors as !<json>, and bytes as bytes", () => {
    const u = new URL("b?c", "https://a.example/x/y");
    assert.equal(
      call("url", JSON.stringify(["b?c", "https://a.example/x/y"])),
      `=${JSON.stringify([u.href, u.origin, u.protocol, u.username, u.password, u.host, u.hostname, u.port, u.pathname, u.search, u.hash])}`,
    );
    assert.equal(call("url", JSON.stringify(["not a url", null])), "=null");
    assert.equal(call("btoa", JSON.stringify("\u0000\u00ff")), '="AP8="');
    assert.deepEqual(JSON.parse((call("atob", JSON.stringify("a")) as string).slice(1)), {
      name: "InvalidCharacterError",
      message: "atob: the data is not valid base64 (The string to be decoded is not correctly encoded.)",
    });
    assert.equal(call("qsString", JSON.stringify(["a b", "ü", "", "&"])), '="a+b=%C3%BC&=%26"');
    assert.equal(call("qsParse", JSON.stringify("x=1&y")), '=["x","1","y",""]');
    assert.equal(call("encode", JSON.stringify("")), '=""');
    assert.deepEqual([...(call("encode", JSON.stringify("é\u0000")) as Uint8Array)], [0xc3, 0xa9, 0]);
    const data = new TextEncoder().encode("abc");
    assert.equal(
      Buffer.from(call("digest", "SHA-256", data) as Uint8Array).toString("hex"),
      createHash("sha256").update(data).digest("hex"),
    );
    const key = new TextEncoder().encode("key");
    const mac = createHmac("sha384", key).update(data).digest();
    assert.deepEqual(Buffer.from(call("sign", "SHA-384\n3", Buffer.concat([key, data])) as Uint8Array), mac);
    assert.equal(call("verify", `SHA-384\n3\n${mac.length}`, Buffer.concat([key, mac, data])), "=true");
    assert.equal(call("verify", `SHA-384\n3\n${mac.length - 1}`, Buffer.concat([key, mac.subarray(1), data])), "=false");
    assert.equal((call("random", "16") as Uint8Array).length, 16);
    assert.match(call("uuid", "") as string, /^="[0-9a-f-]{36}"$/);
  });

  it("refuses a function the codec does not know, before any work", () => {
    const err = refusal(() => decodeHostRequest("std", "eval\n1"));
    assert.equal(err.reason, "SOLO_ERR_INTERNAL");
    assert.match(err.message, /unknown standard API function "eval"/);
  });

  it("refuses malformed requests with a SoloError naming what was wrong, never a crash of the host", () => {
    const cases: Array<[string, string, Uint8Array?]> = [
      ["url", "not json"],
      ["url", JSON.stringify([1, null])],
      ["url", JSON.stringify({ input: "x" })],
      ["urlSet", JSON.stringify(["https://a.example/", "constructor", "x"])],
      ["urlSet", JSON.stringify(["not a url", "href", "x"])],
      ["qsString", JSON.stringify(["odd"])],
      ["qsParse", JSON.stringify(42)],
      ["encode", JSON.stringify(["x"])],
      ["random", "65537"],
      ["random", "-1"],
      ["random", "1.5"],
      ["digest", "MD5", new Uint8Array(1)],
      ["sign", "SHA-256\n99", new Uint8Array(4)],
      ["sign", "SHA-256", new Uint8Array(4)],
      ["verify", "SHA-256\n1\n99", new Uint8Array(4)],
    ];
    for (const [fn, arg, bytes] of cases) {
      const err = refusal(() => call(fn, arg, bytes));
      assert.equal(err.reason, "SOLO_ERR_INTERNAL", `${fn} ${arg}`);
      assert.match(err.message, /^a malformed standard API request: /);
    }
  });

  it("refuses, before any work, an input far beyond what the guest lets through (the message limit)", () => {
    for (const [fn, arg, bytes] of [
      ["digest", "SHA-256", new Uint8Array(2 * KiB + 64 * KiB + 1)],
      ["btoa", JSON.stringify("a".repeat(16 * KiB + 64 * KiB + 1))],
    ] as const) {
      const err = refusal(() => call(fn, arg, bytes));
      assert.equal(err.reason, "SOLO_ERR_VALUE_TOO_LARGE");
      assert.equal(err.details.limit, KiB);
    }
  });
});
