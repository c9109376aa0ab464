import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { type GatewayCore, gatewayCore, inProcessClients } from "../gateway/local.ts";
import { type Kernel, openKernel } from "../index.ts";
import { errorData } from "../lib/errors/data.ts";
import { WORDS } from "../lib/errors/transport.ts";
import { strictInput, TOOLS, usableBy } from "./tools.ts";

// The table's rpc and permission columns are not used to run a tool: these tests keep them true,
// against a real kernel through the gateway's in-process clients.

const COUNTER = `export default {
  init() { return 0 },
  handleCall(req, n) { return { reply: n + 1, state: n + 1 } },
  handleCast(msg, n) { return { state: n } },
};`;

// Arguments each tool accepts; tenant acme, service counter.
const ARGS: Record<string, Record<string, unknown>> = {
  tenant_create: { tenant: "fresh-tenant" },
  tenant_list: {},
  tenant_get: { tenant: "acme" },
  tenant_update: { tenant: "acme", limits: {} },
  logs: { tenant: "acme", service: "counter" },
  usage: { tenant: "acme" },
  whoami: {},
  deploy: { tenant: "acme", service: "fresh", code: COUNTER },
  swap: { tenant: "acme", service: "counter", code: COUNTER },
  rollback: { tenant: "acme", service: "counter" },
  history: { tenant: "acme", service: "counter" },
  source: { tenant: "acme", service: "counter" },
  call: { tenant: "acme", service: "counter", request: 1 },
  cast: { tenant: "acme", service: "counter", message: 1 },
  list: { tenant: "acme" },
  status: { tenant: "acme", service: "counter" },
  kill: { tenant: "acme", service: "victim" },
  restart: { tenant: "acme", service: "counter" },
  events: { tenant: "acme" },
  verify: {},
  secret_names: { tenant: "acme" },
  attenuate_token: { permissions: ["tokens:grant"] },
};

let dir: string;
let kernel: Kernel;
let core: GatewayCore;

before(async () => {
  dir = mkdtempSync(join(tmpdir(), "solo-mcp-tools-"));
  kernel = await openKernel({ dataDir: dir, schedulers: 1 });
  core = gatewayCore(kernel);
  await kernel.tenants.create("acme");
  for (const service of ["counter", "victim"]) await kernel.deploy({ tenant: "acme", service, code: COUNTER });
});

after(async () => {
  await kernel?.close();
  rmSync(dir, { recursive: true, force: true });
});

// What a tool's run ends with: "ok", or the code of the error it threw.
async function outcome(name: string, permissions: string[]): Promise<string> {
  const t = TOOLS.find((x) => x.name === name);
  assert.ok(t, name);
  // Permissions that reach across tenants are held only by unscoped tokens.
  const unscoped = permissions.some((p) => p.startsWith("tenants:"));
  const token = (await kernel.tokens.grant({ tenant: unscoped ? null : "acme", permissions })).token;
  const args = ARGS[name];
  assert.ok(args, `no arguments for ${name}`);
  try {
    await t.run(inProcessClients(core, token), args);
    return "ok";
  } catch (err) {
    return errorData(err).code;
  }
}

describe("the MCP tools table", () => {
  it("has every tool the errors' hints name to a model (the transport map's words)", () => {
    const named = Object.values(WORDS).flatMap((w) => [...w.mcp.matchAll(/the (\w+) tool/g)].map((m) => m[1]));
    assert.ok(named.length >= 5, named.join(", "));
    for (const name of named)
      assert.ok(
        TOOLS.some((t) => t.name === name),
        `hints name a ${name} tool that MCP does not have`,
      );
  });

  it("names each tool once", () => {
    assert.equal(new Set(TOOLS.map((t) => t.name)).size, TOOLS.length);
    assert.deepEqual(Object.keys(ARGS).sort(), TOOLS.map((t) => t.name).sort());
  });

  it("runs each tool through the RPC it names", async () => {
    for (const t of TOOLS) {
      const called: string[] = [];
      const recorder = (service: string) =>
        new Proxy(
          {},
          {
            get: (_o, method: string) => async () => {
              called.push(`${service}.${method}`);
              return {};
            },
          },
        );
      const solo = { kernel: recorder("kernel"), tokens: recorder("tokens"), secrets: recorder("secrets"), tenants: recorder("tenants") };
      await t.run({ ...solo, url: "recorder" } as unknown as Parameters<typeof t.run>[0], ARGS[t.name] ?? {}).catch(() => undefined);
      assert.deepEqual(called, [t.rpc], t.name);
    }
  });

  it("refuses each tool to a token without the permission it declares, and lets one with it through", async () => {
    for (const t of TOOLS) {
      if (t.permission === null) continue;
      const held = t.permission.replace("<service>", String(ARGS[t.name]?.service));
      const allowed = await outcome(t.name, [held]);
      assert.ok(allowed !== "permission_denied" && allowed !== "unauthenticated", `${t.name} with ${held}: ${allowed}`);
      assert.equal(await outcome(t.name, ["tokens:grant"]), "permission_denied", `${t.name} without ${held}`);
    }
  });

  it("lets any valid token read itself and attenuate what it holds, the tools that declare no permission", async () => {
    assert.deepEqual(
      TOOLS.filter((t) => t.permission === null).map((t) => t.name),
      ["whoami", "attenuate_token"],
    );
    assert.equal(await outcome("attenuate_token", ["tokens:grant"]), "ok");
  });
});

