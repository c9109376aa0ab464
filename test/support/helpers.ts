/**
 * Helpers shared by the test files (not part of the public API).
 * @internal
 */

import assert from "node:assert/strict";
import type { Crash } from "../../src/api/crash.ts";
import type { Clock } from "../../src/api/kernel.ts";
import { SoloError } from "../../src/lib/errors/errors.ts";

/** Awaits a promise that must reject with a SoloError, and returns the error. */
export async function rejection(promise: Promise<unknown>): Promise<SoloError> {
  try {
    await promise;
  } catch (err) {
    assert.ok(err instanceof SoloError, `expected a SoloError, got ${String(err)}`);
    return err;
  }
  return assert.fail("expected the operation to fail with a SoloError");
}

/** The crash description a service failure carries in its details. */
export function crashOf(error: SoloError): Crash {
  const crash = error.details.crash;
  assert.ok(crash !== null && typeof crash === "object", `expected details.crash on ${error.reason}: ${error.message}`);
  return crash as Crash;
}

/** mulberry32: a small seeded PRNG, so a run with the same seed makes the same choices. */
export function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** A clock that moves only when told to; its timers run in due order as it advances. */
export class ManualClock implements Clock {
  private t = 1_000_000;
  private timers: Array<{ at: number; fn: () => void }> = [];
  now(): number {
    return this.t;
  }
  setTimeout(fn: () => void, ms: number): unknown {
    const timer = { at: this.t + ms, fn };
    this.timers.push(timer);
    return timer;
  }
  clearTimeout(handle: unknown): void {
    this.timers = this.timers.filter((t) => t !== handle);
  }
  random(): number {
    return 0.5; // no jitter: delays are exactly the backoff
  }
  get pending(): number {
    return this.timers.length;
  }
  advance(ms: number): void {
    this.t += ms;
    for (;;) {
      const due = this.timers.filter((t) => t.at <= this.t).sort((a, b) => a.at - b.at)[0];
      if (!due) return;
      this.timers = this.timers.filter((t) => t !== due);
      due.fn();
    }
  }
}

/** Waits, a bounded number of short turns, until `check` holds; fails naming `what` otherwise. */
export async function until(what: string, check: () => boolean | Promise<boolean>, tries = 3000): Promise<void> {
  for (let i = 0; i < tries; i++) {
    if (await check()) return;
    await new Promise((r) => setTimeout(r, 2));
  }
  assert.fail(`timed out waiting for ${what}`);
}

/**
 * Waits until `test` holds of a child process's output so far (`text()`), polling every 20 ms; a
 * wait longer than `ms` fails with the output in the message, so a hung child shows what it said.
 */
export function waitForOutput(what: string, text: () => string, test: (s: string) => boolean, ms: number): Promise<void> {
  return new Promise((resolve, reject) => {
    const started = Date.now();
    const poll = setInterval(() => {
      if (test(text())) {
        clearInterval(poll);
        resolve();
      } else if (Date.now() - started > ms) {
        clearInterval(poll);
        reject(new Error(`timed out waiting for ${what}; output so far:\n${text()}`));
      }
    }, 20);
  });
}

/**
 * This process's environment for a `solo` child process that must pick nothing up from the
 * machine it runs on: no `SOLO_*` variable (credentials, ports, a database URL) and no colour
 * switches. Values that are unset are left out, so it fits any child's `env`.
 * @internal
 */
export function soloFreeEnv(): Record<string, string> {
  const env: Record<string, string> = {};
  for (const [k, v] of Object.entries(process.env)) {
    if (v !== undefined && !k.startsWith("SOLO_") && k !== "NO_COLOR" && k !== "FORCE_COLOR") env[k] = v;
  }
  return env;
}
