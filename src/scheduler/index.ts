/**
 * The scheduler: what the kernel imports of it. A `Scheduler` hosts tenants' WebAssembly instances
 * and their services' mailboxes; it takes batches of operations and answers with batches of
 * messages (protocol.ts). One runs in each scheduler thread (thread.ts), behind the pool the
 * kernel owns (pool.ts); `createScheduler` (core/scheduler.ts) runs one in the calling thread.
 * @internal
 */
import type { EngineImage } from "../sandbox/engine.ts";
import type { StepBoard } from "./board.ts";
import type { ToScheduler } from "./protocol.ts";

export { type Culprit, type PoolEvents, SchedulerPool } from "./pool.ts";
export type { Deployed, FromScheduler, PendingTimer, Swapped, ToScheduler, UsageSample } from "./protocol.ts";

/** One scheduler: services run one message at a time each, round-robin, in bounded slices. @internal */
export interface Scheduler {
  /** Takes a batch of operations; what they produce leaves, batched, through the `post` it was made with. */
  receive(batch: readonly ToScheduler[]): void;
  /** Reports what changed in its services' and tenants' usage, and gives a tenant's unused memory back. */
  sampleUsage(): void;
}

/** What a scheduler is made with. @internal */
export interface SchedulerOptions {
  readonly engine: EngineImage;
  /** Where it announces each step into service code, for the watchdog (and where kills reach it). */
  readonly board: StepBoard;
  /** Its number in the pool, for diagnostics. */
  readonly index: number;
}
