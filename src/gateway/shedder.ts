import { SoloError } from "../lib/errors/errors.ts";

/** How much work the gateway admits. */
export interface ShedderLimits {
  /** Calls running at once, all lanes together. */
  readonly maxInFlight: number;
  /** Calls running at once for one lane (one tenant). */
  readonly maxInFlightPerLane: number;
  /** Calls one lane may have waiting for a slot; beyond it, refused at once. */
  readonly maxQueuedPerLane: number;
}

export const DEFAULT_SHEDDER_LIMITS: ShedderLimits = Object.freeze({ maxInFlight: 512, maxInFlightPerLane: 128, maxQueuedPerLane: 256 });

interface Lane {
  readonly name: string;
  running: number;
  readonly waiting: Array<{ resolve: () => void; reject: (e: unknown) => void; signal: AbortSignal | undefined; onAbort: () => void }>;
}

/** What the shedder has done, for metrics. */
export interface ShedderStats {
  running: number;
  queued: number;
  admitted: number;
  shed: number;
}

/**
 * Per-tenant fair admission. Each lane (a tenant, or the calls with no valid token) may run a
 * bounded number of calls and queue a bounded number more; when every slot is taken, freed slots
 * go to the waiting lanes in turn (round robin), so a lane that floods waits behind its own calls
 * and never takes another lane's turn. A call that finds its lane's queue full is refused at once
 * with `SOLO_ERR_OVERLOADED` and a retry hint, changing nothing.
 */
export class Shedder {
  private readonly limits: ShedderLimits;
  private readonly lanes = new Map<string, Lane>();
  /** Lanes with calls waiting, in the order they get the next free slot. */
  private readonly turn: Lane[] = [];
  private running = 0;
  readonly stats: ShedderStats = { running: 0, queued: 0, admitted: 0, shed: 0 };

  constructor(limits: ShedderLimits = DEFAULT_SHEDDER_LIMITS) {
    this.limits = limits;
  }

  /** Waits for a slot in `lane` (resolving at once when there is one); throws when the lane is full. */
  admit(laneName: string, signal?: AbortSignal): Promise<void> {
    const lane = this.lane(laneName);
    if (lane.waiting.length === 0 && lane.running < this.limits.maxInFlightPerLane && this.running < this.limits.maxInFlight) {
      this.start(lane);
      return Promise.resolve();
    }
    if (lane.waiting.length >= this.limits.maxQueuedPerLane) {
      this.stats.shed++;
      return Promise.reject(
        new SoloError(
          "SOLO_ERR_OVERLOADED",
          `the gateway is at capacity for ${laneName === "" ? "unauthenticated callers" : laneName === "*" ? "unscoped tokens" : `tenant ${laneName}`}: ${lane.running} calls running and ${lane.waiting.length} waiting`,
          {
            // null where the lane is no one tenant's (as every reason says it).
            tenant: laneName === "" || laneName === "*" ? null : laneName,
            retryAfterMs: 100,
            hint: "retry after a short pause, with fewer calls in flight",
          },
        ),
      );
    }
    return new Promise<void>((resolve, reject) => {
      const entry = {
        resolve,
        reject,
        signal,
        onAbort: () => {
          const i = lane.waiting.indexOf(entry);
          if (i >= 0) lane.waiting.splice(i, 1);
          this.stats.queued--;
          this.forget(lane);
          reject(new SoloError("SOLO_ERR_CALL_CANCELED", "the call was canceled while waiting for the gateway to admit it"));
        },
      };
      signal?.addEventListener("abort", entry.onAbort, { once: true });
      lane.waiting.push(entry);
      this.stats.queued++;
      if (!this.turn.includes(lane)) this.turn.push(lane);
    });
  }

  /** Frees the slot a call held; the next waiting lane in turn gets it. */
  release(laneName: string): void {
    const lane = this.lanes.get(laneName);
    if (!lane) return;
    lane.running--;
    this.running--;
    this.stats.running = this.running;
    this.next();
    this.forget(lane);
  }

  private start(lane: Lane): void {
    lane.running++;
    this.running++;
    this.stats.running = this.running;
    this.stats.admitted++;
  }

  // Round robin over the lanes with waiting calls, skipping those at their own limit.
  private next(): void {
    for (let tries = this.turn.length; tries > 0 && this.running < this.limits.maxInFlight; tries--) {
      const lane = this.turn.shift() as Lane;
      const entry = lane.running < this.limits.maxInFlightPerLane ? lane.waiting.shift() : undefined;
      if (entry) {
        entry.signal?.removeEventListener("abort", entry.onAbort);
        this.stats.queued--;
        this.start(lane);
        entry.resolve();
      }
      if (lane.waiting.length > 0) this.turn.push(lane);
      if (entry) return;
    }
  }

  private lane(name: string): Lane {
    let lane = this.lanes.get(name);
    if (!lane) {
      lane = { name, running: 0, waiting: [] };
      this.lanes.set(name, lane);
    }
    return lane;
  }

  private forget(lane: Lane): void {
    if (lane.running === 0 && lane.waiting.length === 0) {
      this.lanes.delete(lane.name);
      const i = this.turn.indexOf(lane);
      if (i >= 0) this.turn.splice(i, 1);
    }
  }
}
