/**
 * The standard web APIs a service has (std-apis.ts, std-host.ts), through a real kernel: each
 * against Node's own results, with hostile inputs, within the message's CPU budget and the
 * service's limits, and beyond the service's reach to replace or to turn against the host.
 */
import assert from "node:assert/strict";
import { createHash, createHmac } from "node:crypto";
import { before, describe, it } from "node:test";
import { crashOf, rejection, until } from "../../test/support/helpers.ts";
import { testKernels } from "../../test/support/kernels.ts";
import type { Kernel, LimitsInput } from "../index.ts";

const kernels = testKernels("std-apis");
const TENANT = "std";
let k: Kernel;
let services = 0;

before(async () => {
  k = await kernels.start(kernels.freshDir(), { supervision: { restart: "temporary" } });
});

/** Helpers every test service has: bytes as hex, and an error as data. */
const HELPERS = `
function hex(b) {
  const u = b instanceof ArrayBuffer ? new Uint8Array(b) : new Uint8Array(b.buffer, b.byteOffset, b.byteLength);
  let s = "";
  for (let i = 0; i < u.length; i++) s += (u[i] < 16 ? "0" : "") + u[i].toString(16);
  return s;
}
function fromHex(h) {
  const u = new Uint8Array(h.length / 2);
  for (let i = 0; i < u.length; i++) u[i] = parseInt(h.slice(i * 2, i * 2 + 2), 16);
  return u;
}
function caught(f) {
  try { f(); return "no error"; } catch (e) { return { name: e.name, message: e.message, code: e.code, isDOMException: e instanceof DOMException }; }
}
async function rejected(p) {
  try { await p; return "no error"; } catch (e) { return { name: e.name, message: e.message, isDOMException: e instanceof DOMException }; }
}
`;

/** A service whose async handleCall answers what `body` returns, with `request` in scope. */
function service(body: string): string {
  return `${HELPERS}
export default {
  init() { return null },
  async handleCall(request, state) {
    const reply = await (async () => {
${body}
    })();
    return { reply, state };
  },
};`;
}

/** Deploys a fresh service running `body` and calls it once. */
async function run(body: string, request: unknown = null, limits?: LimitsInput): Promise<unknown> {
  const name = `s${++services}`;
  await k.deploy({ tenant: TENANT, service: name, code: service(body), ...(limits ? { limits } : {}) });
  return k.call(TENANT, name, request);
}

/** An error as the service described it. */
interface Described {
  readonly name: string;
  readonly message: string;
  readonly isDOMException: boolean;
  readonly code?: number;
}

function hexOf(bytes: Uint8Array): string {
  return Buffer.from(bytes).toString("hex");
}

describe("the standard web APIs in a service", () => {
  it("are the globals QuickJS-ng lacks: URL, URLSearchParams, TextEncoder, TextDecoder, atob, btoa, structuredClone and crypto", async () => {
    const reply = await run(`
      const names = ["URL", "URLSearchParams", "TextEncoder", "TextDecoder", "atob", "btoa", "structuredClone", "crypto", "DOMException"];
      return names.map((n) => n + ":" + typeof globalThis[n]).concat([typeof crypto.getRandomValues, typeof crypto.randomUUID, typeof crypto.subtle.digest]);`);
    assert.deepEqual(reply, [
      ...["URL:function", "URLSearchParams:function", "TextEncoder:function", "TextDecoder:function", "atob:function"],
      ...["btoa:function", "structuredClone:function", "crypto:object", "DOMException:function"],
      ...["function", "function", "function"],
    ]);
  });

  it("work at the module's top level, before any message", async () => {
    const name = `s${++services}`;
    const code = `const ID = crypto.randomUUID();
const BYTES = new TextEncoder().encode("é");
const HOST = new URL("https://example.com/x").host;
export default { handleCall(request, state) { return { reply: [ID.length, Array.from(BYTES), HOST], state } } };`;
    await k.deploy({ tenant: TENANT, service: name, code });
    assert.deepEqual(await k.call(TENANT, name, null), [36, [0xc3, 0xa9], "example.com"]);
  });

  it("cost a service that never uses them only their globals: the implementation is compiled on first use", async () => {
    const idle = `s${++services}`;
    const user = `s${++services}`;
    await k.deploy({ tenant: TENANT, service: idle, code: service("return typeof solo;") });
    await k.deploy({ tenant: TENANT, service: user, code: service("return typeof crypto;") });
    assert.equal(await k.call(TENANT, idle, null), "object");
    assert.equal(await k.call(TENANT, user, null), "object");
    const memory = (s: string): number => k.status(TENANT, s).usage.memoryBytes;
    await until("both services' memory to be sampled", () => memory(idle) > 0 && memory(user) > 0);
    // The implementation holds some 100 KiB of code in a runtime that uses it.
    assert.ok(memory(user) - memory(idle) > 64 * 1024, `${memory(user)} - ${memory(idle)}`);
  });
});

