import assert from "node:assert/strict";
import { type ChildProcessWithoutNullStreams, spawn } from "node:child_process";
import { chmodSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { StdioClientTransport } from "@modelcontextprotocol/sdk/client/stdio.js";
import { StreamableHTTPClientTransport } from "@modelcontextprotocol/sdk/client/streamableHttp.js";
import type { CallToolResult } from "@modelcontextprotocol/sdk/types.js";
import { Agent, fetch as undiciFetch } from "undici";
import { soloFreeEnv, waitForOutput } from "../test/support/helpers.ts";

/**
 * The README's five-minute CLI tour, run as pasted into a terminal. Its ```sh blocks marked
 * `<!-- tour -->` go, one command at a time, into one bash session (so `TOKEN=$(...)` carries
 * over, as in a terminal) in a directory where `solo start` runs, with `npx solo` resolving to
 * this checkout's CLI; a command's trailing comment is what it must print (`...` stands for any
 * text). The block marked `<!-- tour: another terminal -->` runs beside them, and the MCP client
 * configurations the README gives are started as a client would start them.
 */

const README = readFileSync(new URL("../README.md", import.meta.url), "utf8");
const SOLO = new URL("./cli/solo.ts", import.meta.url).pathname;
const STEP_MS = 20_000;

/** One command of the tour: a line, or a heredoc with its body; `expect` is its trailing comment. */
interface Step {
  readonly command: string;
  readonly expect: string | undefined;
}

interface Block {
  readonly where: "tour" | "another terminal";
  readonly text: string;
  readonly steps: readonly Step[];
}

function tourBlocks(readme: string): Block[] {
  const blocks: Block[] = [];
  for (const m of readme.matchAll(/^<!-- tour(?:: (another terminal))? -->\n```sh\n([\s\S]*?)^```$/gm)) {
    const text = m[2] as string;
    blocks.push({ where: m[1] === undefined ? "tour" : "another terminal", text, steps: steps(text) });
  }
  return blocks;
}

function steps(text: string): Step[] {
  const lines = text.split("\n");
  const out: Step[] = [];
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i] as string;
    if (line.trim() === "" || line.trimStart().startsWith("#")) continue;
    const heredoc = /<<'(\w+)'/.exec(line);
    if (heredoc) {
      const end = lines.indexOf(heredoc[1] as string, i + 1);
      assert.ok(end > i, `the heredoc on ${JSON.stringify(line)} has no ${heredoc[1]} line`);
      out.push({ command: lines.slice(i, end + 1).join("\n"), expect: undefined });
      i = end;
      continue;
    }
    const comment = /^(.*?)\s+# (.*)$/.exec(line);
    out.push({ command: line, expect: comment?.[2] });
  }
  return out;
}

/** Whether `output` is what `expected` says, whitespace aside, with `...` standing for any text. */
function prints(output: string, expected: string): boolean {
  const norm = (s: string) => s.replace(/\s+/g, " ").trim();
  const pieces = norm(expected)
    .split(/\s*\.\.\.\s*/)
    .map((p) => p.replace(/[.*+?^${}()|[\]\\]/g, "\\$&"));
  return new RegExp(`^${pieces.join(".*")}$`, "s").test(norm(output));
}

// The environment the tour runs in: nothing inherited that would pick other credentials.
const inherited = soloFreeEnv();

let dir = "";
let work = "";
let env: Record<string, string> = {};
let server: ChildProcessWithoutNullStreams | undefined;
let serverOut = "";
let terminal: Terminal | undefined;
let follower: { child: ChildProcessWithoutNullStreams; out: string; exited: Promise<number | null> } | undefined;
// What the tour printed, for failure messages.
const transcript: string[] = [];

/** Resolves once `test()` holds, or rejects after `ms` with what `text()` says. */
function waitFor(what: string, test: () => boolean, text: () => string, ms = STEP_MS): Promise<void> {
  return waitForOutput(what, text, () => test(), ms);
}

/** A bash session fed one command at a time, as a person pastes them; stderr is merged into stdout. */
class Terminal {
  private readonly child = spawn("bash", ["--noprofile", "--norc"], { cwd: work, env, stdio: ["pipe", "pipe", "pipe"] });
  private out = "";
  private seen = 0;
  private count = 0;