// A tool's run with the admin's view (an unscoped token holding everything).
async function run(name: string, args: Record<string, unknown>): Promise<Record<string, unknown>> {
  const t = TOOLS.find((x) => x.name === name);
  assert.ok(t, name);
  const token = (await kernel.tokens.grant({ tenant: null, permissions: ["*"] })).token;
  const parsed = strictInput(name, t.inputSchema).safeParse(args);
  assert.ok(parsed.success, `${name}: ${parsed.error?.message}`);
  return t.run(inProcessClients(core, token), parsed.data);
}

async function refusal(name: string, args: Record<string, unknown>): Promise<{ reason: string; field?: string | undefined }> {
  try {
    await run(name, args);
  } catch (err) {
    const e = errorData(err);
    return { reason: e.reason, field: e.field };
  }
  assert.fail(`${name} ran`);
}

describe("the tools' arguments", () => {
  it("refuses a key a tool does not take, naming it and the ones it takes, for every tool", () => {
    for (const t of TOOLS) {
      const parsed = strictInput(t.name, t.inputSchema).safeParse({ ...ARGS[t.name], bogus: 1 });
      assert.equal(parsed.success, false, t.name);
      const message = parsed.error?.issues.map((i) => i.message).join("\n") ?? "";
      assert.match(message, /"bogus"/, t.name);
      for (const key of Object.keys(t.inputSchema)) assert.ok(message.includes(key), `${t.name}'s message names ${key}: ${message}`);
    }
  });

  it("refuses unknown keys inside deploy's limits and supervision and tenant limits, by name", () => {
    const deploy = TOOLS.find((t) => t.name === "deploy");
    assert.ok(deploy);
    const bad = strictInput("deploy", deploy.inputSchema).safeParse({ ...ARGS.deploy, limits: { cpuMs: 5 }, supervision: { retry: 1 } });
    assert.equal(bad.success, false);
    const issues = bad.error?.issues.map((i) => `${i.path.join(".")}: ${i.message}`) ?? [];
    assert.ok(
      issues.some((i) => /^limits: limits does not take "cpuMs": it takes memoryBytes, .*cpuMsPerMessage/.test(i)),
      issues.join("\n"),
    );
    assert.ok(
      issues.some((i) => /^supervision: supervision does not take "retry"/.test(i)),
      issues.join("\n"),
    );
  });

  it("refuses malformed, oversized and hostile values before anything runs", () => {
    const schema = (name: string) => {
      const t = TOOLS.find((x) => x.name === name);
      assert.ok(t, name);
      return strictInput(name, t.inputSchema);
    };
    const refused: Array<[string, Record<string, unknown>]> = [
      ["deploy", { ...ARGS.deploy, code: "x".repeat(1024 * 1024 + 1) }],
      ["deploy", { ...ARGS.deploy, tenant: "../etc" }],
      ["deploy", { ...ARGS.deploy, metadata: { nested: { a: 1 } } }],
      ["deploy", { ...ARGS.deploy, tags: Array.from({ length: 33 }, (_, i) => `t${i}`) }],
      ["deploy", { ...ARGS.deploy, supervision: { restart: "sometimes" } }],
      ["deploy", { ...ARGS.deploy, limits: { cpuMsPerMessage: -1 } }],
      ["logs", { ...ARGS.logs, waitMs: 30_001 }],
      ["logs", { ...ARGS.logs, after: "x".repeat(101) }],
      ["logs", { ...ARGS.logs, limit: 0 }],
      ["tenant_create", { tenant: "Not A Name" }],
      ["tenant_update", { tenant: "acme" }],
      ["tenant_update", { tenant: "acme", limits: { maxServices: "many" } }],
      ["call", { ...ARGS.call, __proto__: { request: 1 }, constructor: 1 }],
    ];
    for (const [name, args] of refused)
      assert.equal(schema(name).safeParse(args).success, false, `${name} ${JSON.stringify(args).slice(0, 80)}`);
  });
});

