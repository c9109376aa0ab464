/**
 * The grammar of a fetch grant's host entries (`api.example.com`, `*.example.com`,
 * `[2001:db8::1]:8443`): parsing into a normal form, printing it back, matching a URL's host, and
 * whether one entry covers another (for delegation).
 */
import { isIP } from "node:net";
import { domainToASCII } from "node:url";

const MAX_PATTERN_LENGTH = 300;

/** A parsed allow-list entry. `port` null means "the scheme's default port only". */
export interface HostPattern {
  readonly kind: "exact" | "wildcard" | "ip";
  /** Lower-case ASCII host (for `wildcard`, the suffix after `*.`); IPv6 without brackets. */
  readonly host: string;
  readonly port: number | null;
}

const LABEL = /^[a-z0-9_]([a-z0-9_-]{0,61}[a-z0-9_])?$/;
// Characters that would make the URL parser read a host pattern as something else.
// biome-ignore lint/suspicious/noControlCharactersInRegex: control characters are what it refuses
const NOT_IN_HOST = /[\u0000-\u0020\u007f/\\?#@%[\]<>^|"'`{}]/;

/** Parses an allow-list entry into its normal form, or returns why it is not one. */
export function parseHostPattern(raw: string): HostPattern | string {
  if (raw.length === 0) return "it is empty";
  if (raw.length > MAX_PATTERN_LENGTH) return `it is longer than ${MAX_PATTERN_LENGTH} characters`;
  if (raw.startsWith("[")) {
    const end = raw.indexOf("]");
    if (end < 0) return "the IPv6 address has no closing ']'";
    const ip = canonicalIpv6(raw.slice(1, end));
    if (ip === null) return "the text in brackets is not an IPv6 address";
    const port = parsePortSuffix(raw.slice(end + 1));
    return typeof port === "string" ? port : { kind: "ip", host: ip, port };
  }
  if (isIP(raw) === 6) {
    const ip = canonicalIpv6(raw);
    return ip === null ? "it is not an IPv6 address" : { kind: "ip", host: ip, port: null };
  }
  let host = raw;
  let port: number | null = null;
  const colon = raw.lastIndexOf(":");
  if (colon >= 0) {
    const parsed = parsePortSuffix(raw.slice(colon));
    if (typeof parsed === "string") return parsed;
    port = parsed;
    host = raw.slice(0, colon);
  }
  const wildcard = host.startsWith("*.");
  if (wildcard) host = host.slice(2);
  if (host.includes("*")) return "'*' is only allowed as a whole first label, as in *.example.com";
  if (NOT_IN_HOST.test(host)) return "it contains a character that cannot appear in a host name (write a host, not a URL)";
  if (host.endsWith(".")) host = host.slice(0, -1);
  const ascii = domainToASCII(host);
  if (ascii === "") return "it is not a valid host name";
  if (isIP(ascii) === 4) {
    if (wildcard) return "a wildcard cannot apply to an IP address";
    // The URL parser also reads forms like 2130706433 or 0x7f.1 as IPv4; a deployer who wrote
    // one of those almost certainly did not mean an IP, so insist on the usual spelling.
    if (ascii !== host) return `write IPv4 addresses in dotted decimal (this one reads as ${ascii})`;
    return { kind: "ip", host: ascii, port };
  }
  const labels = ascii.split(".");
  if (ascii.length > 253 || !labels.every((l) => LABEL.test(l))) {
    return "it is not a valid host name (labels of 1-63 letters, digits, '-' or '_', separated by dots)";
  }
  if (wildcard && labels.length < 2) return "a wildcard over a top-level domain is too broad; name at least two labels after '*.'";
  return { kind: wildcard ? "wildcard" : "exact", host: ascii, port };
}

function parsePortSuffix(suffix: string): number | null | string {
  if (suffix === "") return null;
  if (!/^:[1-9][0-9]{0,4}$/.test(suffix) || Number(suffix.slice(1)) > 65535) return "the port must be a number from 1 to 65535";
  return Number(suffix.slice(1));
}

/** The canonical (URL-serialised, compressed, lower-case hex) form of an IPv6 address, or null. */
export function canonicalIpv6(text: string): string | null {
  if (isIP(text) !== 6) return null; // also refuses zone ids, which URLs cannot carry
  const host = URL.parse(`http://[${text}]/`)?.hostname;
  return host === undefined ? null : host.slice(1, -1);
}

/** Prints a pattern in the normal form a checked grant stores. */
export function formatPattern(p: HostPattern): string {
  const host = p.kind === "wildcard" ? `*.${p.host}` : p.kind === "ip" && p.host.includes(":") ? `[${p.host}]` : p.host;
  return p.port === null ? host : `${host}:${p.port}`;
}

/** Whether a pattern admits `host` (normal form, no brackets, no trailing dot) on `port`. */
export function patternAdmits(p: HostPattern, host: string, port: number, defaultPort: number): boolean {
  if (port !== (p.port ?? defaultPort)) return false;
  if (p.kind === "wildcard") return isIP(host) === 0 && host.endsWith(`.${p.host}`);
  return host === p.host;
}

/**
 * Whether allow-list entry `outer` admits every host that `inner` admits: the same entry,
 * `*.a.com` over `x.a.com`, `*.x.a.com` or `*.a.com`. Ports must match exactly.
 */
export function hostPatternCovers(outer: string, inner: string): boolean {
  if (typeof outer !== "string" || typeof inner !== "string") return false;
  const o = parseHostPattern(outer);
  const i = parseHostPattern(inner);
  if (typeof o === "string" || typeof i === "string" || o.port !== i.port) return false;
  if (o.kind === "wildcard") return i.kind !== "ip" && (i.host === o.host ? i.kind === "wildcard" : i.host.endsWith(`.${o.host}`));
  return i.kind === o.kind && i.host === o.host;
}
