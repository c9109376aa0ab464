import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { existsSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, it } from "node:test";

describe("npm start (solo start)", () => {
  it("runs a kernel and its gateway on the data directory, says where and how to connect, and stops cleanly on SIGTERM", async () => {
    const dir = mkdtempSync(join(tmpdir(), "solo-start-"));
    const dataDir = join(dir, ".solo");
    const child = spawn(
      process.execPath,
      ["--disable-warning=ExperimentalWarning", new URL("./solo.ts", import.meta.url).pathname, "start", "--memory-budget", "1.5GiB"],
      {
        env: { ...process.env, SOLO_DATA_DIR: dataDir, SOLO_PORT: "0" },
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

  it("refuses a memory budget that is not a size, naming the flag, and starts nothing", async () => {
    const dir = mkdtempSync(join(tmpdir(), "solo-start-"));
    const child = spawn(
      process.execPath,
      ["--disable-warning=ExperimentalWarning", new URL("./solo.ts", import.meta.url).pathname, "start", "--memory-budget", "lots"],
      { env: { ...process.env, SOLO_DATA_DIR: join(dir, ".solo"), SOLO_PORT: "0" }, stdio: ["ignore", "pipe", "pipe"] },
    );
    let err = "";
    child.stderr.on("data", (d: Buffer) => {
      err += d.toString();
    });
    const code = await new Promise<number | null>((resolve) => child.on("exit", resolve));
    assert.equal(code, 2, err);
    assert.match(err, /--memory-budget must be a size such as 8GiB or 512MiB, got "lots"/);
    assert.equal(existsSync(join(dir, ".solo")), false);
    rmSync(dir, { recursive: true, force: true });
  });
});