describe("URL", () => {
  const PARTS = ["href", "origin", "protocol", "username", "password", "host", "hostname", "port", "pathname", "search", "hash"] as const;
  const parts = (u: URL): string[] => PARTS.map((p) => u[p]);
  const INPUTS: Array<[string, string?]> = [
    ["HTTP://EXAMPLE.com:80/a/../b/./c?x=1&y#Frag"],
    ["https://user:pa ss@example.com:8443/p%41th?q=a b#h h"],
    ["https://münchen.de/ä?ö=ü#ñ"],
    ["https://xn--mnchen-3ya.de/"],
    ["http://[::1]:8080/"],
    ["http://[0:0:0:0:0:ffff:7f00:1]/"],
    ["http://0x7f.1/"],
    ["file:///C:/dir/../file.txt"],
    ["mailto:someone@example.com?subject=hi"],
    ["javascript:alert(1)"],
    ["blob:https://example.com/uuid"],
    ["  http://example.com/\n\ta\tb  "],
    ["http://example.com/%zz/%41"],
    ["http://example.com/\ud800x"],
    ["http://example.com/a\u0000b?c\u0000#d\u0000"],
    ["../x?y#z", "http://example.com/a/b/c"],
    ["?only", "http://example.com/a/b?old#frag"],
    ["//other.org/p", "https://example.com/"],
    ["#frag", "http://example.com/p?q"],
    ["", "http://example.com/p?q#f"],
    ["non-spec:/.//p"],
    ["http://example.com:65535/"],
    ["wss://example.com:443/"],
  ];

  it("parses as Node's WHATWG URL does, tricky inputs and relative ones against a base included", async () => {
    const reply = await run(
      `return request.map(([input, base]) => {
        const u = base === undefined ? new URL(input) : new URL(input, base);
        return [${PARTS.map((p) => `u.${p}`).join(", ")}, String(u), u.toJSON(), JSON.stringify({ u })];
      });`,
      INPUTS,
    );
    assert.deepEqual(
      reply,
      INPUTS.map(([input, base]) => {
        const u = new URL(input, base);
        return [...parts(u), String(u), u.toJSON(), JSON.stringify({ u })];
      }),
    );
  });

  it("answers what does not parse with a TypeError, URL.canParse false and URL.parse null", async () => {
    const bad: Array<[string, string?]> = [
      ["nope"],
      [""],
      ["http://"],
      ["http://a b/"],
      ["https://[::1"],
      ["http://a:99999/"],
      ["x", "not a base"],
      ["\u0000"],
      ["http://192.168.0.257/"],
    ];
    for (const [input, base] of bad) assert.equal(URL.canParse(input, base), false, input);
    const reply = (await run(
      `return request.map(([input, base]) => [caught(() => new URL(input, base)), URL.canParse(input, base), URL.parse(input, base)]);`,
      bad,
    )) as Array<[Described, boolean, null]>;
    for (const [i, [error, canParse, parsed]] of reply.entries()) {
      assert.equal(error.name, "TypeError");
      assert.match(error.message, /^Invalid URL: ".*" (against the base ".*" )?is not a valid URL$/);
      assert.equal(canParse, false, String(bad[i]?.[0]));
      assert.equal(parsed, null);
    }
    assert.deepEqual(await run(`return [URL.parse("https://a.b/c").href, URL.canParse("c", "https://a.b/")];`), ["https://a.b/c", true]);
  });

  it("changes through its setters as Node's URL does, ignoring values a setter cannot use", async () => {
    const steps: Array<[(typeof PARTS)[number], string]> = [
      ["pathname", "/a b/ü"],
      ["search", "x=1&y=ü"],
      ["hash", "top"],
      ["port", "abc"],
      ["port", "8080"],
      ["host", "example.org:81"],
      ["hostname", "münchen.de"],
      ["username", "u@x"],
      ["password", "p:w"],
      ["protocol", "ftp"],
      ["protocol", "mailto"],
      ["search", ""],
      ["hash", ""],
      ["href", "https://other.example/new?q#h"],
    ];
    const reply = await run(
      `const u = new URL("http://example.com/start");
      return request.map(([field, value]) => { u[field] = value; return [${PARTS.map((p) => `u.${p}`).join(", ")}]; });`,
      steps,
    );
    const u = new URL("http://example.com/start");
    assert.deepEqual(
      reply,
      steps.map(([field, value]) => {
        (u as unknown as Record<string, string>)[field] = value;
        return parts(u);
      }),
    );
  });

  it("refuses an href that does not parse with a TypeError and keeps the URL as it was", async () => {
    const reply = (await run(
      `const u = new URL("https://example.com/a"); const e = caught(() => { u.href = "::nope::"; }); return [e, u.href];`,
    )) as [Described, string];
    assert.equal(reply[0].name, "TypeError");
    assert.match(reply[0].message, /^Invalid URL: "::nope::" is not a valid URL/);
    assert.equal(reply[1], "https://example.com/a");
  });

  it("keeps searchParams and search in step both ways, as Node's URL does", async () => {
    const script = `
      const u = new URL("https://example.com/p?a=1&b=2#h");
      const p = u.searchParams;
      const seen = [p === u.searchParams, u.href];
      p.append("c", "x y");
      seen.push(u.href);
      p.set("a", "ü");
      p.delete("b");
      seen.push(u.href, u.search);
      u.search = "?z=9&z=8";
      seen.push(p.getAll("z"), p.size, p.toString());
      u.href = "https://example.com/q?k=v";
      seen.push(p.get("k"), p.has("z"));
      p.delete("k");
      seen.push(u.href, u.search);
      return seen;`;
    // The same script under Node's own URL: what the sandbox's must agree with, step by step.
    assert.deepEqual(await run(script), new Function(script)());
  });
});

