import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { type GatewayCore, gatewayCore, inProcessClients } from "../gateway/local.ts";
import { type Kernel, openKernel } from "../index.ts";
import { errorData } from "../lib/errors/data.ts";
import { TOOLS } from "./tools.ts";

// The table's rpc and permission columns are not used to run a tool: these tests keep them true,
// against a real kernel through the gateway's in-process clients.

const COUNTER = `export default {
  init() { return 0 },
  handleCall(req, n) { return { reply: n + 1, state: n + 1 } },
  handleCast(msg, n) { return { state: n } },
};`;

// Arguments each tool accepts; tenant acme, service counter.
const ARGS: Record<string, Record<string, unknown>> = {
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
  const token = (await kernel.tokens.grant({ tenant: "acme", permissions })).token;
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

  it("lets any valid token attenuate what it holds, the one tool that declares no permission", async () => {
    assert.deepEqual(
      TOOLS.filter((t) => t.permission === null).map((t) => t.name),
      ["attenuate_token"],
    );
    assert.equal(await outcome("attenuate_token", ["tokens:grant"]), "ok");
  });
});
