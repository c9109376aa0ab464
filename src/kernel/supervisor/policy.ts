import { RESTART_TYPES, type SupervisionPolicy } from "../../api/supervision.ts";
import { checkKeys, checkObject, checkWhole } from "../../lib/check.ts";
import { SoloError } from "../../lib/errors/errors.ts";

/**
 * The defaults: OTP's supervisor defaults for intensity (1 restart in 5 seconds) with a permanent
 * child, plus a short exponential backoff with jitter between restarts.
 */
export const DEFAULT_SUPERVISION: SupervisionPolicy = Object.freeze({
  restart: "permanent",
  maxRestarts: 1,
  periodMs: 5000,
  backoffMs: 100,
  maxBackoffMs: 30_000,
  breakerThreshold: 5,
  breakerCooldownMs: 10_000,
});

const RANGES = {
  maxRestarts: { min: 0, max: 1_000_000 },
  periodMs: { min: 1, max: 86_400_000 },
  backoffMs: { min: 0, max: 600_000 },
  maxBackoffMs: { min: 0, max: 3_600_000 },
  breakerThreshold: { min: 1, max: 1000 },
  breakerCooldownMs: { min: 1, max: 3_600_000 },
} as const;

/** Merges `input` over `base`, rejecting unknown fields and values out of range. */
export function resolveSupervision(input: unknown, base: SupervisionPolicy, field = "supervision"): SupervisionPolicy {
  if (input === undefined) return base;
  const at = (f: string) => ({ reason: "SOLO_ERR_SUPERVISION_INVALID", field: f }) as const;
  const given = checkObject(input, at(field));
  checkKeys(given, ["restart", ...Object.keys(RANGES)], at(field), "supervision setting");
  const out: Record<string, unknown> = { ...base };
  for (const [key, value] of Object.entries(given)) {
    if (value === undefined) continue;
    if (key === "restart") {
      if (typeof value !== "string" || !(RESTART_TYPES as readonly string[]).includes(value)) {
        throw new SoloError("SOLO_ERR_SUPERVISION_INVALID", `${field}.restart must be one of ${RESTART_TYPES.join(", ")}`, {
          field: `${field}.restart`,
        });
      }
      out.restart = value;
      continue;
    }
    out[key] = checkWhole(value, RANGES[key as keyof typeof RANGES], at(`${field}.${key}`));
  }
  return Object.freeze(out) as unknown as SupervisionPolicy;
}

export { SYSTEM_CLOCK } from "../../lib/clock.ts";

/** What a supervisor does about a service that ended. */
export type Decision =
  | { readonly action: "restart"; readonly delayMs: number }
  | { readonly action: "fail"; readonly restartsInPeriod: number }
  | { readonly action: "stay_down" };

/**
 * Decides on a service that ended (`abnormal`: crashed, as opposed to stopping normally), given
 * the times of its earlier restarts. Intensity as in OTP: if the service has already been
 * restarted `maxRestarts` times within the last `periodMs`, it fails instead. The delay doubles
 * with each restart in the period and carries ±50% jitter, so a crash loop backs off and many
 * services crashing together do not restart in lockstep.
 */
export function decide(
  policy: SupervisionPolicy,
  restartTimes: readonly number[],
  abnormal: boolean,
  now: number,
  random: number,
): Decision {
  if (policy.restart === "temporary" || (policy.restart === "transient" && !abnormal)) return { action: "stay_down" };
  const recent = restartTimes.filter((t) => t > now - policy.periodMs).length;
  if (recent >= policy.maxRestarts) return { action: "fail", restartsInPeriod: recent };
  const base = Math.min(policy.maxBackoffMs, policy.backoffMs * 2 ** recent);
  return { action: "restart", delayMs: Math.round(Math.min(policy.maxBackoffMs, base * (0.5 + random))) };
}
