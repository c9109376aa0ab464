// The scripted model session (test/support/mcp-session.ts) as a real MCP client runs it against
// `solo start`: over the web listener's /mcp, on HTTP/1.1 (what the fetch of MCP clients speaks),
// with nothing but a bearer token and Solo's CA, from a fresh data directory.
import assert from "node:assert/strict";
import { type ChildProcessWithoutNullStreams, spawn } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { soloFreeEnv, waitForOutput } from "../../test/support/helpers.ts";
import { modelSession } from "../../test/support/mcp-session.ts";
import { caFetch, mcpOverHttp } from "../../test/support/web.ts";

const SOLO = new URL("../cli/solo.js", import.meta.url).pathname;
const WAIT_MS = 30_000;

let dir = "";
let kernel: ChildProcessWithoutNullStreams | undefined;
let out = "";
let web = "";

before(async () => {
  dir = mkdtempSync(join(tmpdir(), "solo-web-session-"));
  const env = soloFreeEnv();
  kernel = spawn(process.execPath, ["--disable-warning=ExperimentalWarning", SOLO, "start", "--port", "0", "--web-port", "0"], {
    env: { ...env, SOLO_DATA_DIR: join(dir, ".solo") },
    stdio: ["pipe", "pipe", "pipe"],
  });
  const k = kernel;
  k.stdout.on("data", (d: Buffer) => (out += d.toString()));
  k.stderr.on("data", (d: Buffer) => (out += d.toString()));
  await waitForOutput(
    "solo start to say 'Press Ctrl-C'",
    () => out,
    (o) => o.includes("Press Ctrl-C"),
    WAIT_MS,
  );
  const m = /^ {2}web +(https:\/\/127\.0\.0\.1:\d+) /m.exec(out);
  assert.ok(m?.[1], `no web line in the banner:\n${out}`);
  web = m[1];
});

after(async () => {
  if (kernel && kernel.exitCode === null) {
    const exited = new Promise((resolve) => kernel?.once("exit", resolve));
    kernel.kill("SIGTERM");
    await exited;
  }
  rmSync(dir, { recursive: true, force: true });
});

describe("a model's session over the web listener's /mcp", () => {
  it("runs from a fresh data directory on HTTP/1.1 with only a bearer token, as a real MCP client does", async () => {
    // What an operator hands the client: the admin token and the CA that signed the listener's certificate.
    const token = readFileSync(join(dir, ".solo", "tls", "admin.token"), "utf8").trim();
    const ca = readFileSync(join(dir, ".solo", "tls", "ca.crt"), "utf8");
    const http1 = caFetch(ca, false);
    const { client, transport } = await mcpOverHttp(`${web}/mcp`, http1.fetch, token, "scripted-model");
    try {
      await modelSession(client, "acme");
    } finally {
      await transport.terminateSession().catch(() => undefined);
      await client.close();
      await http1.close();
    }
    assert.ok(http1.protocols.length > 0, "no connection was made");
    assert.deepEqual([...new Set(http1.protocols)], ["http/1.1"], "every connection spoke HTTP/1.1");
  });
});