describe("URLSearchParams", () => {
  it("parses and serializes application/x-www-form-urlencoded as Node does", async () => {
    const inputs = ["a=1&b=2&a=3", "?x=%zz&y=+&%E2%82%AC=€&&=v&k=", "a&b=&=c&&", "q=%F0%9F%98%80&bad=%C3", "nul=%00\u0000"];
    const reply = await run(
      `return request.map((s) => { const p = new URLSearchParams(s); return [[...p], p.toString(), p.size]; });`,
      inputs,
    );
    assert.deepEqual(
      reply,
      inputs.map((s) => {
        const p = new URLSearchParams(s);
        return [[...p], p.toString(), p.size];
      }),
    );
  });

  it("takes pairs, records, Maps and another URLSearchParams, and refuses a pair that is not two items", async () => {
    const reply = await run(`
      const fromPairs = new URLSearchParams([["a", "1"], ["b", "ü&="], ["a", "\\ud800"]]);
      const fromRecord = new URLSearchParams({ x: 1, y: null, "z z": "w" });
      const fromMap = new URLSearchParams(new Map([["m", "1"], ["n", "2"]]));
      const copy = new URLSearchParams(fromPairs);
      copy.append("c", "3");
      return [fromPairs.toString(), fromRecord.toString(), fromMap.toString(), copy.toString(), fromPairs.size,
        caught(() => new URLSearchParams([["a", "1", "2"]])), new URLSearchParams(null).toString()];`);
    const copy = new URLSearchParams([
      ["a", "1"],
      ["b", "ü&="],
      ["a", "\ud800"],
    ]);
    const fromPairs = copy.toString();
    copy.append("c", "3");
    assert.deepEqual(reply, [
      fromPairs,
      new URLSearchParams({ x: "1", y: "null", "z z": "w" }).toString(),
      "m=1&n=2",
      copy.toString(),
      3,
      {
        name: "TypeError",
        message: "URLSearchParams: each pair must be a [name, value] of exactly two items",
        isDOMException: false,
      },
      "null=",
    ]);
  });

  it("has get, getAll, has and delete with a value, set, a stable sort, forEach and live iterators as Node's", async () => {
    const reply = await run(`
      const p = new URLSearchParams("b=2&a=1&c=3&a=0&b=1");
      const out = [p.get("a"), p.get("nope"), p.getAll("b"), p.has("a", "0"), p.has("a", "9")];
      p.delete("b", "1");
      out.push(p.toString());
      p.set("a", "x");
      out.push(p.toString());
      p.sort();
      out.push(p.toString(), [...p.keys()], [...p.values()], [...p.entries()]);
      const each = [];
      p.forEach((v, n, self) => each.push(n + "=" + v + ":" + (self === p)));
      out.push(each);
      const it = p[Symbol.iterator]();
      out.push(it.next().value);
      p.append("z", "late");
      out.push([...it].map(([n]) => n), Object.prototype.toString.call(it), it[Symbol.iterator]() === it);
      out.push(p.keys().map((n) => n.toUpperCase()).toArray());
      return out;`);
    const p = new URLSearchParams("b=2&a=1&c=3&a=0&b=1");
    const out: unknown[] = [p.get("a"), p.get("nope"), p.getAll("b"), p.has("a", "0"), p.has("a", "9")];
    p.delete("b", "1");
    out.push(p.toString());
    p.set("a", "x");
    out.push(p.toString());
    p.sort();
    out.push(p.toString(), [...p.keys()], [...p.values()], [...p.entries()]);
    const each: string[] = [];
    p.forEach((v, n, self) => {
      each.push(`${n}=${v}:${self === p}`);
    });
    out.push(each);
    const it = p[Symbol.iterator]();
    out.push(it.next().value);
    p.append("z", "late");
    out.push(
      [...it].map(([n]) => n),
      Object.prototype.toString.call(it),
      true,
    );
    out.push([...p.keys()].map((n) => n.toUpperCase()));
    assert.deepEqual(reply, out);
  });
});

