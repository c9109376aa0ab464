/**
 * The event log through the kernel's public API, on a real SQLite file in a temporary data
 * directory: what the runtime records, how events() filters and pages, how subscribe() follows the
 * log, and how verify() finds a log changed behind the kernel's back.
 */

import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { DatabaseSync } from "node:sqlite";
import { after, before, describe, it } from "node:test";
import { inspect } from "node:util";
import { rejection } from "../../../test/support/helpers.ts";
import type { EventQuery, SoloEvent } from "../../api/events.ts";
import { type Kernel, openKernel, SoloError } from "../../index.ts";
import { eventHash } from "../../store/chain.ts";

// These cases read and alter the SQLite file itself; a PostgreSQL URL from the environment would
// send the kernel elsewhere.
delete process.env.SOLO_DATABASE_URL;

const COUNTER = `export default {
  init(args) { return args ?? 0 },
  handleCall(req, n) {
    if (req === "boom") throw new Error("boom");
    return { reply: n + 1, state: n + 1 };
  },
}`;

// Emits `n` events named `name` one after another, numbered from `from`; replies with their ids.
const EMITTER = `export default {
  init() { return null },
  async handleCall(req, s) {
    const ids = [];
    for (let i = 0; i < req.n; i++) ids.push(await solo.emit(req.name ?? "tick", { i: req.from + i }));
    return { reply: ids, state: s };
  },
}`;
const EMITTER_LIMITS = { cpuMsPerMessage: 10_000 };

const dirs: string[] = [];
function tempDir(): string {
  const dir = mkdtempSync(join(tmpdir(), "solo-events-"));
  dirs.push(dir);
  return dir;
}

after(() => {
  for (const dir of dirs) rmSync(dir, { recursive: true, force: true });
});

function open(dataDir: string): Promise<Kernel> {
  return openKernel({ dataDir, schedulers: 1, supervision: { restart: "temporary" } });
}

/** Polls `probe` until it returns something, between tries yielding to the event loop; bounded. */
async function waitFor<T>(probe: () => Promise<T | undefined>, what: string): Promise<T> {
  for (let i = 0; i < 2500; i++) {
    const value = await probe();
    if (value !== undefined) return value;
    await new Promise((resolve) => setTimeout(resolve, 2));
  }
  return assert.fail(`gave up waiting for ${what}`);
}

/** The one event matching `query`. */
async function one(kernel: Kernel, query: EventQuery): Promise<SoloEvent> {
  const { events } = await kernel.events(query);
  assert.equal(events.length, 1, `expected one event for ${JSON.stringify(query)}, got ${events.map((e) => e.type).join(", ")}`);
  return events[0] as SoloEvent;
}

/** Every event matching `query`, page after page. */
async function all(kernel: Kernel, query: EventQuery = {}): Promise<SoloEvent[]> {
  const out: SoloEvent[] = [];
  let cursor: string | undefined;
  for (let pages = 0; pages < 100; pages++) {
    const page = await kernel.events({ ...query, limit: 1000, ...(cursor ? { cursor } : {}) });
    out.push(...page.events);
    if (page.cursor === null) return out;
    cursor = page.cursor;
  }
  return assert.fail("more than 100 pages");
}

async function headId(kernel: Kernel): Promise<number> {
  return (await kernel.events({ order: "desc", limit: 1 })).events[0]?.id ?? 0;
}

function ids(events: readonly SoloEvent[]): number[] {
  return events.map((e) => e.id);
}

