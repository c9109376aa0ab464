import assert from "node:assert/strict";
import { join } from "node:path";
import { DatabaseSync } from "node:sqlite";
import { before, describe, it } from "node:test";
import { rejection, until } from "../../../test/support/helpers.ts";
import { allEvents, payloadOf, testKernels } from "../../../test/support/kernels.ts";
import { DEFAULT_TENANT_LIMITS, type Kernel, type LogEntry, type SoloEvent } from "../../index.ts";
import { SQLITE_FILE } from "../../store/open.ts";

// A service with one durable value; its terminate leaves a log line, so a stop that ran it shows.
const BOX = `export default {
  init() { return {} },
  async handleCall(req, state) {
    if (req && req.put !== undefined) { await solo.storage.put("value", req.put); return { reply: true, state } }
    if (req && req.emit) { await solo.emit(req.emit, {}); return { reply: true, state } }
    const value = await solo.storage.get("value");
    return { reply: value === undefined ? "<undefined>" : value, state };
  },
  terminate(reason, state, ctx) { solo.log("terminate " + ctx.tenant + "/" + ctx.service) },
}`;

const CRASHER = `export default {
  init() { return {} },
  handleCall(req, state) { throw new Error("boom") },
}`;

const { freshDir, start } = testKernels("tenants");

async function names(kernel: Kernel): Promise<string[]> {
  return (await kernel.tenants.list()).map((t) => t.name);
}

const BAD_NAMES: unknown[] = [
  "",
  "Acme",
  "ACME",
  "../etc",
  "a/../b",
  "acme/",
  " acme",
  "acme\n",
  "acme\u0000",
  "café",
  "租户",
  "acme\u200b",
  "a".repeat(64),
  "a".repeat(100_000),
  "-acme",
  "acme-",
  "1acme",
  42,
  null,
  undefined,
  true,
  {},
  ["acme"],
  { toString: () => "acme" },
];

