// A model's session from a fresh data directory to a running, swapped, rolled-back service, read
// only from the tools' TEXT (what a model reads), over `solo mcp --embedded` with the SDK's own
// client. modelSession() takes any connected client, so the same script runs over other transports.
import assert from "node:assert/strict";
import { type ChildProcess, spawn } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, describe, it } from "node:test";
import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { StdioClientTransport } from "@modelcontextprotocol/sdk/client/stdio.js";
import type { CallToolResult } from "@modelcontextprotocol/sdk/types.js";

const SOLO = new URL("../cli/solo.ts", import.meta.url).pathname;
const NODE_FLAGS = ["--disable-warning=ExperimentalWarning"];

/** What a tool answered, as a model reads it: its text, and whether it is an error. */
async function ask(client: Client, name: string, args: Record<string, unknown>): Promise<{ text: string; isError: boolean }> {
  const r = (await client.callTool({ name, arguments: args })) as CallToolResult;
  const text = r.content.map((c) => (c.type === "text" ? c.text : "")).join("\n");
  return { text, isError: r.isError === true };
}

async function ok(client: Client, name: string, args: Record<string, unknown>): Promise<string> {
  const r = await ask(client, name, args);
  assert.equal(r.isError, false, `${name} failed: ${r.text}`);
  return r.text;
}

async function fails(client: Client, name: string, args: Record<string, unknown>): Promise<string> {
  const r = await ask(client, name, args);
  assert.equal(r.isError, true, `${name} should have failed: ${r.text}`);
  return r.text;
}

const BROKEN = `import fs from "fs";
export default {
  init() { return { count: 0 } },
  handleCall(req, s) { s.count += 1; return { reply: s.count, state: s } },
};`;

const V1 = `export default {
  init(args) { return { count: args?.start ?? 0 } },
  handleCall(req, s) {
    s.count += 1;
    solo.log("v1 counted", s.count);
    return { reply: s.count, state: s };
  },
  codeChange(from, s) { return s },
};`;

const V2 = `export default {
  handleCall(req, s) {
    s.count += 100;
    solo.log("v2 counted", s.count);
    return { reply: s.count, state: s };
  },
  codeChange(from, s) { return s },
};`;

/**
 * What a model does with Solo over MCP, from nothing: a tenant, a refused deploy fixed from its
 * findings, calls, logs, a swap keeping state, a rollback, the events and the chain. Reads only
 * the tools' text. `tenant` must not exist yet; the client's token must be unscoped.
 */
