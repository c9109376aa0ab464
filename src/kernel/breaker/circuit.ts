import type { BreakerState } from "../../api/services.ts";

/** What a breaker says about one call. */
export type Admission = { readonly ok: true; readonly trial: boolean } | { readonly ok: false; readonly retryAfterMs: number };

/** A state change worth recording. */
export type BreakerChange = "opened" | "closed" | undefined;

/** How an admitted call ended, for the breaker: refused or canceled calls say nothing of the service. */
export type CallOutcome = "success" | "failure" | "neutral";

/**
 * One service's circuit breaker. Closed, it lets calls through and counts consecutive failures
 * (a call that crashed the service, or timed out); at `threshold` it opens and refuses calls at
 * once. After `cooldownMs` it is half-open: one trial call goes through; success closes it,
 * failure opens it again for another cool-down. Time is passed in, so tests drive it.
 * @internal
 */
export class CircuitBreaker {
  private readonly threshold: number;
  private readonly cooldownMs: number;
  private failures = 0;
  private openedAt = 0;
  private opened = false;
  private trialInFlight = false;

  constructor(threshold: number, cooldownMs: number) {
    this.threshold = threshold;
    this.cooldownMs = cooldownMs;
  }

  state(now: number): BreakerState {
    if (!this.opened) return "closed";
    return now - this.openedAt >= this.cooldownMs ? "half_open" : "open";
  }

  /** Consecutive failures counted so far (while closed). */
  get consecutiveFailures(): number {
    return this.failures;
  }

  /** Whether a call may go through now; a half-open breaker admits one trial at a time. */
  admit(now: number): Admission {
    const state = this.state(now);
    if (state === "closed") return { ok: true, trial: false };
    if (state === "half_open" && !this.trialInFlight) {
      this.trialInFlight = true;
      return { ok: true, trial: true };
    }
    return { ok: false, retryAfterMs: Math.max(0, this.openedAt + this.cooldownMs - now) };
  }

  /** How long until an open breaker lets a trial through (0 when it would now). */
  admitPeek(now: number): number {
    return this.opened ? Math.max(0, this.openedAt + this.cooldownMs - now) : 0;
  }

  /** Records how an admitted call ended; returns the state change, if any. */
  settle(trial: boolean, outcome: CallOutcome, now: number): BreakerChange {
    if (trial) this.trialInFlight = false;
    if (outcome === "neutral") return undefined;
    if (outcome === "success") {
      this.failures = 0;
      if (this.opened && trial) {
        this.opened = false;
        return "closed";
      }
      return undefined;
    }
    if (trial) {
      this.openedAt = now;
      return "opened";
    }
    if (this.opened) return undefined; // a call admitted before it opened
    this.failures++;
    if (this.failures >= this.threshold) {
      this.opened = true;
      this.openedAt = now;
      this.failures = 0;
      return "opened";
    }
    return undefined;
  }
}
