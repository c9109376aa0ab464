/**
 * A message's CPU budget counts the scheduler thread's CPU time, not the wall clock: while other
 * processes keep every core busy, a service doing honest work well inside its budget is never
 * stopped, however long its messages take in wall time.
 */
import assert from "node:assert/strict";
import { type ChildProcess, spawn } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { availableParallelism, tmpdir } from "node:os";
import { join } from "node:path";
import { after, describe, it } from "node:test";
import { type Kernel, openKernel } from "../index.ts";

let kernel: Kernel | undefined;
const dataDir = mkdtempSync(join(tmpdir(), "solo-cpu-"));
const hogs: ChildProcess[] = [];
after(async () => {
  for (const h of hogs) h.kill("SIGKILL");
  await kernel?.close();
  rmSync(dataDir, { recursive: true, force: true });
});

// n rounds of arithmetic: CPU work and nothing else.
const WORK = `export default {
  init() { return 0 },
  handleCall(n, s) { let x = 0; for (let i = 0; i < n; i++) x = (x * 31 + i) % 1000003; return { reply: x, state: s } },
};`;

/** Starts processes that spin on every core (each stops by itself within 30 s should the test die). */
async function loadEveryCore(): Promise<void> {
  const spin = "const end = Date.now() + 30000; while (Date.now() < end) {}";
  for (let i = 0; i < availableParallelism() * 2; i++) {
    const child = spawn(process.execPath, ["-e", spin], { stdio: "ignore" });
    hogs.push(child);
    await new Promise<void>((resolve, reject) => {
      child.once("spawn", resolve);
      child.once("error", reject);
    });
  }
}

describe("the CPU budget under load", () => {
  it("never stops an honest service while other processes keep every core busy", { timeout: 120_000 }, async () => {
    kernel = await openKernel({ dataDir, schedulers: 1 });
    await kernel.deploy({ tenant: "honest", service: "work", code: WORK, limits: { cpuMsPerMessage: 100 } });
    // Calibrated unloaded: rounds for about 40 ms of work, 40% of the budget.
    const probe = 200_000;
    let fastest = Number.POSITIVE_INFINITY;
    for (let i = 0; i < 5; i++) {
      const started = performance.now();
      await kernel.call("honest", "work", probe);
      fastest = Math.min(fastest, performance.now() - started);
    }
    const rounds = Math.max(probe, Math.floor((probe * 40) / fastest));
    await loadEveryCore();
    const outcomes: string[] = [];
    for (let i = 0; i < 10; i++) {
      outcomes.push(
        await kernel.call("honest", "work", rounds, { timeoutMs: 60_000 }).then(
          () => "ok",
          (e: { reason?: string }) => e.reason ?? "error",
        ),
      );
    }
    assert.deepEqual(outcomes, new Array(10).fill("ok"));
    assert.equal(kernel.status("honest", "work").state, "running");
  });
});
