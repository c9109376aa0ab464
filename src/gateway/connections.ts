import { constants as cryptoConstants } from "node:crypto";
import type { IncomingMessage, ServerResponse } from "node:http";
import { type Http2SecureServer, type Http2Session, constants as h2, type IncomingHttpHeaders, type ServerHttp2Stream } from "node:http2";
import type { Socket } from "node:net";
import type { TLSSocket } from "node:tls";
import { SoloError } from "../lib/errors/errors.ts";
import { requesterKey } from "../lib/requester.ts";
import { type ConnectionLimits, DEFAULT_CONNECTION_LIMITS } from "./connection-limits.ts";
import { addressOf, requesterOfSession } from "./requester.ts";

export { type ConnectionLimits, DEFAULT_CONNECTION_LIMITS } from "./connection-limits.ts";

/** Why the edge closed a connection or a request (the label of `solo_edge_closed_total`). */
export type EdgeClosure =
  | "handshake_timeout"
  | "headers_timeout"
  | "idle"
  | "body_too_slow"
  | "request_timeout"
  | "too_many_connections"
  | "renegotiation"
  | "throttled"
  | "body_bytes";

/**
 * TLS as HTTP/2 requires (RFC 9113 §9.2): TLS 1.3 preferred, and where TLS 1.2 remains only its
 * ephemeral-key AEAD suites (none of Appendix A's prohibited ones); no renegotiation.
 */
export const TLS_POLICY = Object.freeze({
  minVersion: "TLSv1.2" as const,
  ciphers: [
    "TLS_AES_128_GCM_SHA256",
    "TLS_AES_256_GCM_SHA384",
    "TLS_CHACHA20_POLY1305_SHA256",
    "ECDHE-ECDSA-AES128-GCM-SHA256",
    "ECDHE-RSA-AES128-GCM-SHA256",
    "ECDHE-ECDSA-AES256-GCM-SHA384",
    "ECDHE-RSA-AES256-GCM-SHA384",
    "ECDHE-ECDSA-CHACHA20-POLY1305",
    "ECDHE-RSA-CHACHA20-POLY1305",
  ].join(":"),
  honorCipherOrder: true,
  secureOptions: cryptoConstants.SSL_OP_NO_RENEGOTIATION,
});

const LIMIT_RANGES: Record<keyof ConnectionLimits, readonly [number, number]> = {
  handshakeTimeoutMs: [100, 600_000],
  headersTimeoutMs: [100, 600_000],
  idleTimeoutMs: [100, 86_400_000],
  bodyMinBytesPerSecond: [0, 1 << 30],
  bodyWindowMs: [100, 600_000],
  requestTimeoutMs: [1000, 86_400_000],
  maxConnectionsPerAddress: [1, 1_000_000],
  maxStreamsPerConnection: [1, 10_000],
  denialBurst: [1, 1_000_000],
  denialsPerSecond: [1, 1_000_000],
  maxBodyBytesPerClient: [1024, 2 ** 40],
  maxBodyBytes: [1024, 2 ** 40],
};

/** The limits with their defaults filled in; SOLO_ERR_KERNEL_OPTIONS_INVALID names a field out of range. */
export function connectionLimits(given: ConnectionLimits = {}): Required<ConnectionLimits> {
  const out: Record<string, number> = { ...DEFAULT_CONNECTION_LIMITS };
  for (const [field, value] of Object.entries(given) as [keyof ConnectionLimits, unknown][]) {
    if (value === undefined) continue;
    const range = Object.hasOwn(LIMIT_RANGES, field) ? LIMIT_RANGES[field] : undefined;
    if (range === undefined) {
      throw new SoloError("SOLO_ERR_KERNEL_OPTIONS_INVALID", `unknown connection limit ${JSON.stringify(field)}`, {
        field,
        hint: `the limits are ${Object.keys(LIMIT_RANGES).join(", ")}`,
      });
    }
    // The CLI relays this message with the flag's name in place of the field, in its own words.
    if (typeof value !== "number" || !Number.isSafeInteger(value) || value < range[0] || value > range[1]) {
      throw new SoloError(
        "SOLO_ERR_KERNEL_OPTIONS_INVALID",
        `${field} must be a whole number from ${range[0]} to ${range[1]}, got ${String(value)}`,
        {
          field,
        },
      );
    }
    out[field] = value;
  }
  return out as unknown as Required<ConnectionLimits>;
}

