import assert from "node:assert/strict";
import { type ChildProcess, spawn } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { StdioClientTransport } from "@modelcontextprotocol/sdk/client/stdio.js";
import type { CallToolResult } from "@modelcontextprotocol/sdk/types.js";
import { soloFreeEnv, until } from "../../test/support/helpers.ts";
import { openKernel } from "../index.ts";

const SOLO = new URL("../cli/solo.ts", import.meta.url).pathname;
const NODE_FLAGS = ["--disable-warning=ExperimentalWarning"];

let dir: string;
let server: ChildProcess;
let env: Record<string, string>;
let client: Client;

function cli(args: string[]): Promise<{ code: number | null; stdout: string }> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [...NODE_FLAGS, SOLO, ...args], { env, stdio: ["ignore", "pipe", "inherit"] });
    let stdout = "";
    child.stdout.on("data", (d: Buffer) => {
      stdout += d.toString();
    });
    child.on("exit", (code) => resolve({ code, stdout }));
  });
}

async function tool(name: string, args: Record<string, unknown>): Promise<CallToolResult> {
  return (await client.callTool({ name, arguments: args })) as CallToolResult;
}

/** A service of acme as the status tool shows it (undefined while it answers with an error). */
async function statusOf(service: string): Promise<{ state?: string; restarts?: number } | undefined> {
  const st = await tool("status", { tenant: "acme", service });
  return st.isError ? undefined : (st.structuredContent as { service?: { state?: string; restarts?: number } }).service;
}

function data<T>(r: CallToolResult): T {
  assert.ok(!r.isError, `expected success, got ${JSON.stringify(r.content)}`);
  return r.structuredContent as T;
}

before(async () => {
  dir = mkdtempSync(join(tmpdir(), "solo-mcp-"));
  const base = soloFreeEnv();
  server = spawn(process.execPath, [...NODE_FLAGS, SOLO, "start"], {
    env: { ...base, SOLO_DATA_DIR: join(dir, ".solo"), SOLO_PORT: "0", SOLO_WEB_PORT: "0" },
    stdio: ["ignore", "pipe", "inherit"],
  });
  const url = await new Promise<string>((resolve, reject) => {
    let out = "";
    server.stdout?.on("data", (d: Buffer) => {
      out += d.toString();
      const m = /gateway +(https:\/\/\S+)/.exec(out);
      if (m && out.includes("Press Ctrl-C")) resolve(m[1] as string);
    });
    server.on("exit", (code) => reject(new Error(`solo start exited with ${code}: ${out}`)));
  });
  env = { ...base, SOLO_DATA_DIR: join(dir, ".solo"), SOLO_URL: url };
  assert.equal((await cli(["tenant", "create", "acme"])).code, 0);
  client = new Client({ name: "solo-test-agent", version: "1.0.0" });
  await client.connect(new StdioClientTransport({ command: process.execPath, args: [...NODE_FLAGS, SOLO, "mcp"], env, stderr: "inherit" }));
});

after(async () => {
  await client?.close();
  if (server && server.exitCode === null) {
    server.kill("SIGTERM");
    await new Promise((r) => server.once("exit", r));
  }
  rmSync(dir, { recursive: true, force: true });
});