describe("the tools' behaviour", () => {
  it("says a tenant that does not exist does not exist, in list", async () => {
    assert.equal((await refusal("list", { tenant: "nobody" })).reason, "SOLO_ERR_TENANT_NOT_FOUND");
  });

  it("creates, reads and updates a tenant, refusing limits the kernel refuses", async () => {
    const created = (await run("tenant_create", { tenant: "made", limits: { maxServices: 3 } })) as {
      tenant: { limits: { maxServices: number } };
    };
    assert.equal(created.tenant.limits.maxServices, 3);
    assert.equal((await refusal("tenant_create", { tenant: "made" })).reason, "SOLO_ERR_TENANT_EXISTS");
    const listed = (await run("tenant_list", {})) as { tenants: Array<{ name: string }> };
    assert.ok(listed.tenants.some((t) => t.name === "made"));
    const updated = (await run("tenant_update", { tenant: "made", limits: { maxServices: 7 } })) as {
      tenant: { limits: { maxServices: number } };
    };
    assert.equal(updated.tenant.limits.maxServices, 7);
    const got = (await run("tenant_get", { tenant: "made" })) as { tenant: { overrides: unknown } };
    assert.deepEqual(got.tenant.overrides, { maxServices: 7 });
    const tooSmall = await refusal("tenant_update", { tenant: "made", limits: { memoryBytes: 1 } });
    assert.equal(tooSmall.reason, "SOLO_ERR_LIMITS_INVALID");
    assert.deepEqual(((await run("tenant_get", { tenant: "made" })) as { tenant: { overrides: unknown } }).tenant.overrides, {
      maxServices: 7,
    });
  });

  it("deploys with limits, supervision, tags and metadata, which status then shows", async () => {
    await run("deploy", {
      tenant: "acme",
      service: "tuned",
      code: COUNTER,
      limits: { cpuMsPerMessage: 250 },
      supervision: { restart: "temporary", maxRestarts: 2 },
      tags: ["billing"],
      metadata: { owner: "model" },
    });
    const s = ((await run("status", { tenant: "acme", service: "tuned" })) as { service: Record<string, unknown> }).service as {
      limits: { cpuMsPerMessage: number };
      supervision: { restart: string; maxRestarts: number };
      tags: string[];
      metadata: unknown;
    };
    assert.equal(s.limits.cpuMsPerMessage, 250);
    assert.deepEqual([s.supervision.restart, s.supervision.maxRestarts], ["temporary", 2]);
    assert.deepEqual(s.tags, ["billing"]);
    assert.deepEqual(s.metadata, { owner: "model" });
    const bad = await refusal("deploy", { tenant: "acme", service: "tuned2", code: COUNTER, tags: ["NOT A TAG"] });
    assert.equal(bad.reason, "SOLO_ERR_REQUEST_INVALID");
  });

  it("reads a service's log from a cursor, page by page, and refuses a cursor it did not give", async () => {
    const logger = `export default {
      init() { return 0 },
      handleCall(req, n) { for (let i = 0; i < req; i++) solo.log("line", n + i); return { reply: n + req, state: n + req } },
    };`;
    await run("deploy", { tenant: "acme", service: "logger", code: logger });
    await run("call", { tenant: "acme", service: "logger", request: 5 });
    type Page = { lines: Array<{ text: string }>; more: boolean; next: string };
    const first = (await run("logs", { tenant: "acme", service: "logger", limit: 2 })) as Page;
    assert.deepEqual(
      first.lines.map((l) => l.text),
      ["line 0", "line 1"],
    );
    assert.equal(first.more, true);
    const rest = (await run("logs", { tenant: "acme", service: "logger", after: first.next })) as Page;
    assert.deepEqual(
      rest.lines.map((l) => l.text),
      ["line 2", "line 3", "line 4"],
    );
    assert.equal(rest.more, false);
    const none = (await run("logs", { tenant: "acme", service: "logger", after: rest.next })) as Page;
    assert.deepEqual([none.lines, none.next], [[], rest.next]);
    for (const after of ["yesterday", "2026-01-01T00:00:00.000Z", "2026-13-45T99:99:99.000Z#1", "<script>#1"]) {
      const e = await refusal("logs", { tenant: "acme", service: "logger", after });
      assert.deepEqual([e.reason, e.field], ["SOLO_ERR_REQUEST_INVALID", "after"], after);
    }
    // A wait that sees no new line ends empty when its time is up, with the same cursor.
    const waited = (await run("logs", { tenant: "acme", service: "logger", after: rest.next, waitMs: 50 })) as Page;
    assert.deepEqual([waited.lines, waited.next], [[], rest.next]);
  });

  it("reports how far verify checked the chain: to the last event", async () => {
    const v = (await run("verify", {})) as { ok: boolean; verifiedUpTo: number; events: number };
    assert.equal(v.ok, true);
    assert.ok(v.verifiedUpTo > 0);
    assert.equal(v.verifiedUpTo, v.events);
  });

  it("writes every fact of a result in its text, after a short line", async () => {
    for (const [name, args] of [
      ["list", { tenant: "acme" }],
      ["status", { tenant: "acme", service: "counter" }],
      ["history", { tenant: "acme", service: "counter" }],
      ["events", { tenant: "acme", limit: 5 }],
    ] as const) {
      const t = TOOLS.find((x) => x.name === name);
      assert.ok(t);
      const data = await run(name, args);
      const text = t.text(JSON.parse(JSON.stringify(data)) as Record<string, unknown>);
      // Every leaf value of the structured result appears in the text.
      const leaves: string[] = [];
      const walk = (v: unknown): void => {
        if (v !== null && typeof v === "object") for (const c of Object.values(v)) walk(c);
        else if (typeof v === "string" || typeof v === "number") leaves.push(String(v));
      };
      walk(data);
      for (const leaf of leaves) assert.ok(text.includes(leaf), `${name}'s text has ${leaf}`);
      assert.ok(!text.startsWith("{"), `${name}'s text starts with a line for people`);
    }
  });
});

