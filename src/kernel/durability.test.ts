/**
 * What survives: services coming back when a kernel opens over existing state (on SQLite and on
 * PostgreSQL), and `solo.storage` / `solo.emit` as a service sees them, with the hostile inputs a
 * service can hand them. Every case runs real kernels on temporary data directories.
 */

import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { createTestDatabase, postgresSkipReason } from "../../test/support/postgres.ts";
import type { SoloEvent } from "../api/events.ts";
import { type Kernel, type KernelOptions, openKernel } from "../index.ts";

// The SQLite cases must not be sent to a PostgreSQL server named in the environment.
delete process.env.SOLO_DATABASE_URL;

const dirs: string[] = [];
function tempDir(): string {
  const dir = mkdtempSync(join(tmpdir(), "solo-durable-"));
  dirs.push(dir);
  return dir;
}

after(() => {
  for (const dir of dirs) rmSync(dir, { recursive: true, force: true });
});

/** Polls `probe` until it returns something, yielding to the event loop between tries; bounded. */
async function waitFor<T>(probe: () => T | undefined | Promise<T | undefined>, what: string): Promise<T> {
  for (let i = 0; i < 2500; i++) {
    const value = await probe();
    if (value !== undefined) return value;
    await new Promise((resolve) => setTimeout(resolve, 2));
  }
  return assert.fail(`gave up waiting for ${what}`);
}

async function headId(kernel: Kernel): Promise<number> {
  return (await kernel.events({ order: "desc", limit: 1 })).events[0]?.id ?? 0;
}

// ---------------------------------------------------------------------------------------------
// Recovery

// Counts its inits in storage, keeps notes there, and refuses to start once "fail-init" is set.
const DURABLE = `export default {
  async init(args) {
    if ((await solo.storage.get("fail-init")) === true) throw new Error("refusing to start: fail-init is set");
    const inits = ((await solo.storage.get("inits")) ?? 0) + 1;
    await solo.storage.put("inits", inits);
    return { args, inits, notes: await solo.storage.list("note/") };
  },
  async handleCall(req, s) {
    if (req === "boom") throw new Error("boom");
    if (req === "state") return { reply: s, state: s };
    if (req === "fail-next-init") { await solo.storage.put("fail-init", true); return { reply: true, state: s }; }
    await solo.storage.put("note/" + req.note, req.value);
    return { reply: true, state: s };
  },
}`;

interface DurableState {
  args: unknown;
  inits: number;
  notes: Array<{ key: string; value: unknown }>;
}

/**
 * Deploys a mix of services, closes the kernel and opens another on the same storage: running and
 * crashed services come back with their version and args, killed ones do not, a service whose init
 * now fails is listed as crashed, and everything is in the log.
 */
