// Public types: the operator's fetch policy and what a service's `solo.fetch` returns (the grant is
// in grants.ts; the guarded fetch itself is the kernel's, src/kernel/powers/fetch/).

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
