import { DEFAULT_GRANTS, DEFAULT_LOG_PER_SECOND, type ServiceGrants } from "../../api/grants.ts";
import { type At, checkFlag, checkKeys, checkObject, checkWhole } from "../../lib/check.ts";
import { SoloError } from "../../lib/errors/errors.ts";
import { describeType, SERVICE_PATTERN } from "../../lib/names.ts";
import type { Permission } from "../auth/permissions.ts";
import { SECRET_NAME_PATTERN } from "../vault/vault.ts";
import { checkFetchGrant } from "./fetch/index.ts";

const MAX_LOG_PER_SECOND = 10_000;
const MAX_LISTED = 256;
const KEYS = new Set(["call", "storage", "secrets", "emit", "timers", "log", "fetch"]);

/**
 * Validates `deploy`'s `grants` over {@link DEFAULT_GRANTS}: what it names replaces the default,
 * what it leaves out keeps it. So `{ call: ["billing"] }` adds a power to the defaults, and a
 * default goes only when switched off (`{ storage: false, log: false }`).
 */
export function resolveGrants(input: unknown, field = "grants"): ServiceGrants {
  if (input === undefined) return DEFAULT_GRANTS;
  const g = checkObject(input, at(field), '{ call: ["billing"], storage: true }');
  checkKeys(g, KEYS, at(field), "power");
  const d = DEFAULT_GRANTS;
  return {
    call: names(g.call, `${field}.call`, SERVICE_PATTERN, 'a service name, a prefix ending in "*" (billing-*), or "*"'),
    storage: checkFlag(g.storage, at(`${field}.storage`), d.storage),
    secrets: names(g.secrets, `${field}.secrets`, SECRET_NAME_PATTERN, "a secret name"),
    emit: checkFlag(g.emit, at(`${field}.emit`), d.emit),
    timers: checkFlag(g.timers, at(`${field}.timers`), d.timers),
    logPerSecond: g.log === undefined ? d.logPerSecond : logRate(g.log, `${field}.log`),
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

function logRate(v: unknown, field: string): number {
  if (v === false) return 0;
  if (v === true) return DEFAULT_LOG_PER_SECOND;
  if (v !== null && typeof v === "object" && !Array.isArray(v)) {
    const o = v as Record<string, unknown>;
    checkKeys(o, ["perSecond"], at(field), "field");
    return checkWhole(o.perSecond, { min: 1, max: MAX_LOG_PER_SECOND, unit: "lines a second" }, at(`${field}.perSecond`));
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

const HINT = 'grants look like { call: ["billing"], storage: true, secrets: ["API_KEY"], fetch: { hosts: ["api.example.com"] } }';

function at(field: string): At {
  return { reason: "SOLO_ERR_GRANTS_INVALID", field, hint: HINT };
}

function invalid(message: string, field: string): SoloError {
  return new SoloError("SOLO_ERR_GRANTS_INVALID", message, { field, hint: HINT });
}