  constructor() {
    this.child.stdout.on("data", (d: Buffer) => (this.out += d.toString()));
    this.child.stderr.on("data", (d: Buffer) => (this.out += d.toString()));
    this.child.stdin.write("exec 2>&1\n");
  }

  /** Runs one command (its stdin is /dev/null, so nothing reads the rest of the paste) and returns what it printed. */
  async run(command: string): Promise<{ output: string; exit: number }> {
    const marker = `__tour_step_${++this.count}__`;
    this.child.stdin.write(`{\n${command}\n} </dev/null\nprintf '\\n${marker} %d\\n' "$?"\n`);
    const re = new RegExp(`\\n${marker} (\\d+)\\n`);
    await waitFor(
      `${JSON.stringify(command)} to finish`,
      () => re.test(this.out.slice(this.seen)),
      () => this.out.slice(this.seen),
    );
    const rest = this.out.slice(this.seen);
    const m = re.exec(rest) as RegExpExecArray;
    this.seen += m.index + m[0].length;
    return { output: rest.slice(0, m.index), exit: Number(m[1]) };
  }

  close(): void {
    this.child.stdin.end();
    if (this.child.exitCode === null) this.child.kill("SIGKILL");
  }
}

describe("the README's CLI tour", () => {
  const blocks = tourBlocks(README);
  const foreground = blocks.filter((b) => b.where === "tour").flatMap((b) => b.steps);

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), "solo-readme-cli-"));
    work = join(dir, "checkout"); // where the reader's terminals are: solo start's ./.solo is here
    const bin = join(dir, "bin");
    mkdirSync(work);
    mkdirSync(bin);
    // `npx solo ...` as in the checkout, run by this checkout's CLI with the Node running the tests.
    writeFileSync(
      join(bin, "npx"),
      `#!/bin/sh\n[ "$1" = solo ] || { echo "the tour runs npx solo only, not npx $*" >&2; exit 127; }\nshift\nexec '${process.execPath}' --disable-warning=ExperimentalWarning '${SOLO}' "$@"\n`,
    );
    chmodSync(join(bin, "npx"), 0o755);
    server = spawn(process.execPath, ["--disable-warning=ExperimentalWarning", SOLO, "start"], {
      cwd: work,
      env: { ...inherited, SOLO_PORT: "0", SOLO_WEB_PORT: "0" },
      stdio: ["pipe", "pipe", "pipe"],
    });
    const s = server;
    s.stdout.on("data", (d: Buffer) => (serverOut += d.toString()));
    s.stderr.on("data", (d: Buffer) => (serverOut += d.toString()));
    await waitFor(
      "solo start to say 'Press Ctrl-C'",
      () => serverOut.includes("Press Ctrl-C") || s.exitCode !== null,
      () => serverOut,
    );
    const url = /^ {2}gateway +(https:\/\/127\.0\.0\.1:\d+) /m.exec(serverOut)?.[1];
    assert.ok(url, `no gateway line in:\n${serverOut}`);
    // Only the URL differs from the README's setup (a free port); the CLI finds ./.solo by itself.
    env = {
      ...inherited,
      PATH: `${bin}:${process.env.PATH ?? ""}`,
      SOLO_URL: url,
      NODE_COMPILE_CACHE: join(dir, "compile-cache"),
    };
  });

  after(() => {
    terminal?.close();
    if (follower && follower.child.exitCode === null) process.kill(-(follower.child.pid as number), "SIGKILL");
    if (server && server.exitCode === null) server.kill("SIGKILL");
    rmSync(dir, { recursive: true, force: true });
  });

  it("has the tour's steps, each command with the output it prints", () => {
    assert.equal(blocks.filter((b) => b.where === "another terminal").length, 1, "one block for another terminal");
    const commands = foreground.map((s) => s.command);
    for (const want of [
      /^npx solo tenant create acme\b/,
      /^cat > \w+\.js <<'EOF'\n/,
      /^cat > \w+\.ts <<'EOF'\n/,
      /^npx solo deploy acme\/\w+ \w+\.js\b/,
      /^npx solo deploy acme\/\w+ \w+\.ts\b/,
      /^npx solo call acme\/counter '"boom"'/,
      /^until npx solo events .*service_restarted/,
      /^npx solo swap acme\/counter \S+\.js/,
      /^npx solo verify\b/,
      /^TOKEN=\$\(npx solo token grant --tenant acme --perm call:counter\b/,
      /^npx solo --token "\$TOKEN" kill acme\/counter; echo "exit \$\?"/,
      /^npx solo events .*--type capability_denied/,
    ]) {
      assert.ok(
        commands.some((c) => want.test(c)),
        `no tour command matches ${want}:\n${commands.join("\n")}`,
      );
    }
    // Every command but a heredoc or an assignment says what it prints.
    for (const s of foreground) if (!/^(cat > |[A-Z_]+=)/.test(s.command)) assert.ok(s.expect, `no output comment on ${s.command}`);
  });

  it("runs as pasted, and each command prints what its comment says (the denied kill exits 3)", async () => {
    const term = new Terminal();
    terminal = term;
    for (const block of blocks) {
      if (block.where === "another terminal") {
        const child = spawn("bash", ["--noprofile", "--norc", "-c", block.text], { cwd: work, env, detached: true });
        const f = { child, out: "", exited: new Promise<number | null>((resolve) => child.on("exit", (code) => resolve(code))) };
        child.stdout.on("data", (d: Buffer) => (f.out += d.toString()));
        child.stderr.on("data", (d: Buffer) => (f.out += d.toString()));
        follower = f;
        // Once it shows the log so far its stream is open: what the tour does next it sees live.
        await waitFor(
          "the follower to print the log so far",
          () => / acme tenant_created acme /.test(f.out),
          () => f.out,
        );
        continue;
      }
      for (const step of block.steps) {
        const { output, exit } = await term.run(step.command);
        transcript.push(`$ ${step.command}\n${output}`);
        const says = `${step.command}\nprinted:\n${output}\nexit ${exit}; the tour so far:\n${transcript.join("\n")}`;
        assert.equal(exit, 0, says);
        if (step.expect !== undefined) assert.ok(prints(output, step.expect), `expected "${step.expect}" from ${says}`);
      }
    }
    assert.ok(transcript.some((t) => /\nexit 3\n?$/.test(t) && t.includes("SOLO_ERR_PERMISSION_DENIED")));
  });

  it("shows the tour's events live in the other terminal, which Ctrl-C ends with exit 0", async () => {
    const f = follower;
    assert.ok(f, "the tour started its other terminal");
    const order = [
      / acme service_deployed counter /,
      / acme service_deployed tally /,
      / acme service_crashed counter .*"reason":"SOLO_ERR_HANDLER_THREW"/,
      / acme service_restarted counter .*"by":"supervisor"/,
      / acme hot_swap_started counter \{"from":1,/,
      / acme capability_granted tok_/,
      / acme capability_denied counter .*"operation":"kill"/,
    ];
    await waitFor(
      "the follower to print the capability_denied",
      () => / acme capability_denied counter /.test(f.out),
      () => f.out,
    );
    const lines = f.out.split("\n").filter((l) => l !== "");
    let at = 0;
    for (const want of order) {
      const i = lines.findIndex((l, n) => n >= at && want.test(l));
      assert.ok(i >= 0, `the follower printed no ${want} after line ${at}:\n${f.out}`);
      at = i + 1;
    }
    for (const l of lines) assert.match(l, /^ *\d+ \d{4}-\d\d-\d\dT\S+Z acme \w+ /);
    process.kill(-(f.child.pid as number), "SIGINT");
    assert.equal(await f.exited, 0, f.out);
  });

  it("gives MCP client configurations that start `npx solo mcp` in the checkout with the tour's token", async () => {
    assert.ok(terminal, "the tour ran");
    const { output: token } = await terminal.run(`printf '%s' "$TOKEN"`);
    assert.match(token, /^solo_[A-Za-z0-9_-]{43}$/);
    const section = README.slice(README.indexOf("## Connect an MCP client"));
    const mcp = section.slice(0, section.indexOf("### Over HTTP (the web listener)"));
    assert.match(mcp, /^claude mcp add solo -- npx solo mcp$/m);
    const configs = [...mcp.matchAll(/^```json\n([\s\S]*?)^```$/gm)].map((m) => JSON.parse(m[1] as string));
    assert.equal(configs.length, 2, "Claude Desktop and Cursor's mcpServers, and VS Code's servers");
    let count = 21; // the tour's counter after its last call
    for (const config of configs) {
      const s = (config.mcpServers ?? config.servers).solo;
      if (config.servers) assert.equal(s.type, "stdio");
      assert.equal(s.command, "npx");
      assert.deepEqual(s.args, ["solo", "mcp"]);
      assert.equal(s.cwd, "/path/to/solo");
      assert.deepEqual(s.env, { SOLO_TOKEN: "solo_..." });
      const client = new Client({ name: "readme-mcp-client", version: "1.0.0" });
      await client.connect(
        new StdioClientTransport({ command: s.command, args: s.args, cwd: work, env: { ...env, SOLO_TOKEN: token }, stderr: "pipe" }),
      );
      try {
        const called = (await client.callTool({ name: "call", arguments: { tenant: "acme", service: "counter" } })) as CallToolResult;
        assert.ok(!called.isError, JSON.stringify(called.content));
        count += 10;
        assert.deepEqual(called.structuredContent, { reply: count });
        const killed = (await client.callTool({ name: "kill", arguments: { tenant: "acme", service: "counter" } })) as CallToolResult;
        assert.equal(killed.isError, true);
        assert.equal((killed.structuredContent as { error: { reason: string } }).error.reason, "SOLO_ERR_PERMISSION_DENIED");
      } finally {
        await client.close();
      }
    }
  });

  it("gives MCP client configurations over HTTP that reach the web listener with a bearer token and Solo's CA", async () => {
    assert.ok(terminal, "the tour ran");
    const { output: token } = await terminal.run(`printf '%s' "$TOKEN"`);
    const section = README.slice(README.indexOf("### Over HTTP (the web listener)"));
    const http = section.slice(0, section.indexOf("\n## ", 1));
    assert.match(
      http,
      /^NODE_EXTRA_CA_CERTS=\/path\/to\/solo\/\.solo\/tls\/ca\.crt claude mcp add --transport http solo https:\/\/127\.0\.0\.1:7444\/mcp --header "Authorization: Bearer <token>"$/m,
    );
    // The banner lines the README shows are the ones solo start prints (but for the free port).
    const web = /^ {2}web +(https:\/\/127\.0\.0\.1:\d+) /m.exec(serverOut)?.[1];
    assert.ok(web, serverOut);
    assert.match(http, /^ {2}web +https:\/\/127\.0\.0\.1:7444 {2}\(HTTP\/1\.1 and HTTP\/2; bearer token/m);
    assert.ok(serverOut.includes(`NODE_EXTRA_CA_CERTS=${join(work, ".solo", "tls", "ca.crt")}`), serverOut);
    const configs = [...http.matchAll(/^```json\n([\s\S]*?)^```$/gm)].map((m) => JSON.parse(m[1] as string));
    assert.equal(configs.length, 2, "Claude Desktop and Cursor's mcpServers, and VS Code's servers");
    // Over HTTP/1.1, as Node clients' fetch speaks it, trusting only Solo's CA.
    const agent = new Agent({ allowH2: false, connect: { ca: readFileSync(join(work, ".solo", "tls", "ca.crt")) } });
    try {
      for (const config of configs) {
        const s = (config.mcpServers ?? config.servers).solo as { type?: string; url: string; headers: Record<string, string> };
        if (config.servers) assert.equal(s.type, "http");
        assert.equal(s.url, "https://127.0.0.1:7444/mcp");
        assert.deepEqual(s.headers, { Authorization: "Bearer solo_..." });
        const transport = new StreamableHTTPClientTransport(new URL(s.url.replace("https://127.0.0.1:7444", web)), {
          fetch: ((url: string | URL, init?: RequestInit) =>
            undiciFetch(url, { ...(init as object), dispatcher: agent } as Parameters<typeof undiciFetch>[1])) as unknown as typeof fetch,
          requestInit: { headers: { Authorization: (s.headers.Authorization as string).replace("solo_...", token) } },
        });
        const client = new Client({ name: "readme-http-client", version: "1.0.0" });
        await client.connect(transport);
        try {
          const called = (await client.callTool({ name: "call", arguments: { tenant: "acme", service: "counter" } })) as CallToolResult;
          assert.ok(!called.isError, JSON.stringify(called.content));
          assert.equal(typeof (called.structuredContent as { reply: unknown }).reply, "number");
          const killed = (await client.callTool({ name: "kill", arguments: { tenant: "acme", service: "counter" } })) as CallToolResult;
          assert.equal((killed.structuredContent as { error: { reason: string } }).error.reason, "SOLO_ERR_PERMISSION_DENIED");
        } finally {
          await transport.terminateSession();
          await client.close();
        }
      }
    } finally {
      await agent.close();
    }
  });
});
