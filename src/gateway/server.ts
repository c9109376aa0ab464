import { createSecureServer, type Http2SecureServer } from "node:http2";
import type { AddressInfo } from "node:net";
import type { Kernel } from "../kernel/index.ts";
import { SoloError } from "../lib/errors/errors.ts";
import { VERSION } from "../lib/version.ts";
import { createMcpHttp, type McpHttpOptions } from "../mcp/http.ts";
import { ConnectionGuard, type ConnectionLimits, connectionLimits, type EdgeClosure, TLS_POLICY } from "./connections.ts";
import { apiHandler, serveMetrics } from "./handlers.ts";
import { DEFAULT_STREAM_LIMITS, gatewayCore, inProcessClients } from "./local.ts";
import { requesterOf } from "./requester.ts";
import { Shedder, type ShedderLimits, type ShedderStats } from "./shedder.ts";
import type { Telemetry } from "./telemetry.ts";
import { DenialThrottle, tarpit } from "./throttle.ts";
import { startWebListener, type WebListener, type WebOptions } from "./web.ts";

/** Where and how the gateway listens. */
export interface GatewayOptions {
  /** Default 127.0.0.1. */
  readonly host?: string;
  /** Default 7443; 0 picks a free port. */
  readonly port?: number;
  /** The server's certificate and key, and the CA whose client certificates are admitted (PEM). */
  readonly tls: { readonly cert: string; readonly key: string; readonly ca: string };
  /** Largest request body, in bytes (default 32 MiB: code is at most 16 MiB). */
  readonly readMaxBytes?: number;
  /** Admission limits (calls running and waiting, in all and per tenant). */
  readonly admission?: ShedderLimits;
  /** Streams (FollowEvents) open at once, in all and per tenant; none wait. */
  readonly streams?: ShedderLimits;
  /** Metrics (served on GET /metrics) and call logs. */
  readonly telemetry?: Telemetry;
  /** MCP's Streamable HTTP transport at `/mcp` (on unless `false`), and its session limits. */
  readonly mcp?:
    | false
    | Pick<
        McpHttpOptions,
        "maxSessions" | "maxSessionsPerTenant" | "idleMs" | "maxBodyBytes" | "replayMessages" | "replayBytes" | "allowedOrigins"
      >;
  /** The version `/mcp` reports to clients (default: this Solo's). */
  readonly version?: string;
  /** Timeouts and caps on connections and requests (see {@link ConnectionLimits} for the defaults). */
  readonly connections?: ConnectionLimits;
  /**
   * The web listener (see web.ts): a second TLS port without client certificates, for MCP clients
   * and browsers, sharing this gateway's admission, throttle and telemetry. Off unless given
   * (`solo start` opens it on 127.0.0.1:7444).
   */
  readonly web?: WebOptions;
}

/** A running gateway. */
export interface Gateway {
  /** `https://host:port`. */
  readonly url: string;
  readonly port: number;
  /** What admission has done: calls running and queued, admitted and shed. */
  readonly admission: ShedderStats;
  /** MCP sessions open at `/mcp`. */
  readonly mcpSessions: number;
  /** TCP connections open now, whatever their state (on the main port). */
  readonly connections: number;
  /** The web listener, if it was asked for. */
  readonly web?: WebListener;
  /**
   * Stops admitting (on both ports) (new connections and streams are refused), lets calls in flight finish for up
   * to `graceMs` (default 5000), then closes every connection.
   */
  close(graceMs?: number): Promise<void>;
}

const DEFAULT_PORT = 7443;
const FOLLOW_EVENTS = "/solo.v1.KernelService/FollowEvents";
const EDGE_LOG_INTERVAL_MS = 10_000;

/**
 * Serves the kernel over HTTP/2 with TLS on one port: gRPC, gRPC-Web and Connect (JSON and
 * binary). Mutual TLS: a client must present a certificate signed by `tls.ca`, or the handshake
 * is refused; plaintext and HTTP/1.1 are refused too. Each call then carries its bearer token.
 */