export async function modelSession(client: Client, tenant: string): Promise<void> {
  const init = client.getInstructions() ?? "";
  assert.match(init, /tenant_create/);
  assert.match(init, /solo:\/\/guide\/programming-model/);
  const tools = (await client.listTools()).tools.map((t) => t.name);
  for (const name of ["tenant_create", "deploy", "call", "logs", "swap", "rollback", "events", "verify"])
    assert.ok(tools.includes(name), `${name} in ${tools.join(" ")}`);

  // No such tenant yet: the list says so, rather than showing an empty tenant.
  assert.match(await fails(client, "list", { tenant }), /SOLO_ERR_TENANT_NOT_FOUND/);
  assert.match(await ok(client, "tenant_create", { tenant, limits: { maxServices: 5 } }), new RegExp(`created tenant ${tenant}`));
  assert.match(await ok(client, "tenant_list", {}), new RegExp(tenant));
  assert.match(await ok(client, "list", { tenant }), /has no services/);

  // The analyzer refuses the import; the text says where and why.
  const refused = await fails(client, "deploy", { tenant, service: "counter", code: BROKEN });
  assert.match(refused, /SOLO_ERR_DEPLOY_REJECTED/);
  assert.match(refused, /line 1, column 1: no-import/);

  // A misspelt argument is refused by name, with the ones the tool takes.
  const misspelt = await fails(client, "deploy", { tenant, service: "counter", code: V1, limit: { cpuMsPerMessage: 50 } });
  assert.match(misspelt, /"limit"/);
  assert.match(misspelt, /limits/);

  const deployed = await ok(client, "deploy", {
    tenant,
    service: "counter",
    code: V1,
    file: "counter.ts",
    args: { start: 10 },
    limits: { cpuMsPerMessage: 200 },
    supervision: { restart: "transient" },
    tags: ["demo"],
  });
  assert.match(deployed, new RegExp(`deployed ${tenant}/counter version 1`));
  const status = await ok(client, "status", { tenant, service: "counter" });
  assert.match(status, /running, version 1/);
  assert.match(status, /"cpuMsPerMessage":200/);
  assert.match(status, /"restart":"transient"/);
  assert.match(await ok(client, "list", { tenant, tag: "demo" }), /counter \(running, version 1\)/);

  assert.match(await fails(client, "call", { tenant, service: "counter", req: 1 }), /"req".*tenant, service, request, timeoutMs/);
  assert.equal(await ok(client, "call", { tenant, service: "counter", request: { op: "inc" } }), "reply: 11");

  // The log: what the call logged, and a cursor to read on from.
  const log = await ok(client, "logs", { tenant, service: "counter" });
  assert.match(log, /info v1 counted 11/);
  const next = /next: (\S+)/.exec(log)?.[1];
  assert.ok(next && next !== "start", log);
  assert.match(await ok(client, "logs", { tenant, service: "counter", after: next }), /^0 line\(s\)/);
  // A wait for the next line ends with the line the next call logs.
  const waited = ask(client, "logs", { tenant, service: "counter", after: next, waitMs: 30_000 });
  assert.equal(await ok(client, "call", { tenant, service: "counter" }), "reply: 12");
  const fresh = await waited;
  assert.equal(fresh.isError, false, fresh.text);
  assert.match(fresh.text, /^1 line\(s\)/);
  assert.match(fresh.text, /v1 counted 12/);
  assert.doesNotMatch(fresh.text, /counted 11/);

  // A swap keeps the state; a rollback brings the old code back, with the state still kept.
  assert.match(await ok(client, "swap", { tenant, service: "counter", code: V2 }), new RegExp(`swapped ${tenant}/counter to version 2`));
  assert.equal(await ok(client, "call", { tenant, service: "counter" }), "reply: 112");
  assert.match(await ok(client, "history", { tenant, service: "counter" }), /2 version\(s\) .*current: 2/);
  assert.match(await ok(client, "source", { tenant, service: "counter", version: 1 }), /v1 counted/);
  const rolled = await ok(client, "rollback", { tenant, service: "counter" });
  assert.match(rolled, new RegExp(`rolled ${tenant}/counter back: version \\d+ runs now`));
  assert.equal(await ok(client, "call", { tenant, service: "counter" }), "reply: 113");
  assert.match(await ok(client, "logs", { tenant, service: "counter" }), /v2 counted 112[\s\S]*v1 counted 113/);

  // The log of it all, and its chain.
  const events = await ok(client, "events", { tenant });
  for (const type of ["tenant_created", "service_deployment_failed", "service_deployed", "hot_swap_started"])
    assert.match(events, new RegExp(` ${type} `), `${type} in\n${events}`);
  const verified = await ok(client, "verify", {});
  const upTo = Number(/events 1 to (\d+) verified/.exec(verified)?.[1]);
  assert.ok(upTo >= Number(/#(\d+) [^\n]*$/.exec(events)?.[1]), verified);
}

/** Spawns `solo mcp --embedded` on `dataDir`, its stderr collected. */
export function embeddedTransport(dataDir: string, token?: string): { transport: StdioClientTransport; stderr: () => string } {
  const env = Object.fromEntries(Object.entries(process.env).filter(([k, v]) => v !== undefined && !k.startsWith("SOLO_"))) as Record<
    string,
    string
  >;
  const transport = new StdioClientTransport({
    command: process.execPath,
    args: [...NODE_FLAGS, SOLO, "mcp", "--embedded", "--data-dir", dataDir],
    env: { ...env, ...(token ? { SOLO_TOKEN: token } : {}) },
    stderr: "pipe",
  });
  let err = "";
  transport.stderr?.on("data", (d: Buffer) => {
    err += d.toString();
  });
  return { transport, stderr: () => err };
}

const dirs: string[] = [];
function freshDir(): string {
  const d = mkdtempSync(join(tmpdir(), "solo-mcp-session-"));
  dirs.push(d);
  return d;
}
after(() => {
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

/** The lines of a child's stderr that are not the embedded server's own start line. */
function problems(stderr: string): string[] {
  return stderr.split("\n").filter((l) => l.trim() !== "" && !l.startsWith("solo mcp: an embedded kernel on"));
}

describe("a model's session over solo mcp --embedded", () => {
  it("goes from a fresh data directory to a running service, swapped and rolled back, reading only the tools' text", async () => {
    const { transport, stderr } = embeddedTransport(freshDir());
    const client = new Client({ name: "scripted-model", version: "1.0.0" });
    await client.connect(transport);
    try {
      await modelSession(client, "acme");
    } finally {
      await client.close();
    }
    // The process has exited (the client waits for it): nothing went wrong on the way out.
    assert.deepEqual(problems(stderr()), []);
  });
});

describe("the end of an embedded session", () => {
  // Speaks MCP to the CLI by hand, so the requests still under way when stdin closes are known.
  async function raw(dataDir: string) {
    const child: ChildProcess = spawn(process.execPath, [...NODE_FLAGS, SOLO, "mcp", "--embedded", "--data-dir", dataDir], {
      stdio: ["pipe", "pipe", "pipe"],
    });
    let stderr = "";
    let stdout = "";
    const answers = new Map<number, { result?: CallToolResult; error?: { code: number; message: string } }>();
    const waiting = new Map<number, () => void>();
    child.stderr?.on("data", (d: Buffer) => {
      stderr += d.toString();
    });
    child.stdout?.on("data", (d: Buffer) => {
      stdout += d.toString();
      for (let nl = stdout.indexOf("\n"); nl >= 0; nl = stdout.indexOf("\n")) {
        const m = JSON.parse(stdout.slice(0, nl)) as { id?: number; result?: CallToolResult; error?: { code: number; message: string } };
        stdout = stdout.slice(nl + 1);
        if (typeof m.id === "number") {
          answers.set(m.id, m);
          waiting.get(m.id)?.();
        }
      }
    });
    const exited = new Promise<number | null>((resolve) => child.on("exit", resolve));
    let id = 0;
    const send = (method: string, params: unknown, notification = false): number => {
      const n = ++id;
      child.stdin?.write(`${JSON.stringify({ jsonrpc: "2.0", ...(notification ? {} : { id: n }), method, params })}\n`);
      return n;
    };
    const answered = (n: number) => (answers.has(n) ? Promise.resolve() : new Promise<void>((resolve) => waiting.set(n, () => resolve())));
    return { child, send, answered, answers, exited, stderr: () => stderr };
  }

  it("answers every request under way when stdin closes, and exits with nothing on stderr", async () => {
    const s = await raw(freshDir());
    await s.answered(s.send("initialize", { protocolVersion: "2025-06-18", capabilities: {}, clientInfo: { name: "raw", version: "1" } }));
    s.send("notifications/initialized", {}, true);
    const call = (name: string, args: Record<string, unknown>) => s.send("tools/call", { name, arguments: args });
    await s.answered(call("tenant_create", { tenant: "acme" }));
    const gate = `export default {
      init() { return [] },
      handleCall(req, waiting, ctx) { return { noreply: true, state: [...waiting, ctx.replyTo] } },
    };`;
    await s.answered(call("deploy", { tenant: "acme", service: "gate", code: gate }));
    // Calls the service holds (it never answers them), and reads, all under way as stdin closes.
    const last = [
      call("call", { tenant: "acme", service: "gate", request: 1, timeoutMs: 600_000 }),
      call("call", { tenant: "acme", service: "gate", request: 2, timeoutMs: 600_000 }),
      call("list", { tenant: "acme" }),
      call("logs", { tenant: "acme", service: "gate", waitMs: 30_000 }),
      s.send("tools/list", {}),
    ];
    s.child.stdin?.end();
    assert.equal(await s.exited, 0);
    for (let n = 1; n <= Math.max(...last); n++) {
      if (n === 2) continue; // the notification
      assert.ok(s.answers.has(n), `request ${n} was answered`);
    }
    const held = s.answers.get(last[0] as number)?.result;
    assert.equal(held?.isError, true);
    // The kernel stopped the service holding it as it shut down, and said so.
    assert.match(JSON.stringify(held?.content), /stopped \(shutdown\) \(SOLO_ERR_SERVICE_STOPPED\)/);
    assert.deepEqual(problems(s.stderr()), []);
  });
});
