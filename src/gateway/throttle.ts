import { Code, ConnectError, createContextKey } from "@connectrpc/connect";
import { errorToJson, errorToJsonBytes } from "@connectrpc/connect/protocol-connect";
import { setTrailerStatus } from "@connectrpc/connect/protocol-grpc";
import type { Requester } from "../api/tokens.ts";
import { SoloError } from "../lib/errors/errors.ts";
import { SURFACE_HEADER, surfaceOf, words } from "../lib/errors/transport.ts";
import { requesterKey } from "../lib/requester.ts";
import { envelope } from "./body-check.ts";
import { httpStatus, toConnectError } from "./errors.ts";
import { type HttpRequest, type HttpResponse, plain } from "./http-types.ts";
import { requesterOf } from "./requester.ts";

/** How long a throttled requester's requests are held before they are answered. */
export const TARPIT_MS = 1000;
const MAX_REQUESTERS = 10_000;
/** How far below empty a requester's bucket may go, in bursts: what it must wait off. */
const DEBT_BURSTS = 4;

/** The call's throttle ticket, in its context values (calls from the port). */
export const TICKET = createContextKey<Ticket | undefined>(undefined, { description: "solo throttle ticket" });

/** One request's standing with the throttle: whether it was charged a token, and denied. */
export interface Ticket {
  readonly requester: Requester;
  charged: boolean;
  denied: boolean;
}

/**
 * Slows a requester (its client certificate; its address when it has none) that keeps being denied. Each denial takes a token
 * from its bucket (`burst` of them, refilled at `perSecond`). While a requester has a bucket (it
 * was denied lately), each of its requests is charged a token when admitted and refunded when it
 * ends without a denial, so it has at most as many requests in flight as its bucket holds; with
 * the bucket empty, its requests are held for {@link TARPIT_MS} and answered
 * `SOLO_ERR_REQUESTER_THROTTLED` without reaching the kernel. A flood of bad requests then costs
 * the gateway a timer per request instead of a call's work, and nobody else notices it.
 */
export class DenialThrottle {
  /** Tokens a second a requester's bucket refills by. */
  readonly perSecond: number;
  private readonly burst: number;
  private readonly buckets = new Map<string, { tokens: number; at: number }>();
  private readonly tickets = new WeakMap<object, Ticket>();

  constructor(perSecond: number, burst: number) {
    this.perSecond = perSecond;
    this.burst = burst;
  }

  /** Admits a request of `r` (keyed by `request` for {@link ticketOf}), or undefined: throttle it. */
  admit(r: Requester, request: object): Ticket | undefined {
    const key = requesterKey(r);
    const ticket: Ticket = { requester: r, charged: false, denied: false };
    if (this.buckets.has(key)) {
      const b = this.refill(key);
      if (b.tokens < 1) return undefined;
      if (b.tokens >= this.burst) {
        // Refilled: no longer watched.
        this.buckets.delete(key);
      } else {
        b.tokens -= 1;
        ticket.charged = true;
      }
    }
    this.tickets.set(request, ticket);
    return ticket;
  }

  /** The ticket `admit` gave `request`. */
  ticketOf(request: object): Ticket | undefined {
    return this.tickets.get(request);
  }

  /** Counts a denial against `r` (once per request: a charged request has paid already). */
  /** Counts `err` against the requester of `req` if it is a denial ({@link isDenial}). */
  deniedBy(req: HttpRequest, err: unknown): void {
    if (isDenial(err)) this.denied(requesterOf(req), this.ticketOf(req));
  }

  denied(r: Requester, ticket?: Ticket): void {
    if (ticket) {
      if (ticket.denied) return;
      ticket.denied = true;
      if (ticket.charged) return;
    }
    const key = requesterKey(r);
    const b = this.refill(key);
    // Denials past the bucket's bottom are owed (down to a floor), so that denials a request
    // causes inside itself (an MCP batch's tool calls) cannot be outweighed by its refund.
    b.tokens = Math.max(-DEBT_BURSTS * this.burst, b.tokens - 1);
    if (!this.buckets.has(key)) {
      // The oldest requester makes room: the map is bounded whoever floods it.
      if (this.buckets.size >= MAX_REQUESTERS) this.buckets.delete(this.buckets.keys().next().value as string);
      this.buckets.set(key, b);
    }
  }

  /**
   * Whether `r` has no token left: for calls made inside an admitted request (MCP's tool calls),
   * which are refused at once rather than held (their request is already under way).
   */
  exhausted(r: Requester): boolean {
    const key = requesterKey(r);
    return this.buckets.has(key) && this.refill(key).tokens < 1;
  }

