// Each service's circuit breaker, by name: admission before a call or cast, the verdict after,
// and the events when one opens or closes. A new version starts with a closed breaker.

import type { Clock } from "../../api/kernel.ts";
import type { ServiceInfo } from "../../api/services.ts";
import { SoloError } from "../../lib/errors/errors.ts";
import type { Audit } from "../audit/index.ts";
import { keyOf, type ServiceRecord } from "../registry/index.ts";
import { type CallOutcome, CircuitBreaker } from "./circuit.ts";

const CLOSED_BREAKER = Object.freeze({ state: "closed" as const, consecutiveFailures: 0 });

/** A call let through: settle it with its outcome. */
export interface Admitted {
  readonly breaker: CircuitBreaker;
  readonly trial: boolean;
}

export class Breakers {
  private readonly byName = new Map<string, CircuitBreaker>();
  private readonly clock: Clock;
  private readonly audit: Audit;

  constructor(clock: Clock, audit: Audit) {
    this.clock = clock;
    this.audit = audit;
  }

  /** Lets a call through, or throws circuit-open. */
  admit(r: ServiceRecord): Admitted {
    const breaker = this.of(r);
    const admission = breaker.admit(this.clock.now());
    if (!admission.ok) throw circuitOpen(r, admission.retryAfterMs);
    return { breaker, trial: admission.trial };
  }

  /** A cast goes only through a closed breaker (it has no outcome to settle a trial with). */
  admitCast(r: ServiceRecord): void {
    const breaker = this.of(r);
    const now = this.clock.now();
    if (breaker.state(now) !== "closed") throw circuitOpen(r, Math.max(0, breaker.admitPeek(now)));
  }

  succeeded(r: ServiceRecord, a: Admitted): void {
    this.settle(r, a, "success", undefined);
  }

  failed(r: ServiceRecord, a: Admitted, err: unknown): void {
    this.settle(r, a, breakerOutcome(err), err);
  }

  private settle(r: ServiceRecord, a: Admitted, outcome: CallOutcome, err: unknown): void {
    const change = a.breaker.settle(a.trial, outcome, this.clock.now());
    if (change === "opened") {
      const e = err instanceof SoloError ? err : undefined;
      void this.audit.record({
        tenant: r.tenant,
        type: "circuit_breaker_opened",
        subject: r.service,
        payload: {
          version: r.version,
          threshold: r.supervision.breakerThreshold,
          cooldownMs: r.supervision.breakerCooldownMs,
          trial: a.trial,
          lastFailure: e ? { reason: e.reason, message: e.message.slice(0, 500) } : null,
        },
        causationId: r.causeId,
      });
    } else if (change === "closed") {
      void this.audit.record({
        tenant: r.tenant,
        type: "circuit_breaker_closed",
        subject: r.service,
        payload: { version: r.version },
        causationId: r.causeId,
      });
    }
  }

  /** What `status` shows of a service's breaker. */
  view(r: ServiceRecord): ServiceInfo["breaker"] {
    const b = this.byName.get(keyOf(r.tenant, r.service));
    return b ? { state: b.state(this.clock.now()), consecutiveFailures: b.consecutiveFailures } : CLOSED_BREAKER;
  }

  /** A new version (or a tenant's deletion) starts afresh. */
  reset(tenant: string, service: string): void {
    this.byName.delete(keyOf(tenant, service));
  }

  counts(): { closed: number; open: number; half_open: number } {
    const now = this.clock.now();
    const counts = { closed: 0, open: 0, half_open: 0 };
    for (const b of this.byName.values()) counts[b.state(now)]++;
    return counts;
  }

  private of(r: ServiceRecord): CircuitBreaker {
    const key = keyOf(r.tenant, r.service);
    let b = this.byName.get(key);
    if (!b) {
      b = new CircuitBreaker(r.supervision.breakerThreshold, r.supervision.breakerCooldownMs);
      this.byName.set(key, b);
    }
    return b;
  }
}

function circuitOpen(r: ServiceRecord, retryAfterMs: number): SoloError {
  return new SoloError("SOLO_ERR_CIRCUIT_OPEN", `service ${r.service}'s circuit breaker is open after repeated failures; not called`, {
    tenant: r.tenant,
    service: r.service,
    retryAfterMs,
    hint: `retry in ${retryAfterMs} ms; one trial call then decides whether it closes`,
  });
}

// What a failed call says about the service: a crash it caused, or a timeout, is a failure; a
// refusal before it ran (mailbox full, restarting) or the caller's own cancel says nothing; an
// error the service answered with is a success (it answered).
function breakerOutcome(err: unknown): CallOutcome {
  if (!(err instanceof SoloError)) return "failure";
  // The service answered, with an error of its own: it is working.
  if (err.reason === "SOLO_ERR_APPLICATION_ERROR") return "success";
  if (err.reason === "SOLO_ERR_CALL_TIMEOUT") return "failure";
  if (err.reason === "SOLO_ERR_SERVICE_CRASHED" || err.reason === "SOLO_ERR_CALL_CANCELED" || err.reason === "SOLO_ERR_MAILBOX_FULL") {
    return "neutral";
  }
  return (err.details as { crash?: unknown }).crash !== undefined ? "failure" : "neutral";
}
