import { SoloError } from "../../lib/errors/errors.ts";
import { describeType, SERVICE_PATTERN, serviceMatches } from "../../lib/names.ts";
import { hostPatternCovers } from "../powers/fetch/index.ts";

/**
 * Permissions: what a capability token allows, as `action:resource` strings.
 *
 * - `*` — everything within the token's reach (its tenant, or every tenant for an unscoped token).
 * - `deploy:<service>` — deploy, swap, roll back, restart and kill matching services.
 * - `call:<service>` — call and cast to matching services.
 * - `fetch:<host>` — give a deployed service `fetch` to matching hosts.
 * - `services:read`, `events:read`, `secrets:read`, `secrets:write`, `tokens:grant`.
 * - `tenants:read`, `tenants:write`, `vault:rotate` — only on unscoped (admin) tokens.
 *
 * A service pattern is a service name, a prefix ending in `*` (`billing-*`), or `*`. A host
 * pattern is a host name, `*.example.com` (sub-domains), or `*`, with an optional `:port`.
 */
export type Permission =
  | { readonly action: "*" }
  | { readonly action: "deploy" | "call"; readonly pattern: string }
  | { readonly action: "fetch"; readonly pattern: string }
  | { readonly action: Fixed };

/** The permissions that take no resource. */
export const FIXED_PERMISSIONS = [
  "services:read",
  "events:read",
  "secrets:read",
  "secrets:write",
  "tokens:grant",
  "tenants:read",
  "tenants:write",
  "vault:rotate",
] as const;

type Fixed = (typeof FIXED_PERMISSIONS)[number];

/** Permissions that only an unscoped token may hold: they reach across tenants. */
export const UNSCOPED_ONLY: ReadonlySet<string> = new Set(["tenants:read", "tenants:write", "vault:rotate"]);

/** Most permissions one token may carry. */
export const MAX_PERMISSIONS = 64;
const MAX_PERMISSION_LENGTH = 300;
const HOST_PATTERN = /^(?:\*|(?:\*\.)?[a-z0-9](?:[a-z0-9-]{0,62})(?:\.[a-z0-9](?:[a-z0-9-]{0,62}))*)(?::\d{1,5})?$/;

/** Parses one permission string; `field` names it in the error. */
export function parsePermission(value: unknown, field: string): Permission {
  if (typeof value !== "string") {
    throw invalid(`${field} must be a permission string like "call:billing", got ${describeType(value)}`, field);
  }
  if (value.length > MAX_PERMISSION_LENGTH) throw invalid(`${field} is ${value.length} characters, over ${MAX_PERMISSION_LENGTH}`, field);
  if (value === "*") return { action: "*" };
  if ((FIXED_PERMISSIONS as readonly string[]).includes(value)) return { action: value as Fixed };
  const colon = value.indexOf(":");
  const action = colon < 0 ? value : value.slice(0, colon);
  const resource = colon < 0 ? "" : value.slice(colon + 1);
  if (action === "deploy" || action === "call") {
    if (!SERVICE_PATTERN.test(resource)) {
      throw invalid(`${field} (${JSON.stringify(value)}): "${action}:" takes a service name, a prefix ending in "*", or "*"`, field);
    }
    return { action, pattern: resource };
  }
  if (action === "fetch") {
    const host = resource.toLowerCase();
    if (!HOST_PATTERN.test(host) || host.length > 260) {
      throw invalid(`${field} (${JSON.stringify(value)}): "fetch:" takes a host name, "*.domain", or "*", with an optional ":port"`, field);
    }
    return { action, pattern: host };
  }
  throw invalid(
    `${field} (${JSON.stringify(value.slice(0, 80))}) is not a permission: use "*", deploy:<service>, call:<service>, fetch:<host>, or one of ${FIXED_PERMISSIONS.join(", ")}`,
    field,
  );
}

/** Parses a token's permission list: 1..64 distinct permissions. */
export function parsePermissions(value: unknown, field: string, unscoped: boolean): Permission[] {
  if (!Array.isArray(value)) throw invalid(`${field} must be an array of permission strings, got ${describeType(value)}`, field);
  if (value.length === 0) throw invalid(`${field} is empty: a token must allow something`, field);
  if (value.length > MAX_PERMISSIONS) throw invalid(`${field} has ${value.length} permissions, over ${MAX_PERMISSIONS}`, field);
  const out: Permission[] = [];
  const seen = new Set<string>();
  value.forEach((v, i) => {
    const p = parsePermission(v, `${field}[${i}]`);
    const text = formatPermission(p);
    if (!unscoped && UNSCOPED_ONLY.has(text)) {
      throw invalid(`${field}[${i}] (${text}) reaches across tenants: only an unscoped (admin) token may hold it`, `${field}[${i}]`);
    }
    if (!seen.has(text)) out.push(p);
    seen.add(text);
  });
  return out;
}

/** The permission as its string. */
export function formatPermission(p: Permission): string {
  return "pattern" in p ? `${p.action}:${p.pattern}` : p.action;
}

/** Whether holding `held` implies holding `wanted`. */
export function covers(held: Permission, wanted: Permission): boolean {
  if (held.action === "*") return true;
  if (held.action !== wanted.action) return false;
  if ("pattern" in held && "pattern" in wanted) {
    return held.action === "fetch" ? hostPatternCovers(held.pattern, wanted.pattern) : serviceMatches(held.pattern, wanted.pattern);
  }
  return true;
}

/** Whether any of `held` implies `wanted`. */
export function allows(held: readonly Permission[], wanted: Permission): boolean {
  for (const h of held) if (covers(h, wanted)) return true;
  return false;
}

function invalid(message: string, field: string): SoloError {
  return new SoloError("SOLO_ERR_PERMISSION_INVALID", message, {
    field,
    hint: 'permissions look like "call:billing", "deploy:*", "events:read"; see docs/security.md',
  });
}