describe("the tools a token sees", () => {
  const names = (tenant: string, permissions: string[]) =>
    TOOLS.filter((t) => usableBy(t, { tenant, permissions }))
      .map((t) => t.name)
      .sort();

  it("shows a call-only token only call, cast and the token tools", () => {
    assert.deepEqual(names("acme", ["call:counter"]), ["attenuate_token", "call", "cast", "whoami"]);
  });

  it("shows an unscoped admin token every tool", () => {
    assert.deepEqual(names("", ["*"]), TOOLS.map((t) => t.name).sort());
  });

  it("shows a tenant's * token every tool but the ones that reach across tenants", () => {
    assert.deepEqual(
      names("acme", ["*"]),
      TOOLS.map((t) => t.name)
        .filter((n) => !["tenant_create", "tenant_list", "tenant_update"].includes(n))
        .sort(),
    );
  });

  it("shows a reader the reads, its own tenant's record among them, and no writes", () => {
    assert.deepEqual(names("acme", ["services:read"]), [
      "attenuate_token",
      "history",
      "list",
      "logs",
      "source",
      "status",
      "tenant_get",
      "usage",
      "whoami",
    ]);
    assert.deepEqual(names("acme", ["deploy:billing-*"]), ["attenuate_token", "deploy", "kill", "restart", "rollback", "swap", "whoami"]);
  });

  it("gives every tool a title and all four annotations", () => {
    for (const t of TOOLS) {
      assert.ok(t.title.length > 3, t.name);
      for (const k of ["readOnlyHint", "destructiveHint", "idempotentHint", "openWorldHint"] as const)
        assert.equal(typeof t.annotations[k], "boolean", `${t.name}.${k}`);
      if (t.annotations.readOnlyHint) assert.equal(t.annotations.destructiveHint, false, t.name);
    }
  });
});
