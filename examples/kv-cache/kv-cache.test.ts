import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import type { JsonValue } from "@bufbuild/protobuf";
import { errorAnswer, exampleSource, gatewayError, startTestGateway, type TenantClient, type TestGateway, until } from "../test-gateway.ts";

const CODE = exampleSource(import.meta.url, "service.ts");
const HOUR = 3_600_000;

interface Got {
  hit: boolean;
  value?: JsonValue;
  ttlMs?: number | null;
}
interface Stats {
  entries: number;
  bytes: number;
  hits: number;
  misses: number;
  sets: number;
  deletes: number;
  expired: number;
  evicted: number;
  sweeps: "timer" | "lazy";
}

let gw: TestGateway;
let acme: TenantClient;

const stats = (service = "cache") => acme.call<Stats>(service, { op: "stats" });

before(async () => {
  gw = await startTestGateway();
  acme = await gw.tenant("acme", ["deploy:cache*", "call:cache*"]);
  await acme.deploy("cache", CODE, { args: { sweepMinMs: 0 }, grants: { timers: true } });
});

after(async () => {
  await gw?.close();
});

describe("the kv-cache example", () => {
  it("sets, gets and deletes values of any JSON type, counting hits and misses", async () => {
    const profile = { name: "Ada", langs: ["en", "fr"], admin: false };
    assert.deepEqual(await acme.call("cache", { op: "set", key: "user:1", value: profile }), { stored: true, ttlMs: null });
    assert.deepEqual(await acme.call("cache", { op: "set", key: "flag", value: null }), { stored: true, ttlMs: null });
    assert.deepEqual(await acme.call("cache", { op: "get", key: "user:1" }), { hit: true, value: profile, ttlMs: null });
    assert.deepEqual(await acme.call("cache", { op: "get", key: "flag" }), { hit: true, value: null, ttlMs: null }, "null is a value");
    assert.deepEqual(await acme.call("cache", { op: "get", key: "user:2" }), { hit: false });
    for (const key of ["__proto__", "constructor"]) {
      assert.deepEqual(await acme.call("cache", { op: "get", key }), { hit: false }, key);
      await acme.call("cache", { op: "set", key, value: key });
      assert.deepEqual(await acme.call("cache", { op: "get", key }), { hit: true, value: key, ttlMs: null }, key);
    }
    assert.deepEqual(await acme.call("cache", { op: "delete", key: "flag" }), { deleted: true });
    assert.deepEqual(await acme.call("cache", { op: "delete", key: "flag" }), { deleted: false });
    const s = await stats();
    assert.deepEqual([s.entries, s.hits, s.misses, s.sets, s.deletes, s.sweeps], [3, 4, 3, 4, 1, "timer"]);
    assert.deepEqual(await acme.call("cache", { op: "clear" }), { cleared: 3 });
    assert.equal((await stats()).entries, 0);
  });

  it("expires an entry on its timer even if nobody reads it, and keeps the others", async () => {
    const before = await stats();
    assert.deepEqual(await acme.call("cache", { op: "set", key: "session:x", value: "s3cr3t", ttlMs: 30 }), { stored: true, ttlMs: 30 });
    await acme.call("cache", { op: "set", key: "session:y", value: "long", ttlMs: HOUR });
    // No get on session:x: only the sweep timer can make it go.
    await until("the sweep timer to expire session:x", async () => (await stats()).expired === before.expired + 1);
    assert.equal((await stats()).entries, before.entries + 1);
    assert.deepEqual(await acme.call("cache", { op: "get", key: "session:x" }), { hit: false });
    const y = await acme.call<Got>("cache", { op: "get", key: "session:y" });
    assert.equal(y.hit, true);
    assert.ok(typeof y.ttlMs === "number" && y.ttlMs > 0 && y.ttlMs <= HOUR, `ttlMs ${y.ttlMs}`);
    // Setting again without a TTL makes it permanent.
    await acme.call("cache", { op: "set", key: "session:y", value: "forever" });
    assert.deepEqual(await acme.call("cache", { op: "get", key: "session:y" }), { hit: true, value: "forever", ttlMs: null });
  });

  it("never returns an expired value, even without the timers power", async () => {
    await acme.deploy("cache-lazy", CODE, { grants: { timers: false } });
    await acme.call("cache-lazy", { op: "set", key: "otp", value: 123456, ttlMs: 25 });
    assert.equal((await stats("cache-lazy")).sweeps, "lazy");
    await until("the entry to read as expired", async () => !(await acme.call<Got>("cache-lazy", { op: "get", key: "otp" })).hit);
    const s = await stats("cache-lazy");
    assert.deepEqual([s.entries, s.expired, s.bytes], [0, 1, 0]);
  });

  it("evicts the least recently used entry when full", async () => {
    await acme.deploy("cache-small", CODE, { args: { maxEntries: 2 }, grants: { timers: true } });
    await acme.call("cache-small", { op: "set", key: "a", value: 1 });
    await acme.call("cache-small", { op: "set", key: "b", value: 2 });
    await acme.call("cache-small", { op: "get", key: "a" }); // a is now more recent than b
    await acme.call("cache-small", { op: "set", key: "c", value: 3 });
    assert.deepEqual(
      await Promise.all(["a", "b", "c"].map((key) => acme.call<Got>("cache-small", { op: "get", key }).then((g) => g.hit))),
      [true, false, true],
    );
    assert.equal((await stats("cache-small")).evicted, 1);
  });

  it("answers malformed requests with an error of its own, naming the field, and changes nothing", async () => {
    await acme.call("cache", { op: "set", key: "keep", value: "me" });
    const before = await stats();
    const cases: Array<[JsonValue, string]> = [
      [{ op: "set", key: "keep" }, "value"],
      [{ op: "set", key: "", value: 1 }, "key"],
      [{ op: "set", key: "keep", value: "x", ttlMs: 0 }, "ttlMs"],
      [{ op: "set", key: "keep", value: "x", ttlMs: 1.5 }, "ttlMs"],
      [{ op: "get", key: ["keep"] }, "key"],
      [{ op: "incr", key: "keep" }, "op"],
      [null, ""],
    ];
    for (const [request, field] of cases) {
      const answer = await errorAnswer(acme.call("cache", request), "cache");
      assert.deepEqual([answer.code, answer.details], ["invalid_argument", field === "" ? undefined : { field }], JSON.stringify(request));
    }
    const big = await errorAnswer(acme.call("cache-small", { op: "set", key: "big", value: "x".repeat(300 * 1024) }), "cache-small");
    assert.deepEqual([big.code, big.details], ["resource_exhausted", { field: "value" }]);
    assert.match(big.message, /over this cache's maxValueBytes of 262144/);
    assert.deepEqual(await stats(), before);
    assert.deepEqual(await acme.call("cache", { op: "get", key: "keep" }), { hit: true, value: "me", ttlMs: null });
  });

  it("refuses a deploy with a wrong setting, naming it", async () => {
    const e = await gatewayError(acme.deploy("cache-bad", CODE, { args: { maxEntries: -1 } }));
    assert.equal(e.reason, "SOLO_ERR_DEPLOY_INIT_FAILED");
    assert.match(e.message, /args\.maxEntries must be an integer of at least 1/);
  });
});
