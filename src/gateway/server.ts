import { createSecureServer, type Http2SecureServer, type ServerHttp2Session } from "node:http2";
import type { AddressInfo } from "node:net";
import { connectNodeAdapter } from "@connectrpc/connect-node";
import { SoloError } from "../errors.ts";
import type { Kernel } from "../kernel/kernel.ts";
import { createMcpHttp, type McpHttpOptions } from "../mcp/http.ts";
import { VERSION } from "../version.ts";
import { coreInterceptors, DEFAULT_STREAM_LIMITS, gatewayCore, inProcessClients } from "./local.ts";
import { routes } from "./service.ts";
import { Shedder, type ShedderLimits, type ShedderStats } from "./shedder.ts";
import type { Telemetry } from "./telemetry.ts";

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
  /**
   * Stops admitting (new connections and streams are refused), lets calls in flight finish for up
   * to `graceMs` (default 5000), then closes every connection.
   */
  close(graceMs?: number): Promise<void>;
}

const DEFAULT_PORT = 7443;

/**
 * Serves the kernel over HTTP/2 with TLS on one port: gRPC, gRPC-Web and Connect (JSON and
 * binary). Mutual TLS: a client must present a certificate signed by `tls.ca`, or the handshake
 * is refused; plaintext and HTTP/1.1 are refused too. Each call then carries its bearer token.
 */
export async function startGateway(kernel: Kernel, options: GatewayOptions): Promise<Gateway> {
  const host = options.host ?? "127.0.0.1";
  const core = gatewayCore(kernel, {
    shedder: new Shedder(options.admission),
    streams: new Shedder(options.streams ?? DEFAULT_STREAM_LIMITS),
    telemetry: options.telemetry,
    ...(options.readMaxBytes !== undefined ? { readMaxBytes: options.readMaxBytes } : {}),
  });
  const { shedder, telemetry } = core;
  const connectHandler = connectNodeAdapter({
    routes: routes(kernel, core.started),
    interceptors: coreInterceptors(core),
    readMaxBytes: core.readMaxBytes,
  });
  const mcp =
    options.mcp === false
      ? undefined
      : createMcpHttp({
          ...options.mcp,
          kernel,
          clientsFor: (token) => inProcessClients(core, token),
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
      minVersion: "TLSv1.2",
    },
    (req, res) => {
      if (telemetry && req.url === "/metrics" && req.method === "GET") {
        telemetry.registry.metrics().then(
          (text) => {
            res.writeHead(200, { "content-type": telemetry.registry.contentType });
            res.end(text);
          },
          (err: unknown) => {
            res.writeHead(500, { "content-type": "text/plain" });
            res.end(`collecting metrics failed: ${(err as Error).message}\n`);
          },
        );
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
  const sessions = new Set<ServerHttp2Session>();
  server.on("session", (s) => {
    sessions.add(s);
    s.on("close", () => sessions.delete(s));
  });
  // A client that fails the handshake (no certificate, a foreign one, plaintext) is refused there;
  // its error concerns only that connection.
  server.on("tlsClientError", () => undefined);
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
  let closing: Promise<void> | undefined;
  return {
    url: `https://${host.includes(":") ? `[${host}]` : host}:${port}`,
    port,
    admission: shedder.stats,
    get mcpSessions() {
      return mcp?.sessions ?? 0;
    },
    close(graceMs = 5000) {
      closing ??= new Promise<void>((resolve) => {
        const timer = setTimeout(() => {
          void mcp?.close();
          for (const s of sessions) s.destroy();
        }, graceMs);
        timer.unref();
        server.close(() => {
          clearTimeout(timer);
          detach?.();
          void mcp?.close().then(resolve);
        });
        // MCP clients' standing event streams end now (tool calls in flight finish).
        mcp?.drain();
        // GOAWAY: streams in flight finish, new ones go elsewhere.
        for (const s of sessions) s.close();
      });
      return closing;
    },
  };
}
