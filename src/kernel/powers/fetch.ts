/**
 * `solo.fetch`: outbound HTTP(S) for services, guarded on the host side.
 *
 * A service may reach only the hosts its grant lists, over https unless the grant allows http,
 * and never an address that is not public unicast (loopback, private networks, link-local cloud
 * metadata, ...) unless the kernel's operator exempts it. Names are resolved once, every address
 * is checked, and the connection is pinned to a checked address, so a DNS answer cannot change
 * between the check and the connect. Redirects are followed by hand and each hop is checked again.
 * Sizes and time are bounded; errors never echo header values, bodies or URL paths.
 *
 * @example
 * const grant = checkFetchGrant({ hosts: ["api.example.com"] }, "grants.fetch");
 * const res = await guardedFetch({ url: "https://api.example.com/v1/items" }, grant, {});
 */
import { lookup as dnsLookup } from "node:dns/promises";
import http from "node:http";
import https from "node:https";
import { BlockList, isIP, type LookupFunction } from "node:net";
import tls from "node:tls";
import { domainToASCII } from "node:url";
import type { FetchGrant } from "../../api/grants.ts";
import { SoloError } from "../../lib/errors/errors.ts";

/** What a service may fetch: validated by {@link checkFetchGrant}. */
export type { FetchGrant };

/** How the kernel's operator (never a service) tunes fetching for the whole kernel. */
export interface FetchPolicy {
  /** CIDRs (`10.1.0.0/16`, `127.0.0.1/32`, `fd00::/8`) exempt from the private-address rule. */
  readonly allowAddresses?: readonly string[];
  /** Extra trusted CA certificates (PEM, one or more), added to Node's default roots. */
  readonly ca?: string;
  /** Name resolution; default `dns.promises.lookup(host, { all: true, verbatim: true })`. */
  readonly lookup?: (hostname: string) => Promise<Array<{ address: string; family: 4 | 6 }>>;
}

/** What a fetch returns to the service. */
export interface FetchResponse {
  readonly status: number;
  readonly statusText: string;
  /** Lower-case names; repeated headers joined with ", "; `set-cookie` is dropped. */
  readonly headers: Record<string, string>;
  /** The body, decoded as UTF-8. */
  readonly body: string;
  /** The final URL, after redirects. */
  readonly url: string;
  readonly redirected: boolean;
  /** Bytes of body received. */
  readonly bytes: number;
}

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
const MAX_PATTERN_LENGTH = 300;
const MAX_URL_LENGTH = 8 * KiB;
const MAX_HEADERS = 100;
const MAX_HEADER_BYTES = 64 * KiB;
const METHODS = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"] as const;
type Method = (typeof METHODS)[number];
/**
 * Headers the kernel owns: framing and connection management (a service setting them could
 * smuggle a second request or confuse the proxy), and `accept-encoding` because bodies are
 * returned as text and never decompressed.
 */
const FORBIDDEN_HEADERS = new Set([
  "host",
  "connection",
  "content-length",
  "transfer-encoding",
  "upgrade",
  "te",
  "trailer",
  "keep-alive",
  "expect",
  "accept-encoding",
]);
const TOKEN = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/;
const HEADER_VALUE = /^[\t\x20-\x7e\x80-\xff]*$/;
const REDIRECT_STATUSES = new Set([301, 302, 303, 307, 308]);
const CROSS_ORIGIN_DROPPED = ["authorization", "cookie"];

// ---------------------------------------------------------------------------------------------
// Host patterns