  /** A request ended: one that was charged and not denied gets its token back. */
  settle(ticket: Ticket): void {
    if (!ticket.charged || ticket.denied) return;
    ticket.charged = false;
    const key = requesterKey(ticket.requester);
    const b = this.buckets.get(key);
    if (!b) return;
    const full = this.refill(key);
    full.tokens = Math.min(this.burst, full.tokens + 1);
    if (full.tokens >= this.burst) this.buckets.delete(key);
  }

  private refill(key: string): { tokens: number; at: number } {
    const now = performance.now();
    const b = this.buckets.get(key) ?? { tokens: this.burst, at: now };
    b.tokens = Math.min(this.burst, b.tokens + ((now - b.at) / 1000) * this.perSecond);
    b.at = now;
    return b;
  }
}

/**
 * Whether a refusal counts against its requester: its credential was missing, malformed, unknown,
 * revoked or expired, or lacks the permission. Not where a request came from (a web origin is the
 * page's doing, not the credential holder's), and not anything else that went wrong.
 */
export function isDenial(err: unknown): boolean {
  if (err instanceof SoloError) {
    if (err.reason === "SOLO_ERR_MCP_ORIGIN_DENIED" || err.reason === "SOLO_ERR_WEB_ORIGIN_DENIED") return false;
    return err.code === "unauthenticated" || err.code === "permission_denied";
  }
  return err instanceof ConnectError && (err.code === Code.Unauthenticated || err.code === Code.PermissionDenied);
}

/** The refusal of a throttled requester's request; `perSecond` is its bucket's refill rate. */
export function throttledError(perSecond: number): SoloError {
  return new SoloError("SOLO_ERR_REQUESTER_THROTTLED", "this client was refused too often: its requests are refused for now", {
    retryAfterMs: Math.ceil(1000 / perSecond),
    hint: `check its token (${words("token.whoami")}): a client whose requests keep being denied is slowed until it stops`,
  });
}

/**
 * Holds a throttled requester's request for {@link TARPIT_MS}, then answers it
 * `resource_exhausted` (`SOLO_ERR_REQUESTER_THROTTLED`) in its protocol (see {@link refuseCall}):
 * Connect unary, /metrics and /mcp get HTTP 429 with `retry-after` (whole seconds).
 */
export function tarpit(req: HttpRequest, response: HttpResponse, perSecond: number): void {
  const res = plain(response);
  const timer = setTimeout(() => {
    if (res.closed || res.destroyed || res.headersSent) return;
    refuseCall(req, response, throttledError(perSecond), { "retry-after": String(Math.max(1, Math.ceil(1 / perSecond))) });
  }, TARPIT_MS);
  timer.unref();
  res.once("close", () => clearTimeout(timer));
}

/**
 * Answers a call with `error` in its own protocol, without reaching its handler: gRPC and gRPC-Web
 * in trailers, Connect streams in their end-of-stream message, anything else (Connect unary, plain
 * HTTP) with the code's HTTP status and a Connect error body.
 */
export function refuseCall(req: HttpRequest, response: HttpResponse, error: SoloError, headers: Record<string, string> = {}): void {
  const res = plain(response);
  const err = toConnectError(error, surfaceOf(String(req.headers[SURFACE_HEADER] ?? "")));
  const ct = String(req.headers["content-type"] ?? "");
  if (ct.startsWith("application/grpc")) {
    const trailer = new Headers();
    setTrailerStatus(trailer, err);
    const fields = Object.fromEntries(trailer.entries());
    if (ct.startsWith("application/grpc-web")) {
      const text = Buffer.from(
        Object.entries(fields)
          .map(([k, v]) => `${k}: ${v}\r\n`)
          .join(""),
      );
      res.writeHead(200, { "content-type": ct });
      // The trailers travel in a body frame flagged 0x80.
      res.end(envelope(0x80, text));
      return;
    }
    res.writeHead(200, { "content-type": ct, ...fields });
    res.end();
    return;
  }
  if (ct.startsWith("application/connect+")) {
    // Connect's streaming protocol: 200, and the error in the end-of-stream message.
    res.writeHead(200, { "content-type": ct });
    res.end(envelope(0x02, Buffer.from(JSON.stringify({ error: errorToJson(err, {}) }))));
    return;
  }
  res.writeHead(httpStatus(error.code), { "content-type": "application/json", ...headers });
  res.end(Buffer.from(errorToJsonBytes(err, {})));
}
