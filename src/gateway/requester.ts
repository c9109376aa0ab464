import type { Http2ServerRequest, Http2Session } from "node:http2";
import type { TLSSocket } from "node:tls";
import { createContextKey } from "@connectrpc/connect";
import type { Requester, Via } from "../kernel/auth/denials.ts";

/** The requester of a call, as the gateway's socket saw it (set on every call from the port). */
export const REQUESTER = createContextKey<Requester | undefined>(undefined, { description: "solo requester" });
/** The call's request id (set by telemetry, else taken from a valid `x-request-id`). */
export const REQUEST_ID = createContextKey<string | undefined>(undefined, { description: "solo request id" });

const REQUEST_ID_PATTERN = /^[A-Za-z0-9._:-]{1,128}$/;
const known = new WeakMap<Http2Session, Requester>();

/**
 * Who sent `req`: the client's address and its certificate's fingerprint and name, worked out
 * once per connection. What audit records against a requester that proved nothing else.
 */
export function requesterOf(req: Http2ServerRequest): Requester {
  const session = req.stream.session;
  const cached = session ? known.get(session) : undefined;
  if (cached) return cached;
  const socket = req.socket as TLSSocket;
  const address = (socket.remoteAddress ?? "unknown").replace(/^::ffff:/, "");
  const cert = typeof socket.getPeerCertificate === "function" ? socket.getPeerCertificate() : undefined;
  const r: Requester = {
    address,
    ...(cert?.fingerprint256 ? { certificate: cert.fingerprint256.replaceAll(":", "").toLowerCase() } : {}),
    ...(typeof cert?.subject?.CN === "string" ? { name: cert.subject.CN.slice(0, 200) } : {}),
  };
  if (session) known.set(session, r);
  return r;
}

/** The `via` of a request from its requester and request id (a valid `x-request-id`, or `given`). */
export function viaOf(requester: Requester | undefined, requestId: string | null | undefined): Via | undefined {
  const correlationId = requestId && REQUEST_ID_PATTERN.test(requestId) ? requestId : undefined;
  if (!requester && !correlationId) return undefined;
  return { ...(requester ? { requester } : {}), ...(correlationId ? { correlationId } : {}) };
}