describe("tenants: create, list, get, update", () => {
  let kernel: Kernel;
  let dir: string;

  before(async () => {
    dir = freshDir();
    kernel = await start(dir);
  });

  it("creates a tenant with limit overrides over the defaults, and records tenant_created", async () => {
    const info = await kernel.tenants.create("acme", { limits: { maxServices: 3 } });
    assert.equal(info.name, "acme");
    assert.equal(info.incarnation, 1);
    assert.deepEqual(info.overrides, { maxServices: 3 });
    assert.deepEqual(info.limits, { ...DEFAULT_TENANT_LIMITS, maxServices: 3 });
    assert.ok(!Number.isNaN(Date.parse(info.createdAt)));
    assert.deepEqual(await kernel.tenants.get("acme"), info);
    assert.ok((await names(kernel)).includes("acme"));
    const created = await allEvents(kernel, { tenant: "acme", types: ["tenant_created"] });
    assert.equal(created.length, 1);
    assert.deepEqual(created[0]?.payload, { limits: { maxServices: 3 }, incarnation: 1 });
    assert.equal(created[0]?.subject, "acme");
  });

  it("creates a tenant with no options with the kernel's default limits", async () => {
    const info = await kernel.tenants.create("plain");
    assert.deepEqual(info.overrides, {});
    assert.deepEqual(info.limits, DEFAULT_TENANT_LIMITS);
    assert.deepEqual(kernel.tenantUsage("plain").limits, DEFAULT_TENANT_LIMITS);
  });

  it("lists tenants sorted by name", async () => {
    const listed = await names(kernel);
    assert.deepEqual(listed, [...listed].sort());
  });

  it("refuses invalid limit overrides and creates nothing", async () => {
    const before = await names(kernel);
    const createdBefore = (await allEvents(kernel, { types: ["tenant_created"] })).length;
    const invalid: unknown[] = [
      { cpus: 4 },
      { maxServices: 0 },
      { maxServices: -1 },
      { maxServices: 1.5 },
      { maxServices: 1_000_001 },
      { maxServices: Number.NaN },
      { maxServices: Number.POSITIVE_INFINITY },
      { maxServices: "5" },
      { memoryBytes: 1 },
      { memoryBytes: 2 ** 60 },
      JSON.parse('{"__proto__": {"maxServices": 1}}'),
      { constructor: 1 },
      5,
      "big",
      [],
      [1],
      null,
    ];
    for (const limits of invalid) {
      const err = await rejection(kernel.tenants.create("limited", { limits } as never));
      assert.equal(err.reason, "SOLO_ERR_LIMITS_INVALID", `limits ${JSON.stringify(limits)}: ${err.message}`);
      assert.equal(err.code, "invalid_argument");
    }
    assert.deepEqual(await names(kernel), before);
    assert.equal((await rejection(kernel.tenants.get("limited"))).reason, "SOLO_ERR_TENANT_NOT_FOUND");
    assert.equal((await allEvents(kernel, { types: ["tenant_created"] })).length, createdBefore);
  });

  it("refuses options that are not an object, or carry unknown fields or a non-boolean reuseName", async () => {
    const before = await names(kernel);
    const invalid: unknown[] = [
      "yes",
      5,
      [],
      true,
      { reuseName: "yes" },
      { reuseName: 1 },
      { reuseName: null },
      { limits: {}, extra: 1 },
      { limit: { maxServices: 1 } },
      { tenant: "other" },
    ];
    for (const options of invalid) {
      const err = await rejection(kernel.tenants.create("optioned", options as never));
      assert.equal(err.reason, "SOLO_ERR_REQUEST_INVALID", `options ${JSON.stringify(options)}: ${err.message}`);
    }
    assert.deepEqual(await names(kernel), before);
  });

  it("refuses a duplicate with SOLO_ERR_TENANT_EXISTS, even with reuseName, and keeps the first's limits", async () => {
    for (const options of [undefined, { limits: { maxServices: 9 } }, { reuseName: true }]) {
      const err = await rejection(kernel.tenants.create("acme", options));
      assert.equal(err.reason, "SOLO_ERR_TENANT_EXISTS");
      assert.equal(err.code, "already_exists");
    }
    assert.deepEqual((await kernel.tenants.get("acme")).overrides, { maxServices: 3 });
    // A tenant the embedder's first deploy made exists just the same.
    await kernel.deploy({ tenant: "implicit", service: "box", code: BOX });
    assert.equal((await kernel.tenants.get("implicit")).incarnation, 1);
    assert.equal((await rejection(kernel.tenants.create("implicit"))).reason, "SOLO_ERR_TENANT_EXISTS");
  });

  it("refuses the second of two concurrent creates of one name, keeping the first's limits", async () => {
    const [first, second] = await Promise.allSettled([
      kernel.tenants.create("racing"),
      kernel.tenants.create("racing", { limits: { maxServices: 2 } }),
    ]);
    assert.equal(first.status, "fulfilled");
    assert.equal(second.status, "rejected");
    assert.equal((second as PromiseRejectedResult).reason.reason, "SOLO_ERR_TENANT_EXISTS");
    assert.deepEqual((await kernel.tenants.get("racing")).overrides, {});
    assert.equal((await allEvents(kernel, { tenant: "racing", types: ["tenant_created"] })).length, 1);
  });

  it("concurrent first deploys into a new tenant create it once, and all succeed", async () => {
    const deployed = await Promise.all(["one", "two", "three"].map((service) => kernel.deploy({ tenant: "crowd", service, code: BOX })));
    assert.deepEqual(
      deployed.map((d) => d.version),
      [1, 1, 1],
    );
    assert.equal((await allEvents(kernel, { tenant: "crowd", types: ["tenant_created"] })).length, 1);
    // A create racing a first deploy: one of them makes the tenant, and the deploy succeeds either way.
    const [created, deploy] = await Promise.allSettled([
      kernel.tenants.create("contested"),
      kernel.deploy({ tenant: "contested", service: "box", code: BOX }),
    ]);
    assert.equal(deploy.status, "fulfilled");
    if (created.status === "rejected") assert.equal(created.reason.reason, "SOLO_ERR_TENANT_EXISTS");
    assert.equal((await allEvents(kernel, { tenant: "contested", types: ["tenant_created"] })).length, 1);
  });

  it("refuses invalid tenant names in create, get, update and delete, creating nothing", async () => {
    const before = await names(kernel);
    for (const name of BAD_NAMES) {
      const shown = typeof name === "string" ? JSON.stringify(name.slice(0, 20)) : String(name);
      for (const attempt of [
        () => kernel.tenants.create(name as string),
        () => kernel.tenants.create(name as string, { reuseName: true }),
        () => kernel.tenants.get(name as string),
        () => kernel.tenants.update(name as string, {}),
        () => kernel.tenants.delete(name as string),
      ]) {
        const err = await rejection(attempt());
        assert.equal(err.reason, "SOLO_ERR_NAME_INVALID", `${shown}: ${err.message}`);
        // A name of any length is quoted clipped, never whole.
        assert.ok(err.message.length < 400, `the message for ${shown} is ${err.message.length} characters`);
      }
    }
    assert.deepEqual(await names(kernel), before);
  });

  it("enforces each tenant's own limits: a full tenant refuses a service, another is unaffected", async () => {
    await kernel.tenants.create("small", { limits: { maxServices: 1 } });
    await kernel.tenants.create("roomy");
    await kernel.deploy({ tenant: "small", service: "one", code: BOX });
    const err = await rejection(kernel.deploy({ tenant: "small", service: "two", code: BOX }));
    assert.equal(err.reason, "SOLO_ERR_TENANT_LIMIT");
    assert.equal(err.details.limit, 1);
    assert.equal(err.details.resource, "services");
    assert.deepEqual(
      kernel.list("small").map((s) => s.service),
      ["one"],
    );
    for (const service of ["one", "two", "three"]) await kernel.deploy({ tenant: "roomy", service, code: BOX });
    assert.equal(kernel.tenantUsage("roomy").services, 3);
    assert.equal(kernel.tenantUsage("small").services, 1);
  });

  it("update replaces the overrides: enforcement and tenantUsage().limits follow at once", async () => {
    const info = await kernel.tenants.update("small", { maxServices: 2 });
    assert.deepEqual(info.overrides, { maxServices: 2 });
    assert.equal(info.limits.maxServices, 2);
    assert.equal(kernel.tenantUsage("small").limits.maxServices, 2);
    await kernel.deploy({ tenant: "small", service: "two", code: BOX });
    assert.equal((await rejection(kernel.deploy({ tenant: "small", service: "three", code: BOX }))).reason, "SOLO_ERR_TENANT_LIMIT");
    const updated = await allEvents(kernel, { tenant: "small", types: ["tenant_updated"] });
    assert.deepEqual(
      updated.map((e) => e.payload),
      [{ limits: { maxServices: 2 } }],
    );
    // Lowering below what runs refuses new services and stops nothing.
    await kernel.tenants.update("small", { maxServices: 1 });
    assert.equal(kernel.tenantUsage("small").running, 2);
    assert.equal((await rejection(kernel.deploy({ tenant: "small", service: "three", code: BOX }))).reason, "SOLO_ERR_TENANT_LIMIT");
    // Omitted limits go back to the defaults.
    const reset = await kernel.tenants.update("acme", {});
    assert.deepEqual(reset.overrides, {});
    assert.deepEqual(reset.limits, DEFAULT_TENANT_LIMITS);
    await kernel.tenants.update("small", { maxServices: 2, memoryBytes: 64 * 1024 * 1024 });
  });

  it("update refuses invalid limits and leaves the tenant as it was", async () => {
    const before = await kernel.tenants.get("small");
    for (const limits of [{ cpus: 1 }, { maxServices: 0 }, { maxServices: "2" }, null, [], 3, "x"]) {
      const err = await rejection(kernel.tenants.update("small", limits as never));
      assert.equal(err.reason, "SOLO_ERR_LIMITS_INVALID", `limits ${JSON.stringify(limits)}`);
    }
    assert.deepEqual(await kernel.tenants.get("small"), before);
    assert.equal((await rejection(kernel.tenants.update("nobody", {}))).reason, "SOLO_ERR_TENANT_NOT_FOUND");
    assert.equal((await rejection(kernel.tenants.get("nobody"))).reason, "SOLO_ERR_TENANT_NOT_FOUND");
  });

  it("keeps tenants and their limits across a restart, and enforces them still", async () => {
    const before = await kernel.tenants.list();
    await kernel.close();
    kernel = await start(dir);
    assert.deepEqual(await kernel.tenants.list(), before);
    const small = await kernel.tenants.get("small");
    assert.deepEqual(small.overrides, { maxServices: 2, memoryBytes: 64 * 1024 * 1024 });
    assert.deepEqual(kernel.tenantUsage("small").limits, { maxServices: 2, memoryBytes: 64 * 1024 * 1024 });
    assert.equal(kernel.tenantUsage("small").services, 2);
    assert.equal((await rejection(kernel.deploy({ tenant: "small", service: "three", code: BOX }))).reason, "SOLO_ERR_TENANT_LIMIT");
    await kernel.deploy({ tenant: "roomy", service: "four", code: BOX });
  });
});