async function recoveryScenario(options: KernelOptions, kind: "sqlite" | "postgres"): Promise<void> {
  const first = await openKernel({ ...options, schedulers: 1, supervision: { restart: "temporary" } });
  try {
    assert.equal(first.store.kind, kind);
    await first.deploy({ tenant: "r", service: "alive", code: DURABLE, args: { who: "alive", n: [1, 2] } });
    await first.call("r", "alive", { note: "a", value: { deep: ["ü", { n: 1.5 }] } });
    await first.deploy({ tenant: "r", service: "crashed", code: DURABLE, args: { who: "crashed" } });
    await assert.rejects(first.call("r", "crashed", "boom"), { reason: "SOLO_ERR_HANDLER_THREW" });
    await waitFor(() => (first.list("r").find((s) => s.service === "crashed")?.state === "crashed" ? true : undefined), "the crash");
    await first.deploy({ tenant: "r", service: "killed", code: DURABLE, args: { who: "killed" } });
    await first.kill("r", "killed");
    await first.deploy({ tenant: "r", service: "fickle", code: DURABLE, args: { who: "fickle" } });
    await first.call("r", "fickle", "fail-next-init");
    await first.deploy({ tenant: "r", service: "reborn", code: DURABLE, args: { who: "reborn-1" } });
    await assert.rejects(first.call("r", "reborn", "boom"));
    await waitFor(() => (first.list("r").find((s) => s.service === "reborn")?.state === "crashed" ? true : undefined), "the crash");
    assert.equal((await first.deploy({ tenant: "r", service: "reborn", code: DURABLE, args: { who: "reborn-2" } })).version, 2);
    await first.deploy({ tenant: "r2", service: "alive", code: DURABLE, args: { who: "r2" } });
  } finally {
    await first.close();
  }

  const second = await openKernel({ ...options, schedulers: 1, supervision: { restart: "temporary" } });
  try {
    assert.equal(second.store.kind, kind);
    assert.deepEqual(
      second.list("r").map((s) => [s.service, s.state, s.version]),
      [
        ["alive", "running", 1],
        ["crashed", "running", 1],
        ["fickle", "crashed", 1],
        ["reborn", "running", 2],
      ],
    );
    assert.match(second.list("r").find((s) => s.service === "fickle")?.crash?.message ?? "", /fail-init is set/);
    assert.deepEqual(
      second.list("r2").map((s) => [s.service, s.state, s.version]),
      [["alive", "running", 1]],
    );

    // init ran again with the original args, and found the storage it left.
    assert.deepEqual(await second.call("r", "alive", "state"), {
      args: { who: "alive", n: [1, 2] },
      inits: 2,
      notes: [{ key: "note/a", value: { deep: ["ü", { n: 1.5 }] } }],
    } satisfies DurableState);
    assert.deepEqual(await second.call("r", "crashed", "state"), { args: { who: "crashed" }, inits: 2, notes: [] });
    // Version 2 is what comes back, with version 2's args; both versions counted their inits.
    assert.deepEqual(await second.call("r", "reborn", "state"), { args: { who: "reborn-2" }, inits: 3, notes: [] });
    assert.deepEqual(await second.call("r2", "alive", "state"), { args: { who: "r2" }, inits: 2, notes: [] });

    const started = (await second.events({ types: ["kernel_started"], order: "desc", limit: 1 })).events[0] as SoloEvent;
    const p = started.payload as { store: string; recovered: number; failed: number; failures: Array<Record<string, unknown>> };
    assert.equal(started.tenant, null);
    assert.equal(p.store, kind);
    assert.equal(p.recovered, 4);
    assert.equal(p.failed, 1);
    assert.equal(p.failures.length, 1);
    assert.deepEqual(
      { ...p.failures[0], message: undefined },
      { tenant: "r", service: "fickle", version: 1, reason: "SOLO_ERR_DEPLOY_INIT_FAILED", message: undefined },
    );
    assert.match(String(p.failures[0]?.message), /fail-init is set/);

    const after = (await second.events({ afterId: started.id, limit: 1000 })).events;
    const startedEvents = after.filter((e) => e.type === "service_started");
    assert.deepEqual(
      startedEvents.map((e) => [e.tenant, e.subject, e.payload, e.causationId]).sort((a, b) => String(a).localeCompare(String(b))),
      [
        ["r", "alive", { version: 1, recovered: true }, started.id],
        ["r", "crashed", { version: 1, recovered: true }, started.id],
        ["r", "reborn", { version: 2, recovered: true }, started.id],
        ["r2", "alive", { version: 1, recovered: true }, started.id],
      ],
    );
    const fickleCrash = after.find((e) => e.type === "service_crashed" && e.subject === "fickle");
    assert.ok(fickleCrash, "the failed recovery is recorded as service_crashed");
    assert.equal(fickleCrash.tenant, "r");
    assert.equal(fickleCrash.causationId, started.id);
    assert.equal((fickleCrash.payload as { version: number }).version, 1);

    // A crash after recovery is caused by the event that started this incarnation.
    const crashedStart = startedEvents.find((e) => e.tenant === "r" && e.subject === "crashed") as SoloEvent;
    await assert.rejects(second.call("r", "crashed", "boom"));
    const crash = await waitFor(
      async () => (await second.events({ tenant: "r", subject: "crashed", types: ["service_crashed"], afterId: started.id })).events[0],
      "service_crashed after recovery",
    );
    assert.equal(crash.causationId, crashedStart.id);

    // Versions continue across the restart: the killed service's next deploy is version 2.
    assert.equal((await second.deploy({ tenant: "r", service: "killed", code: DURABLE, args: { who: "killed-2" } })).version, 2);
    assert.deepEqual(await second.call("r", "killed", "state"), { args: { who: "killed-2" }, inits: 2, notes: [] });
    await assert.rejects(second.deploy({ tenant: "r", service: "alive", code: DURABLE }), { reason: "SOLO_ERR_DEPLOY_EXISTS" });
    await second.kill("r", "alive");
    const head = await headId(second);
    assert.deepEqual(await second.verify(), {
      ok: true,
      events: head,
      headHash: (await second.events({ order: "desc", limit: 1 })).events[0]?.hash,
      verifiedUpTo: head,
    });
  } finally {
    await second.close();
  }

  // Killed before this restart: alive stays down; the redeployed killed service comes back.
  const third = await openKernel({ ...options, schedulers: 1, supervision: { restart: "temporary" } });
  try {
    assert.deepEqual(
      third.list("r").map((s) => [s.service, s.state, s.version]),
      [
        ["crashed", "running", 1],
        ["fickle", "crashed", 1],
        ["killed", "running", 2],
        ["reborn", "running", 2],
      ],
    );
    assert.equal((await third.deploy({ tenant: "r", service: "alive", code: DURABLE, args: "again" })).version, 2);
    assert.deepEqual(await third.call("r", "alive", "state"), {
      args: "again",
      inits: 3,
      notes: [{ key: "note/a", value: { deep: ["ü", { n: 1.5 }] } }],
    });
  } finally {
    await third.close();
  }
}