describe("the event log", () => {
  let kernel: Kernel;

  before(async () => {
    kernel = await open(tempDir());
  });

  after(async () => {
    await kernel.close();
  });

  describe("what the runtime records", () => {
    it("records a deploy as service_deployed, durable before deploy() resolves", async () => {
      const d = await kernel.deploy({ tenant: "ops", service: "counter", code: COUNTER, args: 1 });
      const e = await one(kernel, { tenant: "ops", subject: "counter", types: ["service_deployed"] });
      assert.equal(d.version, 1);
      assert.equal(e.tenant, "ops");
      assert.equal(e.subject, "counter");
      assert.equal(e.causationId, null);
      assert.deepEqual(e.payload, {
        version: 1,
        codeBytes: Buffer.byteLength(COUNTER),
        codeSha256: createHash("sha256").update(COUNTER).digest("hex"),
        handlers: ["init", "handleCall"],
        findings: [],
      });
      assert.equal(e.id, await headId(kernel));
    });

    it("records a deploy with a syntax error as service_deployment_failed with the reason and position", async () => {
      const code = "export default {\n  handleCall() {\n    return )\n  }\n}";
      const err = await rejection(kernel.deploy({ tenant: "ops", service: "broken", code }));
      assert.equal(err.reason, "SOLO_ERR_DEPLOY_SYNTAX");
      const e = await one(kernel, { tenant: "ops", subject: "broken" });
      assert.equal(e.type, "service_deployment_failed");
      assert.equal(e.tenant, "ops");
      const p = e.payload as { version: number; reason: string; message: string; details: { line: number; column: number } };
      assert.equal(p.version, 1);
      assert.equal(p.reason, "SOLO_ERR_DEPLOY_SYNTAX");
      assert.equal(p.message, err.message);
      assert.equal(p.details.line, 3);
      assert.equal(typeof p.details.column, "number");
      // A failed deploy takes no version: the first good one is still version 1.
      assert.equal((await kernel.deploy({ tenant: "ops", service: "broken", code: COUNTER })).version, 1);
    });

    it("records a deploy whose init throws as service_deployment_failed with the crash", async () => {
      const code = "export default { init() { throw new Error('no config') }, handleCall(r, s) { return { reply: 1, state: s } } }";
      const err = await rejection(kernel.deploy({ tenant: "ops", service: "badinit", code }));
      assert.equal(err.reason, "SOLO_ERR_DEPLOY_INIT_FAILED");
      const e = await one(kernel, { tenant: "ops", subject: "badinit" });
      assert.equal(e.type, "service_deployment_failed");
      const p = e.payload as { version: number; reason: string; details: { crash: { kind: string; reason: string; message: string } } };
      assert.equal(p.version, 1);
      assert.equal(p.reason, "SOLO_ERR_DEPLOY_INIT_FAILED");
      assert.equal(p.details.crash.kind, "exception");
      assert.equal(p.details.crash.reason, "SOLO_ERR_HANDLER_THREW");
      assert.match(p.details.crash.message, /no config/);
      assert.deepEqual(
        kernel
          .list("ops")
          .map((s) => s.service)
          .includes("badinit"),
        false,
      );
    });

    it("records a crash in a handler as service_crashed, caused by the deploy that started the version", async () => {
      await kernel.deploy({ tenant: "ops", service: "crashy", code: COUNTER });
      const deployed = await one(kernel, { tenant: "ops", subject: "crashy", types: ["service_deployed"] });
      assert.equal((await rejection(kernel.call("ops", "crashy", "boom"))).reason, "SOLO_ERR_HANDLER_THREW");
      const crashed = await waitFor(
        async () => (await kernel.events({ tenant: "ops", subject: "crashy", types: ["service_crashed"] })).events[0],
        "service_crashed",
      );
      assert.equal(crashed.tenant, "ops");
      assert.equal(crashed.causationId, deployed.id);
      const p = crashed.payload as { version: number; crash: { kind: string; reason: string; message: string; line: number } };
      assert.equal(p.version, 1);
      assert.equal(p.crash.kind, "exception");
      assert.equal(p.crash.reason, "SOLO_ERR_HANDLER_THREW");
      assert.match(p.crash.message, /boom/);
      assert.equal(p.crash.line, 4);

      // The next version's crash is caused by the next deploy.
      assert.equal((await kernel.deploy({ tenant: "ops", service: "crashy", code: COUNTER })).version, 2);
      const redeployed = (await kernel.events({ tenant: "ops", subject: "crashy", types: ["service_deployed"], order: "desc" })).events[0];
      await rejection(kernel.call("ops", "crashy", "boom"));
      const second = await waitFor(async () => {
        const { events } = await kernel.events({ tenant: "ops", subject: "crashy", types: ["service_crashed"] });
        return events.length === 2 ? events[1] : undefined;
      }, "the second service_crashed");
      assert.equal(second.causationId, redeployed?.id);
      assert.equal((second.payload as { version: number }).version, 2);
    });

    it("records kill of a running service as service_killed, caused by its deploy", async () => {
      await kernel.deploy({ tenant: "ops", service: "victim", code: COUNTER });
      const deployed = await one(kernel, { tenant: "ops", subject: "victim", types: ["service_deployed"] });
      await kernel.kill("ops", "victim");
      const killed = await one(kernel, { tenant: "ops", subject: "victim", types: ["service_killed"] });
      assert.equal(killed.tenant, "ops");
      assert.equal(killed.causationId, deployed.id);
      assert.deepEqual(killed.payload, { version: 1, was: "running" });
      // Killing it again changes nothing and records nothing.
      await kernel.kill("ops", "victim");
      assert.equal((await kernel.events({ tenant: "ops", subject: "victim", types: ["service_killed"] })).events.length, 1);
    });

    it("records kill of a crashed service as service_killed with was: crashed", async () => {
      await kernel.deploy({ tenant: "ops", service: "wreck", code: COUNTER });
      const deployed = await one(kernel, { tenant: "ops", subject: "wreck", types: ["service_deployed"] });
      await rejection(kernel.call("ops", "wreck", "boom"));
      await waitFor(
        async () => (await kernel.events({ tenant: "ops", subject: "wreck", types: ["service_crashed"] })).events[0],
        "service_crashed",
      );
      await kernel.kill("ops", "wreck");
      const killed = await one(kernel, { tenant: "ops", subject: "wreck", types: ["service_killed"] });
      assert.equal(killed.causationId, deployed.id);
      assert.deepEqual(killed.payload, { version: 1, was: "crashed" });
      assert.deepEqual(
        (await all(kernel, { tenant: "ops", subject: "wreck" })).map((e) => e.type),
        ["service_deployed", "service_crashed", "service_killed"],
      );
    });

    it("records kernel_started first in a fresh log and kernel_stopped at close, both kernel-wide", async () => {
      const dir = tempDir();
      const k1 = await open(dir);
      const [started] = (await k1.events()).events;
      assert.ok(started);
      assert.equal(started.id, 1);
      assert.equal(started.type, "kernel_started");
      assert.equal(started.tenant, null);
      assert.equal(started.subject, null);
      assert.equal(started.prevHash, "0".repeat(64));
      const p = started.payload as Record<string, unknown>;
      assert.deepEqual([p.store, p.schedulers, p.recovered, p.failed, p.failures], ["sqlite", 1, 0, 0, []]);
      await k1.close();
      const k2 = await open(dir);
      try {
        const events = (await k2.events()).events;
        assert.deepEqual(
          events.map((e) => [e.id, e.type, e.tenant]),
          [
            [1, "kernel_started", null],
            [2, "kernel_stopped", null],
            [3, "kernel_started", null],
          ],
        );
        assert.equal(typeof (events[1]?.payload as { uptimeMs?: unknown } | undefined)?.uptimeMs, "number");
        assert.equal(events[1]?.prevHash, events[0]?.hash);
      } finally {
        await k2.close();
      }
    });
  });

  describe("events()", () => {
    // Everything up to here is a fixed snapshot: queries below are bounded by `end`, so they
    // compare against the same events whatever runs later.
    let end: number;
    let snapshot: SoloEvent[];

    before(async () => {
      for (const tenant of ["a", "b"]) await kernel.deploy({ tenant, service: "svc", code: EMITTER, limits: EMITTER_LIMITS });
      for (let i = 0; i < 3; i++) {
        await kernel.call("a", "svc", { n: 1, from: i, name: "ping" });
        await kernel.call("b", "svc", { n: 1, from: i, name: "ping" });
      }
      await kernel.kill("b", "svc");
      end = (await headId(kernel)) + 1;
      snapshot = await all(kernel, { beforeId: end });
      assert.equal(snapshot.length, end - 1);
    });

    it("returns the log oldest first with ids 1, 2, 3, ... and each event linked to the one before", () => {
      assert.deepEqual(
        ids(snapshot),
        Array.from({ length: end - 1 }, (_, i) => i + 1),
      );
      for (let i = 1; i < snapshot.length; i++) assert.equal(snapshot[i]?.prevHash, snapshot[i - 1]?.hash);
      for (let i = 1; i < snapshot.length; i++) assert.ok((snapshot[i]?.timestamp ?? 0) > (snapshot[i - 1]?.timestamp ?? 0));
    });

    it("scopes a tenant's read to its own events, whatever subject or type it asks for", async () => {
      const ofA = await all(kernel, { tenant: "a", beforeId: end });
      assert.ok(ofA.length >= 4);
      assert.ok(ofA.every((e) => e.tenant === "a"));
      assert.deepEqual(
        ofA,
        snapshot.filter((e) => e.tenant === "a"),
      );
      // b's events have the same subject and type names as a's.
      for (const query of [{ subject: "svc" }, { types: ["svc.svc.ping"] }, { types: ["service_killed"], subject: "svc" }]) {
        const { events } = await kernel.events({ tenant: "a", ...query, beforeId: end });
        assert.ok(
          events.every((e) => e.tenant === "a"),
          JSON.stringify(query),
        );
      }
      assert.equal((await kernel.events({ tenant: "a", types: ["svc.svc.ping"] })).events.length, 3);
      assert.deepEqual((await kernel.events({ tenant: "a", types: ["service_killed"] })).events, []);
      assert.equal((await kernel.events({ tenant: "b", types: ["service_killed"] })).events.length, 1);
      assert.equal((await kernel.events({ types: ["svc.svc.ping"], beforeId: end })).events.length, 6);
      assert.deepEqual((await kernel.events({ tenant: "nobody" })).events, []);
    });

    it("shows kernel-wide events only in the admin read", async () => {
      const kernelWide = snapshot.filter((e) => e.tenant === null);
      assert.ok(kernelWide.some((e) => e.type === "kernel_started"));
      for (const tenant of ["a", "b", "ops"]) {
        assert.deepEqual((await kernel.events({ tenant, types: ["kernel_started", "kernel_stopped"] })).events, []);
        assert.ok((await all(kernel, { tenant })).every((e) => e.tenant === tenant));
      }
      assert.deepEqual(await all(kernel, { types: ["kernel_started"], beforeId: end }), kernelWide);
    });

    it("returns newest first with order: desc", async () => {
      const { events } = await kernel.events({ order: "desc", beforeId: end, limit: 1000 });
      assert.deepEqual(events, [...snapshot].reverse());
      const { events: top } = await kernel.events({ order: "desc", tenant: "a", limit: 2, beforeId: end });
      assert.deepEqual(
        top,
        snapshot
          .filter((e) => e.tenant === "a")
          .slice(-2)
          .reverse(),
      );
    });

    it("walks every event exactly once with the cursor, in both orders, with and without a filter", async () => {
      for (const order of ["asc", "desc"] as const) {
        const filters: Array<{ tenant?: string; types?: string[] }> = [
          {},
          { tenant: "a" },
          { types: ["svc.svc.ping", "service_deployed"] },
        ];
        for (const filter of filters) {
          const expected = snapshot.filter(
            (e) =>
              (filter.tenant === undefined || e.tenant === filter.tenant) && (filter.types === undefined || filter.types.includes(e.type)),
          );
          if (order === "desc") expected.reverse();
          const seen: SoloEvent[] = [];
          let cursor: string | null | undefined;
          let pages = 0;
          do {
            const page = await kernel.events({ ...filter, order, limit: 3, beforeId: end, ...(cursor ? { cursor } : {}) });
            assert.ok(page.events.length <= 3);
            assert.ok(page.events.length > 0 || seen.length === 0, "no empty page before the end");
            seen.push(...page.events);
            cursor = page.cursor;
            pages++;
          } while (cursor !== null && pages < 100);
          assert.deepEqual(ids(seen), ids(expected), `${order} ${JSON.stringify(filter)}`);
          assert.equal(pages, Math.max(1, Math.ceil(expected.length / 3)), "the last page says there is no next");
        }
      }
    });

    it("never widens a query with a cursor: an admin read's cursor continues a tenant read within the tenant", async () => {
      const admin = await kernel.events({ limit: 2 });
      assert.ok(admin.cursor);
      const { events } = await kernel.events({ tenant: "b", cursor: admin.cursor, beforeId: end });
      assert.deepEqual(
        events,
        snapshot.filter((e) => e.tenant === "b" && e.id > 2),
      );
    });

    it("filters by since (inclusive) and until (exclusive), in microseconds or as ISO dates", async () => {
      const middle = snapshot[Math.floor(snapshot.length / 2)] as SoloEvent;
      const since = await all(kernel, { since: middle.timestamp, beforeId: end });
      assert.deepEqual(ids(since), ids(snapshot.filter((e) => e.id >= middle.id)));
      const until = await all(kernel, { until: middle.timestamp });
      assert.deepEqual(ids(until), ids(snapshot.filter((e) => e.id < middle.id)));
      const window = await all(kernel, { since: snapshot[1]?.timestamp ?? 0, until: middle.timestamp });
      assert.deepEqual(ids(window), ids(snapshot.filter((e) => e.id >= 2 && e.id < middle.id)));
      // An ISO date has millisecond precision: it stands for the start of that millisecond.
      const iso = new Date(Math.floor(middle.timestamp / 1000)).toISOString();
      const floor = Math.floor(middle.timestamp / 1000) * 1000;
      assert.deepEqual(ids(await all(kernel, { since: iso, beforeId: end })), ids(snapshot.filter((e) => e.timestamp >= floor)));
      assert.deepEqual(ids(await all(kernel, { until: iso })), ids(snapshot.filter((e) => e.timestamp < floor)));
      assert.deepEqual((await kernel.events({ since: "2999-01-01T00:00:00Z" })).events, []);
      assert.deepEqual((await kernel.events({ until: 0 })).events, []);
    });

    it("rejects malformed and hostile queries with SOLO_ERR_EVENT_QUERY_INVALID naming the field", async () => {
      const asc = (await kernel.events({ limit: 1 })).cursor;
      const desc = (await kernel.events({ limit: 1, order: "desc" })).cursor;
      assert.ok(asc && desc);
      const unknownKey = new Proxy(
        {},
        {
          ownKeys: () => ["evil"],
          getOwnPropertyDescriptor: () => ({ value: 1, enumerable: true, configurable: true }),
        },
      );
      const cases: Array<[unknown, string]> = [
        [{ bogus: 1 }, "bogus"],
        [{ tenant: "a", __proto__: { x: 1 }, extra: true }, "extra"],
        [unknownKey, "evil"],
        [null, ""],
        ["tenant", ""],
        [[], ""],
        [{ afterId: -1 }, "afterId"],
        [{ afterId: 1.5 }, "afterId"],
        [{ afterId: 2 ** 53 }, "afterId"],
        [{ afterId: Number.MAX_VALUE }, "afterId"],
        [{ afterId: Number.NaN }, "afterId"],
        [{ afterId: Number.POSITIVE_INFINITY }, "afterId"],
        [{ afterId: "3" }, "afterId"],
        [{ beforeId: -5 }, "beforeId"],
        [{ beforeId: 10n }, "beforeId"],
        [{ limit: 0 }, "limit"],
        [{ limit: 1001 }, "limit"],
        [{ limit: -1 }, "limit"],
        [{ limit: 2.5 }, "limit"],
        [{ limit: "10" }, "limit"],
        [{ order: "up" }, "order"],
        [{ order: "DESC" }, "order"],
        [{ cursor: "nonsense" }, "cursor"],
        [{ cursor: "" }, "cursor"],
        [{ cursor: "c1a!!" }, "cursor"],
        [{ cursor: "c1x5" }, "cursor"],
        [{ cursor: `c1a${"z".repeat(12)}` }, "cursor"],
        [{ cursor: `${asc}${"0".repeat(40)}` }, "cursor"],
        [{ cursor: 42 }, "cursor"],
        [{ cursor: asc, order: "desc" }, "cursor"],
        [{ cursor: desc }, "cursor"],
        [{ subject: "x".repeat(10_000) }, "subject"],
        [{ subject: "" }, "subject"],
        [{ subject: 5 }, "subject"],
        [{ types: "service_deployed" }, "types"],
        [{ types: { 0: "service_deployed", length: 1 } }, "types"],
        [{ types: ["no_such_type"] }, "types"],
        [{ types: ["svc.Bad.x"] }, "types"],
        [{ types: ["svc.svc"] }, "types"],
        [{ types: [5] }, "types"],
        [{ types: Array.from({ length: 65 }, () => "service_deployed") }, "types"],
        [{ tenant: "B" }, "tenant"],
        [{ tenant: "" }, "tenant"],
        [{ tenant: 5 }, "tenant"],
        [{ tenant: null }, "tenant"],
        [{ tenant: "a".repeat(10_000) }, "tenant"],
        [{ since: "yesterday" }, "since"],
        [{ since: -1 }, "since"],
        [{ since: 1.5 }, "since"],
        [{ since: `2024-01-01${" ".repeat(100)}` }, "since"],
        [{ until: {} }, "until"],
        [{ until: "x".repeat(10_000) }, "until"],
      ];
      for (const [query, field] of cases) {
        const shown = inspect(query).slice(0, 80);
        const err = await kernel.events(query as EventQuery).then(
          () => assert.fail(`accepted ${shown}`),
          (e: unknown) => e,
        );
        assert.ok(err instanceof SoloError, shown);
        assert.equal(err.reason, "SOLO_ERR_EVENT_QUERY_INVALID", shown);
        assert.equal(err.code, "invalid_argument", shown);
        assert.equal(err.details.field, field, shown);
      }
    });

    it("accepts the extremes of every range", async () => {
      assert.deepEqual((await kernel.events({ afterId: Number.MAX_SAFE_INTEGER })).events, []);
      assert.deepEqual((await kernel.events({ beforeId: 0 })).events, []);
      assert.equal((await kernel.events({ limit: 1000, beforeId: end })).events.length, end - 1);
      assert.equal((await kernel.events({ limit: 1 })).events.length, 1);
      assert.deepEqual((await kernel.events({ subject: "s".repeat(256) })).events, []);
      assert.deepEqual((await kernel.events({ types: [] as string[], beforeId: end, limit: 1000 })).events, snapshot);
    });

    it("validates the query it reads: a tenant getter that answers differently later cannot turn a tenant read into the admin read", async () => {
      let reads = 0;
      const query = {
        get tenant(): string | undefined {
          reads++;
          return reads <= 3 ? "a" : undefined;
        },
      };
      let events: SoloEvent[];
      try {
        events = (await kernel.events(query as EventQuery)).events;
      } catch (err) {
        assert.ok(err instanceof SoloError);
        assert.equal(err.reason, "SOLO_ERR_EVENT_QUERY_INVALID");
        return;
      }
      assert.ok(
        events.every((e) => e.tenant === "a"),
        `a read validated for tenant a returned ${events.filter((e) => e.tenant !== "a").length} events of other tenants`,
      );
    });
  });
});