describe("TextEncoder and TextDecoder", () => {
  const STRINGS = ["", "ascii", "é€😀", "a\u0000b", "lone \ud800 high", "lone \udc00 low", "pair \ud83d\ude00", "\ufeffbom"];

  it("encode UTF-8 as Node does: lone surrogates as U+FFFD, NUL characters kept", async () => {
    const reply = await run(
      `const e = new TextEncoder(); return [e.encoding, request.map((s) => hex(e.encode(s))), hex(e.encode())];`,
      STRINGS,
    );
    const e = new TextEncoder();
    assert.deepEqual(reply, ["utf-8", STRINGS.map((s) => hexOf(e.encode(s))), ""]);
  });

  it("encodeInto writes only the whole characters that fit, and says how many it read and wrote", async () => {
    const cases: Array<[string, number]> = [
      ["héllo", 3],
      ["😀😀", 5],
      ["😀😀", 8],
      ["abc", 0],
      ["a\ud800b", 4],
      ["€€", 5],
    ];
    const reply = await run(
      `const e = new TextEncoder();
      return request.map(([s, n]) => { const d = new Uint8Array(n + 2).fill(255); const r = e.encodeInto(s, d.subarray(1, n + 1)); return [r.read, r.written, hex(d)]; });`,
      cases,
    );
    const e = new TextEncoder();
    assert.deepEqual(
      reply,
      cases.map(([s, n]) => {
        const d = new Uint8Array(n + 2).fill(255);
        const r = e.encodeInto(s, d.subarray(1, n + 1));
        return [r.read, r.written, hexOf(d)];
      }),
    );
  });

  const BYTES = ["68c3a9", "ff", "c3", "e282", "f09f98", "eda080", "c0af", "f4908080", "e0808f", "efbbbf61", "efbbbfefbbbf", "61ff62c3"];

  it("decode UTF-8 as Node does: U+FFFD for bad bytes, a TypeError when fatal, and the BOM taken off unless ignoreBOM", async () => {
    const reply = await run(
      `const modes = [{}, { fatal: true }, { ignoreBOM: true }];
      return modes.map((m) => { const d = new TextDecoder("utf-8", m); return [d.fatal, d.ignoreBOM, request.map((h) => { try { return d.decode(fromHex(h)); } catch (e) { return e.name + ": " + e.message; } })]; });`,
      BYTES,
    );
    const modes: TextDecoderOptions[] = [{}, { fatal: true }, { ignoreBOM: true }];
    assert.deepEqual(
      reply,
      modes.map((m) => {
        const d = new TextDecoder("utf-8", m);
        return [
          d.fatal,
          d.ignoreBOM,
          BYTES.map((h) => {
            try {
              return d.decode(Buffer.from(h, "hex"));
            } catch {
              return "TypeError: TextDecoder.decode: the input is not valid UTF-8 (the decoder is fatal: true)";
            }
          }),
        ];
      }),
    );
  });

  it("decode a stream cut at every byte as Node does, a BOM only at its start", async () => {
    const text = "\ufeff\ufeffé€😀\ud800x";
    const bytes = Buffer.concat([Buffer.from(text, "utf8"), Buffer.from([0xf0, 0x9f]), Buffer.from("ok")]);
    const reply = await run(
      `const bytes = fromHex(request);
      const d = new TextDecoder();
      let out = "";
      for (let i = 0; i < bytes.length; i++) out += d.decode(bytes.subarray(i, i + 1), { stream: true });
      out += d.decode();
      const again = d.decode(bytes.subarray(0, 6));
      return [out, again];`,
      bytes.toString("hex"),
    );
    const d = new TextDecoder();
    let out = "";
    for (let i = 0; i < bytes.length; i++) out += d.decode(bytes.subarray(i, i + 1), { stream: true });
    out += d.decode();
    assert.deepEqual(reply, [out, d.decode(bytes.subarray(0, 6))]);
  });

  it("accept the labels of UTF-8 and refuse every other encoding with a RangeError", async () => {
    const reply = (await run(
      `return [new TextDecoder(" UTF8 ").encoding, new TextDecoder("unicode-1-1-utf-8").encoding, caught(() => new TextDecoder("latin1")), caught(() => new TextDecoder("utf-16le"))];`,
    )) as [string, string, Described, Described];
    assert.deepEqual(reply.slice(0, 2), ["utf-8", "utf-8"]);
    assert.deepEqual(reply[2], {
      name: "RangeError",
      message: 'TextDecoder: the encoding "latin1" is not supported; a Solo service decodes UTF-8 only',
      isDOMException: false,
    });
    assert.equal(reply[3].name, "RangeError");
  });

  it("encode and decode inputs larger than messageBytes in pieces, cut nowhere inside a character", async () => {
    const text = "x€😀".repeat(1000);
    const reply = await run(
      `const s = "x€😀".repeat(1000);
      const bytes = new TextEncoder().encode(s);
      const back = new TextDecoder("utf-8", { fatal: true }).decode(bytes);
      let h = 2166136261;
      for (let i = 0; i < bytes.length; i++) h = Math.imul(h ^ bytes[i], 16777619) >>> 0;
      return [bytes.length, h, back === s];`,
      null,
      { messageBytes: 1024 },
    );
    // FNV-1a of every byte: the pieces were joined in order, each exactly as Node encodes it.
    const bytes = Buffer.from(text);
    let h = 2166136261;
    for (const x of bytes) h = Math.imul(h ^ x, 16777619) >>> 0;
    assert.deepEqual(reply, [bytes.length, h, true]);
  });
});

describe("atob and btoa", () => {
  it("encode and decode base64 as Node does, whitespace and missing padding forgiven", async () => {
    const binary = ["", "a", "ab", "abc", "\u0000\u00ff\u0080", "hello world"];
    const encoded = ["YWJj", " YW Jj\n", "YQ", "YQ==", "AP+A", "aGVsbG8gd29ybGQ="];
    const reply = await run(`return [request[0].map(btoa), request[1].map(atob)];`, [binary, encoded]);
    assert.deepEqual(reply, [binary.map(btoa), encoded.map(atob)]);
  });

  it("throw an InvalidCharacterError DOMException for bad base64 and for characters above U+00FF", async () => {
    const reply = (await run(
      `return [caught(() => atob("a")), caught(() => atob("ab!c")), caught(() => atob("YQ=a")), caught(() => btoa("€")), caught(() => atob())];`,
    )) as Described[];
    for (const e of reply.slice(0, 4)) {
      assert.equal(e.name, "InvalidCharacterError");
      assert.equal(e.isDOMException, true);
      assert.equal(e.code, 5);
    }
    assert.match(reply[0]?.message ?? "", /^atob: the data is not valid base64/);
    assert.match(reply[3]?.message ?? "", /^btoa: the data has a character above U\+00FF/);
    assert.deepEqual(reply[4], { name: "TypeError", message: "atob: 1 argument required", isDOMException: false });
  });

  it("refuse data over messageBytes with a QuotaExceededError", async () => {
    const reply = (await run(`return [caught(() => btoa("a".repeat(1025))), btoa("a".repeat(1024)).length];`, null, {
      messageBytes: 1024,
    })) as [Described, number];
    assert.deepEqual(reply[0], {
      name: "QuotaExceededError",
      message:
        "btoa: the data is 1025 characters; a Solo service's standard APIs take at most limits.messageBytes (1024) characters per call",
      code: 22,
      isDOMException: true,
    });
    assert.equal(reply[1], 1368);
  });
});