describe("recovery", () => {
  it("on SQLite: brings back running and crashed services with their args and storage, not killed ones", async () => {
    await recoveryScenario({ dataDir: tempDir() }, "sqlite");
  });

  it("lets a killed service stay down across several restarts, and its next deploy takes the next version", async () => {
    const dataDir = tempDir();
    for (let round = 1; round <= 3; round++) {
      const k = await openKernel({ dataDir, schedulers: 1, supervision: { restart: "temporary" } });
      try {
        // Round 1 has no tenant v yet; later rounds have it, with its killed service listed nowhere.
        if (round === 1) assert.throws(() => k.list("v"), { reason: "SOLO_ERR_TENANT_NOT_FOUND" });
        else assert.deepEqual(k.list("v"), []);
        assert.equal((await k.deploy({ tenant: "v", service: "svc", code: DURABLE })).version, round);
        await k.kill("v", "svc");
      } finally {
        await k.close();
      }
    }
  });
});

describe("a service that fails to start at recovery", () => {
  it("is recorded as service_crashed with { version, crash }, the shape docs/events.md gives every crash", async () => {
    const dataDir = tempDir();
    const first = await openKernel({ dataDir, schedulers: 1, supervision: { restart: "temporary" } });
    try {
      await first.deploy({ tenant: "f", service: "fickle", code: DURABLE });
      await first.call("f", "fickle", "fail-next-init");
    } finally {
      await first.close();
    }
    const second = await openKernel({ dataDir, schedulers: 1, supervision: { restart: "temporary" } });
    try {
      const crashed = (await second.events({ tenant: "f", types: ["service_crashed"] })).events[0];
      const p = crashed?.payload as { version: number; crash?: { kind: string; reason: string; message: string } };
      assert.equal(p.version, 1);
      assert.deepEqual(p.crash, second.list("f")[0]?.crash);
    } finally {
      await second.close();
    }
  });
});

const pgSkip = await postgresSkipReason();

describe("recovery on PostgreSQL", { skip: pgSkip ?? false }, () => {
  it("brings back running and crashed services with their args and storage, not killed ones", async () => {
    const db = await createTestDatabase();
    try {
      await recoveryScenario({ dataDir: tempDir(), database: db.url }, "postgres");
    } finally {
      await db.drop();
    }
  });
});

// ---------------------------------------------------------------------------------------------
// solo.storage and solo.emit, as a service sees them