describe("tenants.delete", () => {
  let kernel: Kernel;
  let dir: string;
  const logs: LogEntry[] = [];
  let doomedToken: string;
  let derivedToken: string;
  let bystanderToken: string;
  let eventsBefore: SoloEvent[];
  let deletion: Awaited<ReturnType<Kernel["tenants"]["delete"]>>;

  before(async () => {
    dir = freshDir();
    kernel = await start(dir, { onLog: (entry) => logs.push(entry), supervision: { restart: "temporary" } });
    await kernel.tenants.create("doomed");
    await kernel.tenants.create("bystander");
    for (const tenant of ["doomed", "bystander"]) {
      for (const service of ["box", "box2"]) {
        await kernel.deploy({ tenant, service, code: BOX });
        assert.equal(await kernel.call(tenant, service, { put: `${tenant}-${service}` }), true);
      }
      await kernel.secrets.put(tenant, "API_KEY", `${tenant}-secret`);
    }
    // A crashed service goes with its tenant too.
    await kernel.deploy({ tenant: "doomed", service: "crasher", code: CRASHER });
    await rejection(kernel.call("doomed", "crasher", null));
    await until("the crasher to be down", () => kernel.status("doomed", "crasher").state === "crashed");
    assert.equal(await kernel.call("doomed", "box", { emit: "before-delete" }), true);
    const doomed = await kernel.tokens.grant({ tenant: "doomed", permissions: ["*"] });
    doomedToken = doomed.token;
    derivedToken = (await kernel.as(doomedToken).tokens.attenuate({ permissions: ["events:read"] })).token;
    bystanderToken = (await kernel.tokens.grant({ tenant: "bystander", permissions: ["*"] })).token;
    eventsBefore = await allEvents(kernel, { tenant: "doomed" });
    deletion = await kernel.tenants.delete("doomed");
  });

  it("reports what it removed and records tenant_deleted with the counts", async () => {
    assert.deepEqual(deletion, { tenant: "doomed", services: 3, tokensRevoked: 2, secretsDeleted: 1 });
    const deleted = await allEvents(kernel, { tenant: "doomed", types: ["tenant_deleted"] });
    assert.equal(deleted.length, 1);
    assert.deepEqual(deleted[0]?.payload, { incarnation: 1, services: 3, tokensRevoked: 2, secretsDeleted: 1 });
  });

  it("stops every service, running each one's terminate", async () => {
    await until("both terminate lines", () => logs.filter((l) => l.tenant === "doomed" && l.text.startsWith("terminate ")).length === 2);
    assert.deepEqual(
      logs
        .filter((l) => l.text.startsWith("terminate "))
        .map((l) => l.text)
        .sort(),
      ["terminate doomed/box", "terminate doomed/box2"],
    );
    const killed = await allEvents(kernel, { tenant: "doomed", types: ["service_killed"] });
    assert.deepEqual(killed.map((e) => [e.subject, (e.payload as { was: string }).was]).sort(), [
      ["box", "running"],
      ["box2", "running"],
      ["crasher", "crashed"],
    ]);
    const deletedId = (await allEvents(kernel, { tenant: "doomed", types: ["tenant_deleted"] }))[0]?.id ?? 0;
    assert.ok(
      killed.every((e) => e.id < deletedId),
      "the services are stopped before tenant_deleted",
    );
    assert.throws(() => kernel.list("doomed"), { reason: "SOLO_ERR_TENANT_DELETED" });
    assert.equal(kernel.tenantUsage("doomed").services, 0);
    for (const service of ["box", "box2", "crasher"]) {
      assert.equal((await rejection(kernel.call("doomed", service, null))).reason, "SOLO_ERR_SERVICE_NOT_FOUND");
      assert.throws(() => kernel.status("doomed", service), { reason: "SOLO_ERR_SERVICE_NOT_FOUND" });
    }
  });

  it("revokes every token of the tenant, derived ones included", async () => {
    for (const token of [doomedToken, derivedToken]) {
      const err = await rejection(kernel.as(token).list("doomed"));
      assert.equal(err.reason, "SOLO_ERR_TOKEN_REVOKED");
      assert.equal((await rejection(kernel.as(token).events())).reason, "SOLO_ERR_TOKEN_REVOKED");
    }
    const listed = await kernel.tokens.list({ tenant: "doomed" });
    assert.equal(listed.length, 2);
    assert.ok(listed.every((t) => t.state === "revoked" && t.revokedAt !== null));
    assert.equal((await rejection(kernel.tokens.grant({ tenant: "doomed", permissions: ["*"] }))).reason, "SOLO_ERR_TENANT_NOT_FOUND");
  });

  it("keeps the tenant's events, still verifiable", async () => {
    const after = await allEvents(kernel, { tenant: "doomed" });
    const ids = new Set(after.map((e) => e.id));
    assert.ok(
      eventsBefore.every((e) => ids.has(e.id)),
      "every event from before the delete is still there",
    );
    assert.ok(after.some((e) => e.type === "svc.box.before-delete"));
    const report = await kernel.verify();
    assert.equal(report.ok, true, JSON.stringify(report));
  });

  it("leaves another tenant's services, tokens, secrets and storage untouched", async () => {
    const session = kernel.as(bystanderToken);
    assert.equal(await session.call("bystander", "box", null), "bystander-box");
    assert.equal(await session.call("bystander", "box2", null), "bystander-box2");
    assert.deepEqual(
      (await session.list("bystander")).map((s) => [s.service, s.state]),
      [
        ["box", "running"],
        ["box2", "running"],
      ],
    );
    assert.deepEqual(
      (await kernel.secrets.list("bystander")).map((s) => s.name),
      ["API_KEY"],
    );
    assert.equal((await kernel.tokens.list({ tenant: "bystander" }))[0]?.state, "active");
    assert.ok(logs.every((l) => !(l.tenant === "bystander" && l.text.startsWith("terminate "))));
  });

  it("refuses the name afterwards: deploy, secrets, get, update, delete, create without reuseName", async () => {
    const deleted = async (p: Promise<unknown>): Promise<void> => {
      const err = await rejection(p);
      assert.equal(err.reason, "SOLO_ERR_TENANT_DELETED", err.message);
      assert.equal(err.code, "failed_precondition");
      assert.match(String(err.details.hint), /reuseName/);
    };
    await deleted(kernel.deploy({ tenant: "doomed", service: "box", code: BOX }));
    await deleted(kernel.deploy({ tenant: "doomed", service: "fresh", code: BOX }));
    await deleted(kernel.secrets.put("doomed", "API_KEY", "again"));
    await deleted(kernel.secrets.list("doomed"));
    await deleted(kernel.secrets.delete("doomed", "API_KEY"));
    await deleted(kernel.tenants.get("doomed"));
    await deleted(kernel.tenants.update("doomed", { maxServices: 5 }));
    await deleted(kernel.tenants.delete("doomed"));
    await deleted(kernel.tenants.create("doomed"));
    await deleted(kernel.tenants.create("doomed", { reuseName: false }));
    assert.ok(!(await names(kernel)).includes("doomed"));
    assert.throws(() => kernel.list("doomed"), { reason: "SOLO_ERR_TENANT_DELETED" });
  });

  it("survives a restart: nothing of the tenant is recovered or stored, and the name stays retired", async () => {
    await kernel.close();
    const db = new DatabaseSync(join(dir, SQLITE_FILE), { readOnly: true });
    try {
      for (const table of ["kv", "kv_usage", "secrets", "deployments", "deployment_versions"]) {
        const row = db.prepare(`SELECT COUNT(*) AS n FROM ${table} WHERE tenant = ?`).get("doomed") as { n: number };
        assert.equal(row.n, 0, `${table} rows of the deleted tenant`);
        const kept = db.prepare(`SELECT COUNT(*) AS n FROM ${table} WHERE tenant = ?`).get("bystander") as { n: number };
        assert.ok(kept.n > 0, `${table} rows of the other tenant`);
      }
    } finally {
      db.close();
    }
    kernel = await start(dir, { onLog: (entry) => logs.push(entry) });
    assert.throws(() => kernel.list("doomed"), { reason: "SOLO_ERR_TENANT_DELETED" });
    const started = (await kernel.events({ order: "desc", types: ["kernel_started"], limit: 1 })).events[0];
    assert.equal(payloadOf<{ recovered: number }>(started).recovered, 2);
    assert.equal((await rejection(kernel.deploy({ tenant: "doomed", service: "box", code: BOX }))).reason, "SOLO_ERR_TENANT_DELETED");
    assert.equal((await rejection(kernel.tenants.get("doomed"))).reason, "SOLO_ERR_TENANT_DELETED");
    assert.equal((await rejection(kernel.as(doomedToken).list("doomed"))).reason, "SOLO_ERR_TOKEN_REVOKED");
    assert.equal(await kernel.as(bystanderToken).call("bystander", "box", null), "bystander-box");
    assert.ok((await kernel.verify()).ok);
  });

  it("a new tenant of the name (reuseName) starts empty: no services, secrets, storage, nor old tokens", async () => {
    const info = await kernel.tenants.create("doomed", { reuseName: true });
    assert.equal(info.incarnation, 2);
    assert.deepEqual(kernel.list("doomed"), []);
    assert.deepEqual(await kernel.secrets.list("doomed"), []);
    const redeployed = await kernel.deploy({ tenant: "doomed", service: "box", code: BOX });
    assert.equal(redeployed.version, 1);
    assert.equal(await kernel.call("doomed", "box", null), "<undefined>");
    for (const token of [doomedToken, derivedToken]) {
      assert.equal((await rejection(kernel.as(token).list("doomed"))).reason, "SOLO_ERR_TOKEN_REVOKED");
    }
    const created = await allEvents(kernel, { tenant: "doomed", types: ["tenant_created"] });
    assert.deepEqual(
      created.map((e) => (e.payload as { incarnation: number }).incarnation),
      [1, 2],
    );
  });
});

