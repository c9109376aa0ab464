import assert from "node:assert/strict";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, describe, it } from "node:test";
import { rejection } from "../../test/support/helpers.ts";
import { lockDataDir } from "./data-dir.ts";

const dirs: string[] = [];
after(() => {
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

describe("lockDataDir()", () => {
  it("takes over a lock holding this process's pid that this process does not hold (a restarted kernel with the same pid)", async () => {
    const dir = mkdtempSync(join(tmpdir(), "solo-lock-"));
    dirs.push(dir);
    // What a crashed kernel leaves behind when its successor gets the same pid (pid 1 in a container).
    writeFileSync(join(dir, "kernel.lock"), `${process.pid}\n`);
    const lock = await lockDataDir(dir);
    assert.equal(readFileSync(join(dir, "kernel.lock"), "utf8").split("\n")[0], String(process.pid));
    const second = await rejection(lockDataDir(dir));
    assert.equal(second.reason, "SOLO_ERR_KERNEL_DATA_DIR_LOCKED", "a lock this process holds is still refused to a second opener");
    await lock.release();
    const again = await lockDataDir(dir);
    await again.release();
  });
});