// Runs one storage or emit operation per call and describes the outcome, error included.
const PROBE = `
const top = {};
function describe(e) {
  return { name: e.name, reason: e.reason ?? null, code: e.code ?? null, details: e.details ?? null, message: e.message };
}
solo.storage.get("k").then(() => { top.storage = "resolved"; }, (e) => { top.storage = describe(e); });
solo.emit("top", 1).then(() => { top.emit = "resolved"; }, (e) => { top.emit = describe(e); });
const hostile = {
  putFunction: () => solo.storage.put("k", () => 1),
  putBigInt: () => solo.storage.put("k", 10n),
  putCycle: () => { const a = { b: {} }; a.b.a = a; return solo.storage.put("k", a); },
  putUndefined: () => solo.storage.put("k", undefined),
  putNaN: () => solo.storage.put("k", { n: NaN }),
  putDate: () => solo.storage.put("k", new Date(0)),
  putRepeat: (n) => solo.storage.put("big", "x".repeat(n)),
  getEmpty: () => solo.storage.get(""),
  putEmpty: () => solo.storage.put("", 1),
  deleteEmpty: () => solo.storage.delete(""),
  getNumber: () => solo.storage.get(5),
  putNull: () => solo.storage.put(null, 1),
  deleteObject: () => solo.storage.delete({}),
  emitNumber: () => solo.emit(5, {}),
  emitNull: () => solo.emit(null, {}),
  emitFunction: () => solo.emit("fine", { f: () => 1 }),
  together: () => Promise.all([solo.storage.put("p", 1), solo.storage.put("q", 2), solo.storage.get("p")]),
};
export default {
  init() { return null },
  async handleCall(req, s) {
    if (req === "top") return { reply: top, state: s };
    try {
      const value = req.hostile ? await hostile[req.hostile](req.n)
        : req.emit ? await solo.emit(...req.emit)
        : await solo.storage[req.op](...req.args);
      return { reply: { ok: true, missing: value === undefined, value: value === undefined ? null : value }, state: s };
    } catch (e) {
      return { reply: { ok: false, error: describe(e) }, state: s };
    }
  },
}`;

interface GuestError {
  name: string;
  reason: string | null;
  code: string | null;
  details: Record<string, unknown> | null;
  message: string;
}
type Outcome = { ok: true; missing: boolean; value: unknown } | { ok: false; error: GuestError };

