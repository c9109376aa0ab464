import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { type AddressInfo, createServer, connect as netConnect } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, it } from "node:test";
import { connect as tlsConnect } from "node:tls";

const SOLO = new URL("./solo.js", import.meta.url).pathname;

describe("npm start (solo start)", () => {
  it("runs a kernel and its gateway on the data directory, says where and how to connect, and stops cleanly on SIGTERM", async () => {
    const dir = mkdtempSync(join(tmpdir(), "solo-start-"));
    const dataDir = join(dir, ".solo");
    const child = spawn(
      process.execPath,
      ["--disable-warning=ExperimentalWarning", new URL("./solo.ts", import.meta.url).pathname, "start", "--memory-budget", "1.5GiB"],
      {
        env: { ...process.env, SOLO_DATA_DIR: dataDir, SOLO_PORT: "0", SOLO_WEB_PORT: "0" },
        stdio: ["ignore", "pipe", "pipe"],
      },
    );
    let out = "";
    child.stdout.on("data", (d: Buffer) => {
      out += d.toString();
      if (out.includes("Press Ctrl-C")) child.kill("SIGTERM");
    });
    const code = await new Promise<number | null>((resolve) => child.on("exit", resolve));
    assert.equal(code, 0, out);
    assert.match(out, new RegExp(`data directory +${dataDir.replace(/[.*+?^${}()|[\]\\]/g, "\\$&")}`));
    assert.match(out, /store +sqlite at .*solo\.db/);
    assert.match(out, /memory budget +1536 MiB for all tenants together/);
    assert.match(out, /gateway +https:\/\/127\.0\.0\.1:\d+ /);
    assert.match(out, /admin +certificate .*admin\.crt, key .*admin\.key, token .*admin\.token/);
    assert.match(out, /Try: +npx solo /);
    assert.match(out, /stopped\./);
    assert.ok(existsSync(dataDir));
    assert.equal(existsSync(join(dataDir, "kernel.lock")), false);
    assert.ok(existsSync(join(dataDir, "solo.db")));
    rmSync(dir, { recursive: true, force: true });
  });

  /** Runs `solo start` with `flags` on a fresh data directory: its exit code, stderr, and whether it made the directory. */
  async function start(...flags: string[]): Promise<{ code: number | null; err: string; made: boolean }> {
    const dir = mkdtempSync(join(tmpdir(), "solo-start-"));
    try {
      const child = spawn(
        process.execPath,
        ["--disable-warning=ExperimentalWarning", new URL("./solo.ts", import.meta.url).pathname, "start", ...flags],
        {
          env: { ...process.env, SOLO_DATA_DIR: join(dir, ".solo"), SOLO_PORT: "0", SOLO_WEB_PORT: "0" },
          stdio: ["ignore", "pipe", "pipe"],
        },
      );
      let err = "";
      child.stderr.on("data", (d: Buffer) => {
        err += d.toString();
      });
      const code = await new Promise<number | null>((resolve) => child.on("exit", resolve));
      return { code, err, made: existsSync(join(dir, ".solo")) };
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  }

  it("refuses a memory budget that is not a size, naming the flag, and starts nothing", async () => {
    const { code, err, made } = await start("--memory-budget", "lots");
    assert.equal(code, 2, err);
    assert.match(err, /--memory-budget must be a size such as 8GiB or 512MiB, got "lots"/);
    assert.equal(made, false);
  });

  it("says which flag to change when the web listener's port is taken, and leaves nothing running", async () => {
    const taken = createServer();
    await new Promise<void>((resolve) => taken.listen(0, "127.0.0.1", resolve));
    try {
      const { code, err } = await start("--web-port", String((taken.address() as AddressInfo).port));
      assert.notEqual(code, 0, err);
      assert.match(err, /the web listener cannot listen on 127\.0\.0\.1:\d+/);
      assert.match(err, /--web-port, or --no-web/);
    } finally {
      taken.close();
    }
  });

  it("refuses --web-cert without --web-key, naming both, and starts nothing", async () => {
    const { code, err, made } = await start("--web-cert", "/nonexistent.crt");
    assert.equal(code, 2, err);
    assert.match(err, /--web-cert needs --web-key too/);
    assert.equal(made, false);
  });

  it("opens the web listener on --web-port 0, prints its real URL, and serves it with Solo's CA; --no-web opens none", async () => {
    const dir = mkdtempSync(join(tmpdir(), "solo-start-"));
    const dataDir = join(dir, ".solo");
    const run = async (...flags: string[]): Promise<{ out: string; health?: string }> => {
      const { SOLO_WEB_PORT: _, ...env } = process.env;
      const child = spawn(
        process.execPath,
        ["--disable-warning=ExperimentalWarning", new URL("./solo.ts", import.meta.url).pathname, "start", ...flags],
        { env: { ...env, SOLO_DATA_DIR: dataDir, SOLO_PORT: "0" }, stdio: ["ignore", "pipe", "pipe"] },
      );
      let out = "";
      await new Promise<void>((resolve, reject) => {
        child.stdout.on("data", (d: Buffer) => {
          out += d.toString();
          if (out.includes("Press Ctrl-C")) resolve();
        });
        child.once("exit", () => reject(new Error(`solo start exited early: ${out}`)));
      });
      const m = /web +https:\/\/127\.0\.0\.1:(\d+) /.exec(out);
      let health: string | undefined;
      if (m) {
        // What the banner says to trust: the CA in the data directory.
        const ca = readFileSync(join(dataDir, "tls", "ca.crt"));
        health = await new Promise<string>((resolve, reject) => {
          const s = tlsConnect({ port: Number(m[1]), host: "127.0.0.1", ca, ALPNProtocols: ["http/1.1"] }, () =>
            s.end("GET /healthz HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n"),
          );
          let text = "";
          s.on("data", (d: Buffer) => {
            text += d.toString();
          });
          s.once("close", () => resolve(text));
          s.once("error", reject);
        });
      }
      child.kill("SIGTERM");
      assert.equal(await new Promise<number | null>((resolve) => child.on("exit", resolve)), 0, out);
      return { out, ...(health !== undefined ? { health } : {}) };
    };
    const opened = await run("--web-port", "0");
    assert.match(opened.out, /web +https:\/\/127\.0\.0\.1:\d+ /);
    assert.doesNotMatch(opened.out, /:7444/);
    assert.match(opened.out, /NODE_EXTRA_CA_CERTS=.*ca\.crt/);
    assert.match(opened.health ?? "", /^HTTP\/1\.1 200 [\s\S]*\{"status":"ok"\}/);
    const closed = await run("--no-web");
    assert.doesNotMatch(closed.out, /web +https/);
    rmSync(dir, { recursive: true, force: true });
  });

  it("refuses an edge limit out of range, naming its flag, and starts nothing", async () => {
    const { code, err, made } = await start("--denial-burst", "0");
    assert.equal(code, 2, err);
    assert.match(err, /--denial-burst must be a whole number from 1 to 1000000, got 0/);
    assert.equal(made, false);
  });

  it("refuses a memory budget below the least, a port above 65535 and a bad --hostname in the flags' words, and starts nothing", async () => {
    for (const [flags, says] of [
      [["--memory-budget", "1KiB"], /^error: --memory-budget must be an integer of at least \d+ bytes \(16 MiB\) \(usage\)$/m],
      [["--port", "99999"], /^error: --port must be a port from 0 to 65535, got 99999 \(usage\)$/m],
      [
        ["--hostname", "ok.example.net", "--hostname", "bad host!"],
        /^error: --hostname "bad host!" is neither a DNS name nor an IP address \(usage\)$/m,
      ],
    ] as const) {
      const { code, err, made } = await start(...flags);
      assert.equal(code, 2, err);
      assert.match(err, says);
      assert.doesNotMatch(err, /openKernel|memoryBudgetBytes|hostnames\[|options\.port/, "no embedding-API words");
      assert.equal(made, false, flags.join(" "));
    }
  });

  it("cert issue refuses a bad <name> and --days out of range (0 included) in the command's words, and writes nothing", async () => {
    const dir = mkdtempSync(join(tmpdir(), "solo-cert-"));
    try {
      for (const [args, says] of [
        [["bad name!"], /^error: <name> must be 1-64 of letters, digits/m],
        [["laptop", "--days", "0"], /^error: --days must be an integer from 1 to 36500 \(usage\)$/m],
        [["laptop", "--days", "99999"], /^error: --days must be an integer from 1 to 36500 \(usage\)$/m],
      ] as const) {
        const child = spawn(process.execPath, [SOLO, "cert", "issue", ...args, "--out", dir], {
          env: { ...process.env, SOLO_DATA_DIR: join(dir, ".solo") },
          stdio: ["ignore", "pipe", "pipe"],
        });
        let err = "";
        child.stderr.on("data", (d: Buffer) => (err += d.toString()));
        const code = await new Promise<number | null>((resolve) => child.on("exit", resolve));
        assert.equal(code, 2, err);
        assert.match(err, says);
        assert.doesNotMatch(err, /commonName|gateway credentials/, "no embedding-API words");
        assert.equal(existsSync(join(dir, "laptop.crt")), false);
      }
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it("stops on SIGTERM even when clients left connections silent, mid-handshake or after a refused renegotiation", async () => {
    const dir = mkdtempSync(join(tmpdir(), "solo-start-"));
    const dataDir = join(dir, ".solo");
    const child = spawn(
      process.execPath,
      ["--disable-warning=ExperimentalWarning", new URL("./solo.ts", import.meta.url).pathname, "start"],
      {
        env: { ...process.env, SOLO_DATA_DIR: dataDir, SOLO_PORT: "0", SOLO_WEB_PORT: "0" },
        stdio: ["ignore", "pipe", "pipe"],
      },
    );
    let out = "";
    const port = await new Promise<number>((resolve, reject) => {
      child.stdout.on("data", (d: Buffer) => {
        out += d.toString();
        const m = /gateway +https:\/\/127\.0\.0\.1:(\d+) /.exec(out);
        if (m && out.includes("Press Ctrl-C")) resolve(Number(m[1]));
      });
      child.once("exit", () => reject(new Error(`solo start exited early: ${out}`)));
    });
    // A TCP connection that never says hello, and an admitted TLS 1.2 one that asks to renegotiate.
    const cert = /admin +certificate (\S+), key (\S+),/.exec(out);
    assert.ok(cert, out);
    const silent = netConnect(port, "127.0.0.1");
    silent.on("error", () => undefined);
    const tls = tlsConnect({
      port,
      host: "127.0.0.1",
      rejectUnauthorized: false,
      maxVersion: "TLSv1.2",
      ALPNProtocols: ["h2"],
      cert: readFileSync(cert[1] as string),
      key: readFileSync(cert[2] as string),
    });
    tls.on("error", () => undefined);
    // Read what the server sends, so its closing the connection is seen.
    tls.resume();
    const renegotiated = await new Promise<string>((resolve) => {
      tls.once("secureConnect", () => {
        tls.renegotiate({}, (err) => resolve(err ? "refused" : "renegotiated"));
      });
      tls.once("close", () => resolve("closed"));
    });
    assert.notEqual(renegotiated, "renegotiated");
    child.kill("SIGTERM");
    const code = await new Promise<number | null>((resolve) => child.on("exit", resolve));
    silent.destroy();
    tls.destroy();
    assert.equal(code, 0, out);
    assert.match(out, /stopped\./);
    rmSync(dir, { recursive: true, force: true });
  });
});
