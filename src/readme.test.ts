import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, it } from "node:test";

describe("the README tour", () => {
  it("runs as written and prints what its comments say", () => {
    const readme = readFileSync(new URL("../README.md", import.meta.url), "utf8");
    const tour = /```ts\n([\s\S]*?)```/.exec(readme)?.[1];
    assert.ok(tour, "the README has a ts tour block");
    const dir = mkdtempSync(join(tmpdir(), "solo-tour-"));
    try {
      const file = join(dir, "tour.ts");
      writeFileSync(file, tour.replace("./src/index.ts", new URL("./index.ts", import.meta.url).href));
      const run = spawnSync(process.execPath, ["--disable-warning=ExperimentalWarning", file], {
        cwd: dir,
        encoding: "utf8",
        timeout: 60_000,
      });
      assert.equal(run.status, 0, run.stderr);
      const lines = run.stdout.split("\n");
      assert.deepEqual(lines.slice(0, 2), ["11", "17"]);
      assert.match(run.stdout, /aborted SOLO_ERR_HANDLER_THREW \{[\s\S]*line: 8,/);
      assert.ok(lines.includes("running 18"), run.stdout);
      assert.ok(lines.includes("19"), run.stdout);
      assert.ok(lines.includes("2 29"), run.stdout);
      assert.match(
        run.stdout,
        /\[\s+'2 tenant_created',\s+'3 service_deployed',\s+'4 service_crashed',\s+'5 service_restarted',\s+'8 service_started',\s+'9 hot_swap_started'\s+\]/,
      );
      assert.match(run.stdout, /ok: true,\s+events: 9,/);
      assert.ok(lines.includes("39"), run.stdout);
      assert.ok(lines.includes("SOLO_ERR_PERMISSION_DENIED"), run.stdout);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
