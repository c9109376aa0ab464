/**
 * One HTTP(S) exchange with an authorised target, over a connection pinned to its checked
 * addresses: the kernel's own headers, the response size limit, and transport failures as coded
 * errors that never echo header values, bodies or URL paths.
 */
import http from "node:http";
import https from "node:https";
import { isIP } from "node:net";
import { SoloError } from "../../../lib/errors/errors.ts";
import type { Target } from "./authorize.ts";
import type { CompiledPolicy } from "./policy.ts";
import type { Method } from "./request.ts";
import { errorCode, pinnedLookup } from "./resolve.ts";

const REDIRECT_STATUSES = new Set([301, 302, 303, 307, 308]);

/** What is sent on one hop; redirects may change it. */
export interface Hop {
  readonly method: Method;
  readonly headers: ReadonlyMap<string, string>;
  readonly body: Buffer | undefined;
}

/** How one exchange ended: a redirect to follow, or the response. */
export type Exchange =
  | { readonly kind: "redirect"; readonly status: number; readonly location: string }
  | {
      readonly kind: "response";
      readonly status: number;
      readonly statusText: string;
      readonly rawHeaders: readonly string[];
      readonly body: Buffer;
    };

/** Sends one request to `target` and reads the response, at most `maxBytes` of body. */
export function exchange(target: Target, hop: Hop, policy: CompiledPolicy, maxBytes: number, signal: AbortSignal): Promise<Exchange> {
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

/** A SOLO_ERR_FETCH_FAILED naming the target's origin and what went wrong. */
export function failed(target: Target, cause: string, what: string, err?: unknown): SoloError {
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