describe("subscribe()", () => {
  let kernel: Kernel;
  let past: number;

  // Services and the past are written by one kernel; the cases run on a second one over the same
  // data directory, so the past is read from the store, not from the log's memory.
  before(async () => {
    const dir = tempDir();
    const first = await open(dir);
    for (const tenant of ["feed", "noise", "slow"]) {
      await first.deploy({ tenant, service: "em", code: EMITTER, limits: EMITTER_LIMITS });
    }
    await first.call("feed", "em", { n: 30, from: 0 });
    await first.call("noise", "em", { n: 10, from: 0 });
    await first.close();
    kernel = await open(dir);
    past = await headId(kernel);
  });

  after(async () => {
    await kernel.close();
  });

  it("delivers from id 1 the stored past then live events, with no gap and no duplicate, under a tenant filter", async () => {
    const ac = new AbortController();
    const feed = kernel.subscribe({ tenant: "feed", fromId: 1, signal: ac.signal });
    const everything = kernel.subscribe({ fromId: 1, signal: ac.signal });
    // Both services keep appending while the subscribers catch up and follow.
    const live = Promise.all([
      kernel.call("feed", "em", { n: 120, from: 30 }, { timeoutMs: 60_000 }),
      kernel.call("noise", "em", { n: 40, from: 10 }, { timeoutMs: 60_000 }),
    ]);
    const lastTick = (e: SoloEvent, tenant: string, i: number): boolean =>
      e.tenant === tenant && e.type === "svc.em.tick" && (e.payload as { i: number }).i === i;
    const fromFeed: SoloEvent[] = [];
    const fromAll: SoloEvent[] = [];
    await Promise.all([
      (async () => {
        for await (const e of feed) {
          fromFeed.push(e);
          if (lastTick(e, "feed", 149)) break;
        }
      })(),
      (async () => {
        let feedDone = false;
        let noiseDone = false;
        for await (const e of everything) {
          fromAll.push(e);
          feedDone ||= lastTick(e, "feed", 149);
          noiseDone ||= lastTick(e, "noise", 49);
          if (feedDone && noiseDone) break;
        }
      })(),
    ]);
    await live;
    ac.abort();

    assert.deepEqual(
      ids(fromAll),
      Array.from({ length: fromAll.length }, (_, i) => i + 1),
      "the admin subscription sees ids 1, 2, 3, ... with none missing or repeated",
    );
    assert.ok(fromAll.length > past, "it went on past the stored events");
    const stored = await all(kernel, { tenant: "feed" });
    assert.deepEqual(fromFeed, stored, "the tenant subscription is exactly the tenant's stored events");
    assert.ok(fromFeed.every((e) => e.tenant === "feed"));
    assert.deepEqual(
      fromFeed.filter((e) => e.type === "svc.em.tick").map((e) => (e.payload as { i: number }).i),
      Array.from({ length: 150 }, (_, i) => i),
    );
    assert.deepEqual(
      fromAll.filter((e) => e.tenant === "feed"),
      fromFeed,
    );
  });

  it("starts after the events already appended when no fromId is given", async () => {
    const before = await headId(kernel);
    const sub = kernel.subscribe({ tenant: "feed", types: ["svc.em.fresh"] });
    const emitted = (await kernel.call("feed", "em", { n: 2, from: 0, name: "fresh" })) as number[];
    const got: SoloEvent[] = [];
    for await (const e of sub) {
      got.push(e);
      if (got.length === 2) break;
    }
    assert.deepEqual(ids(got), emitted);
    assert.ok(got.every((e) => e.id > before));
  });

  it("lets a slow consumer hold back only itself: appends finish meanwhile, and it still gets everything", async () => {
    const sub = kernel.subscribe({ tenant: "slow", types: ["svc.em.tick"] });
    const reader = sub[Symbol.asyncIterator]();
    const appended = kernel.call("slow", "em", { n: 200, from: 0 }, { timeoutMs: 60_000 }) as Promise<number[]>;
    const first = await reader.next();
    assert.equal(first.done, false);
    // The consumer reads nothing more until every append has been acknowledged.
    const emitted = await appended;
    assert.equal(emitted.length, 200);
    const got = [first.value as SoloEvent];
    while (got.length < 200) {
      await new Promise((resolve) => setImmediate(resolve));
      const r = await reader.next();
      assert.equal(r.done, false);
      got.push(r.value as SoloEvent);
    }
    await reader.return?.();
    assert.deepEqual(ids(got), emitted);
    assert.deepEqual(
      got.map((e) => (e.payload as { i: number }).i),
      Array.from({ length: 200 }, (_, i) => i),
    );
  });

  it("ends when its signal aborts, also while waiting for the next event", async () => {
    const ac = new AbortController();
    const reader = kernel.subscribe({ tenant: "nobody-here", signal: ac.signal })[Symbol.asyncIterator]();
    const waiting = reader.next();
    ac.abort();
    assert.deepEqual(await waiting, { done: true, value: undefined });
    assert.equal((await reader.next()).done, true);

    const aborted = AbortSignal.abort();
    const none: SoloEvent[] = [];
    for await (const e of kernel.subscribe({ fromId: 1, signal: aborted })) none.push(e);
    assert.deepEqual(none, []);
  });

  it("ends on break, and the log carries on", async () => {
    const sub = kernel.subscribe({ fromId: 1 });
    let n = 0;
    for await (const _ of sub) {
      if (++n === 3) break;
    }
    assert.equal((await sub.next()).done, true);
    const [id] = (await kernel.call("feed", "em", { n: 1, from: 0, name: "after-break" })) as number[];
    const { events } = await kernel.events({ tenant: "feed", types: ["svc.em.after-break"] });
    assert.deepEqual(ids(events), [id]);
  });

  it("rejects malformed options with SOLO_ERR_EVENT_QUERY_INVALID naming the field", () => {
    const cases: Array<[unknown, string]> = [
      [{ bogus: 1 }, "bogus"],
      [{ cursor: "c1a1" }, "cursor"],
      [{ fromId: -1 }, "fromId"],
      [{ fromId: 1.5 }, "fromId"],
      [{ fromId: "1" }, "fromId"],
      [{ fromId: 2 ** 53 }, "fromId"],
      [{ signal: "stop" }, "signal"],
      [{ signal: new AbortController() }, "signal"],
      [{ tenant: "B" }, "tenant"],
      [{ types: "svc.em.tick" }, "types"],
      [{ types: ["nope"] }, "types"],
      [{ subject: "x".repeat(10_000) }, "subject"],
      [null, ""],
      [42, ""],
    ];
    for (const [options, field] of cases) {
      assert.throws(
        () => kernel.subscribe(options as never),
        (err: unknown) => err instanceof SoloError && err.reason === "SOLO_ERR_EVENT_QUERY_INVALID" && err.details.field === field,
        inspect(options).slice(0, 80),
      );
    }
  });

  it("ends when the kernel closes", async () => {
    const k = await open(tempDir());
    const reader = k.subscribe()[Symbol.asyncIterator]();
    const waiting = reader.next();
    await k.close();
    const got: SoloEvent[] = [];
    for (let r = await waiting; !r.done; r = await reader.next()) {
      got.push(r.value);
      assert.ok(got.length <= 1, "nothing after kernel_stopped");
    }
    assert.ok(got.every((e) => e.type === "kernel_stopped"));
    assert.equal((await reader.next()).done, true);
    assert.throws(
      () => k.subscribe(),
      (err: unknown) => err instanceof SoloError && err.reason === "SOLO_ERR_KERNEL_CLOSED",
    );
  });
});