interface StreamWatch {
  /** Whether the request has ended (closed or destroyed). */
  readonly done: () => boolean;
  /** Ends it at once (an HTTP/2 stream is reset and its connection sent GOAWAY; an HTTP/1.1 one's connection closed). */
  readonly kill: () => void;
  /** Its client's address (for the log). */
  readonly address: string;
  readonly started: number;
  /** Streams (FollowEvents, MCP's event stream) live as long as their client wants, once their request has arrived. */
  readonly lasting: boolean;
  /** The request body is still arriving. */
  receiving: boolean;
  /** Its client (certificate, else address), and the body bytes it has brought (held until it is answered). */
  readonly client: string;
  bytes: number;
  windowStart: number;
  windowBytes: number;
  /** An HTTP/1.1 request only: it has been answered (or abandoned)... */
  answered?: boolean;
  /** ...and whether its body has all arrived. */
  complete?: () => boolean;
}

interface SessionWatch {
  /** Who the client is: its certificate's fingerprint, else its address. */
  readonly client: string;
  open: number;
  timer: NodeJS.Timeout | undefined;
}

/**
 * Enforces {@link ConnectionLimits} on an HTTP/2 server (and its HTTP/1.1 requests, through
 * {@link ConnectionGuard.request}) and holds every socket it accepted, so
 * that {@link ConnectionGuard.destroyAll} frees them whatever state a client left them in.
 */
export class ConnectionGuard {
  private readonly limits: Required<ConnectionLimits>;
  /** TCP sockets as accepted (what the caps count). */
  private readonly sockets = new Set<Socket>();
  /** Their TLS sockets once the handshake is done (what owns the descriptor then). */
  private readonly secure = new Set<TLSSocket>();
  private readonly perAddress = new Map<string, number>();
  /** Body bytes held for requests not yet answered, by client address and in all. */
  private readonly bodyBytes = new Map<string, number>();
  private bodyBytesTotal = 0;
  private readonly sessions = new Map<Http2Session, SessionWatch>();
  private readonly streams = new Set<StreamWatch>();
  private readonly ticker: NodeJS.Timeout;
  private readonly onClose: (why: EdgeClosure, address: string) => void;
  private readonly lasting: (headers: IncomingHttpHeaders) => boolean;
  private closing = false;
  /** HTTP/1.1 connections, with their requests open. */
  private readonly h1Open = new Map<Socket, number>();
  /**
   * HTTP/2 connections' sessions by the connection's remote address and port (a session's `socket`
   * is a proxy, not the TLS socket the guard holds): whether one has requests open.
   */
  private readonly sessionOf = new Map<string, SessionWatch>();

  constructor(
    server: Http2SecureServer,
    limits: Required<ConnectionLimits>,
    options: { lasting: (headers: IncomingHttpHeaders) => boolean; onClose?: (why: EdgeClosure, address: string) => void },
  ) {
    this.limits = limits;
    this.lasting = options.lasting;
    this.onClose = options.onClose ?? (() => undefined);
    server.on("connection", (socket: Socket) => this.accept(socket));
    server.on("secureConnection", (socket: TLSSocket) => this.secured(socket));
    server.on("session", (session: Http2Session) => this.session(session));
    server.on("stream", (stream: ServerHttp2Stream, headers: IncomingHttpHeaders) => this.stream(stream, headers));
    server.on("tlsClientError", (err: NodeJS.ErrnoException, socket: TLSSocket) => {
      if (err.code === "ERR_TLS_HANDSHAKE_TIMEOUT") this.onClose("handshake_timeout", addressOf(socket));
      socket.destroy();
    });
    const tick = Math.max(50, Math.min(1000, Math.floor(Math.min(limits.bodyWindowMs, limits.requestTimeoutMs) / 4)));
    this.ticker = setInterval(() => this.sweep(), tick);
    this.ticker.unref();
  }

  /** Connections open now (TCP, whatever their state). */
  get connections(): number {
    return this.sockets.size;
  }

  /** Stops admitting connections, and sends every open one GOAWAY: requests in flight finish, new ones go elsewhere. */
  drain(): void {
    this.closing = true;
    for (const session of this.sessions.keys()) session.close();
    // HTTP/1.1 connections with no request open (kept alive) close now; the others once answered.
    for (const s of this.secure) if (s.alpnProtocol !== "h2" && !this.h1Open.has(s)) s.destroy();
  }

  /** Frees every socket at once, and stops the guard's timer. */
  destroyAll(): void {
    clearInterval(this.ticker);
    for (const [session, w] of this.sessions) {
      clearTimeout(w.timer);
      session.destroy();
    }
    for (const s of this.secure) s.destroy();
    for (const s of this.sockets) s.destroy();
  }