export async function startGateway(kernel: Kernel, options: GatewayOptions): Promise<Gateway> {
  const host = options.host ?? "127.0.0.1";
  const limits = connectionLimits(options.connections);
  const throttle = new DenialThrottle(limits.denialsPerSecond, limits.denialBurst);
  const core = gatewayCore(kernel, {
    throttle,
    shedder: new Shedder(options.admission),
    streams: new Shedder(options.streams ?? DEFAULT_STREAM_LIMITS),
    telemetry: options.telemetry,
    ...(options.readMaxBytes !== undefined ? { readMaxBytes: options.readMaxBytes } : {}),
  });
  const { shedder, telemetry } = core;
  const connectHandler = apiHandler(core, throttle, { grpc: true });
  const mcp =
    options.mcp === false
      ? undefined
      : createMcpHttp({
          ...options.mcp,
          kernel,
          clientsFor: (token, requester, verified) => inProcessClients(core, token, requester, verified),
          onDenied: (req) => throttle.denied(requesterOf(req), throttle.ticketOf(req)),
          version: options.version ?? VERSION,
        });
  const server: Http2SecureServer = createSecureServer(
    {
      cert: options.tls.cert,
      key: options.tls.key,
      ca: options.tls.ca,
      requestCert: true,
      rejectUnauthorized: true,
      allowHTTP1: false,
      ...TLS_POLICY,
      handshakeTimeout: limits.handshakeTimeoutMs,
      settings: { maxConcurrentStreams: limits.maxStreamsPerConnection },
    },
    (req, res) => {
      // A requester that keeps being denied waits, and is refused without reaching the kernel.
      const ticket = throttle.admit(requesterOf(req), req);
      if (!ticket) {
        telemetry?.edgeClosed("throttled");
        tarpit(req, res, limits.denialsPerSecond);
        return;
      }
      // Only a charged request (of a requester denied lately) has a token to give back.
      if (ticket.charged) res.once("close", () => throttle.settle(ticket));
      if (telemetry && req.url === "/metrics" && req.method === "GET") {
        serveMetrics(kernel, telemetry, req, res, throttle);
        return;
      }
      if (mcp && (req.url === "/mcp" || req.url.startsWith("/mcp?"))) {
        mcp.handle(req, res);
        return;
      }
      connectHandler(req, res);
    },
  );
  const detach = telemetry?.attach(kernel, shedder.stats);
  const edgeLogged = new Map<EdgeClosure, { at: number; unlogged: number }>();
  // A client that fails the handshake (no certificate, a foreign one, plaintext, too slow) is
  // refused there, and its socket freed by the guard; its error concerns only that connection.
  const onEdgeClose = (why: EdgeClosure, address: string): void => {
    telemetry?.edgeClosed(why);
    // One line per reason per 10 s at most, saying how many went unlogged: a flood of refused
    // connections must not become a flood of log lines (the counter has them all).
    const now = performance.now();
    const last = edgeLogged.get(why);
    if (last && now - last.at < EDGE_LOG_INTERVAL_MS) {
      last.unlogged++;
      return;
    }
    telemetry?.logger.warn({ address, why, ...(last?.unlogged ? { unloggedSince: last.unlogged } : {}) }, "edge closed a connection");
    edgeLogged.set(why, { at: now, unlogged: 0 });
  };
  const guard = new ConnectionGuard(server, limits, {
    lasting: (h) => h[":path"] === FOLLOW_EVENTS || (h[":method"] === "GET" && String(h[":path"] ?? "").startsWith("/mcp")),
    onClose: onEdgeClose,
  });
  server.on("sessionError", () => undefined);
  await new Promise<void>((resolve, reject) => {
    server.once("error", (err: NodeJS.ErrnoException) =>
      reject(
        new SoloError(
          "SOLO_ERR_KERNEL_OPTIONS_INVALID",
          `the gateway cannot listen on ${host}:${options.port ?? DEFAULT_PORT}: ${err.message}`,
          { field: "port", hint: err.code === "EADDRINUSE" ? "another process uses the port; choose another with --port" : undefined },
          { cause: err },
        ),
      ),
    );
    server.listen(options.port ?? DEFAULT_PORT, host, () => resolve());
  });
  const port = (server.address() as AddressInfo).port;
  let web: WebListener | undefined;
  if (options.web) {
    try {
      web = await startWebListener(
        { core, throttle, limits, mcp, tls: { cert: options.tls.cert, key: options.tls.key }, onEdgeClose },
        {
          ...options.web,
          onCertificate:
            options.web.onCertificate ??
            ((e) =>
              e.loaded
                ? telemetry?.logger.info("the web listener loaded its certificate again")
                : telemetry?.logger.error({ why: e.why }, "the web listener kept its certificate: the changed files cannot be used")),
        },
      );
    } catch (err) {
      guard.destroyAll();
      detach?.();
      await Promise.resolve(mcp?.close());
      await new Promise<void>((resolve) => server.close(() => resolve()));
      throw err;
    }
  }
  let closing: Promise<void> | undefined;
  return {
    url: `https://${host.includes(":") ? `[${host}]` : host}:${port}`,
    port,
    admission: shedder.stats,
    get mcpSessions() {
      return mcp?.sessions ?? 0;
    },
    get connections() {
      return guard.connections;
    },
    ...(web ? { web } : {}),
    close(graceMs = 5000) {
      const webClosed = web?.close(graceMs);
      closing ??= new Promise<void>((resolve) => {
        // After the grace every socket goes, whatever state its client left it in (half-open,
        // mid-handshake, mid-request): shutting down never waits on a client.
        const timer = setTimeout(() => {
          void mcp?.close();
          guard.destroyAll();
        }, graceMs);
        timer.unref();
        server.close(() => {
          clearTimeout(timer);
          guard.destroyAll();
          detach?.();
          // MCP's sessions are both ports': they close once both have.
          void Promise.resolve(webClosed)
            .then(() => mcp?.close())
            .then(() => resolve());
        });
        // MCP clients' standing event streams end now (tool calls in flight finish).
        mcp?.drain();
        // No new connections; GOAWAY to those open: streams in flight finish, new ones go elsewhere.
        guard.drain();
      });
      return closing;
    },
  };
}