describe("structuredClone", () => {
  it("clones what the web clones: cycles and shared references, Maps, Sets, Dates, RegExps, buffers and views, errors, wrappers", async () => {
    const reply = await run(`
      const shared = { n: 1 };
      const buffer = new Uint8Array([1, 2, 3, 4]).buffer;
      const src = { shared, again: shared, list: [1, , "x", undefined], map: new Map([[shared, "v"]]), set: new Set([shared, 2]),
        date: new Date(86400000), re: /a+b/gi, u8: new Uint8Array(buffer, 1, 2), dv: new DataView(buffer), big: 10n,
        err: new RangeError("bad", { cause: shared }), dom: new DOMException("gone", "NotFoundError"), wrapped: Object("s"), neg: -0 };
      src.self = src;
      src.list.extra = "prop";
      const c = structuredClone(src);
      return [c !== src, c.self === c, c.shared === c.again, c.shared !== shared, c.map.get(c.shared), c.set.has(c.shared),
        c.list.length, 1 in c.list, c.list.extra, c.date instanceof Date && c.date.getTime(), String(c.re), c.re.lastIndex,
        Array.from(c.u8), c.u8.buffer === c.dv.buffer, c.dv.getUint8(3), typeof c.big, c.err instanceof RangeError, c.err.message,
        c.err.cause === c.shared, c.dom instanceof DOMException && c.dom.name, c.dom.message, typeof c.wrapped, String(c.wrapped),
        Object.is(c.neg, -0), Object.getPrototypeOf(c) === Object.prototype];`);
    assert.deepEqual(reply, [
      ...[true, true, true, true, "v", true, 4, false, "prop", 86400000, "/a+b/gi", 0, [2, 3], true, 4, "bigint", true, "bad"],
      ...[true, "NotFoundError", "gone", "object", "s", true, true],
    ]);
  });

  it("throws a DataCloneError DOMException for functions, symbols, WeakMaps and platform objects such as URL", async () => {
    const reply = (await run(`return [
      caught(() => structuredClone(() => 1)), caught(() => structuredClone({ a: Symbol("s") })), caught(() => structuredClone(new WeakMap())),
      caught(() => structuredClone(new URL("https://a.b/"))), caught(() => structuredClone({ deep: [new TextEncoder()] })), caught(() => structuredClone()),
    ];`)) as Described[];
    const what = ["a function", "a symbol", "a WeakMap or WeakSet", "a platform object", "a platform object"];
    for (const [i, w] of what.entries()) {
      assert.equal(reply[i]?.name, "DataCloneError");
      assert.equal(reply[i]?.code, 25);
      assert.equal(reply[i]?.isDOMException, true);
      assert.ok(reply[i]?.message.startsWith(`structuredClone: ${w}`), reply[i]?.message);
    }
    assert.equal(reply[5]?.name, "TypeError");
  });

  it("transfers ArrayBuffers: the clone holds the bytes and the original is detached, only once the clone succeeded", async () => {
    const reply = await run(`
      const buf = new Uint8Array([7, 8, 9]).buffer;
      const failed = caught(() => structuredClone({ buf, f() {} }, { transfer: [buf] }));
      const kept = buf.byteLength;
      const c = structuredClone({ view: new Uint8Array(buf) }, { transfer: [buf] });
      return [failed.name, kept, Array.from(c.view), buf.byteLength, buf.detached,
        caught(() => structuredClone(1, { transfer: [c.view.buffer, c.view.buffer] })).name, caught(() => structuredClone(1, { transfer: [{}] })).name];`);
    assert.deepEqual(reply, ["DataCloneError", 3, [7, 8, 9], 0, true, "DataCloneError", "DataCloneError"]);
  });

  it("fails with a catchable error, not a host crash, on a structure nested deeper than the stack", async () => {
    const reply = (await run(`
      let v = null;
      for (let i = 0; i < 20000; i++) v = [v];
      return caught(() => structuredClone(v));`)) as Described;
    assert.equal(reply.name, "RangeError");
    assert.match(reply.message, /stack/);
  });

  it("stops a service that keeps clones of a large object at its memory limit with a memory_limit crash", async () => {
    const error = await rejection(
      run(
        `const big = []; for (let i = 0; i < 5000; i++) big.push({ i, s: "item " + i });
        const kept = [];
        for (;;) kept.push(structuredClone(big));`,
        null,
        { memoryBytes: 4 * 1024 * 1024, cpuMsPerMessage: 30000 },
      ),
    );
    assert.equal(error.reason, "SOLO_ERR_LIMIT_MEMORY", error.message);
    assert.equal(crashOf(error).kind, "memory_limit");
  });
});

