import { Worker } from "node:worker_threads";
import { type ErrorData, SoloError } from "../lib/errors/errors.ts";
import type { EngineImage } from "../sandbox/engine.ts";
import { StepBoard } from "./board.ts";
import { type FromScheduler, type SchedulerData, type ToScheduler, waitingBytes } from "./protocol.ts";

/** What the pool tells its owner about. @internal */
export interface PoolEvents {
  /** A scheduler reported something that is not a reply (status, usage, log). */
  onMessage(index: number, msg: FromScheduler): void;
  /**
   * A scheduler thread died, or the watchdog replaced it (`culprit` names the service whose step
   * it stopped); its tenants' services are gone. A fresh thread replaces it.
   */
  onSchedulerDied(index: number, error: SoloError, culprit: Culprit | undefined, unstarted: ReadonlyMap<number, readonly string[]>): void;
}

/** The service whose step the watchdog stopped by replacing its scheduler. @internal */
export interface Culprit {
  readonly sid: number;
  /** `cpu`: the step ran past its hard limit. `killed`: an operator's kill or restart could not wait. */
  readonly why: "cpu" | "killed";
  /** CPU milliseconds the step had used (wall milliseconds where the OS does not tell). */
  readonly usedMs: number;
  readonly hardLimitMs: number;
}

/** How often the watchdog reads each scheduler's board. */
const WATCH_MS = 200;
/** How long a kill waits for the service's running step before its scheduler is replaced. */
const KILL_GRACE_MS = 1000;

interface Pending {
  readonly resolve: (value: string) => void;
  readonly reject: (err: SoloError) => void;
  readonly scheduler: number;
  /** The service the request is about, and whether it asks to kill it. */
  readonly sid: number | undefined;
  readonly kill: boolean;
  /** A call whose message the scheduler has started. */
  readonly call: boolean;
  started: boolean;
}

