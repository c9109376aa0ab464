/** What a fetch hands back to the service: the final exchange, shaped, its body as text. */
import type { FetchResponse } from "../../../api/fetch.ts";
import type { Exchange } from "./exchange.ts";

/** The response a service sees, from the last exchange of a fetch that ended at `url`. */
export function fetchResponse(result: Extract<Exchange, { kind: "response" }>, url: URL, redirected: boolean): FetchResponse {
  return {
    status: result.status,
    statusText: result.statusText,
    headers: responseHeaders(result.rawHeaders),
    body: new TextDecoder("utf-8").decode(result.body),
    url: url.href,
    redirected,
    bytes: result.body.length,
  };
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
