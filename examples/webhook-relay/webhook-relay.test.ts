import assert from "node:assert/strict";
import { createHmac, timingSafeEqual } from "node:crypto";
import { once } from "node:events";
import type http from "node:http";
import https from "node:https";
import type { AddressInfo } from "node:net";
import { after, before, describe, it } from "node:test";
import type { JsonObject, JsonValue } from "@bufbuild/protobuf";
import { createCa, issueCert } from "../../src/tls/certs.ts";
import { errorAnswer, exampleSource, startTestGateway, type TenantClient, type TestGateway, until } from "../test-gateway.ts";

const CODE = exampleSource(import.meta.url, "service.ts");

/** What the receiver saw. */
interface Received {
  host: string;
  path: string;
  /** The body exactly as sent, for checking its signature. */
  raw: string;
  headers: Record<string, string | string[] | undefined>;
  body: { id: string; event: string; occurredAt: string; payload: JsonValue };
}

interface Delivery {
  subscription: string;
  url: string;
  outcome: "delivered" | "retrying" | "failed" | "refused";
  status?: number | null;
  attempts: number;
  nextAttemptInMs?: number;
  error?: { reason: string; message: string };
  unsubscribed?: boolean;
}
interface Published {
  id: string;
  deliveries: Delivery[];
}

let gw: TestGateway;
let acme: TenantClient;
let receiver: https.Server;
let port: number;
const received: Received[] = [];

/**
 * A webhook receiver on 127.0.0.1 that answers as its path says: /ok 204, /gone 410, and
 * /flaky?fails=n 503 for the first n attempts of a delivery (by x-solo-attempt), then 200.
 */
function receive(req: http.IncomingMessage, res: http.ServerResponse): void {
  const chunks: Buffer[] = [];
  req.on("data", (c: Buffer) => chunks.push(c));
  req.on("end", () => {
    const url = new URL(req.url ?? "/", "https://x");
    const raw = Buffer.concat(chunks).toString("utf8");
    received.push({
      host: req.headers.host ?? "",
      path: url.pathname,
      raw,
      headers: req.headers,
      body: JSON.parse(raw) as Received["body"],
    });
    if (url.pathname === "/ok") res.writeHead(204).end();
    else if (url.pathname === "/gone") res.writeHead(410).end();
    else if (url.pathname === "/flaky") {
      const attempt = Number(req.headers["x-solo-attempt"]);
      if (attempt <= Number(url.searchParams.get("fails"))) res.writeHead(503, "Busy").end();
      else res.writeHead(200).end("thanks");
    } else res.writeHead(404).end();
  });
}

const relayEvents = async (delivery: string) =>
  (
    await acme.events([
      "svc.relay.delivery.retrying",
      "svc.relay.delivery.succeeded",
      "svc.relay.delivery.failed",
      "svc.relay.delivery.refused",
    ])
  )
    .filter((e) => (e.payload as JsonObject).delivery === delivery)
    .map((e) => ({ type: e.type.replace("svc.relay.", ""), payload: e.payload as JsonObject }));

const GRANTS = () => ({
  fetch: { hosts: [`hooks.test:${port}`] },
  secrets: ["HOOK_TOKEN", "HOOK_SIGNING"],
  storage: true,
  timers: true,
  emit: true,
});

async function subscribe(url: string, events: string[], extra: JsonObject = {}): Promise<string> {
  const r = await acme.call<{ id: string; duplicate: boolean }>("relay", { op: "subscribe", url, events, ...extra });
  assert.equal(r.duplicate, false);
  return r.id;
}

