import assert from "node:assert/strict";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, describe, it } from "node:test";
import { rejection } from "../../test-support.ts";
import { openSqliteStore } from "./sqlite-store.ts";

describe("SQLite store", () => {
  const dirs: string[] = [];
  after(async () => {
    for (const d of dirs) await rm(d, { recursive: true, force: true });
  });

  it("refuses a second store on a file that is open, and opens once the first has closed", async () => {
    const dir = await mkdtemp(join(tmpdir(), "solo-sqlite-"));
    dirs.push(dir);
    const path = join(dir, "solo.db");
    const first = await openSqliteStore(path);
    const err = await rejection(openSqliteStore(path));
    assert.equal(err.reason, "SOLO_ERR_STORE_LOCKED");
    assert.equal(err.code, "failed_precondition");
    assert.equal(err.details.file, path);
    assert.deepEqual(await first.head(), { id: 0, timestamp: 0, hash: "0".repeat(64) });
    await first.close();
    const second = await openSqliteStore(path);
    assert.equal((await second.head()).id, 0);
    await second.close();
  });
});