  // At its cap, an address's oldest connection with nothing in flight (kept alive, idle) makes
  // room for the new one; only when every one is busy is the new one refused. So connections held
  // open and idle (by anyone at the address: another local process, say) cannot shut it out.
  private accept(socket: Socket): void {
    const address = addressOf(socket);
    const n = (this.perAddress.get(address) ?? 0) + 1;
    if (this.closing) {
      socket.destroy();
      return;
    }
    if (n > this.limits.maxConnectionsPerAddress) {
      this.onClose("too_many_connections", address);
      const idle = this.oldestIdle(address);
      if (!idle) {
        socket.destroy();
        return;
      }
      idle.destroy();
    }
    this.perAddress.set(address, n);
    this.sockets.add(socket);
    socket.once("close", () => {
      this.sockets.delete(socket);
      const left = (this.perAddress.get(address) ?? 1) - 1;
      if (left <= 0) this.perAddress.delete(address);
      else this.perAddress.set(address, left);
    });
  }

  /** The address's oldest secured connection with no request open, if it has one. */
  private oldestIdle(address: string): TLSSocket | undefined {
    // `secure` keeps the order connections were secured in: oldest first.
    for (const s of this.secure) {
      if (s.destroyed || addressOf(s) !== address) continue;
      const session = this.sessionOf.get(peerOf(s));
      const idle = session ? session.open === 0 : s.alpnProtocol !== "h2" && !this.h1Open.has(s);
      if (idle) return s;
    }
    return undefined;
  }

  private secured(socket: TLSSocket): void {
    // The TLS socket owns the descriptor from here: it is what must be freed.
    this.secure.add(socket);
    socket.once("close", () => this.secure.delete(socket));
    // A peer gone (or an error, e.g. a refused renegotiation) frees the socket at once, whatever
    // the HTTP/2 session made of it: nothing is left in CLOSE-WAIT.
    socket.once("end", () => socket.destroy());
    socket.once("error", (err: NodeJS.ErrnoException) => {
      if (/renegotiat/i.test(err.message) || err.code === "ERR_TLS_SESSION_ATTACK") this.onClose("renegotiation", addressOf(socket));
      socket.destroy();
    });
  }

  private session(session: Http2Session): void {
    const w: SessionWatch = { client: requesterKey(requesterOfSession(session)), open: 0, timer: undefined };
    this.sessions.set(session, w);
    const peer = peerOf(session.socket);
    this.sessionOf.set(peer, w);
    this.arm(session, w, this.limits.headersTimeoutMs, "headers_timeout");
    session.once("close", () => {
      clearTimeout(w.timer);
      this.sessions.delete(session);
      if (this.sessionOf.get(peer) === w) this.sessionOf.delete(peer);
    });
  }

  private arm(session: Http2Session, w: SessionWatch, ms: number, why: EdgeClosure): void {
    clearTimeout(w.timer);
    w.timer = setTimeout(() => {
      this.onClose(why, addressOf(session.socket));
      // GOAWAY, then the socket is freed whether or not the client answers it.
      session.close();
      setTimeout(() => session.destroy(), 1000).unref();
    }, ms);
    w.timer.unref();
  }

  private stream(stream: ServerHttp2Stream, headers: IncomingHttpHeaders): void {
    const session = stream.session;
    const w = session ? this.sessions.get(session) : undefined;
    if (session && w) {
      w.open++;
      clearTimeout(w.timer);
      w.timer = undefined;
    }
    const now = performance.now();
    const watch: StreamWatch = {
      done: () => stream.destroyed || stream.closed,
      kill: () => {
        stream.close(h2.NGHTTP2_CANCEL);
        // And GOAWAY: its other requests finish, and the client starts its next ones on a new
        // connection (node:http2's client counts a reset upload's unsent bytes against its session
        // for good; a few such resets and it refuses every later answer on that connection).
        if (session && !session.closed && !session.destroyed) session.close();
      },
      address: addressOf(session?.socket),
      started: now,
      lasting: this.lasting(headers),
      receiving: !stream.readableEnded && !(stream.endAfterHeaders ?? false),
      windowStart: now,
      windowBytes: 0,
      client: w?.client ?? requesterKey({ address: addressOf(session?.socket) }),
      bytes: 0,
    };
    this.streams.add(watch);
    if (watch.receiving) {
      stream.on("data", (chunk: Buffer) => {
        watch.windowBytes += chunk.length;
        this.hold(watch, chunk.length);
      });
      stream.once("end", () => {
        watch.receiving = false;
      });
    }
    stream.once("close", () => {
      this.release(watch);
      this.streams.delete(watch);
      if (session && w && --w.open === 0 && !session.closed && !session.destroyed) this.arm(session, w, this.limits.idleTimeoutMs, "idle");
    });
  }

