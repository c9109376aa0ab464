/** A fetch grant as a deployer writes it: its fields, their defaults and ranges, its hosts. */
import type { FetchGrant } from "../../../api/grants.ts";
import { type At, checkFlag, checkKeys, checkObject, checkWhole } from "../../../lib/check.ts";
import { SoloError } from "../../../lib/errors/errors.ts";
import { formatPattern, type HostPattern, parseHostPattern } from "./host-patterns.ts";

const KiB = 1024;
const MiB = 1024 * KiB;

/** Each numeric grant field's default and allowed range. */
export const FETCH_GRANT_RANGES = {
  maxResponseBytes: { min: 1, default: 1 * MiB, max: 16 * MiB },
  maxRequestBytes: { min: 0, default: 256 * KiB, max: 16 * MiB },
  timeoutMs: { min: 100, default: 10_000, max: 60_000 },
  maxRedirects: { min: 0, default: 5, max: 10 },
} as const;

const MAX_HOSTS = 64;

/**
 * Validates a fetch grant as a deployer writes it, filling in defaults and normalising hosts
 * (lower case, punycode, no trailing dot). Throws SOLO_ERR_GRANTS_INVALID naming the field.
 */
export function checkFetchGrant(input: unknown, field: string): FetchGrant {
  const at = (f: string, hint?: string): At => ({ reason: "SOLO_ERR_GRANTS_INVALID", field: f, hint });
  const record = checkObject(input, at(field, "list the hosts the service may reach in hosts"), '{ hosts: ["api.example.com"] }');
  checkKeys(record, ["hosts", "allowHttp", ...Object.keys(FETCH_GRANT_RANGES)], at(field), "field");
  const hosts = checkHosts(record.hosts, `${field}.hosts`);
  const allowHttp = checkFlag(record.allowHttp, at(`${field}.allowHttp`, "leave it out to allow https only"));
  const numbers = {} as Record<keyof typeof FETCH_GRANT_RANGES, number>;
  for (const [key, range] of Object.entries(FETCH_GRANT_RANGES) as Array<
    [keyof typeof FETCH_GRANT_RANGES, { min: number; default: number; max: number }]
  >) {
    const value = record[key] === undefined ? range.default : record[key];
    numbers[key] = checkWhole(value, range, at(`${field}.${key}`, `leave it out for the default of ${range.default}`));
  }
  return Object.freeze({ hosts, allowHttp, ...numbers });
}

function checkHosts(value: unknown, field: string): readonly string[] {
  if (!Array.isArray(value) || value.length === 0 || value.length > MAX_HOSTS) {
    throw grantInvalid(
      field,
      `${field} must be an array of 1 to ${MAX_HOSTS} host names`,
      'list hosts like "api.example.com", "*.example.com" or "api.example.com:8443"',
    );
  }
  const hosts: string[] = [];
  for (let i = 0; i < value.length; i++) {
    const entry: unknown = value[i];
    const parsed = typeof entry === "string" ? parseHostPattern(entry) : "it is not a string";
    if (typeof parsed === "string") {
      const shown = typeof entry === "string" ? ` ${JSON.stringify(shortText(entry))}` : "";
      throw grantInvalid(
        `${field}[${i}]`,
        `${field}[${i}]${shown} is not a host pattern: ${parsed}`,
        'use "api.example.com", "*.example.com" (sub-domains), an IP such as "203.0.113.7" or "[2001:db8::1]", each optionally with ":port"',
      );
    }
    hosts.push(formatPattern(parsed));
  }
  return Object.freeze(hosts);
}

function grantInvalid(field: string, message: string, hint: string): SoloError {
  return new SoloError("SOLO_ERR_GRANTS_INVALID", message, { field, hint });
}

/** Text cut to 80 characters, for quoting a caller's input back in a message. */
export function shortText(text: string): string {
  return text.length > 80 ? `${text.slice(0, 80)}...` : text;
}

const parsedGrants = new WeakMap<FetchGrant, readonly HostPattern[]>();

/** A checked grant's hosts as patterns, parsed once per grant. */
export function grantPatterns(grant: FetchGrant): readonly HostPattern[] {
  let patterns = parsedGrants.get(grant);
  if (patterns === undefined) {
    patterns = grant.hosts.map((h) => parseHostPattern(h)).filter((p): p is HostPattern => typeof p !== "string");
    parsedGrants.set(grant, patterns);
  }
  return patterns;
}
