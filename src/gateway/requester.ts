import type { Http2Session } from "node:http2";
import type { TLSSocket } from "node:tls";
import { createContextKey } from "@connectrpc/connect";
import type { KernelSession, Requester, Via } from "../kernel/index.ts";
import { REQUEST_ID_PATTERN } from "../lib/names.ts";
import type { HttpRequest } from "./http-types.ts";

/** The requester of a call, as the gateway's socket saw it (set on every call from the port). */
export const REQUESTER = createContextKey<Requester | undefined>(undefined, { description: "solo requester" });
/** The call's request id (set by telemetry, else taken from a valid `x-request-id`). */
export const REQUEST_ID = createContextKey<string | undefined>(undefined, { description: "solo request id" });

/**
 * The call's session, made once by the edge from its bearer token and the request: the edge's
 * admission and the handler's operation share it, so the token is hashed and looked up once.
 */
export const SESSION = createContextKey<KernelSession | undefined>(undefined, { description: "solo session" });

const known = new WeakMap<Http2Session, Requester>();

/**
 * Who is at the other end of `session`: the client's address and its certificate's fingerprint
 * and name, worked out once per connection. What audit, the throttle and the edge's byte caps
 * know a client by (`requesterKey`).
 */
export function requesterOfSession(session: Http2Session): Requester {
  const cached = known.get(session);
  if (cached) return cached;
  const socket = session.socket as TLSSocket;
  const cert = typeof socket.getPeerCertificate === "function" ? socket.getPeerCertificate() : undefined;
  const r: Requester = {
    address: addressOf(socket),
    ...(cert?.fingerprint256 ? { certificate: cert.fingerprint256.replaceAll(":", "").toLowerCase() } : {}),
    ...(typeof cert?.subject?.CN === "string" ? { name: cert.subject.CN.slice(0, 200) } : {}),
  };
  known.set(session, r);
  return r;
}

// Requests the web listener knows more of than their connection says (see markRequester).
const marked = new WeakMap<HttpRequest, Requester>();

/**
 * Says who sent `req` where its connection cannot: on the web listener, where clients bring no
 * certificate, a request that presents a valid credential is known by it (a digest, beside its
 * address), so that the throttle counts its denials apart from those of everyone else at its
 * address: requests with no credential or a bad one, from anywhere on that address (a web page
 * the user visits included), cannot get a token holder throttled.
 */
export function markRequester(req: HttpRequest, r: Requester & { readonly credential: string }): void {
  marked.set(req, r);
}

/** Who sent `req` (see {@link requesterOfSession}); an HTTP/1.1 request is known by its address. */
export function requesterOf(req: HttpRequest): Requester {
  const known = marked.get(req);
  if (known) return known;
  const session = "stream" in req ? req.stream.session : undefined;
  return session ? requesterOfSession(session) : { address: addressOf(req.socket) };
}

/** A socket's peer address, IPv4-mapped IPv6 written as IPv4. */
export function addressOf(socket: { remoteAddress?: string | undefined } | null | undefined): string {
  const a = socket?.remoteAddress ?? "unknown";
  return a.startsWith("::ffff:") ? a.slice(7) : a;
}

/** The `via` of a request from its requester and request id (used when it is a valid request id). */
export function viaOf(requester: Requester | undefined, requestId: string | null | undefined): Via | undefined {
  const correlationId = requestId && REQUEST_ID_PATTERN.test(requestId) ? requestId : undefined;
  if (!requester && !correlationId) return undefined;
  return { ...(requester ? { requester } : {}), ...(correlationId ? { correlationId } : {}) };
}

/** The `via` of a plain-HTTP request (`/metrics`, `/mcp`): its requester and its `x-request-id`. */
export function viaOfRequest(req: HttpRequest): Via | undefined {
  const rid = req.headers["x-request-id"];
  return viaOf(requesterOf(req), typeof rid === "string" ? rid : undefined);
}
