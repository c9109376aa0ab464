/**
 * End-to-end tests of services' powers (`deploy({ grants })`) through the real kernel: what each
 * grant allows inside the sandbox, what its absence refuses, how denials are audited, how
 * sessions may grant only what their token holds, persistence across restarts, swaps and
 * rollbacks, validation of hostile input, and `solo.fetch` against a real local HTTPS server.
 */
import assert from "node:assert/strict";
import { once } from "node:events";
import { mkdtempSync, rmSync } from "node:fs";
import https from "node:https";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { ManualClock, rejection, until } from "../../../test/support/helpers.ts";
import { type Kernel, openKernel, type SoloEvent } from "../../index.ts";
import { type CertAndKey, createCa, issueCert } from "../../tls/certs.ts";
import type { FetchPolicy } from "./fetch/index.ts";

/** A service that exercises one power per call and reports the outcome, catching any error. */
const PROBE = `
function failure(e) {
  return { err: { name: e.name, code: e.code ?? null, reason: e.reason ?? null, details: e.details ?? null, message: String(e.message) } };
}
export default {
  init() { return { ticks: 0, casts: 0 } },
  async handleCall(req, state) {
    try {
      let ok = null;
      switch (req.op) {
        case "ping": ok = "pong"; break;
        case "grants": return { reply: { grants: solo.grants, frozen: Object.isFrozen(solo.grants) && Object.isFrozen(solo.grants.call) }, state };
        case "put": await solo.storage.put(req.key, req.value); ok = await solo.storage.get(req.key); break;
        case "emit": ok = await solo.emit("probe", req.payload ?? null); break;
        case "timer": ok = solo.sendAfter(0, "tick"); break;
        case "ticks": ok = state.ticks; break;
        case "log": solo.log(req.text ?? "hello"); ok = true; break;
        case "console": console.log(req.text ?? "hi"); ok = true; break;
        case "burst": for (let i = 0; i < req.n; i++) solo.log("line " + i); ok = true; break;
        case "call": ok = await solo.call(req.to, req.body ?? null); break;
        case "cast": solo.cast(req.to, req.body ?? null); ok = true; break;
        case "secret": ok = await solo.secrets.get(req.name); break;
        case "fetch": ok = await solo.fetch(req.request); break;
        case "denyCalls": {
          let refused = 0;
          for (let i = 0; i < req.n; i++) {
            try { await solo.call(req.to[i % req.to.length], i) } catch (e) { if (e.reason === "SOLO_ERR_GRANT_MISSING") refused++ }
          }
          ok = refused;
          break;
        }
        case "denySecrets": {
          let refused = 0;
          for (let i = 0; i < req.n; i++) {
            try { await solo.secrets.get(req.names[i % req.names.length]) } catch (e) { if (e.reason === "SOLO_ERR_GRANT_MISSING") refused++ }
          }
          ok = refused;
          break;
        }
        default: throw new Error("unknown op " + req.op);
      }
      return { reply: { ok: ok === undefined ? null : ok }, state };
    } catch (e) {
      return { reply: failure(e), state };
    }
  },
  handleCast(m, state) { state.casts++; return { state } },
  handleInfo(m, state) { state.ticks++; return { state } },
}`;

/** A plain target for calls and casts. */
const LEDGER = `export default {
  init() { return { casts: 0 } },
  handleCall(req, state) {
    if (req === "casts") return { reply: state.casts, state };
    return { reply: { ledger: req }, state };
  },
  handleCast(m, state) { state.casts++; return { state } },
}`;

interface ProbeError {
  name: string;
  code: string | null;
  reason: string | null;
  details: Record<string, unknown> | null;
  message: string;
}
type ProbeReply = { ok: unknown } | { err: ProbeError };

async function run(k: Kernel, tenant: string, service: string, req: Record<string, unknown>): Promise<ProbeReply> {
  return (await k.call(tenant, service, req, { timeoutMs: 20_000 })) as ProbeReply;
}

/** Runs a probe operation that must succeed inside the service, and returns its result. */
async function ok(k: Kernel, tenant: string, service: string, req: Record<string, unknown>): Promise<unknown> {
  const reply = await run(k, tenant, service, req);
  assert.ok("ok" in reply, `expected ${JSON.stringify(req)} to succeed, got ${JSON.stringify(reply)}`);
  return reply.ok;
}

/** Runs a probe operation that must fail inside the service (caught there), and returns the error. */
async function refused(k: Kernel, tenant: string, service: string, req: Record<string, unknown>): Promise<ProbeError> {
  const reply = await run(k, tenant, service, req);
  assert.ok("err" in reply, `expected ${JSON.stringify(req)} to fail, got ${JSON.stringify(reply).slice(0, 300)}`);
  assert.equal(reply.err.name, "SoloError", JSON.stringify(reply.err));
  return reply.err;
}

/** Asserts a SOLO_ERR_GRANT_MISSING for `grant`, as the service saw it. */
function assertGrantMissing(err: ProbeError, grant: string): void {
  assert.equal(err.reason, "SOLO_ERR_GRANT_MISSING", JSON.stringify(err));
  assert.equal(err.code, "permission_denied");
  assert.equal(err.details?.grant, grant, JSON.stringify(err));
}

async function eventsOf(k: Kernel, tenant: string, type: string, subject?: string): Promise<SoloEvent[]> {
  return (await k.events({ tenant, types: [type], ...(subject === undefined ? {} : { subject }), limit: 1000 })).events;
}

