/**
 * Which IP addresses a service may never reach: loopback, private networks, link-local cloud
 * metadata and the other special-purpose ranges, with IPv4 carried inside IPv6 judged as IPv4.
 */
import { BlockList, isIP } from "node:net";
import { canonicalIpv6 } from "./host-patterns.ts";

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
