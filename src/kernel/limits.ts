import type { ServiceLimits, TenantLimits } from "../api/limits.ts";
import { checkKeys, checkObject, checkWhole, type Range } from "../lib/check.ts";

/** The tenant limits' defaults and ranges. */
export const TENANT_LIMIT_RANGES: Readonly<Record<keyof TenantLimits, { min: number; default: number; max: number; unit: string }>> = {
  maxServices: { min: 1, default: 10_000, max: 1_000_000, unit: "services" },
  memoryBytes: { min: 16 * 1024 * 1024, default: 64 * 1024 * 1024, max: 2 * 1024 * 1024 * 1024, unit: "bytes" },
};

/** The tenant defaults, as one object. */
export const DEFAULT_TENANT_LIMITS: TenantLimits = Object.freeze(
  Object.fromEntries(Object.entries(TENANT_LIMIT_RANGES).map(([k, v]) => [k, v.default])) as unknown as TenantLimits,
);

/**
 * Tenant limits stored before their ranges changed, brought into today's: a memory limit below
 * the engine's minimum is raised to it (the engine cannot run in less), one above the maximum is
 * lowered to it. Everything else is validated as given.
 */
export function clampStoredTenantLimits(overrides: Partial<TenantLimits>): Partial<TenantLimits> {
  const m = overrides.memoryBytes;
  if (typeof m !== "number" || !Number.isInteger(m)) return overrides;
  const { min, max } = TENANT_LIMIT_RANGES.memoryBytes;
  return m < min || m > max ? { ...overrides, memoryBytes: Math.min(max, Math.max(min, m)) } : overrides;
}

/**
 * Service limits stored before their ranges changed, brought into today's: a CPU budget below
 * today's minimum (it was 1 ms) is raised to it. Everything else is validated as given.
 */
export function clampStoredServiceLimits(stored: unknown): unknown {
  if (stored === null || typeof stored !== "object" || Array.isArray(stored)) return stored;
  const cpu = (stored as { cpuMsPerMessage?: unknown }).cpuMsPerMessage;
  const { min } = LIMIT_RANGES.cpuMsPerMessage;
  return typeof cpu === "number" && cpu < min ? { ...stored, cpuMsPerMessage: min } : stored;
}

/** Validates tenant limits over `base`. */
export function resolveTenantLimits(input: unknown, base: TenantLimits, field = "tenantLimits"): TenantLimits {
  return resolveIn(TENANT_LIMIT_RANGES, input, base, field) as unknown as TenantLimits;
}

const KiB = 1024;
const MiB = 1024 * KiB;

/** Each limit's default and allowed range. */
export const LIMIT_RANGES: Readonly<Record<keyof ServiceLimits, { min: number; default: number; max: number; unit: string }>> = {
  memoryBytes: { min: 1 * MiB, default: 32 * MiB, max: 1024 * MiB, unit: "bytes" },
  // The ceiling keeps QuickJS's own stack check ahead of the scheduler thread's native stack
  // (16 MiB per scheduler), so an overflow is always a catchable RangeError inside the service.
  stackBytes: { min: 32 * KiB, default: 256 * KiB, max: 1 * MiB, unit: "bytes" },
  // Below 5 ms a trivial module's own evaluation (compiling it, the engine growing its memory,
  // both on the thread's CPU clock) does not reliably fit: measured, 1-3 ms failed 1 deploy in 5.
  cpuMsPerMessage: { min: 5, default: 100, max: 60_000, unit: "ms" },
  messageBytes: { min: 1 * KiB, default: 1 * MiB, max: 16 * MiB, unit: "bytes" },
  stateBytes: { min: 1 * KiB, default: 8 * MiB, max: 256 * MiB, unit: "bytes" },
  timers: { min: 0, default: 1000, max: 100_000, unit: "timers" },
  storageBytes: { min: 0, default: 16 * MiB, max: 1024 * MiB, unit: "bytes" },
  storageKeys: { min: 0, default: 10_000, max: 1_000_000, unit: "keys" },
  mailbox: { min: 1, default: 10_000, max: 1_000_000, unit: "messages" },
};

/** The defaults, as one object. */
export const DEFAULT_LIMITS: ServiceLimits = Object.freeze(
  Object.fromEntries(Object.entries(LIMIT_RANGES).map(([k, v]) => [k, v.default])) as unknown as ServiceLimits,
);

/** Merges `input` over `base`, rejecting unknown keys, non-integers and out-of-range values. */
export function resolveLimits(input: unknown, base: ServiceLimits, field = "limits"): ServiceLimits {
  return resolveIn(LIMIT_RANGES, input, base, field) as unknown as ServiceLimits;
}

function resolveIn<T extends object>(
  ranges: Readonly<Record<string, { min: number; max: number; unit: string }>>,
  input: unknown,
  base: T,
  field: string,
): T {
  if (input === undefined) return base;
  const given = checkObject(input, { reason: "SOLO_ERR_LIMITS_INVALID", field });
  checkKeys(given, Object.keys(ranges), { reason: "SOLO_ERR_LIMITS_INVALID", field }, "limit");
  const out: Record<string, number> = { ...(base as Record<string, number>) };
  for (const [key, value] of Object.entries(given)) {
    if (value === undefined) continue;
    // checkKeys let only the ranges' own keys through.
    out[key] = checkWhole(value, ranges[key] as Range, { reason: "SOLO_ERR_LIMITS_INVALID", field: `${field}.${key}` });
  }
  return Object.freeze(out) as unknown as T;
}
