/**
 * The kernel operator's fetch policy: networks exempt from the private-address rule, extra trusted
 * CAs, and name resolution; checked once at openKernel and compiled once per policy.
 */

import { lookup as dnsLookup } from "node:dns/promises";
import { BlockList, isIP } from "node:net";
import tls from "node:tls";
import type { FetchPolicy } from "../../../api/fetch.ts";
import { SoloError } from "../../../lib/errors/errors.ts";

/** A checked policy in the form a fetch uses. */
export interface CompiledPolicy {
  readonly allow: BlockList;
  readonly hasAllow: boolean;
  readonly ca: readonly string[] | undefined;
  readonly lookup: (hostname: string) => Promise<Array<{ address: string; family: number }>>;
}

const compiledPolicies = new WeakMap<FetchPolicy, CompiledPolicy>();

/** Parses a policy once; a malformed policy is the operator's error, not the service's. */
export function compilePolicy(policy: FetchPolicy): CompiledPolicy {
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
export function exempt(address: string, policy: CompiledPolicy): boolean {
  return policy.hasAllow && policy.allow.check(address, isIP(address) === 6 ? "ipv6" : "ipv4");
}