describe("tenants: a reused name's new tenant", () => {
  let kernel: Kernel;
  let dir: string;
  let oldIds: Set<number>;
  let reader: string;

  before(async () => {
    dir = freshDir();
    kernel = await start(dir);
    await kernel.deploy({ tenant: "phoenix", service: "box", code: BOX });
    await kernel.call("phoenix", "box", { emit: "old-life" });
    await kernel.secrets.put("phoenix", "OLD", "old-secret");
    await kernel.tenants.delete("phoenix");
    oldIds = new Set((await allEvents(kernel, { tenant: "phoenix" })).map((e) => e.id));
    assert.ok(oldIds.size >= 5);
    assert.equal((await kernel.tenants.create("phoenix", { reuseName: true })).incarnation, 2);
    await kernel.deploy({ tenant: "phoenix", service: "box", code: BOX });
    await kernel.call("phoenix", "box", { emit: "new-life" });
    reader = (await kernel.tokens.grant({ tenant: "phoenix", permissions: ["events:read"] })).token;
  });

  const assertNewOnly = (events: readonly SoloEvent[], what: string): void => {
    assert.ok(events.length > 0, `${what}: some events`);
    const stale = events.filter((e) => oldIds.has(e.id));
    assert.deepEqual(
      stale.map((e) => `${e.id} ${e.type}`),
      [],
      `${what}: no event of the earlier tenant`,
    );
    assert.ok(
      events.every((e) => e.tenant === "phoenix"),
      `${what}: only the tenant's events`,
    );
    assert.ok(
      events.some((e) => e.type === "svc.box.new-life"),
      `${what}: the new tenant's own events`,
    );
    assert.ok(!events.some((e) => e.type === "svc.box.old-life" || e.type === "tenant_deleted"));
  };

  it("sees only the new incarnation's events, whatever the query asks", async () => {
    const session = kernel.as(reader);
    assertNewOnly((await session.events({ limit: 1000 })).events, "default query");
    assertNewOnly((await session.events({ afterId: 0, limit: 1000 })).events, "afterId 0");
    assertNewOnly((await session.events({ order: "desc", limit: 1000 })).events, "desc");
    assertNewOnly((await session.events({ order: "desc", afterId: 0, limit: 1000 })).events, "desc, afterId 0");
    assertNewOnly((await session.events({ tenant: "phoenix", beforeId: 1_000_000, limit: 1000 })).events, "beforeId");
    assertNewOnly((await session.events({ types: ["tenant_created", "svc.box.new-life"], limit: 1000 })).events, "types");
    const first = (await session.events({ limit: 1 })).events[0];
    assert.equal(first?.type, "tenant_created");
    assert.equal(payloadOf<{ incarnation: number }>(first).incarnation, 2);
    // A desc read paged with its cursor stops at the floor too.
    const paged: SoloEvent[] = [];
    let cursor: string | null = null;
    do {
      const page: Awaited<ReturnType<typeof session.events>> = await session.events({
        order: "desc",
        limit: 2,
        ...(cursor ? { cursor } : {}),
      });
      paged.push(...page.events);
      cursor = page.cursor;
    } while (cursor);
    assertNewOnly(paged, "desc pages");
  });

  it("subscribe({ fromId: 1 }) starts at the new incarnation", async () => {
    const session = kernel.as(reader);
    const seen: SoloEvent[] = [];
    // The signal only keeps a broken subscription from hanging the run.
    for await (const e of session.subscribe({ fromId: 1, signal: AbortSignal.timeout(10_000) })) {
      seen.push(e);
      if (e.type === "svc.box.new-life") break;
    }
    assertNewOnly(seen, "subscribe");
    assert.equal(seen[0]?.type, "tenant_created");
  });

  it("the admin read still sees both incarnations", async () => {
    const all = await allEvents(kernel, { tenant: "phoenix" });
    assert.ok(all.some((e) => e.type === "svc.box.old-life"));
    assert.ok(all.some((e) => e.type === "svc.box.new-life"));
    assert.ok((await kernel.verify()).ok);
  });

  it("keeps the boundary across a restart", async () => {
    await kernel.close();
    kernel = await start(dir);
    assertNewOnly((await kernel.as(reader).events({ afterId: 0, limit: 1000 })).events, "after restart");
    assertNewOnly((await kernel.as(reader).events({ order: "desc", limit: 1000 })).events, "desc after restart");
  });
});

