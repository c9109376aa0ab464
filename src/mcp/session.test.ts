// A model's session from a fresh data directory to a running, swapped, rolled-back service, read
// only from the tools' TEXT (what a model reads), over `solo mcp --embedded` with the SDK's own
// client. The script is test/support/mcp-session.ts's modelSession(), which takes any connected
// client, so the same session runs over other transports.
import assert from "node:assert/strict";
import { type ChildProcess, spawn } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, describe, it } from "node:test";
import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { StdioClientTransport } from "@modelcontextprotocol/sdk/client/stdio.js";
import type { CallToolResult } from "@modelcontextprotocol/sdk/types.js";
import { soloFreeEnv } from "../../test/support/helpers.ts";
import { modelSession } from "../../test/support/mcp-session.ts";

const SOLO = new URL("../cli/solo.ts", import.meta.url).pathname;
const NODE_FLAGS = ["--disable-warning=ExperimentalWarning"];

/** Spawns `solo mcp --embedded` on `dataDir`, its stderr collected. */
export function embeddedTransport(dataDir: string, token?: string): { transport: StdioClientTransport; stderr: () => string } {
  const env = soloFreeEnv();
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
