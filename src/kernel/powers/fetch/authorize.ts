/**
 * The authorisation of one hop (the first request and every redirect): scheme, credentials, the
 * grant's allow-list, then every address the host resolves to.
 */
import { isIP } from "node:net";
import type { FetchGrant } from "../../../api/grants.ts";
import { SoloError } from "../../../lib/errors/errors.ts";
import { classifyAddress } from "./addresses.ts";
import { grantPatterns } from "./grant.ts";
import { patternAdmits } from "./host-patterns.ts";
import { type CompiledPolicy, exempt } from "./policy.ts";
import { resolve } from "./resolve.ts";

/** An authorised hop: where to connect, and the checked addresses to connect to. */
export interface Target {
  readonly url: URL;
  /** Host as connected to and verified: no brackets, no trailing dot. */
  readonly host: string;
  readonly port: number;
  readonly addresses: ReadonlyArray<{ address: string; family: number }>;
}

/** Checks scheme and allow-list, resolves, and checks every address. */
export async function authorize(
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
