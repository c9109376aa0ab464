import assert from "node:assert/strict";
import { mkdtemp, rm, stat, truncate } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, describe, it } from "node:test";
import { rejection } from "../../../test/support/helpers.ts";
import { draft } from "../../kernel/log/event-log.ts";
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

  it("reports a truncated file at open, naming the file and the failed check, and leaves it as it was", async () => {
    const dir = await mkdtemp(join(tmpdir(), "solo-sqlite-"));
    dirs.push(dir);
    const path = join(dir, "solo.db");
    const store = await openSqliteStore(path);
    const payload = { text: "x".repeat(500) };
    for (let i = 0; i < 20; i++) {
      const events = Array.from({ length: 100 }, (_, k) => draft({ tenant: `t${k % 7}`, type: "svc.s.e", subject: "s", payload }, 0));
      await store.commit([{ mutations: [], events }]);
    }
    await store.close();
    const full = (await stat(path)).size;
    await truncate(path, Math.floor(full / 2));
    const err = await rejection(openSqliteStore(path));
    assert.equal(err.reason, "SOLO_ERR_STORE_CORRUPT");
    assert.equal(err.code, "data_loss");
    assert.equal(err.details.file, path);
    assert.ok(["quick_check", "open", "log_head", "event_hash"].includes(String(err.details.check)), String(err.details.check));
    assert.match(err.message, /solo\.db/);
    // Reported, never repaired or reset behind the operator's back.
    assert.equal((await stat(path)).size, Math.floor(full / 2));
  });
});
