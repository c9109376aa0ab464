/**
 * The fetch as a whole: the request checked, one deadline and the caller's abort over every hop,
 * and redirects followed by hand so that each hop is authorised again.
 */
import type { FetchPolicy, FetchResponse } from "../../../api/fetch.ts";
import type { FetchGrant } from "../../../api/grants.ts";
import { SoloError } from "../../../lib/errors/errors.ts";
import { authorize } from "./authorize.ts";
import { exchange, failed, type Hop } from "./exchange.ts";
import { type CompiledPolicy, compilePolicy } from "./policy.ts";
import { type CheckedRequest, checkRequest } from "./request.ts";
import { fetchResponse } from "./response.ts";

const CROSS_ORIGIN_DROPPED = ["authorization", "cookie"];

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
        { host: checked.url.hostname, limit: grant.timeoutMs, timeoutMs: grant.timeoutMs },
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
      return fetchResponse(result, url, redirects > 0);
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