before(async () => {
  const ca = await createCa({ commonName: "webhook receiver ca" });
  const leaf = await issueCert(ca, { commonName: "hooks.test", dnsNames: ["hooks.test", "other.test"], usage: "server" });
  receiver = https.createServer({ key: leaf.keyPem, cert: leaf.certPem }, receive);
  receiver.listen(0, "127.0.0.1");
  await once(receiver, "listening");
  port = (receiver.address() as AddressInfo).port;
  // The operator's side: this kernel may reach 127.0.0.1 and trusts the receiver's CA. Both names
  // resolve to the receiver; only the service's grant decides which one it may reach.
  gw = await startTestGateway({
    fetch: {
      allowAddresses: ["127.0.0.1/32"],
      ca: ca.certPem,
      lookup: async (host) => (host === "hooks.test" || host === "other.test" ? [{ address: "127.0.0.1", family: 4 }] : []),
    },
  });
  acme = await gw.tenant("acme", [
    "deploy:relay*",
    "call:relay*",
    `fetch:hooks.test:${port}`,
    "secrets:read",
    "secrets:write",
    "events:read",
  ]);
  await acme.secrets.put({ tenant: "acme", name: "HOOK_TOKEN", value: "hook-s3cret" });
  await acme.secrets.put({ tenant: "acme", name: "HOOK_SIGNING", value: "signing-k3y" });
  await acme.deploy("relay", CODE, { args: { maxAttempts: 3, backoffMs: 10 }, grants: GRANTS() });
});

after(async () => {
  await gw?.close();
  receiver?.closeAllConnections();
  receiver?.close();
});