interface Slot {
  worker: Worker;
  outbox: ToScheduler[];
  flushQueued: boolean;
  ready: Promise<void>;
  readonly board: StepBoard;
  /** The step the watchdog is timing, and the thread's CPU time when it first saw it. */
  watched?: { readonly seq: number; readonly cpuMs: number | undefined };
  /** Kills waiting on this scheduler: service -> when asked. */
  readonly kills: Map<number, number>;
  /** Set when the watchdog terminates this thread. */
  culprit?: Culprit;
  /** Casts sent and not yet consumed, by number: what must be delivered again if the thread goes. */
  readonly casts: Map<number, { readonly sid: number; readonly payload: string; readonly tenant: string }>;
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
    this.watchdog = setInterval(() => this.watch(), WATCH_MS);
    this.watchdog.unref();
  }

  private readonly watchdog: NodeJS.Timeout;

  // QuickJS stops a message at its CPU budget only when it polls its interrupt handler, which it
  // does not do inside one built-in call (a sort or an indexOf over a huge input). What the thread
  // runs is on its board; a step past its hard limit (max(1 s, 10x the budget), in the thread's
  // CPU time where the OS tells it), or a service an operator is killing that has not let go
  // after a second, is stopped the only way left: the thread is terminated and replaced.
  private watch(): void {
    const now = Date.now();
    for (let i = 0; i < this.slots.length; i++) {
      const slot = this.slots[i] as Slot;
      if (slot.culprit) continue;
      const step = slot.board.read();
      if (!step) continue;
      if (step.sid === 0) {
        slot.watched = undefined;
        continue;
      }
      const cpuNow = slot.board.threadCpuMs();
      if (slot.watched?.seq !== step.seq) slot.watched = { seq: step.seq, cpuMs: cpuNow };
      const start = slot.watched.cpuMs;
      const usedMs = cpuNow !== undefined && start !== undefined ? cpuNow - start : now - step.startedAt;
      const killAskedAt = slot.kills.get(step.sid);
      // The board holds one stop request: another kill may have taken its place since (but not
      // once the scheduler is carrying this kill out: its terminate runs then).
      if (killAskedAt !== undefined && slot.board.killingNow() !== step.sid) slot.board.requestStop(step.sid);
      if (usedMs > step.hardLimitMs) this.replace(i, { sid: step.sid, why: "cpu", usedMs, hardLimitMs: step.hardLimitMs });
      else if (killAskedAt !== undefined && now - killAskedAt > KILL_GRACE_MS) {
        this.replace(i, { sid: step.sid, why: "killed", usedMs, hardLimitMs: step.hardLimitMs });
      }
    }
  }

  private replace(index: number, culprit: Culprit): void {
    const slot = this.slots[index] as Slot;
    slot.culprit = culprit;
    void slot.worker.terminate();
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
    const msg = make(rid);
    const sid = "sid" in msg ? msg.sid : undefined;
    const kill = msg.op === "kill";
    const promise = new Promise<string>((resolve, reject) => {
      this.pending.set(rid, { resolve, reject, scheduler: index, sid, kill, call: msg.op === "call", started: false });
    });
    if (kill && sid !== undefined) {
      const slot = this.slots[index];
      slot?.kills.set(sid, Date.now());
      // Its message stops at its next interrupt check, without waiting for the kill's turn.
      slot?.board.requestStop(sid);
    }
    this.post(index, msg);
    return { rid, promise };
  }

  /** What each scheduler runs at this moment: the service and when its step began, or undefined between steps. */
  steps(): Array<{ readonly sid: number; readonly startedAt: number } | undefined> {
    return this.slots.map((slot) => {
      const step = slot.board.read();
      return step && step.sid !== 0 ? { sid: step.sid, startedAt: step.startedAt } : undefined;
    });
  }

  /** Forgets a request (its caller gave up); a late reply is then ignored. */
  forget(rid: number): void {
    this.pending.delete(rid);
  }

  /**
   * Sends a cast, kept until the scheduler has consumed it. Refused (false) when the tenant's casts
   * on their way already hold `limitBytes`: a sender faster than the services cannot pile them up
   * in the host's memory.
   */
  cast(index: number, sid: number, payload: string, tenant: string, limitBytes: number): boolean {
    const slot = this.slots[index];
    if (!slot) throw new SoloError("SOLO_ERR_INTERNAL", `no scheduler ${index}`);
    const bytes = waitingBytes(payload);
    const held = this.castBytes.get(tenant) ?? 0;
    if (held + bytes > limitBytes) return false;
    this.castBytes.set(tenant, held + bytes);
    const cid = ++this.castSeq;
    slot.casts.set(cid, { sid, payload, tenant });
    this.post(index, { op: "cast", sid, cid, payload });
    return true;
  }

  /** Bytes of each tenant's casts sent and not yet consumed. */
  private readonly castBytes = new Map<string, number>();

  private castDone(c: { readonly payload: string; readonly tenant: string }): void {
    const left = (this.castBytes.get(c.tenant) ?? 0) - waitingBytes(c.payload);
    if (left > 0) this.castBytes.set(c.tenant, left);
    else this.castBytes.delete(c.tenant);
  }

  private castSeq = 0;

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
    clearInterval(this.watchdog);
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
    const board = new StepBoard();
    const workerData: SchedulerData = { engine: this.engine, board: board.buffer, index, usageIntervalMs: this.usageIntervalMs };
    const worker = new Worker(new URL("./thread.ts", import.meta.url), {
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
    const slot: Slot = { worker, outbox: [], flushQueued: false, ready, board, kills: new Map(), casts: new Map() };
    worker.on("message", (batch: readonly FromScheduler[]) => {
      for (const msg of batch) {
        switch (msg.op) {
          case "ready":
            markReady();
            break;
          case "ok": {
            const p = this.pending.get(msg.rid);
            if (p?.kill && p.sid !== undefined) slot.kills.delete(p.sid);
            this.settle(msg.rid, msg.value, undefined);
            break;
          }
          case "err":
            this.settle(msg.rid, undefined, msg.error);
            break;
          case "taken":
            for (const cid of msg.cids) {
              const c = slot.casts.get(cid);
              if (!c) continue;
              slot.casts.delete(cid);
              this.castDone(c);
            }
            for (const rid of msg.rids) {
              const p = this.pending.get(rid);
              if (p) p.started = true;
            }
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
      const culprit = slot.culprit;
      const error = culprit
        ? new SoloError(
            "SOLO_ERR_SCHEDULER_FAILED",
            `scheduler ${index} was replaced: a service on it ${culprit.why === "killed" ? "was killed while it" : "ran one message past its hard CPU limit and"} could not be interrupted`,
            { culpritSid: culprit.sid, culpritWhy: culprit.why },
          )
        : new SoloError("SOLO_ERR_SCHEDULER_FAILED", `scheduler ${index} stopped unexpectedly (${why}); its services are gone`);
      markFailed(error);
      const taken = slot.board.taken();
      for (const [rid, p] of this.pending) {
        if (p.scheduler !== index) continue;
        this.pending.delete(rid);
        // The kill the watchdog carried out has done what it asked.
        if (p.kill && culprit?.why === "killed" && p.sid === culprit.sid) p.resolve("");
        else if (p.call && (p.started || taken.calls.has(rid))) {
          // Begun (and maybe done) but unanswered: its effects may have happened, so it is not
          // delivered again; its caller learns that its outcome is unknown.
          p.reject(
            new SoloError(error.reason, `${error.message}; this call had started, so its outcome is unknown`, {
              ...error.details,
              started: true,
            }),
          );
        } else p.reject(error);
      }
      if (this.closing) return;
      // The casts it never started, by service, in the order they were sent.
      const unstarted = new Map<number, string[]>();
      for (const [cid, c] of [...slot.casts].sort((a, b) => a[0] - b[0])) {
        this.castDone(c); // sent again (and counted again) once its service is back, if at all
        if (taken.casts.has(cid)) continue;
        const list = unstarted.get(c.sid);
        if (list) list.push(c.payload);
        else unstarted.set(c.sid, [c.payload]);
      }
      this.slots[index] = this.spawn(index);
      this.events.onSchedulerDied(index, error, culprit, unstarted);
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
