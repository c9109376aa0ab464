import { Worker } from "node:worker_threads";
import { type ErrorData, SoloError } from "../errors.ts";
import type { EngineImage } from "../sandbox/engine.ts";
import type { FromScheduler, SchedulerData, ToScheduler } from "./protocol.ts";

/** What the pool tells its owner about. @internal */
export interface PoolEvents {
  /** A scheduler reported something that is not a reply (status, usage, log). */
  onMessage(index: number, msg: FromScheduler): void;
  /** A scheduler thread died; its tenants' services are gone. A fresh thread replaces it. */
  onSchedulerDied(index: number, error: SoloError): void;
}

interface Pending {
  readonly resolve: (value: string) => void;
  readonly reject: (err: SoloError) => void;
  readonly scheduler: number;
}

interface Slot {
  worker: Worker;
  outbox: ToScheduler[];
  flushQueued: boolean;
  ready: Promise<void>;
}

// Deep enough for the largest service stack limit (1 MiB of QuickJS stack) with a wide margin:
// QuickJS's own check must always fire before the thread's native stack runs out.
const SCHEDULER_STACK_MB = 16;

/**
 * The control plane's side of the schedulers: starts the worker threads, batches operations to
 * each (one `postMessage` per microtask turn), and matches replies to requests.
 * @internal
 */
export class SchedulerPool {
  private readonly slots: Slot[] = [];
  private readonly pending = new Map<number, Pending>();
  private rid = 0;
  private closing = false;
  private readonly engine: EngineImage;
  private readonly events: PoolEvents;
  private readonly usageIntervalMs: number;

  constructor(size: number, engine: EngineImage, events: PoolEvents, usageIntervalMs: number) {
    this.engine = engine;
    this.events = events;
    this.usageIntervalMs = usageIntervalMs;
    for (let i = 0; i < size; i++) this.slots.push(this.spawn(i));
  }

  get size(): number {
    return this.slots.length;
  }

  /** Resolves once every scheduler thread has started. */
  async ready(): Promise<void> {
    await Promise.all(this.slots.map((s) => s.ready));
  }

  /** Sends an operation that expects a reply; resolves with the reply's value (a JSON string). */
  request(index: number, make: (rid: number) => ToScheduler): { rid: number; promise: Promise<string> } {
    const rid = ++this.rid;
    const promise = new Promise<string>((resolve, reject) => {
      this.pending.set(rid, { resolve, reject, scheduler: index });
    });
    this.post(index, make(rid));
    return { rid, promise };
  }

  /** Forgets a request (its caller gave up); a late reply is then ignored. */
  forget(rid: number): void {
    this.pending.delete(rid);
  }

  /** Sends an operation that expects no reply. */
  post(index: number, msg: ToScheduler): void {
    const slot = this.slots[index];
    if (!slot) throw new SoloError("SOLO_ERR_INTERNAL", `no scheduler ${index}`);
    slot.outbox.push(msg);
    if (!slot.flushQueued) {
      slot.flushQueued = true;
      queueMicrotask(() => this.flush(slot));
    }
  }

  /** Asks every scheduler to terminate its services, then stops the threads. */
  async close(graceMs: number): Promise<void> {
    this.closing = true;
    const acks = this.slots.map((_, i) => this.request(i, (rid) => ({ op: "shutdown", rid })).promise.catch(() => ""));
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([Promise.all(acks), new Promise((r) => (timer = setTimeout(r, graceMs)))]);
    clearTimeout(timer);
    await Promise.all(this.slots.map((s) => s.worker.terminate()));
    const closed = new SoloError("SOLO_ERR_KERNEL_CLOSED", "the kernel closed before this operation finished");
    for (const p of this.pending.values()) p.reject(closed);
    this.pending.clear();
  }

  private flush(slot: Slot): void {
    slot.flushQueued = false;
    const batch = slot.outbox;
    slot.outbox = [];
    if (batch.length > 0) slot.worker.postMessage(batch);
  }

  private spawn(index: number): Slot {
    const workerData: SchedulerData = { engine: this.engine, index, usageIntervalMs: this.usageIntervalMs };
    const worker = new Worker(new URL("./worker.ts", import.meta.url), {
      workerData,
      resourceLimits: { stackSizeMb: SCHEDULER_STACK_MB },
      name: `solo-scheduler-${index}`,
    });
    let markReady: () => void = () => {};
    let markFailed: (err: Error) => void = () => {};
    const ready = new Promise<void>((resolve, reject) => {
      markReady = resolve;
      markFailed = reject;
    });
    ready.catch(() => {}); // a later death is reported through onSchedulerDied
    const slot: Slot = { worker, outbox: [], flushQueued: false, ready };
    worker.on("message", (batch: readonly FromScheduler[]) => {
      for (const msg of batch) {
        switch (msg.op) {
          case "ready":
            markReady();
            break;
          case "ok":
            this.settle(msg.rid, msg.value, undefined);
            break;
          case "err":
            this.settle(msg.rid, undefined, msg.error);
            break;
          default:
            this.events.onMessage(index, msg);
        }
      }
    });
    let died = false;
    const onDeath = (why: string): void => {
      if (died) return;
      died = true;
      const error = new SoloError("SOLO_ERR_SCHEDULER_FAILED", `scheduler ${index} stopped unexpectedly (${why}); its services are gone`);
      markFailed(error);
      for (const [rid, p] of this.pending) {
        if (p.scheduler !== index) continue;
        this.pending.delete(rid);
        p.reject(error);
      }
      if (this.closing) return;
      this.events.onSchedulerDied(index, error);
      this.slots[index] = this.spawn(index);
    };
    worker.on("error", (err: Error) => onDeath(err.message));
    worker.on("exit", (code) => onDeath(`exit code ${code}`));
    return slot;
  }

  private settle(rid: number, value: string | undefined, error: ErrorData | undefined): void {
    const p = this.pending.get(rid);
    if (!p) return;
    this.pending.delete(rid);
    if (error) p.reject(SoloError.fromData(error));
    else p.resolve(value ?? "");
  }
}