describe("the webhook-relay example", () => {
  it("POSTs a published event to each matching subscriber, with the secret as a bearer token", async () => {
    const sub = await subscribe(`https://hooks.test:${port}/ok`, ["order.created"], { secret: "HOOK_TOKEN" });
    const r = await acme.call<Published>("relay", { op: "publish", event: "order.created", payload: { order: 17, total: 42.5 } });
    assert.deepEqual(r.deliveries, [
      { subscription: sub, url: `https://hooks.test:${port}/ok`, outcome: "delivered", status: 204, attempts: 1 },
    ]);
    const got = received.filter((x) => x.body.id === r.id);
    assert.equal(got.length, 1);
    const [hook] = got;
    assert.equal(hook?.host, `hooks.test:${port}`);
    assert.equal(hook?.headers.authorization, "Bearer hook-s3cret");
    assert.equal(hook?.headers["content-type"], "application/json");
    assert.equal(hook?.headers["x-solo-event"], "order.created");
    assert.equal(hook?.headers["x-solo-delivery"], `${r.id}/${sub}`);
    assert.deepEqual(hook?.body.payload, { order: 17, total: 42.5 });
    assert.match(hook?.body.occurredAt ?? "", /^\d{4}-\d\d-\d\dT/);
    // The event log says so, naming the host only (a path may carry a token), never the secret.
    const events = await relayEvents(`${r.id}/${sub}`);
    assert.deepEqual(events, [
      {
        type: "delivery.succeeded",
        payload: { delivery: `${r.id}/${sub}`, subscription: sub, host: `https://hooks.test:${port}`, attempts: 1, status: 204 },
      },
    ]);
    assert.ok(!JSON.stringify(events).includes("hook-s3cret"));
    // Subscribers get only the events they asked for.
    assert.deepEqual((await acme.call<Published>("relay", { op: "publish", event: "order.refunded", payload: null })).deliveries, []);
  });

  it("signs each request with HMAC-SHA256 of its exact body under the subscription's signing secret", async () => {
    const sub = await subscribe(`https://hooks.test:${port}/ok`, ["order.signed"], { signingSecret: "HOOK_SIGNING" });
    const r = await acme.call<Published>("relay", { op: "publish", event: "order.signed", payload: { order: 18, note: "Grüße ✓" } });
    assert.equal(r.deliveries[0]?.outcome, "delivered");
    const [hook] = received.filter((x) => x.body.id === r.id);
    assert.ok(hook, `the receiver got ${sub}'s delivery`);
    // What a receiver does: the HMAC of the raw body under the shared secret, compared in constant time.
    const expected = `sha256=${createHmac("sha256", "signing-k3y").update(hook.raw).digest("hex")}`;
    assert.equal(hook.headers["x-solo-signature"], expected);
    assert.ok(timingSafeEqual(Buffer.from(String(hook.headers["x-solo-signature"])), Buffer.from(expected)));
    assert.equal(hook.headers.authorization, undefined, "no bearer secret was asked for");
    assert.ok(!JSON.stringify(await relayEvents(`${r.id}/${sub}`)).includes("signing-k3y"));
  });

  it("retries a failing receiver with backoff, under the same delivery id, until it answers 2xx", async () => {
    const sub = await subscribe(`https://hooks.test:${port}/flaky?fails=2`, ["invoice.paid"]);
    const r = await acme.call<Published>("relay", { op: "publish", event: "invoice.paid", payload: { invoice: "in_1" } });
    const first = r.deliveries[0];
    assert.deepEqual([first?.outcome, first?.status, first?.attempts, first?.nextAttemptInMs], ["retrying", 503, 1, 10]);
    const key = `${r.id}/${sub}`;
    await until("the delivery to succeed", async () => (await relayEvents(key)).some((e) => e.type === "delivery.succeeded"));
    assert.deepEqual(
      (await relayEvents(key)).map((e) => [e.type, e.payload.attempts, e.payload.status, e.payload.nextAttemptInMs ?? null]),
      [
        ["delivery.retrying", 1, 503, 10],
        ["delivery.retrying", 2, 503, 20],
        ["delivery.succeeded", 3, 200, null],
      ],
    );
    const attempts = received.filter((x) => x.headers["x-solo-delivery"] === key);
    assert.deepEqual(
      attempts.map((x) => x.headers["x-solo-attempt"]),
      ["1", "2", "3"],
    );
    assert.equal((await acme.call<{ pending: number }>("relay", { op: "stats" })).pending, 0);
  });

  it("refuses a host the grant does not list, precisely, before any connection, and never retries it", async () => {
    const before = received.length;
    const other = await subscribe(`https://other.test:${port}/ok`, ["user.deleted"]);
    const plain = await subscribe(`http://hooks.test:${port}/ok`, ["user.deleted"]);
    const r = await acme.call<Published>("relay", { op: "publish", event: "user.deleted", payload: { user: 9 } });
    const byId = new Map(r.deliveries.map((d) => [d.subscription, d]));
    assert.deepEqual(byId.get(other), {
      subscription: other,
      url: `https://other.test:${port}/ok`,
      outcome: "refused",
      attempts: 1,
      error: {
        reason: "SOLO_ERR_FETCH_DENIED",
        message: `https://other.test:${port} was refused: other.test:${port} is not among the hosts this service may fetch`,
      },
    });
    assert.equal(byId.get(plain)?.outcome, "refused");
    assert.equal(byId.get(plain)?.error?.reason, "SOLO_ERR_FETCH_DENIED");
    assert.match(byId.get(plain)?.error?.message ?? "", /may fetch over https only/);
    assert.equal(received.length, before, "the receiver never heard of it");
    assert.equal((await relayEvents(`${r.id}/${other}`))[0]?.type, "delivery.refused");
    assert.equal((await acme.call<{ pending: number }>("relay", { op: "stats" })).pending, 0);
    await acme.call("relay", { op: "unsubscribe", id: other });
    await acme.call("relay", { op: "unsubscribe", id: plain });
  });

  it("fails a 4xx at once, and drops a subscription whose receiver answers 410 Gone", async () => {
    const sub = await subscribe(`https://hooks.test:${port}/gone`, ["team.renamed"]);
    const r = await acme.call<Published>("relay", { op: "publish", event: "team.renamed", payload: {} });
    assert.deepEqual(r.deliveries[0], {
      subscription: sub,
      url: `https://hooks.test:${port}/gone`,
      outcome: "failed",
      status: 410,
      attempts: 1,
      error: { reason: "HTTP_410", message: `https://hooks.test:${port} answered 410 Gone` },
      unsubscribed: true,
    });
    const subs = await acme.call<{ subscriptions: Array<{ id: string }> }>("relay", { op: "subscriptions" });
    assert.ok(!subs.subscriptions.some((s) => s.id === sub));
  });

  it("keeps subscriptions and waiting retries across a restart", async () => {
    const list = () => acme.call<{ subscriptions: Array<{ id: string; url: string }> }>("relay", { op: "subscriptions" });
    const before = await list();
    assert.ok(before.subscriptions.length >= 2);
    await acme.restart("relay");
    assert.deepEqual(await list(), before);
    // A relay whose next retry is an hour away still has it after a restart.
    await acme.deploy("relay-patient", CODE, { args: { backoffMs: 3_600_000 }, grants: GRANTS() });
    await acme.call("relay-patient", { op: "subscribe", url: `https://hooks.test:${port}/flaky?fails=9` });
    const r = await acme.call<Published>("relay-patient", { op: "publish", event: "report.ready", payload: {} });
    assert.equal(r.deliveries[0]?.outcome, "retrying");
    await acme.restart("relay-patient");
    const stats = await acme.call<{ pending: number; retried: number }>("relay-patient", { op: "stats" });
    assert.deepEqual([stats.pending, stats.retried], [1, 0], "the retry is still pending; the counters start again");
  });

  it("answers malformed requests with an error of its own, naming the field, and changes nothing", async () => {
    const subs = await acme.call("relay", { op: "subscriptions" });
    const stats = await acme.call("relay", { op: "stats" });
    const cases: Array<[JsonValue, string]> = [
      [{ op: "subscribe", url: "ftp://hooks.test/x" }, "url"],
      [{ op: "subscribe", url: "https://user:pw@hooks.test/x" }, "url"],
      [{ op: "subscribe", url: `https://hooks.test:${port}/ok`, events: [] }, "events"],
      [{ op: "subscribe", url: `https://hooks.test:${port}/ok`, secret: "no spaces allowed" }, "secret"],
      [{ op: "publish", event: "Order Created", payload: 1 }, "event"],
      [{ op: "publish", event: "order.created" }, "payload"],
      [{ op: "broadcast" }, "op"],
      [[], ""],
    ];
    for (const [request, field] of cases) {
      const answer = await errorAnswer(acme.call("relay", request), "relay");
      assert.deepEqual([answer.code, answer.details], ["invalid_argument", field === "" ? undefined : { field }], JSON.stringify(request));
    }
    assert.deepEqual(await errorAnswer(acme.call("relay", { op: "unsubscribe", id: "sub-nope" }), "relay"), {
      code: "not_found",
      message: "no subscription sub-nope",
      details: { field: "id" },
    });
    assert.deepEqual(await acme.call("relay", { op: "subscriptions" }), subs);
    assert.deepEqual(await acme.call("relay", { op: "stats" }), stats);
  });

  it("refuses a subscription past maxSubscriptions, and keeps the ones it has", async () => {
    await acme.deploy("relay-tiny", CODE, { args: { maxSubscriptions: 1 }, grants: GRANTS() });
    const first = await acme.call<{ id: string }>("relay-tiny", { op: "subscribe", url: `https://hooks.test:${port}/ok` });
    const full = await errorAnswer(acme.call("relay-tiny", { op: "subscribe", url: `https://hooks.test:${port}/gone` }), "relay-tiny");
    assert.deepEqual(full, { code: "resource_exhausted", message: "the relay has 1 subscriptions, its limit" });
    const subs = await acme.call<{ subscriptions: Array<{ id: string }> }>("relay-tiny", { op: "subscriptions" });
    assert.deepEqual(
      subs.subscriptions.map((s) => s.id),
      [first.id],
    );
  });
});
