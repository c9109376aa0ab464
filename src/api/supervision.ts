// Public types: how a tenant's supervisor restarts a service (the defaults and checks are the
// kernel's, src/kernel/supervisor/policy.ts).

/**
 * OTP restart types: `permanent` services are always restarted after a crash, `transient` ones
 * only after an abnormal end (a crash, not a normal stop), `temporary` ones never.
 */
export const RESTART_TYPES = ["permanent", "transient", "temporary"] as const;

export type RestartType = (typeof RESTART_TYPES)[number];

/** How a tenant's supervisor treats one service. */
export interface SupervisionPolicy {
  readonly restart: RestartType;
  /** Restart intensity: at most this many restarts within `periodMs`; one more and the service fails. */
  readonly maxRestarts: number;
  readonly periodMs: number;
  /** The first restart waits about this long; each further restart within the period doubles it. */
  readonly backoffMs: number;
  /** The longest wait before a restart. */
  readonly maxBackoffMs: number;
  /** Consecutive failed calls (crash or timeout) that open the service's circuit breaker. */
  readonly breakerThreshold: number;
  /** How long an open breaker refuses calls before it lets one trial call through. */
  readonly breakerCooldownMs: number;
}

/** A partial policy, as `openKernel` and `deploy` take it. */
export type SupervisionInput = Partial<SupervisionPolicy>;