describe("solo.storage and solo.emit", () => {
  let kernel: Kernel;

  before(async () => {
    kernel = await openKernel({ dataDir: tempDir(), schedulers: 1, supervision: { restart: "temporary" } });
    const services: Array<[string, string, Record<string, number>?]> = [
      ["kv", "main"],
      ["kv", "other"],
      ["kv", "hostile"],
      ["kv", "small", { messageBytes: 1024 }],
      ["kv", "bytes", { storageBytes: 100 }],
      ["kv", "keys", { storageKeys: 2 }],
      ["kv", "order"],
      ["kv", "together"],
      ["x", "same"],
      ["y", "same"],
      ["ev", "em"],
    ];
    for (const [tenant, service, limits] of services) await kernel.deploy({ tenant, service, code: PROBE, ...(limits ? { limits } : {}) });
  });

  after(async () => {
    await kernel.close();
  });

  async function run(tenant: string, service: string, req: unknown): Promise<Outcome> {
    return (await kernel.call(tenant, service, req)) as Outcome;
  }

  /** The value a storage operation resolves with (undefined when the service got undefined). */
  async function op(tenant: string, service: string, name: string, ...args: unknown[]): Promise<unknown> {
    const out = await run(tenant, service, { op: name, args });
    assert.ok(out.ok, `${name}(${JSON.stringify(args).slice(0, 80)}) failed: ${out.ok ? "" : out.error.message}`);
    return out.missing ? undefined : out.value;
  }

  /** The error an operation rejects with inside the service. */
  async function failure(tenant: string, service: string, req: unknown): Promise<GuestError> {
    const out = await run(tenant, service, req);
    assert.ok(!out.ok, `${JSON.stringify(req).slice(0, 100)} succeeded`);
    return out.error;
  }

  function assertSoloError(e: GuestError, reason: string, what: string): void {
    assert.equal(e.name, "SoloError", `${what}: ${e.name}: ${e.message}`);
    assert.equal(e.reason, reason, `${what}: ${e.message}`);
  }

  describe("storage semantics", () => {
    it("gets undefined for a missing key, the value after put, the new value after an overwrite", async () => {
      assert.equal(await op("kv", "main", "get", "missing"), undefined);
      await op("kv", "main", "put", "k1", { v: 1 });
      assert.deepEqual(await op("kv", "main", "get", "k1"), { v: 1 });
      await op("kv", "main", "put", "k1", [2]);
      assert.deepEqual(await op("kv", "main", "get", "k1"), [2]);
      // A stored null is a value, not a missing key.
      await op("kv", "main", "put", "nul", null);
      const out = await run("kv", "main", { op: "get", args: ["nul"] });
      assert.deepEqual(out, { ok: true, missing: false, value: null });
    });

    it("deletes with true when the key existed and false when it did not", async () => {
      await op("kv", "main", "put", "gone", 1);
      assert.equal(await op("kv", "main", "delete", "gone"), true);
      assert.equal(await op("kv", "main", "get", "gone"), undefined);
      assert.equal(await op("kv", "main", "delete", "gone"), false);
      assert.equal(await op("kv", "main", "delete", "never-was"), false);
    });

    it("round-trips JSON exactly: unicode, nested objects and arrays, numbers, empty and odd keys", async () => {
      const values: unknown[] = [
        'héllo wörld 🌍 日本語 \u2028\u2029 \u0000 \\ "quoted"',
        { a: { b: { c: [1, [2, [3, { d: null }]]] } }, e: "", f: {}, g: [] },
        [0, -0.5, 1e300, -1e-300, 9007199254740991, true, false, null],
        JSON.parse('{"__proto__":{"polluted":true},"constructor":"c"}'),
        "",
        0,
        false,
      ];
      for (const [i, value] of values.entries()) {
        await op("kv", "main", "put", `json/${i}`, value);
        assert.deepEqual(await op("kv", "main", "get", `json/${i}`), value, JSON.stringify(value));
      }
      await op("kv", "main", "put", "ключ/🔑 with spaces\n", { ok: "✓" });
      assert.deepEqual(await op("kv", "main", "get", "ключ/🔑 with spaces\n"), { ok: "✓" });
      assert.deepEqual(await op("kv", "main", "list", "json/", { limit: 2 }), [
        { key: "json/0", value: values[0] },
        { key: "json/1", value: values[1] },
      ]);
      assert.equal(({} as Record<string, unknown>).polluted, undefined);
    });

    it("lists keys by prefix in key order, after a key, up to a limit", async () => {
      for (const key of ["l/b", "l/a/2", "l/a/1", "l/c", "l/a/3", "m/1", "l%", "l_x"]) await op("kv", "order", "put", key, key.length);
      const keys = async (...args: unknown[]): Promise<string[]> =>
        ((await op("kv", "order", "list", ...args)) as Array<{ key: string }>).map((e) => e.key);
      assert.deepEqual(await keys(), ["l%", "l/a/1", "l/a/2", "l/a/3", "l/b", "l/c", "l_x", "m/1"]);
      assert.deepEqual(await keys("l/"), ["l/a/1", "l/a/2", "l/a/3", "l/b", "l/c"]);
      assert.deepEqual(await keys("l/a/"), ["l/a/1", "l/a/2", "l/a/3"]);
      assert.deepEqual(await keys("l/", { after: "l/a/2" }), ["l/a/3", "l/b", "l/c"]);
      assert.deepEqual(await keys("l/", { limit: 2 }), ["l/a/1", "l/a/2"]);
      assert.deepEqual(await keys("l/", { after: "l/a/3", limit: 1 }), ["l/b"]);
      assert.deepEqual(await keys("l/", { after: "l/c" }), []);
      assert.deepEqual(await keys("", { after: "l/c", limit: 1000 }), ["l_x", "m/1"]);
      // SQL wildcards in a prefix are plain characters.
      assert.deepEqual(await keys("l%"), ["l%"]);
      assert.deepEqual(await keys("l_"), ["l_x"]);
      assert.deepEqual(await keys("zzz"), []);
      const page = (await op("kv", "order", "list", "l/a/", { limit: 1 })) as Array<{ key: string; value: unknown }>;
      assert.deepEqual(page, [{ key: "l/a/1", value: 5 }]);
    });

    it("orders keys by their UTF-8 bytes", async () => {
      for (const key of ["u/z", "u/😀", "u/\uFFFD", "u/é", "u/a"]) await op("kv", "order", "put", key, 1);
      const listed = ((await op("kv", "order", "list", "u/")) as Array<{ key: string }>).map((e) => e.key);
      assert.deepEqual(listed, ["u/a", "u/z", "u/é", "u/\uFFFD", "u/😀"]);
      const after = ((await op("kv", "order", "list", "u/", { after: "u/\uFFFD" })) as Array<{ key: string }>).map((e) => e.key);
      assert.deepEqual(after, ["u/😀"]);
    });

    it("applies `after` in UTF-8 byte order also when it does not start with the prefix", async () => {
      for (const key of ["w/\uFFFD", "w/\uFFFDx", "w/😀", "w/😀x"]) await op("kv", "order", "put", key, 1);
      const keys = async (prefix: string, after: string): Promise<string[]> =>
        ((await op("kv", "order", "list", prefix, { after })) as Array<{ key: string }>).map((e) => e.key);
      // In UTF-8, every key starting with U+FFFD (EF BF BD) sorts before "😀" (F0 9F 98 80), while
      // in UTF-16 it is the other way round.
      assert.deepEqual(await keys("w/\uFFFD", "w/😀"), []);
      assert.deepEqual(await keys("w/😀", "w/\uFFFD"), ["w/😀", "w/😀x"]);
    });

    it("keeps services' storage apart: another service, or the same name in another tenant, has its own keys", async () => {
      await op("kv", "main", "put", "shared", "main's");
      await op("kv", "other", "put", "shared", "other's");
      await op("x", "same", "put", "shared", "x's");
      await op("y", "same", "put", "shared", "y's");
      assert.equal(await op("kv", "main", "get", "shared"), "main's");
      assert.equal(await op("kv", "other", "get", "shared"), "other's");
      assert.equal(await op("x", "same", "get", "shared"), "x's");
      assert.equal(await op("y", "same", "get", "shared"), "y's");
      await op("x", "same", "put", "only-x", 1);
      assert.equal(await op("y", "same", "get", "only-x"), undefined);
      assert.deepEqual(await op("y", "same", "list"), [{ key: "shared", value: "y's" }]);
      assert.deepEqual(await op("kv", "other", "list"), [{ key: "shared", value: "other's" }]);
      assert.equal(await op("y", "same", "delete", "only-x"), false);
      assert.equal(await op("x", "same", "get", "only-x"), 1);
      assert.equal(await op("kv", "other", "delete", "shared"), true);
      assert.equal(await op("kv", "main", "get", "shared"), "main's");
    });

    it("answers several storage operations awaited together in one handler", async () => {
      const out = await run("kv", "together", { hostile: "together" });
      assert.deepEqual(out, { ok: true, missing: false, value: [null, null, 1] });
    });
  });

  describe("hostile storage input", () => {
    it("rejects keys over 512 bytes of UTF-8 with SOLO_ERR_STORAGE_KEY_INVALID and accepts 512", async () => {
      for (const key of ["k".repeat(512), "é".repeat(256)]) {
        await op("kv", "hostile", "put", key, 1);
        assert.equal(await op("kv", "hostile", "get", key), 1);
        assert.equal(await op("kv", "hostile", "delete", key), true);
      }
      const cases: unknown[] = [
        { op: "get", args: ["k".repeat(513)] },
        { op: "put", args: ["k".repeat(513), 1] },
        { op: "put", args: ["é".repeat(257), 1] },
        { op: "delete", args: ["k".repeat(100_000)] },
        { op: "list", args: ["k".repeat(513)] },
        { op: "list", args: ["", { after: "k".repeat(513) }] },
        { op: "list", args: ["", { after: 5 }] },
      ];
      for (const req of cases) {
        const e = await failure("kv", "hostile", req);
        assertSoloError(e, "SOLO_ERR_STORAGE_KEY_INVALID", JSON.stringify(req).slice(0, 60));
        assert.equal(e.code, "invalid_argument");
      }
      assert.deepEqual(await op("kv", "hostile", "list"), []);
    });

    it("rejects an empty or non-string key with SOLO_ERR_STORAGE_KEY_INVALID, as docs/errors.md says", async () => {
      for (const hostile of ["getEmpty", "putEmpty", "deleteEmpty", "getNumber", "putNull", "deleteObject"]) {
        assertSoloError(await failure("kv", "hostile", { hostile }), "SOLO_ERR_STORAGE_KEY_INVALID", hostile);
      }
    });

    it("still refuses an empty or non-string key, and stores nothing", async () => {
      for (const hostile of ["getEmpty", "putEmpty", "deleteEmpty", "getNumber", "putNull", "deleteObject"]) {
        const e = await failure("kv", "hostile", { hostile });
        assert.match(e.message, /key must be a non-empty string/, hostile);
      }
      assert.deepEqual(await op("kv", "hostile", "list"), []);
    });

    it("rejects values that are not JSON data with SOLO_ERR_VALUE_NOT_JSON and stores nothing", async () => {
      for (const hostile of ["putFunction", "putBigInt", "putCycle", "putNaN", "putDate"]) {
        assertSoloError(await failure("kv", "hostile", { hostile }), "SOLO_ERR_VALUE_NOT_JSON", hostile);
      }
      const undef = await failure("kv", "hostile", { hostile: "putUndefined" });
      assert.match(undef.message, /use solo.storage.delete/);
      assert.equal(await op("kv", "hostile", "get", "k"), undefined);
    });

    it("rejects a value over the service's messageBytes with SOLO_ERR_VALUE_TOO_LARGE", async () => {
      await op("kv", "small", "put", "fits", "x".repeat(900));
      const e = await failure("kv", "small", { hostile: "putRepeat", n: 2000 });
      assertSoloError(e, "SOLO_ERR_VALUE_TOO_LARGE", "a 2000-byte value");
      assert.equal(e.code, "resource_exhausted");
      assert.equal(await op("kv", "small", "get", "big"), undefined);
      assert.equal(await op("kv", "small", "get", "fits"), "x".repeat(900));
    });

    it("rejects a list limit outside 1-1000 or not an integer", async () => {
      for (const limit of [0, 1001, 1.5, -1, "10"]) {
        const e = await failure("kv", "hostile", { op: "list", args: ["", { limit }] });
        assertSoloError(e, "SOLO_ERR_REQUEST_INVALID", `limit ${JSON.stringify(limit)}`);
        assert.equal(e.details?.field, "limit");
      }
      assert.deepEqual(await op("kv", "hostile", "list", "", { limit: 1000 }), []);
    });

    it("refuses storage and emit at module top level with SOLO_ERR_CALL_NOT_IN_MESSAGE", async () => {
      const top = (await kernel.call("kv", "hostile", "top")) as { storage: GuestError; emit: GuestError };
      assertSoloError(top.storage, "SOLO_ERR_CALL_NOT_IN_MESSAGE", "solo.storage at top level");
      assertSoloError(top.emit, "SOLO_ERR_CALL_NOT_IN_MESSAGE", "solo.emit at top level");
      assert.equal(top.storage.code, "failed_precondition");
      assert.deepEqual(await kernel.events({ types: ["svc.hostile.top"] }), { events: [], cursor: null });
    });

    it("enforces storageBytes: the write that would exceed it fails, earlier data stays, others are unaffected", async () => {
      // Each entry counts its key and its JSON value: 1 + 42 bytes.
      await op("kv", "bytes", "put", "a", "x".repeat(40));
      await op("kv", "bytes", "put", "b", "y".repeat(40));
      const e = await failure("kv", "bytes", { op: "put", args: ["c", "z".repeat(20)] });
      assertSoloError(e, "SOLO_ERR_STORAGE_QUOTA", "over storageBytes");
      assert.equal(e.code, "resource_exhausted");
      assert.equal(e.details?.limit, 100);
      // Growing an existing key past the quota fails the same way.
      assertSoloError(await failure("kv", "bytes", { op: "put", args: ["a", "x".repeat(60)] }), "SOLO_ERR_STORAGE_QUOTA", "growing a");
      assert.deepEqual(await op("kv", "bytes", "list"), [
        { key: "a", value: "x".repeat(40) },
        { key: "b", value: "y".repeat(40) },
      ]);
      await op("kv", "other", "put", "roomy", "w".repeat(1000));
      // Shrinking and deleting give the room back.
      await op("kv", "bytes", "put", "a", "x");
      await op("kv", "bytes", "put", "c", "z".repeat(20));
      assert.equal(await op("kv", "bytes", "delete", "b"), true);
      await op("kv", "bytes", "put", "d", "d".repeat(60));
      assert.deepEqual(
        ((await op("kv", "bytes", "list")) as Array<{ key: string }>).map((x) => x.key),
        ["a", "c", "d"],
      );
      assert.equal(kernel.list("kv").find((s) => s.service === "bytes")?.state, "running");
    });

    it("enforces storageKeys: a new key past it fails, overwriting an existing key does not", async () => {
      await op("kv", "keys", "put", "one", 1);
      await op("kv", "keys", "put", "two", 2);
      const e = await failure("kv", "keys", { op: "put", args: ["three", 3] });
      assertSoloError(e, "SOLO_ERR_STORAGE_QUOTA", "over storageKeys");
      assert.equal(e.details?.limit, 2);
      await op("kv", "keys", "put", "one", "uno");
      assert.deepEqual(await op("kv", "keys", "list"), [
        { key: "one", value: "uno" },
        { key: "two", value: 2 },
      ]);
      await op("kv", "keys", "put", "three", 3).then(
        () => assert.fail("a third key was accepted"),
        () => undefined,
      );
      assert.equal(await op("kv", "keys", "delete", "two"), true);
      await op("kv", "keys", "put", "three", 3);
      assert.deepEqual(
        ((await op("kv", "keys", "list")) as Array<{ key: string }>).map((x) => x.key),
        ["one", "three"],
      );
      await op("kv", "other", "put", "k3", 3);
      await op("kv", "other", "put", "k4", 4);
    });
  });

  describe("solo.emit", () => {
    it("appends svc.<service>.<name> with the tenant, the service as subject and the deploy as cause", async () => {
      const deployed = (await kernel.events({ tenant: "ev", types: ["service_deployed"] })).events[0] as SoloEvent;
      const name = `a${"b".repeat(63)}`;
      const payload = { n: 1, s: "é🌍", nested: { list: [1, { x: null }] } };
      const out = await run("ev", "em", { emit: [name, payload] });
      assert.ok(out.ok);
      const e = (await kernel.events({ afterId: (out.value as number) - 1, limit: 1 })).events[0] as SoloEvent;
      assert.equal(e.id, out.value);
      assert.equal(e.type, `svc.em.${name}`);
      assert.equal(e.tenant, "ev");
      assert.equal(e.subject, "em");
      assert.equal(e.causationId, deployed.id);
      assert.deepEqual(e.payload, payload);
      const dotted = await run("ev", "em", { emit: ["order.placed-v2_x"] });
      assert.ok(dotted.ok);
      assert.deepEqual((await kernel.events({ tenant: "ev", types: ["svc.em.order.placed-v2_x"] })).events[0]?.payload, null);
    });

    it("rejects invalid names and oversized payloads inside the service, and appends nothing", async () => {
      const head = await headId(kernel);
      const ofTenant = (await kernel.events({ tenant: "ev", limit: 1000 })).events.length;
      const cases: Array<[unknown, string]> = [
        [{ emit: ["", {}] }, "SOLO_ERR_EVENT_INVALID"],
        [{ emit: ["Bad", {}] }, "SOLO_ERR_EVENT_INVALID"],
        [{ emit: ["a b", {}] }, "SOLO_ERR_EVENT_INVALID"],
        [{ emit: ["x".repeat(100), {}] }, "SOLO_ERR_EVENT_INVALID"],
        [{ emit: [`a${"b".repeat(64)}`, {}] }, "SOLO_ERR_EVENT_INVALID"],
        [{ emit: ["1st", {}] }, "SOLO_ERR_EVENT_INVALID"],
        [{ emit: ["ends-", {}] }, "SOLO_ERR_EVENT_INVALID"],
        [{ emit: ["é", {}] }, "SOLO_ERR_EVENT_INVALID"],
        [{ emit: ["a\nb", {}] }, "SOLO_ERR_EVENT_INVALID"],
        [{ emit: ["big", { blob: "x".repeat(70_000) }] }, "SOLO_ERR_EVENT_TOO_LARGE"],
        [{ hostile: "emitFunction" }, "SOLO_ERR_VALUE_NOT_JSON"],
      ];
      for (const [req, reason] of cases) {
        const e = await failure("ev", "em", req);
        assertSoloError(e, reason, JSON.stringify(req).slice(0, 60));
        if (reason === "SOLO_ERR_EVENT_INVALID") assert.equal(e.details?.field, "name");
      }
      for (const hostile of ["emitNumber", "emitNull"]) await failure("ev", "em", { hostile });
      assert.equal(await headId(kernel), head, "nothing was appended");
      assert.equal((await kernel.events({ tenant: "ev", limit: 1000 })).events.length, ofTenant);
      assert.equal(kernel.list("ev")[0]?.state, "running");
    });

    it("rejects a non-string event name with SOLO_ERR_EVENT_INVALID", async () => {
      for (const hostile of ["emitNumber", "emitNull"]) {
        assertSoloError(await failure("ev", "em", { hostile }), "SOLO_ERR_EVENT_INVALID", hostile);
      }
    });
  });
});
