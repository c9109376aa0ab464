import { DEFAULT_GRANTS, DEFAULT_LOG_PER_SECOND, type ServiceGrants } from "../../api/grants.ts";
import { SoloError } from "../../lib/errors/errors.ts";
import { describeType, NAME_PATTERN } from "../../lib/names.ts";
import type { Permission } from "../auth/permissions.ts";
import { SECRET_NAME_PATTERN } from "../vault/vault.ts";
import { checkFetchGrant } from "./fetch/index.ts";

export { DEFAULT_GRANTS, DEFAULT_LOG_PER_SECOND, type ServiceGrants };

/**
 * The powers a deployment states it needs, as given to `deploy({ grants })`. Each is off unless
 * granted; a deployment that gives no `grants` at all gets {@link DEFAULT_GRANTS}, the powers
 * that touch only the service itself and its tenant's log.
 */
export interface GrantsInput {
  /** Services of the same tenant this one may `solo.call` and `solo.cast` to. */
  readonly call?: readonly string[];
  /** `solo.storage` (its quota is `limits.storageBytes` / `storageKeys`). */
  readonly storage?: boolean;
  /** Secrets of the tenant it may read with `solo.secrets.get`, by name. */
  readonly secrets?: readonly string[];
  /** `solo.emit` of custom events. */
  readonly emit?: boolean;
  /** `solo.sendAfter` (at most `limits.timers` pending). */
  readonly timers?: boolean;
  /** `solo.log` / `console`, rate-limited: `true` for the default rate, or lines per second. */
  readonly log?: boolean | { readonly perSecond: number };
  /** `solo.fetch` to allow-listed hosts. */
  readonly fetch?: unknown;
}

const MAX_LOG_PER_SECOND = 10_000;
const MAX_LISTED = 256;
const KEYS = new Set(["call", "storage", "secrets", "emit", "timers", "log", "fetch"]);

/** Validates `deploy`'s `grants`; omitted means {@link DEFAULT_GRANTS}, `{}` means none. */
export function resolveGrants(input: unknown, field = "grants"): ServiceGrants {
  if (input === undefined) return DEFAULT_GRANTS;
  if (input === null || typeof input !== "object" || Array.isArray(input)) {
    throw invalid(`${field} must be an object like { call: ["billing"], storage: true }, got ${describeType(input)}`, field);
  }
  const g = input as Record<string, unknown>;
  for (const k of Object.keys(g)) {
    if (!KEYS.has(k)) throw invalid(`${field}: unknown power ${JSON.stringify(k.slice(0, 80))}`, `${field}.${k.slice(0, 80)}`);
  }
  return {
    call: names(g.call, `${field}.call`, NAME_PATTERN, "a service name"),
    storage: flag(g.storage, `${field}.storage`),
    secrets: names(g.secrets, `${field}.secrets`, SECRET_NAME_PATTERN, "a secret name"),
    emit: flag(g.emit, `${field}.emit`),
    timers: flag(g.timers, `${field}.timers`),
    logPerSecond: logRate(g.log, `${field}.log`),
    fetch: g.fetch === undefined || g.fetch === false ? null : checkFetchGrant(g.fetch, `${field}.fetch`),
  };
}

/** The permissions a principal needs to give a service these grants (beyond deploying it). */
export function grantPermissions(g: ServiceGrants): Permission[] {
  const out: Permission[] = g.call.map((pattern) => ({ action: "call", pattern }));
  if (g.secrets.length > 0) out.push({ action: "secrets:read" });
  for (const host of g.fetch?.hosts ?? []) out.push({ action: "fetch", pattern: host });
  return out;
}

/** The grants as plain data, for `status` and the stored deployment. */
export function grantsData(g: ServiceGrants): Record<string, unknown> {
  return {
    call: [...g.call],
    storage: g.storage,
    secrets: [...g.secrets],
    emit: g.emit,
    timers: g.timers,
    log: g.logPerSecond === 0 ? false : { perSecond: g.logPerSecond },
    ...(g.fetch ? { fetch: g.fetch } : {}),
  };
}

function flag(v: unknown, field: string): boolean {
  if (v === undefined) return false;
  if (typeof v !== "boolean") throw invalid(`${field} must be true or false, got ${describeType(v)}`, field);
  return v;
}

function logRate(v: unknown, field: string): number {
  if (v === undefined || v === false) return 0;
  if (v === true) return DEFAULT_LOG_PER_SECOND;
  if (v !== null && typeof v === "object" && !Array.isArray(v)) {
    const o = v as Record<string, unknown>;
    const extra = Object.keys(o).find((k) => k !== "perSecond");
    if (extra !== undefined)
      throw invalid(`${field}: unknown field ${JSON.stringify(extra.slice(0, 80))}`, `${field}.${extra.slice(0, 80)}`);
    const n = o.perSecond;
    if (typeof n === "number" && Number.isInteger(n) && n >= 1 && n <= MAX_LOG_PER_SECOND) return n;
    throw invalid(`${field}.perSecond must be an integer from 1 to ${MAX_LOG_PER_SECOND}, got ${describeType(n)}`, `${field}.perSecond`);
  }
  throw invalid(`${field} must be true, false or { perSecond }, got ${describeType(v)}`, field);
}

function names(v: unknown, field: string, pattern: RegExp, what: string): readonly string[] {
  if (v === undefined) return [];
  if (!Array.isArray(v)) throw invalid(`${field} must be an array of names, got ${describeType(v)}`, field);
  if (v.length > MAX_LISTED) throw invalid(`${field} has ${v.length} entries, over ${MAX_LISTED}`, field);
  const out = new Set<string>();
  v.forEach((n, i) => {
    if (typeof n !== "string" || !pattern.test(n)) {
      throw invalid(
        `${field}[${i}] must be ${what}, got ${typeof n === "string" ? JSON.stringify(n.slice(0, 80)) : describeType(n)}`,
        `${field}[${i}]`,
      );
    }
    out.add(n);
  });
  return [...out];
}

function invalid(message: string, field: string): SoloError {
  return new SoloError("SOLO_ERR_GRANTS_INVALID", message, {
    field,
    hint: 'grants look like { call: ["billing"], storage: true, secrets: ["API_KEY"], fetch: { hosts: ["api.example.com"] } }',
  });
}