describe("verify()", () => {
  // A closed log of ten events: kernel_started, service_deployed, ticks 3-8, kernel_stopped.
  async function closedLog(): Promise<{ dir: string; events: SoloEvent[] }> {
    const dir = tempDir();
    const k = await open(dir);
    await k.deploy({ tenant: "t", service: "em", code: EMITTER, limits: EMITTER_LIMITS });
    await k.call("t", "em", { n: 6, from: 0 });
    const events = await all(k);
    await k.close();
    return { dir, events };
  }

  function tamper(dir: string, sql: string, ...params: Array<string | number>): void {
    const db = new DatabaseSync(join(dir, "solo.db"));
    try {
      const r = db.prepare(sql).run(...params);
      assert.equal(r.changes, 1, sql);
    } finally {
      db.close();
    }
  }

  it("reports ok with the event count and the head's hash on an intact log", async () => {
    const { dir, events } = await closedLog();
    const k = await open(dir);
    try {
      assert.equal(k.store.kind, "sqlite");
      assert.equal(k.store.location, join(dir, "solo.db"));
      const head = (await k.events({ order: "desc", limit: 1 })).events[0] as SoloEvent;
      assert.equal(head.id, events.length + 3, "then kernel_stopped, kernel_started and service_started of this open");
      assert.deepEqual(await k.verify(), { ok: true, events: head.id, headHash: head.hash, verifiedUpTo: head.id });
    } finally {
      await k.close();
    }
  });

  it("finds an event whose payload was changed in the file: hash_mismatch at its id", async () => {
    const { dir } = await closedLog();
    tamper(dir, "UPDATE events SET payload = ? WHERE id = ?", '{"i":999}', 5);
    const k = await open(dir);
    try {
      // The altered event reads back as altered; only verify() can tell.
      assert.deepEqual((await k.events({ afterId: 4, limit: 1 })).events[0]?.payload, { i: 999 });
      const report = await k.verify();
      assert.equal(report.ok, false);
      assert.ok(!report.ok);
      assert.equal(report.problem, "hash_mismatch");
      assert.equal(report.at, 5);
      assert.equal(report.verifiedUpTo, 4);
      assert.match(report.message, /\b5\b/);
    } finally {
      await k.close();
    }
  });

  it("finds a deleted event: missing at its id", async () => {
    const { dir } = await closedLog();
    tamper(dir, "DELETE FROM events WHERE id = ?", 6);
    const k = await open(dir);
    try {
      const report = await k.verify();
      assert.ok(!report.ok);
      assert.equal(report.problem, "missing");
      assert.equal(report.at, 6);
      assert.equal(report.verifiedUpTo, 5);
    } finally {
      await k.close();
    }
  });

  it("finds an event re-hashed onto another chain: broken_link at its id", async () => {
    const { dir, events } = await closedLog();
    const victim = events[6] as SoloEvent;
    const forgedPrev = "f".repeat(64);
    const forged = eventHash({
      id: victim.id,
      timestamp: victim.timestamp,
      wallTime: victim.wallTime,
      tenant: victim.tenant,
      type: victim.type,
      subject: victim.subject,
      payload: JSON.stringify(victim.payload),
      causationId: victim.causationId,
      correlationId: victim.correlationId,
      prevHash: forgedPrev,
    });
    tamper(dir, "UPDATE events SET prev_hash = ?, hash = ? WHERE id = ?", forgedPrev, forged, victim.id);
    const k = await open(dir);
    try {
      const report = await k.verify();
      assert.ok(!report.ok);
      assert.equal(report.problem, "broken_link");
      assert.equal(report.at, victim.id);
      assert.equal(report.verifiedUpTo, victim.id - 1);
    } finally {
      await k.close();
    }
  });
});