describe("tenants: hostile input through a session", () => {
  let kernel: Kernel;
  let admin: string;
  let scoped: string;

  before(async () => {
    kernel = await start(freshDir());
    await kernel.tenants.create("home");
    admin = (await kernel.tokens.grant({ tenant: null, permissions: ["tenants:read", "tenants:write"] })).token;
    scoped = (await kernel.tokens.grant({ tenant: "home", permissions: ["*"] })).token;
  });

  it("an admin token gets SOLO_ERR_NAME_INVALID for bad names and creates nothing", async () => {
    const session = kernel.as(admin);
    const before = await names(kernel);
    for (const name of BAD_NAMES) {
      const err = await rejection(session.tenants.create(name as string));
      assert.equal(err.reason, "SOLO_ERR_NAME_INVALID", `${String(name).slice(0, 20)}: ${err.message}`);
    }
    for (const options of [{ reuseName: "yes" }, { limits: {}, extra: true }, "x"]) {
      assert.equal((await rejection(session.tenants.create("fine", options as never))).reason, "SOLO_ERR_REQUEST_INVALID");
    }
    assert.deepEqual(await names(kernel), before);
  });

  it("a name's toString is never what is checked", async () => {
    const session = kernel.as(admin);
    const err = await rejection(session.tenants.create({ toString: () => "sneaky" } as never));
    assert.equal(err.reason, "SOLO_ERR_NAME_INVALID");
    assert.ok(!(await names(kernel)).includes("sneaky"));
  });

  it("a name whose toString throws is refused with a SoloError", async () => {
    const hostile = {
      toString() {
        throw new Error("toString ran");
      },
    };
    for (const attempt of [
      () => kernel.as(admin).tenants.create(hostile as never),
      () => kernel.as(admin).tenants.update(hostile as never, {}),
      () => kernel.as(admin).tenants.delete(hostile as never),
    ]) {
      assert.equal((await rejection(attempt())).reason, "SOLO_ERR_NAME_INVALID");
    }
  });

  it("a scoped token may not create, update or delete tenants, and each denial is audited", async () => {
    const session = kernel.as(scoped);
    const mark = (await kernel.events({ order: "desc", limit: 1 })).events[0]?.id ?? 0;
    for (const attempt of [
      () => session.tenants.create("mine"),
      () => session.tenants.update("home", {}),
      () => session.tenants.delete("home"),
    ]) {
      const err = await rejection(attempt());
      assert.equal(err.reason, "SOLO_ERR_PERMISSION_DENIED");
    }
    const denials = (await kernel.events({ afterId: mark, types: ["capability_denied"], limit: 100 })).events;
    assert.deepEqual(
      denials.map((e) => (e.payload as { operation: string }).operation),
      ["tenants.create", "tenants.update", "tenants.delete"],
    );
    assert.ok(!(await names(kernel)).includes("mine"));
    assert.deepEqual((await kernel.tenants.get("home")).incarnation, 1);
  });

  it("a scoped token's malformed names are refused as invalid before the token is checked", async () => {
    const session = kernel.as(scoped);
    const mark = (await kernel.events({ order: "desc", limit: 1 })).events[0]?.id ?? 0;
    for (const name of ["a".repeat(300), "a".repeat(100_000), "Mine", "../home"]) {
      for (const attempt of [
        () => session.tenants.create(name),
        () => session.tenants.update(name, {}),
        () => session.tenants.delete(name),
      ]) {
        assert.equal((await rejection(attempt())).reason, "SOLO_ERR_NAME_INVALID");
      }
    }
    // Invalid arguments, not denials: nothing to audit, and nothing failed to be recorded.
    assert.deepEqual((await kernel.events({ afterId: mark, types: ["capability_denied"], limit: 100 })).events, []);
  });
});