  // Counts `n` more body bytes for the request; one that takes its address or everyone over the
  // cap is reset (its bytes are let go with it).
  private hold(w: StreamWatch, n: number): void {
    w.bytes += n;
    this.bodyBytesTotal += n;
    const here = (this.bodyBytes.get(w.client) ?? 0) + n;
    this.bodyBytes.set(w.client, here);
    if ((here > this.limits.maxBodyBytesPerClient || this.bodyBytesTotal > this.limits.maxBodyBytes) && !w.done()) {
      this.release(w);
      this.reset(w, "body_bytes");
    }
  }

  private release(w: StreamWatch): void {
    if (w.bytes === 0) return;
    this.bodyBytesTotal -= w.bytes;
    const left = (this.bodyBytes.get(w.client) ?? 0) - w.bytes;
    if (left <= 0) this.bodyBytes.delete(w.client);
    else this.bodyBytes.set(w.client, left);
    w.bytes = 0;
  }

  private sweep(): void {
    const now = performance.now();
    const { bodyWindowMs, bodyMinBytesPerSecond, requestTimeoutMs } = this.limits;
    for (const w of this.streams) {
      if (w.done()) continue;
      if (w.complete?.()) w.receiving = false;
      // A stream lasts as long as its client wants once its request has arrived; until then, and
      // for any other request, the request timeout holds.
      if ((!w.lasting || w.receiving) && now - w.started > requestTimeoutMs) {
        this.reset(w, "request_timeout");
        continue;
      }
      if (!w.receiving || now - w.windowStart < bodyWindowMs) continue;
      if (w.windowBytes < (bodyMinBytesPerSecond * (now - w.windowStart)) / 1000) {
        this.reset(w, "body_too_slow");
        continue;
      }
      w.windowStart = now;
      w.windowBytes = 0;
    }
  }

  private reset(w: StreamWatch, why: EdgeClosure): void {
    this.streams.delete(w);
    this.onClose(why, w.address);
    w.kill();
  }

  /**
   * Watches an HTTP/1.1 request (the web listener's) as {@link stream} watches an HTTP/2 one: the
   * request timeout (unless `lasting`), its body's rate, and the body bytes its client holds. Its
   * connection is what ends it (HTTP/1.1 has no other way to abandon a request). Node's own
   * `headersTimeout` guards its headers.
   */
  request(req: IncomingMessage, res: ServerResponse, lasting: boolean): void {
    const socket = req.socket;
    const now = performance.now();
    const address = addressOf(socket);
    let settled = false;
    const watch: StreamWatch = {
      // Watched until answered and its body has all arrived: an answered request (refused early,
      // say) whose client keeps dribbling the rest of its body is still held to the body rate.
      done: () => settled,
      kill: () => socket.destroy(),
      address,
      started: now,
      lasting,
      receiving: !req.complete,
      windowStart: now,
      windowBytes: 0,
      client: requesterKey({ address }),
      bytes: 0,
      answered: false,
      complete: () => req.complete,
    };
    this.streams.add(watch);
    this.h1Open.set(socket, (this.h1Open.get(socket) ?? 0) + 1);
    // The body's bytes are counted off the socket: a "data" listener on the request would set it
    // flowing before its handler reads it, and lose what arrived in between.
    const onData = (chunk: Buffer): void => {
      if (req.complete) {
        watch.receiving = false;
        socket.off("data", onData);
        settle();
        return;
      }
      watch.windowBytes += chunk.length;
      this.hold(watch, chunk.length);
    };
    const settle = (): void => {
      if (settled || !(socket.destroyed || (watch.answered && req.complete))) return;
      settled = true;
      // A kept-alive connection carries many requests: none leaves a listener on it.
      socket.off("data", onData);
      socket.off("close", gone);
      this.release(watch);
      this.streams.delete(watch);
    };
    const answered = (): void => {
      if (watch.answered) return;
      watch.answered = true;
      const left = (this.h1Open.get(socket) ?? 1) - 1;
      if (left > 0) this.h1Open.set(socket, left);
      else this.h1Open.delete(socket);
      // A closing listener lets an HTTP/1.1 connection go as soon as it has no request open.
      if (this.closing && left <= 0) socket.destroy();
      settle();
    };
    const gone = (): void => {
      answered();
      settle();
    };
    if (watch.receiving) socket.on("data", onData);
    req.once("end", settle);
    res.once("close", answered);
    socket.on("close", gone);
  }
}

// A connection's far end, as address and port: what names it on both sides of node:http2's socket proxy.
function peerOf(socket: { remoteAddress?: string | undefined; remotePort?: number | undefined }): string {
  return `${socket.remoteAddress ?? ""}:${socket.remotePort ?? ""}`;
}
