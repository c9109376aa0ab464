import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { errorAnswer, exampleSource, gatewayError, startTestGateway, type TenantClient, type TestGateway, until } from "../test-gateway.ts";

const CODE = exampleSource(import.meta.url, "service.ts");

interface Decision {
  allowed: boolean;
  remaining: number;
  retryAfterMs: number;
  limit: number;
}
interface Stats {
  keys: number;
  allowed: number;
  denied: number;
}

const HOUR = 3_600_000;

let gw: TestGateway;
let acme: TenantClient;

before(async () => {
  gw = await startTestGateway();
  acme = await gw.tenant("acme", ["deploy:limiter*", "call:limiter*"]);
  // One token back per hour: nothing refills while the test runs, so every answer is exact.
  await acme.deploy("limiter", CODE, { args: { capacity: 3, refillTokens: 1, refillEveryMs: HOUR }, grants: { timers: true } });
});

after(async () => {
  await gw?.close();
});

describe("the rate-limiter example", () => {
  it("allows a burst of `capacity` per key, then refuses with the time until the next token", async () => {
    const seen: Decision[] = [];
    for (let i = 0; i < 4; i++) seen.push(await acme.call<Decision>("limiter", { key: "alice" }));
    assert.deepEqual(
      seen.map((d) => [d.allowed, d.remaining, d.retryAfterMs, d.limit]),
      [
        [true, 2, 0, 3],
        [true, 1, 0, 3],
        [true, 0, 0, 3],
        [false, 0, seen[3]?.retryAfterMs, 3],
      ],
    );
    const wait = seen[3]?.retryAfterMs ?? 0;
    assert.ok(wait > 0 && wait <= HOUR, `retryAfterMs ${wait} is within one refill step`);
    // Another key has its own bucket, whatever its name.
    assert.deepEqual(await acme.call("limiter", { key: "bob" }), { allowed: true, remaining: 2, retryAfterMs: 0, limit: 3 });
    for (const key of ["constructor", "__proto__", "toString"]) {
      assert.deepEqual(await acme.call("limiter", { key }), { allowed: true, remaining: 2, retryAfterMs: 0, limit: 3 }, key);
    }
  });

  it("charges a cost, peeks without spending, and resets a key", async () => {
    assert.deepEqual(await acme.call("limiter", { key: "carol", cost: 2 }), { allowed: true, remaining: 1, retryAfterMs: 0, limit: 3 });
    const refused = await acme.call<Decision>("limiter", { key: "carol", cost: 2 });
    assert.equal(refused.allowed, false);
    assert.equal(refused.remaining, 1, "a refused request spends nothing");
    const peek = await acme.call<Decision>("limiter", { op: "peek", key: "carol" });
    assert.deepEqual([peek.allowed, peek.remaining], [true, 1]);
    assert.equal((await acme.call<Decision>("limiter", { op: "peek", key: "carol" })).remaining, 1, "peeking spends nothing");
    assert.deepEqual(await acme.call("limiter", { op: "reset", key: "carol" }), { reset: true });
    assert.deepEqual(await acme.call("limiter", { key: "carol", cost: 3 }), { allowed: true, remaining: 0, retryAfterMs: 0, limit: 3 });
    assert.deepEqual(await acme.call("limiter", { op: "reset", key: "nobody" }), { reset: false });
  });

  it("refills in whole steps as time passes, and forgets keys whose bucket is full again", async () => {
    // Short enough to wait for, long enough that a loaded machine's pause between two calls does not
    // refill and sweep the bucket between them (at 20 ms it did, at a load average over 20).
    const refillEveryMs = 250;
    await acme.deploy("limiter-fast", CODE, {
      args: { capacity: 1, refillTokens: 1, refillEveryMs, sweepEveryMs: 300 },
      grants: { timers: true },
    });
    assert.equal((await acme.call<Decision>("limiter-fast", { key: "k" })).allowed, true);
    const refused = await acme.call<Decision>("limiter-fast", { key: "k" });
    if (!refused.allowed)
      assert.ok(refused.retryAfterMs > 0 && refused.retryAfterMs <= refillEveryMs, `retryAfterMs ${refused.retryAfterMs}`);
    // The service reads the wall clock itself; the test only waits (boundedly) for the refill.
    await until("the bucket to refill", async () => (await acme.call<Decision>("limiter-fast", { op: "peek", key: "k" })).allowed);
    assert.deepEqual(await acme.call("limiter-fast", { key: "k" }), { allowed: true, remaining: 0, retryAfterMs: 0, limit: 1 });
    assert.equal((await acme.call<Stats>("limiter-fast", { op: "stats" })).keys, 1);
    // The sweep timer drops the bucket once it is full: memory follows the keys being limited.
    await until("the sweep to forget the full bucket", async () => (await acme.call<Stats>("limiter-fast", { op: "stats" })).keys === 0);
    assert.deepEqual(await acme.call("limiter-fast", { key: "k" }), { allowed: true, remaining: 0, retryAfterMs: 0, limit: 1 });
  });

  it("answers a malformed request with an error of its own, naming the field, and changes nothing", async () => {
    const before = await acme.call<Stats>("limiter", { op: "stats" });
    const cases: Array<[unknown, string]> = [
      [{ key: "" }, "key"],
      [{ key: 42 }, "key"],
      [{ key: "alice", cost: 4 }, "cost"],
      [{ key: "alice", cost: 1.5 }, "cost"],
      [{ op: "take-all", key: "alice" }, "op"],
      ["alice", ""],
    ];
    for (const [request, field] of cases) {
      const answer = await errorAnswer(acme.call("limiter", request as never), "limiter");
      assert.equal(answer.code, "invalid_argument", JSON.stringify(request));
      assert.deepEqual(answer.details, field === "" ? undefined : { field }, JSON.stringify(request));
    }
    assert.match((await errorAnswer(acme.call("limiter", { key: "alice", cost: 4 }), "limiter")).message, /capacity \(3\)/);
    assert.deepEqual(await acme.call<Stats>("limiter", { op: "stats" }), before, "nothing was counted or spent");
    assert.equal((await acme.call<Decision>("limiter", { op: "peek", key: "bob" })).remaining, 2);
  });

  it("refuses a new key beyond maxKeys, and keeps serving the keys it tracks", async () => {
    await acme.deploy("limiter-small", CODE, { args: { capacity: 2, refillEveryMs: HOUR, maxKeys: 1 }, grants: { timers: true } });
    assert.equal((await acme.call<Decision>("limiter-small", { key: "a" })).remaining, 1);
    const full = await errorAnswer(acme.call("limiter-small", { key: "b" }), "limiter-small");
    assert.equal(full.code, "resource_exhausted");
    assert.match(full.message, /tracks 1 keys already/);
    assert.deepEqual(await acme.call("limiter-small", { key: "a" }), { allowed: true, remaining: 0, retryAfterMs: 0, limit: 2 });
    assert.deepEqual(await acme.call<Stats>("limiter-small", { op: "stats" }), {
      keys: 1,
      allowed: 2,
      denied: 0,
      config: { capacity: 2, refillTokens: 1, refillEveryMs: HOUR, maxKeys: 1, sweepEveryMs: 60_000 },
    });
  });

  it("refuses a deploy whose settings are wrong, naming the setting", async () => {
    const e = await gatewayError(acme.deploy("limiter-bad", CODE, { args: { capacity: 0 } }));
    assert.equal(e.reason, "SOLO_ERR_DEPLOY_INIT_FAILED");
    assert.match(e.message, /args\.capacity must be an integer from 1/);
    const typo = await gatewayError(acme.deploy("limiter-bad", CODE, { args: { capacity: 5, refilEveryMs: 10 } }));
    assert.match(typo.message, /args\.refilEveryMs is not a setting/);
    const inherited = await gatewayError(acme.deploy("limiter-bad", CODE, { args: { toString: 1 } }));
    assert.match(inherited.message, /args\.toString is not a setting/);
  });
});