/** An event's payload, failing if there is no event. */
function payloadOf(event: SoloEvent | undefined): Record<string, unknown> {
  assert.ok(event, "expected an event");
  return event.payload as Record<string, unknown>;
}

const DEFAULT_STATUS_GRANTS = {
  call: [],
  storage: true,
  secrets: [],
  emit: true,
  timers: true,
  log: { perSecond: 100 },
};

const NO_GRANTS = { call: [], storage: false, secrets: [], emit: false, timers: false, log: false };

// ---- the local HTTPS server the fetch tests reach --------------------------------------------

const requests: string[] = [];

function handler(req: import("node:http").IncomingMessage, res: import("node:http").ServerResponse): void {
  const url = new URL(req.url ?? "/", "https://x");
  requests.push(url.pathname);
  const chunks: Buffer[] = [];
  req.on("data", (c: Buffer) => chunks.push(c));
  req.on("end", () => {
    switch (url.pathname) {
      case "/echo":
        res.writeHead(200, { "content-type": "application/json", "x-test": "yes" }).end(
          JSON.stringify({
            method: req.method,
            url: req.url,
            headers: req.headers,
            body: Buffer.concat(chunks).toString("utf8"),
          }),
        );
        return;
      case "/big":
        res.writeHead(200, { "content-type": "text/plain" }).end("x".repeat(64 * 1024));
        return;
      case "/slow":
        return; // never answers: only the client giving up ends it
      default:
        res.writeHead(404).end("no such route");
    }
  });
}

const NAMES: Record<string, string> = { "api.test": "127.0.0.1", "other.test": "127.0.0.1" };

const lookup: NonNullable<FetchPolicy["lookup"]> = async (hostname) => {
  const address = NAMES[hostname];
  if (address === undefined) throw Object.assign(new Error(`getaddrinfo ENOTFOUND ${hostname}`), { code: "ENOTFOUND" });
  return [{ address, family: 4 }];
};

// ---- the shared kernel ------------------------------------------------------------------------

const dirs: string[] = [];
function tempDir(): string {
  const dir = mkdtempSync(join(tmpdir(), "solo-grants-"));
  dirs.push(dir);
  return dir;
}

let kernel: Kernel;
let clock: ManualClock;
let ca: CertAndKey;
let server: https.Server;
let port: number;

before(async () => {
  ca = await createCa({ commonName: "Solo grants test CA" });
  const cert = await issueCert(ca, { commonName: "api.test", dnsNames: ["api.test", "other.test"], usage: "server" });
  server = https.createServer({ key: cert.keyPem, cert: cert.certPem }, handler);
  server.listen(0, "127.0.0.1");
  await once(server, "listening");
  port = (server.address() as AddressInfo).port;
  clock = new ManualClock();
  kernel = await openKernel({
    dataDir: tempDir(),
    schedulers: 1,
    clock,
    fetch: { allowAddresses: ["127.0.0.1/32"], ca: ca.certPem, lookup },
    // Dozens of small tenants: each at the engine's minimum, so they fit a small machine's budget.
    tenantLimits: { memoryBytes: 16 * 1024 * 1024 },
  });
});

after(async () => {
  await kernel?.close();
  if (server) {
    server.closeAllConnections();
    server.close();
  }
  for (const dir of dirs) rmSync(dir, { recursive: true, force: true });
});

