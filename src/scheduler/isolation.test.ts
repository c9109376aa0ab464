import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, it } from "node:test";
import { openKernel } from "../index.ts";

const COUNTER = `export default {
  init() { return 0 },
  handleCall(req, n) { return { reply: n + 1, state: n + 1 } },
}`;

const HOSTILE = [
  "export default { handleCast() { while (true) {} } }",
  "export default { handleCast() { const a = []; while (true) a.push('x'.repeat(1000)) } }",
  "export default { handleCast() { const f = () => f(); f() } }",
  "export default { async handleCast() { while (true) await null } }",
  "export default { handleCast() { throw new Error('boom') } }",
];

for (const schedulers of [2, 1]) {
  describe(`neighbours on ${schedulers === 1 ? "one shared scheduler" : "separate schedulers"}`, () => {
    it("keep answering every call while another tenant's services loop, blow up and crash", async () => {
      const dir = mkdtempSync(join(tmpdir(), "solo-test-"));
      const kernel = await openKernel({
        dataDir: dir,
        schedulers,
        limits: { cpuMsPerMessage: 20, memoryBytes: 4 * 1024 * 1024 },
        supervision: { restart: "temporary" },
        analyzer: "warn", // the loopers are exactly what the analyzer warns about; the sandbox contains them
      });
      try {
        await kernel.deploy({ tenant: "neighbour", service: "counter", code: COUNTER });
        let crashes = 0;
        const chaos = (async () => {
          for (let round = 0; round < 4; round++) {
            await Promise.all(
              HOSTILE.map(async (code, i) => {
                const service = `bad-${round}-${i}`;
                await kernel.deploy({ tenant: "attacker", service, code });
                await kernel.cast("attacker", service, null);
              }),
            );
            // Each hostile service crashes on its first message; wait for all of them.
            for (
              let i = 0;
              i < 500 && kernel.list("attacker").filter((s) => s.state === "crashed").length < (round + 1) * HOSTILE.length;
              i++
            ) {
              await new Promise((r) => setTimeout(r, 5));
            }
          }
          crashes = kernel.list("attacker").filter((s) => s.state === "crashed").length;
        })();
        let answered = 0;
        const calls = (async () => {
          for (let i = 1; i <= 300; i++) {
            assert.equal(await kernel.call("neighbour", "counter", null, { timeoutMs: 5000 }), i);
            answered++;
          }
        })();
        await Promise.all([chaos, calls]);
        assert.equal(answered, 300);
        assert.equal(crashes, 4 * HOSTILE.length);
        assert.equal(kernel.list("neighbour")[0]?.state, "running");
        const kinds = new Set(kernel.list("attacker").map((s) => s.crash?.kind));
        // The memory bomb may end on its CPU budget first: the heap is measured every 2 ms of
        // execution, and a 20 ms budget can run out before the heap passes 4 MiB.
        for (const kind of ["cpu_limit", "exception", "stack_limit"]) assert.ok(kinds.has(kind as never), kind);
      } finally {
        await kernel.close();
        rmSync(dir, { recursive: true, force: true });
      }
    });
  });
}
