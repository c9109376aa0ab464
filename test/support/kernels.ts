import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after } from "node:test";
import { type Kernel, type KernelOptions, openKernel, type SoloEvent } from "../../src/index.ts";

/**
 * Kernels on fresh data directories for one test file, all closed and removed when the file's
 * tests are done.
 * @internal
 */
export function testKernels(prefix: string): {
  freshDir(): string;
  start(dataDir: string, options?: Omit<KernelOptions, "dataDir">): Promise<Kernel>;
} {
  const dirs: string[] = [];
  const kernels: Kernel[] = [];
  after(async () => {
    for (const k of kernels) await k.close();
    for (const d of dirs) rmSync(d, { recursive: true, force: true });
  });
  return {
    freshDir() {
      const dir = mkdtempSync(join(tmpdir(), `solo-${prefix}-`));
      dirs.push(dir);
      return dir;
    },
    async start(dataDir, options = {}) {
      const kernel = await openKernel({ dataDir, schedulers: 1, ...options });
      kernels.push(kernel);
      return kernel;
    },
  };
}

/** An event's payload, as the shape the test expects (failing if there is no event). @internal */
export function payloadOf<T>(event: SoloEvent | undefined): T {
  assert.ok(event, "expected an event");
  return event.payload as T;
}

/** The admin read of every event matching the query, paged through. @internal */
export async function allEvents(kernel: Kernel, query: { tenant?: string; types?: string[] } = {}): Promise<SoloEvent[]> {
  const out: SoloEvent[] = [];
  let cursor: string | undefined;
  for (;;) {
    const page = await kernel.events({ ...query, limit: 1000, ...(cursor ? { cursor } : {}) });
    out.push(...page.events);
    if (!page.cursor) return out;
    cursor = page.cursor;
  }
}