describe("service grants", () => {
  describe("defaults", () => {
    it("a deployment without grants has storage, emit, timers and log, and status shows exactly those", async () => {
      await kernel.deploy({ tenant: "defaults", service: "probe", code: PROBE });
      assert.deepEqual(kernel.status("defaults", "probe").grants, DEFAULT_STATUS_GRANTS);
      assert.deepEqual(await ok(kernel, "defaults", "probe", { op: "put", key: "k", value: { n: 1 } }), { n: 1 });
      const id = await ok(kernel, "defaults", "probe", { op: "emit", payload: { hello: 1 } });
      assert.equal(typeof id, "number");
      const [emitted] = await eventsOf(kernel, "defaults", "svc.probe.probe");
      assert.deepEqual(emitted?.payload, { hello: 1 });
      assert.equal(typeof (await ok(kernel, "defaults", "probe", { op: "timer" })), "number");
      await until("the timer message", async () => ((await ok(kernel, "defaults", "probe", { op: "ticks" })) as number) >= 1);
      await ok(kernel, "defaults", "probe", { op: "log", text: "logged by default" });
      await ok(kernel, "defaults", "probe", { op: "console", text: "console by default" });
      await until("the log lines", () => {
        const texts = kernel.logs("defaults", "probe").map((l) => l.text);
        return texts.includes("logged by default") && texts.includes("console by default");
      });
    });

    it("a deployment without grants cannot call, cast, read secrets or fetch: each fails inside the service", async () => {
      await kernel.deploy({ tenant: "nodefaults", service: "probe", code: PROBE });
      await kernel.deploy({ tenant: "nodefaults", service: "ledger", code: LEDGER });
      await kernel.secrets.put("nodefaults", "API_KEY", "s3cr3t-value");
      const call = await refused(kernel, "nodefaults", "probe", { op: "call", to: "ledger", body: 1 });
      assertGrantMissing(call, "call");
      assert.equal(call.details?.requested, "ledger");
      assertGrantMissing(await refused(kernel, "nodefaults", "probe", { op: "cast", to: "ledger", body: 1 }), "call");
      const secret = await refused(kernel, "nodefaults", "probe", { op: "secret", name: "API_KEY" });
      assertGrantMissing(secret, "secrets");
      assert.doesNotMatch(JSON.stringify(secret), /s3cr3t-value/);
      assertGrantMissing(await refused(kernel, "nodefaults", "probe", { op: "fetch", request: `https://api.test:${port}/echo` }), "fetch");
      // Nothing reached the ledger, and the service still works.
      assert.equal(await kernel.call("nodefaults", "ledger", "casts"), 0);
      assert.equal(await ok(kernel, "nodefaults", "probe", { op: "ping" }), "pong");
      assert.equal(kernel.status("nodefaults", "probe").state, "running");
    });

    it("grants: {} keeps the defaults; each goes only when switched off", async () => {
      await kernel.deploy({ tenant: "empty", service: "probe", code: PROBE, grants: {} });
      assert.deepEqual(kernel.status("empty", "probe").grants, kernel.status("defaults", "probe").grants);
    });

    it("defaults switched off give nothing: storage, emit and sendAfter fail; console.log and solo.log are dropped and counted, never thrown", async () => {
      await kernel.deploy({
        tenant: "bare",
        service: "probe",
        code: PROBE,
        grants: { storage: false, emit: false, timers: false, log: false },
      });
      assert.deepEqual(kernel.status("bare", "probe").grants, NO_GRANTS);
      assertGrantMissing(await refused(kernel, "bare", "probe", { op: "put", key: "k", value: 1 }), "storage");
      assertGrantMissing(await refused(kernel, "bare", "probe", { op: "emit" }), "emit");
      assertGrantMissing(await refused(kernel, "bare", "probe", { op: "timer" }), "timers");
      await ok(kernel, "bare", "probe", { op: "console", text: "nope" });
      await ok(kernel, "bare", "probe", { op: "log", text: "nope" });
      await until("the dropped lines in status", () => kernel.status("bare", "probe").usage.logDropped === 2);
      assert.deepEqual(kernel.logs("bare", "probe"), []);
      assert.deepEqual(await eventsOf(kernel, "bare", "svc.probe.probe"), []);
      assert.equal(await ok(kernel, "bare", "probe", { op: "ping" }), "pong");
      assert.equal(kernel.status("bare", "probe").state, "running");
    });

    it("status().grants shows explicit grants, with fetch's defaults filled in", async () => {
      await kernel.deploy({
        tenant: "explicit",
        service: "probe",
        code: PROBE,
        grants: {
          call: ["ledger", "ledger"],
          secrets: ["API_KEY"],
          storage: true,
          log: { perSecond: 5 },
          fetch: { hosts: ["API.Example.com"] },
        },
      });
      assert.deepEqual(kernel.status("explicit", "probe").grants, {
        call: ["ledger"],
        storage: true,
        secrets: ["API_KEY"],
        emit: true,
        timers: true,
        log: { perSecond: 5 },
        fetch: {
          hosts: ["api.example.com"],
          allowHttp: false,
          maxResponseBytes: 1024 * 1024,
          maxRequestBytes: 256 * 1024,
          timeoutMs: 10_000,
          maxRedirects: 5,
        },
      });
      assert.deepEqual(kernel.list("explicit")[0]?.grants, kernel.status("explicit", "probe").grants);
    });
  });

  describe("each grant, when given", () => {
    it("call: calls and casts reach a listed service and not an unlisted one", async () => {
      await kernel.deploy({ tenant: "calls", service: "ledger", code: LEDGER });
      await kernel.deploy({ tenant: "calls", service: "other", code: LEDGER });
      await kernel.deploy({ tenant: "calls", service: "probe", code: PROBE, grants: { call: ["ledger"] } });
      assert.deepEqual(await ok(kernel, "calls", "probe", { op: "call", to: "ledger", body: "hi" }), { ledger: "hi" });
      assert.equal(await ok(kernel, "calls", "probe", { op: "cast", to: "ledger", body: 1 }), true);
      await until("the cast", async () => (await kernel.call("calls", "ledger", "casts")) === 1);
      const call = await refused(kernel, "calls", "probe", { op: "call", to: "other", body: "hi" });
      assertGrantMissing(call, "call");
      assert.equal(call.details?.requested, "other");
      assertGrantMissing(await refused(kernel, "calls", "probe", { op: "cast", to: "other", body: 1 }), "call");
      assert.equal(await kernel.call("calls", "other", "casts"), 0);
      // Issue 17: a grant given adds to the defaults (storage among them) instead of dropping them.
      assert.deepEqual(await ok(kernel, "calls", "probe", { op: "put", key: "k", value: 1 }), 1);
    });

    it("solo.grants shows a service its own grants, read-only", async () => {
      await kernel.deploy({ tenant: "mirror", service: "probe", code: PROBE, grants: { call: ["ledger"], emit: false } });
      const seen = (await kernel.call("mirror", "probe", { op: "grants" })) as { grants: unknown; frozen: boolean };
      assert.deepEqual(seen.grants, kernel.status("mirror", "probe").grants);
      assert.equal(seen.frozen, true);
    });

    it("call: takes the patterns tokens take (billing-*, *), matching by prefix", async () => {
      for (const name of ["billing-eu", "billing-us", "ledger"]) await kernel.deploy({ tenant: "patterns", service: name, code: LEDGER });
      await kernel.deploy({ tenant: "patterns", service: "probe", code: PROBE, grants: { call: ["billing-*"] } });
      assert.deepEqual(await ok(kernel, "patterns", "probe", { op: "call", to: "billing-eu", body: 1 }), { ledger: 1 });
      assert.deepEqual(await ok(kernel, "patterns", "probe", { op: "call", to: "billing-us", body: 2 }), { ledger: 2 });
      assertGrantMissing(await refused(kernel, "patterns", "probe", { op: "call", to: "ledger", body: 3 }), "call");
      await kernel.deploy({ tenant: "patterns", service: "any", code: PROBE, grants: { call: ["*"] } });
      assert.deepEqual(await ok(kernel, "patterns", "any", { op: "call", to: "ledger", body: 4 }), { ledger: 4 });
      assert.deepEqual(kernel.status("patterns", "probe").grants.call, ["billing-*"]);
    });

    it("secrets: a listed secret's value is returned, audited before it is; an unlisted one is refused and audited by name", async () => {
      await kernel.tenants.create("vaulted");
      await kernel.secrets.put("vaulted", "API_KEY", "the-api-key-value");
      await kernel.secrets.put("vaulted", "OTHER", "the-other-value");
      await kernel.deploy({ tenant: "vaulted", service: "probe", code: PROBE, grants: { secrets: ["API_KEY", "MISSING"] } });
      assert.equal(await ok(kernel, "vaulted", "probe", { op: "secret", name: "API_KEY" }), "the-api-key-value");
      // Recorded durably before the value was returned: already there, no waiting.
      const accessed = await eventsOf(kernel, "vaulted", "secret_accessed", "API_KEY");
      assert.equal(accessed.length, 1);
      assert.equal(payloadOf(accessed[0]).service, "probe");
      assert.doesNotMatch(JSON.stringify(accessed), /the-api-key-value/);

      const denied = await refused(kernel, "vaulted", "probe", { op: "secret", name: "OTHER" });
      assertGrantMissing(denied, "secrets");
      assert.doesNotMatch(JSON.stringify(denied), /the-other-value/);
      await until("secret_access_denied", async () => (await eventsOf(kernel, "vaulted", "secret_access_denied")).length === 1);
      const [record] = await eventsOf(kernel, "vaulted", "secret_access_denied");
      assert.equal(record?.subject, "OTHER");
      assert.equal(payloadOf(record).name, "OTHER");
      assert.equal(payloadOf(record).service, "probe");
      assert.doesNotMatch(JSON.stringify(record), /the-other-value/);
      assert.deepEqual(await eventsOf(kernel, "vaulted", "secret_accessed", "OTHER"), []);
      assert.deepEqual(await eventsOf(kernel, "vaulted", "grant_denied"), []);

      const missing = await refused(kernel, "vaulted", "probe", { op: "secret", name: "MISSING" });
      assert.equal(missing.reason, "SOLO_ERR_SECRET_NOT_FOUND");
    });

    it("log: a burst over the rate keeps a few lines and reports how many were dropped", async () => {
      await kernel.deploy({ tenant: "chatty", service: "probe", code: PROBE, grants: { log: { perSecond: 5 } } });
      assert.equal(await ok(kernel, "chatty", "probe", { op: "burst", n: 100 }), true);
      // The drop is reported by the next line that gets through (the bucket refills at 5 a second).
      await until(
        "the drop notice",
        async () => {
          await ok(kernel, "chatty", "probe", { op: "log", text: "after the burst" });
          return kernel.logs("chatty", "probe").some((l) => /log lines dropped/.test(l.text));
        },
        5000,
      );
      const logs = kernel.logs("chatty", "probe");
      const kept = logs.filter((l) => /^line \d+$/.test(l.text)).length;
      assert.ok(kept >= 1 && kept <= 20, `kept ${kept} of 100 burst lines`);
      const notices = logs.filter((l) => /log lines dropped/.test(l.text));
      assert.equal(notices[0]?.level, "warn");
      const dropped = notices.reduce((sum, l) => sum + Number(/^(\d+) log lines dropped/.exec(l.text)?.[1] ?? Number.NaN), 0);
      assert.ok(dropped >= 100 - kept, `${dropped} dropped and ${kept} kept of 100`);
      assert.match(notices[0]?.text ?? "", /5 lines a second/);
    });
  });

  describe("audit", () => {
    it("a denied power is recorded as grant_denied at most once a minute, with the attempts since", async () => {
      await kernel.deploy({ tenant: "audited", service: "ledger", code: LEDGER });
      await kernel.deploy({ tenant: "audited", service: "probe", code: PROBE });
      assert.equal(await ok(kernel, "audited", "probe", { op: "denyCalls", to: ["ledger"], n: 20 }), 20);
      await until("grant_denied", async () => (await eventsOf(kernel, "audited", "grant_denied")).length >= 1);
      // Anything recorded before this emit is durable by the time it resolves (the log is FIFO).
      await ok(kernel, "audited", "probe", { op: "emit" });
      const first = await eventsOf(kernel, "audited", "grant_denied");
      assert.equal(first.length, 1);
      assert.equal(first[0]?.subject, "probe");
      assert.deepEqual(first[0]?.payload, { version: 1, grant: "call", detail: "ledger", attempts: 1 });

      clock.advance(60_000);
      assert.equal(await ok(kernel, "audited", "probe", { op: "denyCalls", to: ["ledger"], n: 1 }), 1);
      await until("the second grant_denied", async () => (await eventsOf(kernel, "audited", "grant_denied")).length >= 2);
      const second = (await eventsOf(kernel, "audited", "grant_denied"))[1];
      // The 19 counted after the first record, and this one.
      assert.deepEqual(second?.payload, { version: 1, grant: "call", detail: "ledger", attempts: 20 });
    });

    it("a loop over many different ungranted services still records one grant_denied a minute", async () => {
      await kernel.deploy({ tenant: "flood", service: "probe", code: PROBE });
      const to = Array.from({ length: 20 }, (_, i) => `target-${i}`);
      assert.equal(await ok(kernel, "flood", "probe", { op: "denyCalls", to, n: 20 }), 20);
      await until("grant_denied", async () => (await eventsOf(kernel, "flood", "grant_denied")).length >= 1);
      await ok(kernel, "flood", "probe", { op: "emit" });
      assert.equal((await eventsOf(kernel, "flood", "grant_denied")).length, 1);
    });

    it("a loop over many different ungranted secrets still records one secret_access_denied a minute", async () => {
      await kernel.deploy({ tenant: "flood2", service: "probe", code: PROBE });
      const names = Array.from({ length: 20 }, (_, i) => `NAME_${i}`);
      assert.equal(await ok(kernel, "flood2", "probe", { op: "denySecrets", names, n: 20 }), 20);
      await until("secret_access_denied", async () => (await eventsOf(kernel, "flood2", "secret_access_denied")).length >= 1);
      await ok(kernel, "flood2", "probe", { op: "emit" });
      assert.equal((await eventsOf(kernel, "flood2", "secret_access_denied")).length, 1);
    });

    it("repeated reads of one unlisted secret record one secret_access_denied", async () => {
      await kernel.deploy({ tenant: "snoop", service: "probe", code: PROBE });
      assert.equal(await ok(kernel, "snoop", "probe", { op: "denySecrets", names: ["API_KEY"], n: 20 }), 20);
      await until("secret_access_denied", async () => (await eventsOf(kernel, "snoop", "secret_access_denied")).length >= 1);
      await ok(kernel, "snoop", "probe", { op: "emit" });
      const records = await eventsOf(kernel, "snoop", "secret_access_denied");
      assert.equal(records.length, 1);
      assert.deepEqual(records[0]?.payload, { name: "API_KEY", service: "probe", version: 1, attempts: 1 });
    });
  });

  describe("fetch", () => {
    const fetchGrant = (extra: Record<string, unknown> = {}): Record<string, unknown> => ({
      hosts: [`api.test:${port}`],
      ...extra,
    });

    it("GET and POST reach the server; the response has status, headers, body and url", async () => {
      await kernel.deploy({ tenant: "fetcher", service: "probe", code: PROBE, grants: { fetch: fetchGrant() } });
      const get = (await ok(kernel, "fetcher", "probe", { op: "fetch", request: `https://api.test:${port}/echo?q=1` })) as Record<
        string,
        unknown
      >;
      assert.equal(get.status, 200);
      assert.equal(get.url, `https://api.test:${port}/echo?q=1`);
      assert.equal((get.headers as Record<string, string>)["x-test"], "yes");
      assert.equal((get.headers as Record<string, string>)["content-type"], "application/json");
      const seen = JSON.parse(get.body as string) as { method: string; url: string; body: string; headers: Record<string, string> };
      assert.equal(seen.method, "GET");
      assert.equal(seen.url, "/echo?q=1");

      const post = (await ok(kernel, "fetcher", "probe", {
        op: "fetch",
        request: {
          url: `https://api.test:${port}/echo`,
          method: "POST",
          headers: { "content-type": "application/json" },
          body: JSON.stringify({ amount: 42 }),
        },
      })) as Record<string, unknown>;
      assert.equal(post.status, 200);
      const posted = JSON.parse(post.body as string) as { method: string; body: string; headers: Record<string, string> };
      assert.equal(posted.method, "POST");
      assert.deepEqual(JSON.parse(posted.body), { amount: 42 });
      assert.equal(posted.headers["content-type"], "application/json");
    });

    it("a host not on the grant is refused inside the service, and the server never hears of it", async () => {
      await kernel.deploy({ tenant: "fenced", service: "probe", code: PROBE, grants: { fetch: fetchGrant() } });
      const before = requests.length;
      const err = await refused(kernel, "fenced", "probe", { op: "fetch", request: `https://other.test:${port}/echo` });
      assert.equal(err.reason, "SOLO_ERR_FETCH_DENIED");
      assert.equal(err.code, "permission_denied");
      // Another port of the granted host is another host.
      const port2 = await refused(kernel, "fenced", "probe", { op: "fetch", request: "https://api.test/echo" });
      assert.equal(port2.reason, "SOLO_ERR_FETCH_DENIED");
      assert.equal(requests.length, before);
    });

    it("the response body is capped by the service's messageBytes even when the grant allows more", async () => {
      await kernel.deploy({
        tenant: "capped",
        service: "probe",
        code: PROBE,
        limits: { messageBytes: 4096 },
        grants: { fetch: fetchGrant({ maxResponseBytes: 1024 * 1024 }) },
      });
      const err = await refused(kernel, "capped", "probe", { op: "fetch", request: `https://api.test:${port}/big` });
      assert.equal(err.reason, "SOLO_ERR_FETCH_TOO_LARGE");
      assert.ok(typeof err.details?.limit === "number" && err.details.limit <= 4096, JSON.stringify(err.details));
      assert.equal(await ok(kernel, "capped", "probe", { op: "ping" }), "pong");
    });

    it("a server slower than the grant's timeoutMs times out, and the service keeps working", async () => {
      await kernel.deploy({ tenant: "patient", service: "probe", code: PROBE, grants: { fetch: fetchGrant({ timeoutMs: 200 }) } });
      const err = await refused(kernel, "patient", "probe", { op: "fetch", request: `https://api.test:${port}/slow` });
      assert.equal(err.reason, "SOLO_ERR_FETCH_TIMEOUT");
      assert.equal(err.code, "deadline_exceeded");
      // Both paths to this reason name the time the same two ways.
      assert.deepEqual([err.details?.timeoutMs, err.details?.limit], [200, 200]);
      assert.equal(await ok(kernel, "patient", "probe", { op: "ping" }), "pong");
      const res = (await ok(kernel, "patient", "probe", { op: "fetch", request: `https://api.test:${port}/echo` })) as { status: number };
      assert.equal(res.status, 200);
      assert.equal(kernel.status("patient", "probe").state, "running");
    });

    it("a kernel without allowAddresses refuses loopback even when the grant lists it", async () => {
      const bare = await openKernel({ dataDir: tempDir(), schedulers: 1, fetch: { ca: ca.certPem } });
      try {
        await bare.deploy({
          tenant: "acme",
          service: "probe",
          code: PROBE,
          grants: { fetch: { hosts: [`127.0.0.1:${port}`, `localhost:${port}`] } },
        });
        const before = requests.length;
        const ip = await refused(bare, "acme", "probe", { op: "fetch", request: `https://127.0.0.1:${port}/echo` });
        assert.equal(ip.reason, "SOLO_ERR_FETCH_DENIED");
        assert.equal(ip.details?.range, "127.0.0.0/8");
        const named = await refused(bare, "acme", "probe", { op: "fetch", request: `https://localhost:${port}/echo` });
        assert.equal(named.reason, "SOLO_ERR_FETCH_DENIED");
        assert.equal(requests.length, before);
      } finally {
        await bare.close();
      }
    });
  });

  describe("deploying through a session", () => {
    before(async () => {
      await kernel.tenants.create("sess");
      await kernel.deploy({ tenant: "sess", service: "ledger", code: LEDGER });
    });

    async function session(permissions: string[]) {
      const { token } = await kernel.tokens.grant({ tenant: "sess", permissions });
      return kernel.as(token);
    }

    it("a token without call:ledger cannot give a service call to it; with it, it can", async () => {
      const s = await session(["deploy:*"]);
      const err = await rejection(s.deploy({ tenant: "sess", service: "caller", code: PROBE, grants: { call: ["ledger"] } }));
      assert.equal(err.reason, "SOLO_ERR_PERMISSION_DENIED");
      assert.equal(err.details.required, "call:ledger");
      const [denial] = await eventsOf(kernel, "sess", "capability_denied", "caller");
      assert.equal(payloadOf(denial).operation, "deploy");
      assert.equal(payloadOf(denial).required, "call:ledger");
      assert.equal(
        kernel.list("sess").find((i) => i.service === "caller"),
        undefined,
      );
      assert.deepEqual(await eventsOf(kernel, "sess", "service_deployed", "caller"), []);
      // Deploying with no call grant needs no call permission.
      await s.deploy({ tenant: "sess", service: "plain", code: PROBE });

      const s2 = await session(["deploy:*", "call:ledger"]);
      await s2.deploy({ tenant: "sess", service: "caller", code: PROBE, grants: { call: ["ledger"] } });
      assert.deepEqual(await ok(kernel, "sess", "caller", { op: "call", to: "ledger", body: 7 }), { ledger: 7 });
    });

    it("a swap may change grants, within what the swapping token holds; the state is kept, and a rollback restores the old grants", async () => {
      await kernel.deploy({ tenant: "sess", service: "growing", code: PROBE });
      await ok(kernel, "sess", "growing", { op: "put", key: "k", value: 1 });
      assertGrantMissing(await refused(kernel, "sess", "growing", { op: "call", to: "ledger", body: 1 }), "call");
      const narrow = await session(["deploy:*"]);
      const denied = await rejection(narrow.swap("sess", "growing", PROBE, { grants: { call: ["ledger"] } }));
      assert.equal(denied.reason, "SOLO_ERR_PERMISSION_DENIED");
      assert.equal(denied.details.required, "call:ledger");
      assert.deepEqual(kernel.status("sess", "growing").grants.call, [], "the refused swap changed nothing");
      assert.equal(kernel.status("sess", "growing").version, 1);
      const wide = await session(["deploy:*", "call:ledger"]);
      assert.equal((await wide.swap("sess", "growing", PROBE, { grants: { call: ["ledger"] }, rollbackWindowMs: 0 })).version, 2);
      assert.deepEqual(await ok(kernel, "sess", "growing", { op: "call", to: "ledger", body: 2 }), { ledger: 2 });
      assert.deepEqual(kernel.status("sess", "growing").grants.call, ["ledger"]);
      const [started] = await eventsOf(kernel, "sess", "hot_swap_started", "growing");
      assert.deepEqual((payloadOf(started).grants as { call: string[] }).call, ["ledger"]);
      // A swap without grants keeps the running version's; a rollback brings back version 1's.
      await kernel.swap("sess", "growing", PROBE, { rollbackWindowMs: 0 });
      assert.deepEqual(kernel.status("sess", "growing").grants.call, ["ledger"]);
      await kernel.rollback("sess", "growing", 1);
      assert.deepEqual(kernel.status("sess", "growing").grants.call, []);
      // A malformed grant or an unknown swap option is refused before anything changes.
      const bad = await rejection(kernel.swap("sess", "growing", PROBE, { grants: { call: ["bil*ling"] } }));
      assert.equal(bad.reason, "SOLO_ERR_GRANTS_INVALID");
      const unknown = await rejection(kernel.swap("sess", "growing", PROBE, { grant: {} } as never));
      assert.equal(unknown.reason, "SOLO_ERR_REQUEST_INVALID");
      assert.match(unknown.message, /swap: unknown option "grant"/);
    });

    it("secrets grants need secrets:read", async () => {
      const s = await session(["deploy:*"]);
      const err = await rejection(s.deploy({ tenant: "sess", service: "reader", code: PROBE, grants: { secrets: ["API_KEY"] } }));
      assert.equal(err.reason, "SOLO_ERR_PERMISSION_DENIED");
      assert.equal(err.details.required, "secrets:read");
      assert.equal(
        kernel.list("sess").find((i) => i.service === "reader"),
        undefined,
      );
      const s2 = await session(["deploy:*", "secrets:read"]);
      await s2.deploy({ tenant: "sess", service: "reader", code: PROBE, grants: { secrets: ["API_KEY"] } });
      assert.deepEqual(kernel.status("sess", "reader").grants.secrets, ["API_KEY"]);
    });

    it("fetch grants need fetch:<host> for every host; *.example.com covers api.example.com", async () => {
      const s = await session(["deploy:*", "fetch:*.example.com"]);
      const err = await rejection(
        s.deploy({ tenant: "sess", service: "web", code: PROBE, grants: { fetch: { hosts: ["api.example.com", "api.other.org"] } } }),
      );
      assert.equal(err.reason, "SOLO_ERR_PERMISSION_DENIED");
      assert.equal(err.details.required, "fetch:api.other.org");
      assert.equal(
        kernel.list("sess").find((i) => i.service === "web"),
        undefined,
      );
      const apex = await rejection(
        s.deploy({ tenant: "sess", service: "web", code: PROBE, grants: { fetch: { hosts: ["example.com"] } } }),
      );
      assert.equal(apex.reason, "SOLO_ERR_PERMISSION_DENIED");
      await s.deploy({
        tenant: "sess",
        service: "web",
        code: PROBE,
        grants: { fetch: { hosts: ["api.example.com", "*.v2.example.com"] } },
      });
      assert.deepEqual((kernel.status("sess", "web").grants.fetch as { hosts: string[] }).hosts, ["api.example.com", "*.v2.example.com"]);

      const none = await session(["deploy:*"]);
      const err2 = await rejection(
        none.deploy({ tenant: "sess", service: "web2", code: PROBE, grants: { fetch: { hosts: ["api.example.com"] } } }),
      );
      assert.equal(err2.details.required, "fetch:api.example.com");
    });
  });

  describe("persistence", () => {
    it("grants survive a restart; swap keeps them; rollback restores the target version's", async () => {
      const dir = tempDir();
      const code2 = PROBE.replace('case "ping": ok = "pong"', 'case "ping": ok = "pong v2"');
      let k = await openKernel({ dataDir: dir, schedulers: 1 });
      try {
        await k.deploy({ tenant: "p", service: "ledger", code: LEDGER });
        await k.deploy({ tenant: "p", service: "other", code: LEDGER });
        await k.deploy({ tenant: "p", service: "probe", code: PROBE, grants: { call: ["ledger"], storage: false } });
        const granted = k.status("p", "probe").grants;
        await k.close();

        k = await openKernel({ dataDir: dir, schedulers: 1 });
        await until("the service's recovery", () => k.list("p").filter((i) => i.state === "running").length === 3);
        assert.deepEqual(k.status("p", "probe").grants, granted);
        assert.deepEqual(await ok(k, "p", "probe", { op: "call", to: "ledger", body: 1 }), { ledger: 1 });
        assertGrantMissing(await refused(k, "p", "probe", { op: "call", to: "other", body: 1 }), "call");
        assertGrantMissing(await refused(k, "p", "probe", { op: "put", key: "k", value: 1 }), "storage");

        // swap keeps the running service's grants
        assert.equal((await k.swap("p", "probe", code2, { rollbackWindowMs: 0 })).version, 2);
        assert.equal(await ok(k, "p", "probe", { op: "ping" }), "pong v2");
        assert.deepEqual(k.status("p", "probe").grants, granted);
        assert.deepEqual(await ok(k, "p", "probe", { op: "call", to: "ledger", body: 2 }), { ledger: 2 });
        assertGrantMissing(await refused(k, "p", "probe", { op: "call", to: "other", body: 2 }), "call");

        // a new version with other grants, then a rollback to version 2
        await k.kill("p", "probe");
        assert.equal(
          (await k.deploy({ tenant: "p", service: "probe", code: PROBE, grants: { call: ["other"], storage: true } })).version,
          3,
        );
        assert.deepEqual(k.status("p", "probe").grants.call, ["other"]);
        assert.deepEqual(await ok(k, "p", "probe", { op: "call", to: "other", body: 3 }), { ledger: 3 });
        assertGrantMissing(await refused(k, "p", "probe", { op: "call", to: "ledger", body: 3 }), "call");

        assert.equal((await k.rollback("p", "probe", 2)).version, 2);
        assert.deepEqual(k.status("p", "probe").grants, granted);
        assert.equal(await ok(k, "p", "probe", { op: "ping" }), "pong v2");
        assert.deepEqual(await ok(k, "p", "probe", { op: "call", to: "ledger", body: 4 }), { ledger: 4 });
        assertGrantMissing(await refused(k, "p", "probe", { op: "call", to: "other", body: 4 }), "call");
        assertGrantMissing(await refused(k, "p", "probe", { op: "put", key: "k", value: 1 }), "storage");

        // and the rolled-back version's grants survive another restart
        await k.close();
        k = await openKernel({ dataDir: dir, schedulers: 1 });
        await until("the service's recovery", () => k.list("p").filter((i) => i.state === "running").length === 3);
        assert.equal(k.status("p", "probe").version, 2);
        assert.deepEqual(k.status("p", "probe").grants, granted);
        assertGrantMissing(await refused(k, "p", "probe", { op: "call", to: "other", body: 5 }), "call");
      } finally {
        await k.close();
      }
    });
  });

  describe("malformed grants", () => {
    const cases: Array<[string, unknown, string]> = [
      ["not an object", "everything", "grants"],
      ["an array", ["call"], "grants"],
      ["null", null, "grants"],
      ["an unknown power", { network: true }, "grants.network"],
      ["call as a string", { call: "x" }, "grants.call"],
      ["a bad service name", { call: ["Bad Name"] }, "grants.call[0]"],
      ["a non-string call entry", { call: ["ok", 3] }, "grants.call[1]"],
      ["257 call entries", { call: Array.from({ length: 257 }, (_, i) => `s${i}`) }, "grants.call"],
      ["a path as a secret name", { secrets: ["../x"] }, "grants.secrets[0]"],
      ["storage as a string", { storage: "yes" }, "grants.storage"],
      ["emit as a number", { emit: 1 }, "grants.emit"],
      ["log rate 0", { log: { perSecond: 0 } }, "grants.log.perSecond"],
      ["log rate 1e9", { log: { perSecond: 1e9 } }, "grants.log.perSecond"],
      ["log rate fractional", { log: { perSecond: 1.5 } }, "grants.log.perSecond"],
      ["log with an unknown field", { log: { perSecond: 5, burst: 9 } }, "grants.log.burst"],
      ["log as a string", { log: "lots" }, "grants.log"],
      ["no fetch hosts", { fetch: { hosts: [] } }, "grants.fetch.hosts"],
      ["a URL as a fetch host", { fetch: { hosts: ["http://x"] } }, "grants.fetch.hosts[0]"],
      ["a wildcard over a TLD", { fetch: { hosts: ["*.com"] } }, "grants.fetch.hosts[0]"],
      ["a negative fetch timeout", { fetch: { hosts: ["a.test"], timeoutMs: -1 } }, "grants.fetch.timeoutMs"],
      ["fetch null", { fetch: null }, "grants.fetch"],
      ["fetch true", { fetch: true }, "grants.fetch"],
      ["an unknown fetch field", { fetch: { hosts: ["a.test"], proxy: "x" } }, "grants.fetch.proxy"],
    ];

    it("each is refused with SOLO_ERR_GRANTS_INVALID naming the field, and nothing is deployed", async () => {
      for (const [what, grants, field] of cases) {
        const err = await rejection(kernel.deploy({ tenant: "malformed", service: "svc", code: PROBE, grants: grants as never }));
        assert.equal(err.reason, "SOLO_ERR_GRANTS_INVALID", `${what}: ${err.reason} ${err.message}`);
        assert.equal(err.code, "invalid_argument", what);
        assert.equal(err.details.field, field, `${what}: ${err.message}`);
      }
      assert.deepEqual(kernel.list("malformed"), []);
      assert.deepEqual(await eventsOf(kernel, "malformed", "service_deployed"), []);
      const failed = await eventsOf(kernel, "malformed", "service_deployment_failed");
      assert.equal(failed.length, cases.length);
      for (const e of failed) assert.equal((e.payload as { reason?: string }).reason, "SOLO_ERR_GRANTS_INVALID");
      // The name is still free: a valid deploy goes through.
      await kernel.deploy({ tenant: "malformed", service: "svc", code: PROBE, grants: { storage: true } });
      assert.equal(kernel.status("malformed", "svc").version >= 1, true);
    });

    it("an unknown power with a huge name is refused with its name clipped in details.field", async () => {
      const longKey = { ["k".repeat(10_000)]: true };
      const err = await rejection(kernel.deploy({ tenant: "malformed2", service: "svc", code: PROBE, grants: longKey as never }));
      assert.equal(err.reason, "SOLO_ERR_GRANTS_INVALID");
      assert.ok(String(err.details.field).length <= 100, String(err.details.field).length.toString());
      assert.deepEqual(kernel.list("malformed2"), []);
    });
  });
});
