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
 * This file is the folder's surface: the rest of the kernel imports only from here.
 *
 * @example
 * const grant = checkFetchGrant({ hosts: ["api.example.com"] }, "grants.fetch");
 * const res = await guardedFetch({ url: "https://api.example.com/v1/items" }, grant, {});
 */

export type { FetchPolicy, FetchResponse } from "../../../api/fetch.ts";
/** What a service may fetch: validated by {@link checkFetchGrant}. */
export type { FetchGrant } from "../../../api/grants.ts";
export { type AddressRefusal, classifyAddress } from "./addresses.ts";
export { checkFetchGrant, FETCH_GRANT_RANGES } from "./grant.ts";
export { guardedFetch } from "./guarded-fetch.ts";
export { hostPatternCovers } from "./host-patterns.ts";
export { checkFetchPolicy } from "./policy.ts";