describe("the MCP server (stdio)", () => {
  it("lists Solo's tools, each with a title, a description, annotations and a strict input schema", async () => {
    const { tools } = await client.listTools();
    const names = tools.map((t) => t.name).sort();
    assert.deepEqual(names, [
      "attenuate_token",
      "call",
      "cast",
      "deploy",
      "events",
      "history",
      "kill",
      "list",
      "logs",
      "restart",
      "rollback",
      "secret_names",
      "source",
      "status",
      "swap",
      "tenant_create",
      "tenant_get",
      "tenant_list",
      "tenant_update",
      "usage",
      "verify",
      "whoami",
    ]);
    for (const t of tools) {
      assert.ok((t.description ?? "").length > 20, `${t.name} has a description`);
      assert.ok((t.title ?? "").length > 3, `${t.name} has a title`);
      assert.equal(t.inputSchema.type, "object");
      assert.equal((t.inputSchema as { additionalProperties?: unknown }).additionalProperties, false, `${t.name} is strict`);
      for (const k of ["readOnlyHint", "destructiveHint", "idempotentHint", "openWorldHint"] as const)
        assert.equal(typeof t.annotations?.[k], "boolean", `${t.name}.${k}`);
    }
    const kill = tools.find((t) => t.name === "kill");
    assert.deepEqual([kill?.annotations?.readOnlyHint, kill?.annotations?.destructiveHint], [false, true]);
    assert.equal(tools.find((t) => t.name === "status")?.annotations?.readOnlyHint, true);
  });

  it("tells the model at initialize how to start", () => {
    const text = client.getInstructions() ?? "";
    for (const step of ["tenant_create", "solo://guide/programming-model", "write_service", "deploy", "call", "logs", "swap", "rollback"])
      assert.ok(text.includes(step), `the instructions name ${step}`);
  });

  it("refuses an argument a tool does not take as a tool error naming it and the ones it takes, running nothing", async () => {
    const r = await tool("call", { tenant: "acme", service: "counter", req: 1 });
    assert.equal(r.isError, true);
    const text = (r.content[0] as { text: string }).text;
    assert.match(text, /call does not take "req": its arguments are tenant, service, request, timeoutMs/);
  });

  it("answers resource-not-found (-32002) for a missing service, a missing version and an unknown URI", async () => {
    for (const uri of [
      "solo://services/acme/ghost/source",
      "solo://services/acme/ghost/history",
      "solo://services/acme/counter/versions/99/source",
      "solo://services/acme/counter/versions/0/source",
      "solo://services/NOT%20A%20NAME/x/source",
      "solo://nothing/here",
      "https://example.com/",
    ]) {
      const err = await client.readResource({ uri }).then(
        () => undefined,
        (e: unknown) => e as { code?: number; message?: string },
      );
      assert.equal(err?.code, -32002, `${uri}: ${err?.message}`);
    }
  });

  it("runs an agent's loop: broken code -> findings -> fixed code -> call -> swap keeping state -> events", async () => {
    const broken = await tool("deploy", { tenant: "acme", service: "counter", code: 'import fs from "fs";\nexport default {}' });
    assert.equal(broken.isError, true);
    const err = (
      broken.structuredContent as {
        error: { reason: string; details: { findings: Array<{ rule: string; line: number; column: number; hint?: string }> } };
      }
    ).error;
    assert.equal(err.reason, "SOLO_ERR_DEPLOY_REJECTED");
    const rules = err.details.findings.map((f) => `${f.rule}@${f.line}:${f.column}`);
    assert.ok(rules.includes("no-import@1:1"), rules.join(", "));
    assert.match((broken.content[0] as { text: string }).text, /line 1, column 1: no-import/);

    const fixed = `export default {
  init(args) { return { count: args?.start ?? 0 } },
  handleCall(req, s) { s.count += 1; return { reply: s.count, state: s } },
};`;
    assert.equal(
      data<{ version: number }>(await tool("deploy", { tenant: "acme", service: "counter", code: fixed, args: { start: 10 } })).version,
      1,
    );
    assert.equal(data<{ reply: number }>(await tool("call", { tenant: "acme", service: "counter" })).reply, 11);
    const v2 = `export default {
  codeChange(from, s) { return s },
  handleCall(req, s) { s.count += 100; return { reply: s.count, state: s } },
};`;
    assert.equal(data<{ version: number }>(await tool("swap", { tenant: "acme", service: "counter", code: v2 })).version, 2);
    assert.equal(
      data<{ reply: number }>(await tool("call", { tenant: "acme", service: "counter" })).reply,
      111,
      "the count survived the swap",
    );
    const events = data<{ events: Array<{ type: string }> }>(await tool("events", { tenant: "acme" })).events.map((e) => e.type);
    for (const t of ["service_deployment_failed", "service_deployed", "hot_swap_started"])
      assert.ok(events.includes(t), `${t} in ${events.join(", ")}`);
    assert.equal(data<{ ok: boolean }>(await tool("verify", {})).ok, true);
    assert.equal(
      data<{ service: { state: string } }>(await tool("status", { tenant: "acme", service: "counter" })).service.state,
      "running",
    );
  });

  it("answers bad arguments, missing services and unknown tools with tool errors, changing nothing", async () => {
    const before = data<{ services: unknown[] }>(await tool("list", { tenant: "acme" })).services.length;
    const wrongType = await client.callTool({ name: "call", arguments: { tenant: 5, service: "counter" } }).catch((e: unknown) => e);
    assert.ok(wrongType instanceof Error || (wrongType as CallToolResult).isError === true, JSON.stringify(wrongType));
    const badName = await tool("deploy", { tenant: "Not Valid", service: "x", code: "export default {}" });
    assert.equal(badName.isError, true);
    const huge = await tool("deploy", { tenant: "acme", service: "huge", code: "x".repeat(1024 * 1024 + 1) }).catch((e: unknown) => e);
    assert.ok(huge instanceof Error || (huge as CallToolResult).isError === true);
    const missing = await tool("call", { tenant: "acme", service: "ghost" });
    assert.equal(missing.isError, true);
    assert.equal((missing.structuredContent as { error: { reason: string } }).error.reason, "SOLO_ERR_SERVICE_NOT_FOUND");
    // Through the gateway too, the hint names the tool a model has, not a CLI command or an RPC.
    assert.equal((missing.structuredContent as { error: { hint: string } }).error.hint, "the list tool shows the deployed services");
    const unknown = await client.callTool({ name: "no_such_tool", arguments: {} }).catch((e: unknown) => e);
    assert.ok(unknown instanceof Error || (unknown as CallToolResult).isError === true);
    assert.equal(data<{ services: unknown[] }>(await tool("list", { tenant: "acme" })).services.length, before);
  });

  it("shows a service's error answer as the service's answer, and no value as a result with no reply", async () => {
    data(
      await tool("deploy", {
        tenant: "acme",
        service: "picky",
        code: `export default {
          init() { return 0 },
          handleCall(req, n) {
            if (req === "nothing") return { state: n };
            return { error: { code: "not_found", message: "nothing called " + req, details: { asked: req } }, state: n };
          },
        };`,
      }),
    );
    const answered = await tool("call", { tenant: "acme", service: "picky", request: "ghost" });
    assert.equal(answered.isError, true);
    const text = (answered.content[0] as { text: string }).text;
    assert.equal(
      text,
      'picky answered the call with an error of its own (the service\'s answer, not a Solo failure): not_found: nothing called ghost\ndetails: {"asked":"ghost"}',
    );
    const e = (answered.structuredContent as { error: { reason: string; details: unknown } }).error;
    assert.equal(e.reason, "SOLO_ERR_APPLICATION_ERROR");
    assert.deepEqual(e.details, {
      service: "picky",
      answer: { code: "not_found", message: "nothing called ghost", details: { asked: "ghost" } },
    });
    const none = await tool("call", { tenant: "acme", service: "picky", request: "nothing" });
    assert.equal(none.isError, undefined, JSON.stringify(none.content));
  });

  it("holds a deferred call until another tool call answers it, and reports a normal stop", async () => {
    data(
      await tool("deploy", {
        tenant: "acme",
        service: "gate",
        code: `export default {
          init() { return [] },
          handleCall(req, waiting, ctx) {
            if (req === "wait") return { noreply: true, state: [...waiting, ctx.replyTo] };
            if (req === "open") { for (const to of waiting) solo.reply(to, "opened"); return { reply: waiting.length, state: [] }; }
            if (req === "bye") return { reply: "bye", stop: true, state: waiting };
          },
        };`,
      }),
    );
    const held = tool("call", { tenant: "acme", service: "gate", request: "wait" });
    // The wait is held by the service: opening the gate answers it, as a reply like any other.
    let opened = 0;
    await until("the held call opened", async () => {
      opened = data<{ reply: number }>(await tool("call", { tenant: "acme", service: "gate", request: "open" })).reply;
      return opened !== 0;
    });
    assert.equal(opened, 1);
    assert.deepEqual(data<{ reply: string }>(await held).reply, "opened");
    assert.equal(data<{ reply: string }>(await tool("call", { tenant: "acme", service: "gate", request: "bye" })).reply, "bye");
    // A permanent service (the deploy tool's default) that stops normally is started again, and the stop is recorded.
    await until("the restart after the stop", async () => (await statusOf("gate"))?.restarts === 1);
    const stopped = data<{ events: Array<{ type: string; subject: string }> }>(
      await tool("events", { tenant: "acme", types: ["service_stopped"] }),
    ).events;
    assert.deepEqual(
      stopped.map((e) => [e.type, e.subject]),
      [["service_stopped", "gate"]],
    );
  });

  it("names the file a model deployed in its crashes, and swaps with new grants", async () => {
    data(
      await tool("deploy", {
        tenant: "acme",
        service: "named",
        file: "named.ts",
        code: 'export default {\n  init() { return 0 },\n  handleCall(req, n) { if (req === "boom") throw new Error("boom"); return { reply: solo.grants.call, state: n } },\n};',
      }),
    );
    const crashed = await tool("call", { tenant: "acme", service: "named", request: "boom" });
    assert.equal(crashed.isError, true);
    assert.match((crashed.content[0] as { text: string }).text, /Error: boom at named\.ts:3:/);
    const code = "export default {\n  handleCall(req, n) { return { reply: solo.grants.call, state: n } },\n};";
    await until("running again after the crash", async () => (await statusOf("named"))?.state === "running");
    data(await tool("swap", { tenant: "acme", service: "named", code, grants: { call: ["gate"] } }));
    assert.deepEqual(data<{ reply: string[] }>(await tool("call", { tenant: "acme", service: "named", request: "grants" })).reply, [
      "gate",
    ]);
  });

  it("attenuates the token in use, and the derived token holds only what it was given", async () => {
    const t = data<{ token: string; permissions: string[] }>(
      await tool("attenuate_token", { permissions: ["call:counter"], label: "sub-agent" }),
    );
    assert.match(t.token, /^solo_/);
    assert.deepEqual(t.permissions, ["call:counter"]);
    const scoped = new Client({ name: "sub-agent", version: "1.0.0" });
    await scoped.connect(
      new StdioClientTransport({
        command: process.execPath,
        args: [...NODE_FLAGS, SOLO, "mcp"],
        env: { ...env, SOLO_TOKEN: t.token },
        stderr: "inherit",
      }),
    );
    try {
      const ok = (await scoped.callTool({ name: "call", arguments: { tenant: "acme", service: "counter" } })) as CallToolResult;
      assert.ok(!ok.isError, JSON.stringify(ok.content));
      // It sees only the tools it may use; one it calls anyway is refused by the kernel, precisely.
      const seen = (await scoped.listTools()).tools.map((t) => t.name).sort();
      assert.deepEqual(seen, ["attenuate_token", "call", "cast", "whoami"]);
      const denied = (await scoped.callTool({ name: "kill", arguments: { tenant: "acme", service: "counter" } })) as CallToolResult;
      assert.equal((denied.structuredContent as { error: { reason: string } }).error.reason, "SOLO_ERR_PERMISSION_DENIED");
      const other = (await scoped.callTool({ name: "call", arguments: { tenant: "acme", service: "named" } })) as CallToolResult;
      assert.equal((other.structuredContent as { error: { reason: string } }).error.reason, "SOLO_ERR_PERMISSION_DENIED");
    } finally {
      await scoped.close();
    }
  });
});