/** A parsed allow-list entry. `port` null means "the scheme's default port only". */
interface HostPattern {
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
function parseHostPattern(raw: string): HostPattern | string {
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
function canonicalIpv6(text: string): string | null {
  if (isIP(text) !== 6) return null; // also refuses zone ids, which URLs cannot carry
  const host = URL.parse(`http://[${text}]/`)?.hostname;
  return host === undefined ? null : host.slice(1, -1);
}

function formatPattern(p: HostPattern): string {
  const host = p.kind === "wildcard" ? `*.${p.host}` : p.kind === "ip" && p.host.includes(":") ? `[${p.host}]` : p.host;
  return p.port === null ? host : `${host}:${p.port}`;
}

/** Whether a pattern admits `host` (normal form, no brackets, no trailing dot) on `port`. */
function patternAdmits(p: HostPattern, host: string, port: number, defaultPort: number): boolean {
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

// ---------------------------------------------------------------------------------------------
// Grants

/**
 * Validates a fetch grant as a deployer writes it, filling in defaults and normalising hosts
 * (lower case, punycode, no trailing dot). Throws SOLO_ERR_GRANTS_INVALID naming the field.
 */
export function checkFetchGrant(input: unknown, field: string): FetchGrant {
  if (input === null || typeof input !== "object" || Array.isArray(input)) {
    throw grantInvalid(
      field,
      `${field} must be an object like { hosts: ["api.example.com"] }`,
      "list the hosts the service may reach in hosts",
    );
  }
  const known = new Set(["hosts", "allowHttp", ...Object.keys(FETCH_GRANT_RANGES)]);
  for (const key of Object.keys(input)) {
    if (!known.has(key)) {
      throw grantInvalid(
        `${field}.${shortText(key)}`,
        `${field} has an unknown field ${JSON.stringify(shortText(key))}`,
        `the fields are ${[...known].join(", ")}`,
      );
    }
  }
  const record = input as Record<string, unknown>;
  const hosts = checkHosts(record.hosts, `${field}.hosts`);
  const allowHttp = record.allowHttp === undefined ? false : record.allowHttp;
  if (typeof allowHttp !== "boolean")
    throw grantInvalid(`${field}.allowHttp`, `${field}.allowHttp must be true or false`, "leave it out to allow https only");
  const numbers = {} as Record<keyof typeof FETCH_GRANT_RANGES, number>;
  for (const [key, range] of Object.entries(FETCH_GRANT_RANGES) as Array<
    [keyof typeof FETCH_GRANT_RANGES, { min: number; default: number; max: number }]
  >) {
    const value = record[key] === undefined ? range.default : record[key];
    if (typeof value !== "number" || !Number.isSafeInteger(value) || value < range.min || value > range.max) {
      throw grantInvalid(
        `${field}.${key}`,
        `${field}.${key} must be an integer from ${range.min} to ${range.max}`,
        `leave it out for the default of ${range.default}`,
      );
    }
    numbers[key] = value;
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

function shortText(text: string): string {
  return text.length > 80 ? `${text.slice(0, 80)}...` : text;
}

// ---------------------------------------------------------------------------------------------
// Addresses

interface AddressRule {
  readonly cidr: string;
  readonly label: string;
  /** For IPv6 prefixes that carry an IPv4 address: the byte offset of that address. */
  readonly embedsIpv4At?: number;
  readonly list: BlockList;
}

function rule(cidr: string, label: string, embedsIpv4At?: number): AddressRule {
  const [network = "", prefix = ""] = cidr.split("/");
  const list = new BlockList();
  list.addSubnet(network, Number(prefix), isIP(network) === 6 ? "ipv6" : "ipv4");
  return { cidr, label, embedsIpv4At, list };
}

// Checked in order; the first match names the refusal. Node's BlockList matches IPv4-mapped
// IPv6 against IPv4 rules and the reverse, so each family is checked only against its own rules.
const IPV4_RULES: readonly AddressRule[] = [
  rule("0.0.0.0/8", '"this network"'),
  rule("10.0.0.0/8", "private network"),
  rule("100.64.0.0/10", "carrier-grade NAT"),
  rule("127.0.0.0/8", "loopback"),
  rule("169.254.0.0/16", "link-local (cloud metadata)"),
  rule("172.16.0.0/12", "private network"),
  rule("192.0.0.0/24", "IETF protocol assignments"),
  rule("192.0.2.0/24", "documentation"),
  rule("192.168.0.0/16", "private network"),
  rule("198.18.0.0/15", "benchmarking"),
  rule("198.51.100.0/24", "documentation"),
  rule("203.0.113.0/24", "documentation"),
  rule("224.0.0.0/4", "multicast"),
  rule("255.255.255.255/32", "broadcast"),
  rule("240.0.0.0/4", "reserved"),
];
const IPV6_RULES: readonly AddressRule[] = [
  rule("::/128", "unspecified"),
  rule("::1/128", "loopback"),
  rule("::ffff:0:0/96", "IPv4-mapped", 12),
  // Deprecated IPv4-compatible addresses; nothing public lives here.
  rule("::/96", "IPv4-compatible (deprecated)"),
  rule("64:ff9b::/96", "NAT64", 12),
  rule("64:ff9b:1::/48", "local-use NAT64"),
  rule("100::/64", "discard-only"),
  rule("2001:db8::/32", "documentation"),
  rule("2002::/16", "6to4", 2),
  rule("fc00::/7", "unique local"),
  rule("fe80::/10", "link-local"),
  rule("fec0::/10", "site-local (deprecated)"),
  rule("ff00::/8", "multicast"),
];

/** Why an address is refused: the range it falls in. */
export interface AddressRefusal {
  readonly cidr: string;
  readonly label: string;
}

/**
 * Classifies an IP address: null when it is public unicast, else the special-purpose range it
 * falls in. IPv4 carried inside IPv6 (mapped, NAT64, 6to4) is judged by the IPv4 rules. Text that
 * is not an IP address is refused.
 * @internal
 */
export function classifyAddress(address: string): AddressRefusal | null {
  const family = isIP(address);
  if (family === 4) return IPV4_RULES.find((r) => r.list.check(address, "ipv4")) ?? null;
  const canonical = family === 6 ? canonicalIpv6(address) : null;
  if (canonical === null) return { cidr: "-", label: "not a plain IP address" };
  const found = IPV6_RULES.find((r) => r.list.check(canonical, "ipv6"));
  if (found?.embedsIpv4At === undefined) return found ?? null;
  const inner = embeddedIpv4(canonical, found.embedsIpv4At);
  const innerRefusal = classifyAddress(inner);
  return innerRefusal === null
    ? null
    : { cidr: found.cidr, label: `${found.label} ${inner}: ${innerRefusal.label} (${innerRefusal.cidr})` };
}

function ipv6Bytes(canonical: string): number[] {
  const [head = "", tail] = canonical.split("::");
  const left = head === "" ? [] : head.split(":");
  const right = tail === undefined || tail === "" ? [] : tail.split(":");
  const groups = [...left, ...Array<string>(8 - left.length - right.length).fill("0"), ...right];
  return groups.flatMap((g) => {
    const n = Number.parseInt(g, 16);
    return [n >> 8, n & 0xff];
  });
}

function embeddedIpv4(canonical: string, at: number): string {
  return ipv6Bytes(canonical)
    .slice(at, at + 4)
    .join(".");
}

interface CompiledPolicy {
  readonly allow: BlockList;
  readonly hasAllow: boolean;
  readonly ca: readonly string[] | undefined;
  readonly lookup: (hostname: string) => Promise<Array<{ address: string; family: number }>>;
}

const compiledPolicies = new WeakMap<FetchPolicy, CompiledPolicy>();

/** Parses a policy once; a malformed policy is the operator's error, not the service's. */
function compilePolicy(policy: FetchPolicy): CompiledPolicy {
  const cached = compiledPolicies.get(policy);
  if (cached !== undefined) return cached;
  const allow = new BlockList();
  const cidrs = policy.allowAddresses ?? [];
  if (!Array.isArray(cidrs)) throw policyInvalid("fetch.allowAddresses", "fetch.allowAddresses must be an array of CIDRs");
  cidrs.forEach((cidr: unknown, i) => {
    const [network = "", prefix, extra] = typeof cidr === "string" ? cidr.split("/") : [];
    const family = isIP(network);
    const bits = prefix === undefined ? (family === 6 ? 128 : 32) : /^[0-9]{1,3}$/.test(prefix) ? Number(prefix) : -1;
    if (family === 0 || extra !== undefined || bits < 0 || bits > (family === 6 ? 128 : 32)) {
      throw policyInvalid(`fetch.allowAddresses[${i}]`, `fetch.allowAddresses[${i}] is not a CIDR like "10.0.0.0/8" or "fd00::/8"`);
    }
    allow.addSubnet(network, bits, family === 6 ? "ipv6" : "ipv4");
  });
  if (policy.ca !== undefined && typeof policy.ca !== "string") throw policyInvalid("fetch.ca", "fetch.ca must be PEM text");
  if (policy.lookup !== undefined && typeof policy.lookup !== "function")
    throw policyInvalid("fetch.lookup", "fetch.lookup must be a function");
  const compiled: CompiledPolicy = {
    allow,
    hasAllow: cidrs.length > 0,
    // A `ca` option replaces Node's roots, so the defaults are passed along with the extra CA.
    ca: policy.ca === undefined ? undefined : [...tls.getCACertificates("default"), policy.ca],
    lookup: policy.lookup ?? ((hostname) => dnsLookup(hostname, { all: true, verbatim: true })),
  };
  compiledPolicies.set(policy, compiled);
  return compiled;
}

/** Validates an operator's fetch policy (at openKernel, so a mistake is found before any fetch). */
export function checkFetchPolicy(policy: FetchPolicy): FetchPolicy {
  compilePolicy(policy);
  return policy;
}

function policyInvalid(field: string, message: string): SoloError {
  return new SoloError("SOLO_ERR_KERNEL_OPTIONS_INVALID", message, { field, hint: "fix the kernel's fetch policy" });
}

/**
 * Whether the operator exempted an address. BlockList matches IPv4-mapped IPv6 against IPv4
 * entries, so exempting 127.0.0.1/32 also exempts ::ffff:127.0.0.1, the same socket address;
 * NAT64 and 6to4 forms route elsewhere and stay refused.
 */
function exempt(address: string, policy: CompiledPolicy): boolean {
  return policy.hasAllow && policy.allow.check(address, isIP(address) === 6 ? "ipv6" : "ipv4");
}

// ---------------------------------------------------------------------------------------------
// Requests

interface CheckedRequest {
  readonly url: URL;
  readonly method: Method;
  /** Lower-case names. */
  readonly headers: ReadonlyMap<string, string>;
  readonly body: Buffer | undefined;
}

/** Validates a request from sandboxed code; nothing about it is trusted. */
function checkRequest(request: unknown, grant: FetchGrant): CheckedRequest {
  if (request === null || typeof request !== "object" || Array.isArray(request)) {
    throw requestInvalid("request", "the fetch request must be an object like { url, method, headers, body }");
  }
  const fields = request as Record<string, unknown>;
  for (const key of Object.keys(fields)) {
    if (key !== "url" && key !== "method" && key !== "headers" && key !== "body") {
      throw requestInvalid(
        shortText(key),
        `the fetch request has an unknown field ${JSON.stringify(shortText(key))}; the fields are url, method, headers, body`,
      );
    }
  }
  const url = checkUrl(fields.url);
  const method = checkMethod(fields.method);
  const headers = checkHeaders(fields.headers);
  const rawBody = fields.body ?? undefined;
  if (rawBody !== undefined && typeof rawBody !== "string")
    throw requestInvalid("body", "the fetch body must be a string (JSON.stringify objects first)");
  if (rawBody !== undefined && (method === "GET" || method === "HEAD")) {
    throw requestInvalid("body", `a ${method} request cannot have a body; use POST or PUT, or put the data in the query string`);
  }
  const body = rawBody === undefined ? undefined : Buffer.from(rawBody, "utf8");
  if (body !== undefined && body.length > grant.maxRequestBytes) {
    throw new SoloError(
      "SOLO_ERR_FETCH_INVALID",
      `the fetch body is ${body.length} bytes, over this service's limit of ${grant.maxRequestBytes}; send less or raise the grant's maxRequestBytes`,
      { field: "body", limit: grant.maxRequestBytes, bytes: body.length },
    );
  }
  return { url, method, headers, body };
}

function checkUrl(value: unknown): URL {
  if (typeof value !== "string") throw requestInvalid("url", "the fetch url must be a string");
  if (value.length > MAX_URL_LENGTH) throw requestInvalid("url", `the fetch url is longer than ${MAX_URL_LENGTH} characters`);
  const url = URL.parse(value);
  if (url === null)
    throw requestInvalid("url", "the fetch url is not an absolute URL; write it in full, like https://api.example.com/path");
  if (url.protocol !== "https:" && url.protocol !== "http:") {
    throw requestInvalid(
      "url",
      `the fetch url uses ${JSON.stringify(shortText(url.protocol))}; only https: (and http:, if granted) are supported`,
    );
  }
  if (url.username !== "" || url.password !== "") {
    // The credentials themselves are never repeated back.
    throw requestInvalid("url", `the fetch url for ${url.host} carries credentials; send them in an authorization header instead`);
  }
  url.hash = "";
  return url;
}

function checkMethod(value: unknown): Method {
  if (value === undefined || value === null) return "GET";
  const upper = typeof value === "string" ? value.toUpperCase() : "";
  const method = METHODS.find((m) => m === upper);
  if (method === undefined) throw requestInvalid("method", `the fetch method must be one of ${METHODS.join(", ")}`);
  return method;
}

function checkHeaders(value: unknown): Map<string, string> {
  const headers = new Map<string, string>();
  if (value === undefined || value === null) return headers;
  if (typeof value !== "object" || Array.isArray(value))
    throw requestInvalid("headers", "the fetch headers must be an object of name: value strings");
  const entries = Object.entries(value);
  if (entries.length > MAX_HEADERS)
    throw requestInvalid("headers", `the fetch request has ${entries.length} headers; at most ${MAX_HEADERS} are allowed`);
  let total = 0;
  for (const [name, raw] of entries) {
    const field = `headers.${shortText(name)}`;
    if (!TOKEN.test(name)) throw requestInvalid(field, `the header name ${JSON.stringify(shortText(name))} is not a valid HTTP token`);
    const lower = name.toLowerCase();
    if (FORBIDDEN_HEADERS.has(lower) || lower.startsWith("proxy-")) {
      throw requestInvalid(field, `the header ${lower} is set by the kernel and may not be set by a service; remove it`);
    }
    if (headers.has(lower))
      throw requestInvalid(
        field,
        `the header ${lower} is given twice (names are case-insensitive); give it once, with values joined by ", "`,
      );
    if (typeof raw !== "string") throw requestInvalid(field, `the value of header ${lower} must be a string`);
    // Never echo the value: it may be a token.
    if (!HEADER_VALUE.test(raw))
      throw requestInvalid(
        field,
        `the value of header ${lower} contains a control character (CR, LF, NUL...) or a character beyond Latin-1`,
      );
    total += name.length + raw.length;
    if (total > MAX_HEADER_BYTES) throw requestInvalid(field, `the fetch headers exceed ${MAX_HEADER_BYTES} bytes in all`);
    headers.set(lower, raw);
  }
  return headers;
}

function requestInvalid(field: string, message: string): SoloError {
  return new SoloError("SOLO_ERR_FETCH_INVALID", message, { field });
}

// ---------------------------------------------------------------------------------------------
// Authorisation of one hop

interface Target {
  readonly url: URL;
  /** Host as connected to and verified: no brackets, no trailing dot. */
  readonly host: string;
  readonly port: number;
  readonly addresses: ReadonlyArray<{ address: string; family: number }>;
}

const parsedGrants = new WeakMap<FetchGrant, readonly HostPattern[]>();

function grantPatterns(grant: FetchGrant): readonly HostPattern[] {
  let patterns = parsedGrants.get(grant);
  if (patterns === undefined) {
    patterns = grant.hosts.map((h) => parseHostPattern(h)).filter((p): p is HostPattern => typeof p !== "string");
    parsedGrants.set(grant, patterns);
  }
  return patterns;
}

/** Checks scheme and allow-list, resolves, and checks every address. */
async function authorize(
  url: URL,
  grant: FetchGrant,
  policy: CompiledPolicy,
  signal: AbortSignal,
  redirectedFrom: string | null,
): Promise<Target> {
  const via = redirectedFrom === null ? "" : `a redirect from ${redirectedFrom} to `;
  const defaultPort = url.protocol === "https:" ? 443 : 80;
  const port = url.port === "" ? defaultPort : Number(url.port);
  const bracketless = url.hostname.startsWith("[") ? url.hostname.slice(1, -1) : url.hostname;
  const host = bracketless.endsWith(".") ? bracketless.slice(0, -1) : bracketless;
  const where = url.origin === "null" ? `${url.protocol}//${url.host}` : url.origin;
  if (url.protocol !== "http:" && url.protocol !== "https:") {
    throw new SoloError("SOLO_ERR_FETCH_DENIED", `${via}${where} was refused: only http and https URLs can be fetched`, {
      host,
      url: where,
      hint: "only https: (and http:, if granted) URLs can be fetched",
    });
  }
  if (url.protocol === "http:" && !grant.allowHttp) {
    throw new SoloError("SOLO_ERR_FETCH_DENIED", `${via}${where} was refused: this service may fetch over https only`, {
      host,
      url: where,
      hint: "use https, or have the deployer set allowHttp: true in the service's fetch grant",
    });
  }
  if (url.username !== "" || url.password !== "") {
    throw new SoloError("SOLO_ERR_FETCH_DENIED", `${via}${where} was refused: the URL carries credentials`, {
      host,
      url: where,
      hint: "a redirect may not add credentials",
    });
  }
  if (!grantPatterns(grant).some((p) => patternAdmits(p, host, port, defaultPort))) {
    const entry = url.port === "" ? host : `${host}:${port}`;
    throw new SoloError("SOLO_ERR_FETCH_DENIED", `${via}${where} was refused: ${entry} is not among the hosts this service may fetch`, {
      host,
      url: where,
      hint: `have the deployer add ${JSON.stringify(isIP(host) === 6 ? `[${host}]${url.port === "" ? "" : `:${port}`}` : entry)} to the service's fetch grant hosts`,
    });
  }
  const addresses = await resolve(host, policy, signal, where);
  for (const { address } of addresses) {
    const refusal = exempt(address, policy) ? null : classifyAddress(address);
    if (refusal !== null) {
      const resolved = isIP(host) === 0 ? ` resolves to ${address}, which` : "";
      throw new SoloError(
        "SOLO_ERR_FETCH_DENIED",
        `${via}${where} was refused: ${host}${resolved} is not a public address (${refusal.label}, ${refusal.cidr})`,
        {
          host,
          address,
          range: refusal.cidr,
          hint: "services may only reach public addresses; the kernel's operator can exempt a network with the fetch policy's allowAddresses",
        },
      );
    }
  }
  return { url, host, port, addresses };
}

async function resolve(
  host: string,
  policy: CompiledPolicy,
  signal: AbortSignal,
  where: string,
): Promise<ReadonlyArray<{ address: string; family: number }>> {
  const family = isIP(host);
  if (family !== 0) return [{ address: host, family }];
  let answers: unknown;
  try {
    answers = await abortable(policy.lookup(host), signal);
  } catch (err) {
    if (signal.aborted) throw signal.reason;
    const code = errorCode(err) ?? "dns";
    throw new SoloError(
      "SOLO_ERR_FETCH_FAILED",
      `fetching ${where} failed: ${host} could not be resolved (${code}); check the host name`,
      { host, cause: code },
      { cause: err },
    );
  }
  const valid = Array.isArray(answers)
    ? answers.filter(
        (a): a is { address: string; family: number } =>
          a !== null && typeof a === "object" && typeof a.address === "string" && isIP(a.address) !== 0,
      )
    : [];
  if (!Array.isArray(answers) || valid.length !== answers.length || valid.length === 0) {
    throw new SoloError("SOLO_ERR_FETCH_FAILED", `fetching ${where} failed: ${host} resolved to no usable address; check the host name`, {
      host,
      cause: "ENOTFOUND",
    });
  }
  return valid.map((a) => ({ address: a.address, family: isIP(a.address) }));
}

/** A lookup that answers only with the addresses already checked, whatever it is asked. */
function pinnedLookup(addresses: ReadonlyArray<{ address: string; family: number }>): LookupFunction {
  return (_hostname, options, callback) => {
    const first = addresses[0];
    if (first === undefined) {
      callback(Object.assign(new Error("no checked address"), { code: "ENOTFOUND" }), "", 4);
      return;
    }
    // With autoSelectFamily Node asks for every address and tries them in turn (happy eyeballs).
    if (options.all === true) {
      callback(
        null,
        addresses.map((a) => ({ ...a })),
      );
      return;
    }
    callback(null, first.address, first.family);
  };
}

// ---------------------------------------------------------------------------------------------
// One exchange

interface Hop {
  readonly method: Method;
  readonly headers: ReadonlyMap<string, string>;
  readonly body: Buffer | undefined;
}

type Exchange =
  | { readonly kind: "redirect"; readonly status: number; readonly location: string }
  | {
      readonly kind: "response";
      readonly status: number;
      readonly statusText: string;
      readonly rawHeaders: readonly string[];
      readonly body: Buffer;
    };

function exchange(target: Target, hop: Hop, policy: CompiledPolicy, maxBytes: number, signal: AbortSignal): Promise<Exchange> {
  return new Promise((resolvePromise, reject) => {
    const secure = target.url.protocol === "https:";
    const headers: Record<string, string> = { "user-agent": "solo-fetch", accept: "*/*" };
    for (const [name, value] of hop.headers) headers[name] = value;
    headers["accept-encoding"] = "identity";
    if (hop.body !== undefined) {
      headers["content-type"] ??= "text/plain;charset=UTF-8";
      headers["content-length"] = String(hop.body.length);
    } else if (hop.method === "POST" || hop.method === "PUT" || hop.method === "PATCH") {
      headers["content-length"] = "0";
    }
    const options: https.RequestOptions = {
      host: target.host,
      port: target.port,
      method: hop.method,
      path: `${target.url.pathname}${target.url.search}`,
      headers,
      agent: false,
      lookup: pinnedLookup(target.addresses),
    };
    if (secure) {
      // SNI and certificate checks use the URL's host; an IP literal is checked against IP SANs.
      if (isIP(target.host) === 0) options.servername = target.host;
      if (policy.ca !== undefined) options.ca = [...policy.ca];
    }
    let settled = false;
    let req: http.ClientRequest | undefined;
    const finish = (settle: () => void): void => {
      if (settled) return;
      settled = true;
      signal.removeEventListener("abort", onAbort);
      req?.destroy();
      settle();
    };
    const fail = (err: unknown): void => finish(() => reject(err));
    const onAbort = (): void => fail(signal.reason);
    if (signal.aborted) {
      reject(signal.reason);
      return;
    }
    signal.addEventListener("abort", onAbort, { once: true });
    try {
      req = (secure ? https : http).request(options);
    } catch (err) {
      fail(transportError(err, target));
      return;
    }
    req.on("error", (err) => fail(signal.aborted ? signal.reason : transportError(err, target)));
    req.on("response", (res) => {
      const status = res.statusCode ?? 0;
      const location = res.headers.location;
      if (REDIRECT_STATUSES.has(status) && typeof location === "string") {
        finish(() => resolvePromise({ kind: "redirect", status, location }));
        return;
      }
      const declared = res.headers["content-length"];
      if (declared !== undefined && /^[0-9]+$/.test(declared) && Number(declared) > maxBytes) {
        fail(tooLarge(target, maxBytes, `declares ${declared} bytes`));
        return;
      }
      const chunks: Buffer[] = [];
      let received = 0;
      res.on("data", (chunk: Buffer) => {
        received += chunk.length;
        if (received > maxBytes) fail(tooLarge(target, maxBytes, "grew past it"));
        else chunks.push(chunk);
      });
      res.on("end", () => {
        finish(() =>
          resolvePromise({
            kind: "response",
            status,
            statusText: res.statusMessage ?? "",
            rawHeaders: res.rawHeaders,
            body: Buffer.concat(chunks, received),
          }),
        );
      });
      res.on("error", (err) => fail(signal.aborted ? signal.reason : transportError(err, target)));
      res.on("close", () => {
        if (!settled) fail(failed(target, "ECONNRESET", "the connection closed before the response was complete"));
      });
    });
    req.end(hop.body);
  });
}

function tooLarge(target: Target, limit: number, how: string): SoloError {
  return new SoloError(
    "SOLO_ERR_FETCH_TOO_LARGE",
    `the response from ${target.url.origin} ${how}, over this service's limit of ${limit} bytes; ask for less (a range, a page) or raise the grant's maxResponseBytes`,
    { host: target.host, limit },
  );
}

function failed(target: Target, cause: string, what: string, err?: unknown): SoloError {
  return new SoloError(
    "SOLO_ERR_FETCH_FAILED",
    `fetching ${target.url.origin} failed: ${what}`,
    { host: target.host, cause },
    { cause: err },
  );
}

const CONNECTION_ERRORS: Readonly<Record<string, string>> = {
  ECONNREFUSED: "the connection was refused; check the port and that the server is up",
  ECONNRESET: "the server reset the connection",
  EPIPE: "the server closed the connection while the request was being sent",
  EHOSTUNREACH: "the host is unreachable",
  ENETUNREACH: "the network is unreachable",
  ETIMEDOUT: "the connection timed out",
  EADDRNOTAVAIL: "the address is not available from this machine",
};

function transportError(err: unknown, target: Target): SoloError {
  const code = errorCode(err) ?? "unknown";
  const known = CONNECTION_ERRORS[code];
  if (known !== undefined) return failed(target, code, known, err);
  if (code.startsWith("HPE_")) return failed(target, "protocol", `the server's reply is not valid HTTP (${code})`, err);
  // Everything else that fails on a TLS connection is a TLS failure: certificate, name, alert.
  const message = err instanceof Error ? err.message : String(err);
  if (target.url.protocol === "https:") {
    return new SoloError(
      "SOLO_ERR_FETCH_FAILED",
      `fetching ${target.url.origin} failed: TLS error ${code} (${message}); the server's certificate must be valid for ${target.host} and issued by a trusted CA`,
      { host: target.host, cause: "tls", tlsCode: code },
      { cause: err },
    );
  }
  return failed(target, code, message, err);
}

function errorCode(err: unknown): string | undefined {
  const code = err !== null && typeof err === "object" ? (err as { code?: unknown }).code : undefined;
  return typeof code === "string" ? code : undefined;
}

/** Settles with `promise`, or rejects with the signal's reason as soon as it aborts. */
function abortable<T>(promise: Promise<T>, signal: AbortSignal): Promise<T> {
  if (signal.aborted) return Promise.reject(signal.reason);
  return new Promise<T>((resolvePromise, reject) => {
    const onAbort = (): void => reject(signal.reason);
    signal.addEventListener("abort", onAbort, { once: true });
    promise.then(
      (value) => {
        signal.removeEventListener("abort", onAbort);
        resolvePromise(value);
      },
      (err: unknown) => {
        signal.removeEventListener("abort", onAbort);
        reject(err);
      },
    );
  });
}

// ---------------------------------------------------------------------------------------------
// The fetch

/**
 * Performs one fetch for a service: validates the request, enforces the grant and the policy on
 * every hop, and returns the response with its body as text.
 *
 * @example
 * const res = await guardedFetch({ url: "https://api.example.com/items", method: "POST", headers: { "content-type": "application/json" }, body: "{}" }, grant, policy, signal);
 */
export async function guardedFetch(request: unknown, grant: FetchGrant, policy: FetchPolicy, signal?: AbortSignal): Promise<FetchResponse> {
  const checked = checkRequest(request, grant);
  const compiled = compilePolicy(policy);
  const controller = new AbortController();
  const timer = setTimeout(() => {
    controller.abort(
      new SoloError(
        "SOLO_ERR_FETCH_TIMEOUT",
        `fetching ${checked.url.origin} took longer than ${grant.timeoutMs} ms; try again, ask for less, or raise the grant's timeoutMs`,
        { host: checked.url.hostname, limit: grant.timeoutMs },
      ),
    );
  }, grant.timeoutMs);
  const onCallerAbort = (): void => {
    controller.abort(
      new SoloError("SOLO_ERR_FETCH_FAILED", `fetching ${checked.url.origin} was aborted by the caller`, {
        host: checked.url.hostname,
        cause: "aborted",
      }),
    );
  };
  if (signal?.aborted === true) onCallerAbort();
  else signal?.addEventListener("abort", onCallerAbort, { once: true });
  try {
    return await follow(checked, grant, compiled, controller.signal);
  } finally {
    clearTimeout(timer);
    signal?.removeEventListener("abort", onCallerAbort);
  }
}

/** Runs the exchange, following redirects by hand so that every hop is authorised again. */
async function follow(request: CheckedRequest, grant: FetchGrant, policy: CompiledPolicy, signal: AbortSignal): Promise<FetchResponse> {
  let url = request.url;
  let hop: Hop = request;
  let redirectedFrom: string | null = null;
  for (let redirects = 0; ; redirects++) {
    const target = await authorize(url, grant, policy, signal, redirectedFrom);
    const result = await exchange(target, hop, policy, grant.maxResponseBytes, signal);
    if (result.kind === "response") {
      return {
        status: result.status,
        statusText: result.statusText,
        headers: responseHeaders(result.rawHeaders),
        body: new TextDecoder("utf-8").decode(result.body),
        url: url.href,
        redirected: redirects > 0,
        bytes: result.body.length,
      };
    }
    if (redirects >= grant.maxRedirects) {
      throw new SoloError(
        "SOLO_ERR_FETCH_FAILED",
        `fetching ${request.url.origin} was redirected more than ${grant.maxRedirects} times; the server may be looping`,
        {
          host: target.host,
          cause: "redirects",
          limit: grant.maxRedirects,
          hint: "fetch the final URL directly, or raise the grant's maxRedirects",
        },
      );
    }
    const next = URL.parse(result.location, url);
    if (next === null) {
      throw failed(target, "redirect", `the server answered ${result.status} with a Location that is not a URL`);
    }
    next.hash = "";
    hop = redirectHop(hop, result.status, url, next);
    redirectedFrom = url.origin;
    url = next;
  }
}

/** The request for the next hop: method and body per status, credentials kept only same-origin. */
function redirectHop(hop: Hop, status: number, from: URL, to: URL): Hop {
  const toGet = (status === 303 && hop.method !== "HEAD") || ((status === 301 || status === 302) && hop.method === "POST");
  const headers = new Map(hop.headers);
  if (toGet) for (const name of [...headers.keys()]) if (name.startsWith("content-")) headers.delete(name);
  if (from.origin !== to.origin) for (const name of CROSS_ORIGIN_DROPPED) headers.delete(name);
  return toGet ? { method: "GET", headers, body: undefined } : { method: hop.method, headers, body: hop.body };
}

function responseHeaders(raw: readonly string[]): Record<string, string> {
  const joined = new Map<string, string>();
  for (let i = 0; i + 1 < raw.length; i += 2) {
    const name = (raw[i] ?? "").toLowerCase();
    const value = raw[i + 1] ?? "";
    if (name === "set-cookie" || name === "set-cookie2") continue;
    const seen = joined.get(name);
    joined.set(name, seen === undefined ? value : `${seen}, ${value}`);
  }
  return Object.fromEntries(joined);
}