describe("crypto", () => {
  it("getRandomValues fills integer typed arrays, within their view, and returns the same array", async () => {
    const reply = (await run(`
      const backing = new Uint8Array(40);
      const view = new Uint32Array(backing.buffer, 8, 4);
      const same = crypto.getRandomValues(view) === view;
      const outside = Array.from(backing.subarray(0, 8)).concat(Array.from(backing.subarray(24)));
      const kinds = [Int8Array, Uint8ClampedArray, Int16Array, Uint16Array, Int32Array, BigInt64Array, BigUint64Array].map((C) => crypto.getRandomValues(new C(4)).length);
      const a = hex(crypto.getRandomValues(new Uint8Array(32))), b = hex(crypto.getRandomValues(new Uint8Array(32)));
      return [same, outside.every((x) => x === 0), hex(backing.subarray(8, 24)) !== "0".repeat(32), kinds, a !== b, a.length, hex(crypto.getRandomValues(new Uint8Array(0)))];`)) as unknown[];
    assert.deepEqual(reply, [true, true, true, [4, 4, 4, 4, 4, 4, 4], true, 64, ""]);
  });

  it("getRandomValues refuses more than 65536 bytes with a QuotaExceededError, and floats, DataViews and non-arrays", async () => {
    const reply = (await run(`return [
      crypto.getRandomValues(new Uint8Array(65536)).length, caught(() => crypto.getRandomValues(new Uint8Array(65537))),
      caught(() => crypto.getRandomValues(new Uint32Array(16385))), caught(() => crypto.getRandomValues(new Float64Array(2))),
      caught(() => crypto.getRandomValues(new DataView(new ArrayBuffer(2)))), caught(() => crypto.getRandomValues([1, 2])),
    ];`)) as [number, ...Described[]];
    assert.equal(reply[0], 65536);
    assert.deepEqual(reply[1], {
      name: "QuotaExceededError",
      message: "crypto.getRandomValues: the array is 65537 bytes; at most 65536 bytes can be filled at once",
      code: 22,
      isDOMException: true,
    });
    assert.equal(reply[2]?.name, "QuotaExceededError");
    assert.equal(reply[3]?.name, "TypeMismatchError");
    assert.equal(reply[4]?.name, "TypeMismatchError");
    assert.equal(reply[5]?.name, "TypeError");
  });

  it("randomUUID gives distinct version 4 UUIDs", async () => {
    const reply = (await run(`return Array.from({ length: 20 }, () => crypto.randomUUID());`)) as string[];
    for (const id of reply) assert.match(id, /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
    assert.equal(new Set(reply).size, 20);
  });

  it("subtle.digest gives the FIPS 180 test vectors for SHA-1, SHA-256, SHA-384 and SHA-512, and Node's digests", async () => {
    const messages = ["abc", "", "abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq", "\u0000é€😀"];
    const reply = await run(
      `const algs = ["SHA-1", "sha-256", { name: "SHA-384" }, { name: "Sha-512" }];
      const out = [];
      for (const alg of algs) for (const m of request) out.push(hex(await crypto.subtle.digest(alg, new TextEncoder().encode(m))));
      const backing = new TextEncoder().encode("xxabcxx");
      out.push(hex(await crypto.subtle.digest("SHA-256", backing.subarray(2, 5))), hex(await crypto.subtle.digest("SHA-256", new DataView(backing.buffer, 2, 3))));
      out.push(hex(await crypto.subtle.digest("SHA-256", backing.buffer.slice(2, 5))));
      return out;`,
      messages,
    );
    const expected = ["sha1", "sha256", "sha384", "sha512"].flatMap((h) => messages.map((m) => createHash(h).update(m).digest("hex")));
    const abc256 = "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad";
    assert.deepEqual(reply, [...expected, abc256, abc256, abc256]);
    // The published vectors themselves, so the comparison is not only Node against Node.
    assert.equal(expected[0], "a9993e364706816aba3e25717850c26c9cd0d89d");
    assert.equal(expected[4], abc256);
    assert.equal(expected[6], "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1");
    assert.equal(expected[8], "cb00753f45a35e8bb5a03d699ac65007272c32ab0eded1631a8b605a43ff5bed8086072ba1e7cc2358baeca134c825a7");
    assert.equal(
      expected[12],
      "ddaf35a193617abacc417349ae20413112e6fa4e89a97ea20a9eeee64b55d39a2192992a274fc1a836ba3c23a3feebbd454d4423643ce80e2a9ac94fa54ca49f",
    );
  });

  it("HMAC keys import raw, sign as RFC 4231 says, and verify", async () => {
    const reply = await run(`
      const enc = new TextEncoder();
      const out = [];
      for (const hash of ["SHA-256", "SHA-512", "SHA-1", "SHA-384"]) {
        const key = await crypto.subtle.importKey("raw", enc.encode("Jefe"), { name: "HMAC", hash }, false, ["sign", "verify"]);
        const sig = await crypto.subtle.sign("HMAC", key, enc.encode("what do ya want for nothing?"));
        const tampered = new Uint8Array(sig.slice(0)); tampered[0] ^= 1;
        out.push([hex(sig), await crypto.subtle.verify({ name: "hmac" }, key, sig, enc.encode("what do ya want for nothing?")),
          await crypto.subtle.verify("HMAC", key, tampered, enc.encode("what do ya want for nothing?")),
          await crypto.subtle.verify("HMAC", key, sig.slice(1), enc.encode("what do ya want for nothing?"))]);
      }
      const key = await crypto.subtle.importKey("raw", new Uint8Array(20).fill(0x0b), { name: "HMAC", hash: { name: "SHA-256" } }, true, ["verify", "sign"]);
      out.push(hex(await crypto.subtle.sign("HMAC", key, enc.encode("Hi There"))));
      out.push([key.type, key.extractable, key.algorithm, key.usages, Object.prototype.toString.call(key), Object.isFrozen(key.algorithm)]);
      return out;`);
    const data = "what do ya want for nothing?";
    const rows = ["sha256", "sha512", "sha1", "sha384"].map((h) => [createHmac(h, "Jefe").update(data).digest("hex"), true, false, false]);
    assert.deepEqual(reply, [
      ...rows,
      "b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7",
      ["secret", true, { name: "HMAC", length: 160, hash: { name: "SHA-256" } }, ["sign", "verify"], "[object CryptoKey]", true],
    ]);
    // RFC 4231 test case 2 itself.
    assert.equal(rows[0]?.[0], "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843");
    assert.equal(
      rows[1]?.[0],
      "164b7a7bfcf819e2e395fbe73b56e0a387bd64222e831fd610270cd7ea2505549758bf75c05a994a6d034f65f8f0e6fdcaeab1a34d4a6b4b636e070a38bce737",
    );
  });

  it("rejects as Web Crypto does: NotSupportedError, TypeError, InvalidAccessError, SyntaxError and DataError, each naming what was wrong", async () => {
    const reply = (await run(`
      const key = await crypto.subtle.importKey("raw", new Uint8Array(8), { name: "HMAC", hash: "SHA-256" }, false, ["verify"]);
      const raw = new Uint8Array(8);
      const p = crypto.subtle.digest("SHA-3", raw);
      return [p instanceof Promise,
        await rejected(p),
        await rejected(crypto.subtle.digest("SHA-256", "a string")),
        await rejected(crypto.subtle.sign("HMAC", key, raw)),
        await rejected(crypto.subtle.sign("HMAC", { type: "secret" }, raw)),
        await rejected(crypto.subtle.sign("RSASSA-PKCS1-v1_5", key, raw)),
        await rejected(crypto.subtle.importKey("raw", raw, { name: "HMAC", hash: "SHA-256" }, false, [])),
        await rejected(crypto.subtle.importKey("raw", raw, { name: "HMAC", hash: "SHA-256" }, false, ["encrypt"])),
        await rejected(crypto.subtle.importKey("raw", raw, { name: "HMAC", hash: "SHA-256" }, false, ["fly"])),
        await rejected(crypto.subtle.importKey("raw", new Uint8Array(0), { name: "HMAC", hash: "SHA-256" }, false, ["sign"])),
        await rejected(crypto.subtle.importKey("raw", raw, { name: "HMAC" }, false, ["sign"])),
        await rejected(crypto.subtle.importKey("pkcs8", raw, { name: "HMAC", hash: "SHA-256" }, false, ["sign"])),
        await rejected(crypto.subtle.importKey("foo", raw, { name: "HMAC", hash: "SHA-256" }, false, ["sign"])),
        await rejected(crypto.subtle.importKey("raw", raw, { name: "AES-GCM" }, false, ["encrypt"])),
        caught(() => new (Object.getPrototypeOf(key).constructor)()),
      ];`)) as [boolean, ...Described[]];
    assert.equal(reply[0], true);
    const names = reply.slice(1).map((e) => (e as Described).name);
    assert.deepEqual(names, [
      ...["NotSupportedError", "TypeError", "InvalidAccessError", "TypeError", "NotSupportedError", "SyntaxError", "SyntaxError"],
      ...["TypeError", "DataError", "TypeError", "NotSupportedError", "TypeError", "NotSupportedError", "TypeError"],
    ]);
    const messages = reply.slice(1).map((e) => (e as Described).message);
    assert.equal(
      messages[0],
      'crypto.subtle.digest: unrecognized algorithm "sha-3"; a Solo service has SHA-1, SHA-256, SHA-384 and SHA-512',
    );
    assert.equal(messages[1], "crypto.subtle.digest: the data must be an ArrayBuffer, a TypedArray or a DataView, got string");
    assert.equal(messages[2], "crypto.subtle.sign: the key's usages do not include sign");
    assert.equal(messages[8], "crypto.subtle.importKey: the key is empty");
    assert.equal(messages[13], "Illegal constructor: keys come from crypto.subtle.importKey");
  });

  it("refuses data over messageBytes with a QuotaExceededError, at once", async () => {
    const reply = (await run(
      `const key = await crypto.subtle.importKey("raw", new Uint8Array(16), { name: "HMAC", hash: "SHA-256" }, false, ["sign"]);
      return [await rejected(crypto.subtle.digest("SHA-256", new Uint8Array(1025))), await rejected(crypto.subtle.sign("HMAC", key, new Uint8Array(1025))),
        (await crypto.subtle.sign("HMAC", key, new Uint8Array(1024))).byteLength];`,
      null,
      { messageBytes: 1024 },
    )) as [Described, Described, number];
    assert.deepEqual(reply[0], {
      name: "QuotaExceededError",
      message:
        "crypto.subtle.digest: the data is 1025 bytes; a Solo service's standard APIs take at most limits.messageBytes (1024) bytes per call",
      isDOMException: true,
    });
    assert.equal(reply[1].name, "QuotaExceededError");
    assert.equal(reply[2], 32);
  });

  it("stops a loop of HMACs over large inputs at the message's CPU budget with SOLO_ERR_LIMIT_CPU, even one that catches every error", async () => {
    for (const body of [
      "for (;;) crypto.subtle.sign('HMAC', key, data);",
      "for (;;) { try { crypto.subtle.sign('HMAC', key, data); crypto.subtle.digest('SHA-512', data); } catch (e) { caughtOne = e.reason; } }",
      "for (;;) await crypto.subtle.sign('HMAC', key, data);",
    ]) {
      const error = await rejection(
        run(
          `const key = await crypto.subtle.importKey("raw", new Uint8Array(32), { name: "HMAC", hash: "SHA-256" }, false, ["sign"]);
          const data = new Uint8Array(1024 * 1024);
          let caughtOne;
          ${body}`,
          null,
          { cpuMsPerMessage: 50 },
        ),
      );
      // Stopped by its budget: not run on until the watchdog replaced the thread.
      assert.equal(error.reason, "SOLO_ERR_LIMIT_CPU", error.message);
      assert.equal(crashOf(error).kind, "cpu_limit");
    }
  });
});

describe("the standard APIs' globals", () => {
  it("cannot be replaced, deleted or redefined, nor their objects changed, and keep working", async () => {
    const reply = await run(`
      const attempts = [
        () => { URL = null; }, () => { globalThis.crypto = {}; }, () => { delete globalThis.TextEncoder; },
        () => Object.defineProperty(globalThis, "atob", { value: () => "forged" }), () => { crypto.subtle = {}; },
        () => { crypto.subtle.digest = () => "forged"; }, () => { crypto.getRandomValues = null; }, () => { URL.prototype.toString = () => "x"; },
        () => { URL.canParse = () => true; }, () => { TextDecoder.prototype.decode = null; }, () => Object.setPrototypeOf(crypto, null),
        () => { URLSearchParams.prototype[Symbol.iterator] = null; },
      ];
      const failed = attempts.map((f) => caught(f).name);
      const frozen = [crypto, crypto.subtle, URL, URL.prototype, URLSearchParams.prototype, TextEncoder.prototype, TextDecoder.prototype].every(Object.isFrozen);
      const descriptor = Object.getOwnPropertyDescriptor(globalThis, "URL");
      return [failed, frozen, descriptor.configurable, "set" in descriptor && descriptor.set === undefined,
        atob("YQ=="), new URL("https://a.b/").href, hex(await crypto.subtle.digest("SHA-1", new Uint8Array(0)))];`);
    assert.deepEqual(reply, [
      Array(12).fill("TypeError"),
      true,
      false,
      true,
      "a",
      "https://a.b/",
      "da39a3ee5e6b4b0d3255bfef95601890afd80709",
    ]);
  });

  it("are built from intrinsics captured before the service ran: replacing globals and prototype methods before their first use changes nothing", async () => {
    const reply = await run(`
      Object.defineProperty(Array.prototype, "0", { set() { throw new Error("setter hit"); }, get() { return "poisoned"; }, configurable: true });
      Object.defineProperty(Object.getPrototypeOf(Uint8Array.prototype), "byteLength", { get() { return 99; } });
      Object.prototype.get = function () { return "poisoned"; };
      Array.prototype.push = () => { throw new Error("push"); };
      String.prototype.slice = () => "poisoned";
      Reflect.apply = () => "poisoned";
      JSON.parse = () => "poisoned";
      JSON.stringify = () => "poisoned";
      Object.defineProperty = () => { throw new Error("defineProperty"); };
      ArrayBuffer.prototype.slice = () => new ArrayBuffer(99);
      globalThis.Uint8Array = function () { throw new Error("Uint8Array"); };
      globalThis.DOMException = function () { return { name: "forged" }; };
      const clone = structuredClone({ a: [1, 2], m: new Map([[1, 2]]) });
      const p = new URLSearchParams("x=1&y=2");
      p.append("z", "3");
      const out = [clone.a.length, clone.m.get(1), p.toString(), new URL("https://a.b/c?d").search, btoa("ok"),
        new TextDecoder().decode(new TextEncoder().encode("é")), caught(() => atob("!")).name,
        (await crypto.subtle.digest("SHA-256", new ArrayBuffer(0))).byteLength];
      // The bootstrap's own encoding of a reply goes through such a setter; take it away first.
      delete Array.prototype[0];
      return out;`);
    assert.deepEqual(reply, [2, 2, "x=1&y=2&z=3", "?d", "b2s=", "é", "InvalidCharacterError", 32]);
  });

  it("carry newlines and look-alike framing in their inputs as data, never as another request", async () => {
    const reply = await run(`
      return [
        new URL("https://a.b/x\\nurl\\n[\\"evil\\"]").pathname,
        await rejected(crypto.subtle.digest("SHA-256\\n999", new Uint8Array(1))),
        caught(() => new TextDecoder("utf-8\\nfetch")).name,
        btoa("\\nuuid\\n"),
        new URLSearchParams([["qsString\\n", "[1]\\n"]]).toString(),
      ];`);
    assert.deepEqual(reply, [
      new URL('https://a.b/x\nurl\n["evil"]').pathname,
      {
        name: "NotSupportedError",
        message: 'crypto.subtle.digest: unrecognized algorithm "sha-256\\n999"; a Solo service has SHA-1, SHA-256, SHA-384 and SHA-512',
        isDOMException: true,
      },
      "RangeError",
      btoa("\nuuid\n"),
      new URLSearchParams([["qsString\n", "[1]\n"]]).toString(),
    ]);
  });
});