describe("solo mcp --embedded", () => {
  const connectEmbedded = async (dataDir: string, token?: string): Promise<Client> => {
    const c = new Client({ name: "embedded-agent", version: "1.0.0" });
    const childEnv = { ...env, SOLO_DATA_DIR: dataDir, ...(token ? { SOLO_TOKEN: token } : {}) };
    delete (childEnv as Record<string, string | undefined>).SOLO_URL;
    await c.connect(
      new StdioClientTransport({
        command: process.execPath,
        args: [...NODE_FLAGS, SOLO, "mcp", "--embedded"],
        env: childEnv,
        stderr: "pipe",
      }),
    );
    return c;
  };
  const call = async (c: Client, name: string, args: Record<string, unknown>): Promise<CallToolResult> =>
    (await c.callTool({ name, arguments: args })) as CallToolResult;

  it("runs a kernel in its own process with no gateway; what it acknowledged is there when it runs again", async () => {
    const dataDir = join(dir, "embedded");
    const setup = await openKernel({ dataDir, schedulers: 1 });
    await setup.tenants.create("solo");
    await setup.close();
    const first = await connectEmbedded(dataDir);
    let scoped = "";
    try {
      const counter = `export default {
  async init() { return (await solo.storage.get("n")) ?? 0 },
  async handleCall(req, n) { n += 1; await solo.storage.put("n", n); return { reply: n, state: n } },
};`;
      assert.equal(
        data<{ version: number }>(await call(first, "deploy", { tenant: "solo", service: "counter", code: counter })).version,
        1,
      );
      assert.equal(data<{ reply: number }>(await call(first, "call", { tenant: "solo", service: "counter" })).reply, 1);
      assert.equal(data<{ reply: number }>(await call(first, "call", { tenant: "solo", service: "counter" })).reply, 2);
      const uris = (await first.listResources()).resources.map((r) => r.uri);
      assert.ok(uris.includes("solo://services/solo/counter/source"), uris.join(" "));
      scoped = data<{ token: string }>(await call(first, "attenuate_token", { permissions: ["call:counter"] })).token;
    } finally {
      await first.close();
    }
    // The first process released the data directory on close; a second one (a narrower agent) finds
    // the service running again with its stored count, and is held to its token.
    const second = await connectEmbedded(dataDir, scoped);
    try {
      assert.equal(data<{ reply: number }>(await call(second, "call", { tenant: "solo", service: "counter" })).reply, 3);
      assert.ok(!(await second.listTools()).tools.some((t) => t.name === "kill"), "a call-only token sees no kill");
      const denied = await call(second, "kill", { tenant: "solo", service: "counter" });
      assert.equal((denied.structuredContent as { error: { reason: string } }).error.reason, "SOLO_ERR_PERMISSION_DENIED");
    } finally {
      await second.close();
    }
  });

  it("refuses to start on a data directory a running kernel holds, saying so on stderr", async () => {
    const child = spawn(process.execPath, [...NODE_FLAGS, SOLO, "mcp", "--embedded"], {
      env: { ...env, SOLO_DATA_DIR: join(dir, ".solo") },
      stdio: ["pipe", "pipe", "pipe"],
    });
    let stderr = "";
    let stdout = "";
    child.stderr?.on("data", (d: Buffer) => {
      stderr += d.toString();
    });
    child.stdout?.on("data", (d: Buffer) => {
      stdout += d.toString();
    });
    const code = await new Promise<number | null>((resolve) => child.on("exit", resolve));
    assert.notEqual(code, 0);
    assert.match(stderr, /SOLO_ERR_KERNEL_DATA_DIR_LOCKED/);
    assert.equal(stdout, "", "stdout belongs to the protocol");
  });
});
