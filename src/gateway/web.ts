/**
 * The web listener: the gateway's second TLS port, for clients that cannot present a client
 * certificate (MCP clients, browsers). HTTP/1.1 and HTTP/2 (ALPN), no client certificate; every
 * request authenticates with a bearer token, or (for `/mcp`, `/session` and `/logout`) a session
 * cookie made from one at `POST /login`. It shares the main port's GatewayCore: one admission
 * shedder, denial throttle and telemetry, so a tenant's limits hold across both ports.
 */
import { createHash } from "node:crypto";
import { readFileSync, unwatchFile, watchFile } from "node:fs";
import type { IncomingMessage, ServerResponse } from "node:http";
import { createSecureServer, type Http2SecureServer } from "node:http2";
import type { AddressInfo, Socket } from "node:net";
import { createSecureContext } from "node:tls";
import { SoloError } from "../lib/errors/errors.ts";
import type { McpHttp } from "../mcp/http.ts";
import { ConnectionGuard, type ConnectionLimits, type EdgeClosure, TLS_POLICY } from "./connections.ts";
import { apiHandler, serveMetrics } from "./handlers.ts";
import { type HttpRequest, type HttpResponse, plain } from "./http-types.ts";
import type { GatewayCore } from "./local.ts";
import { markRequester, requesterOf, viaOfRequest } from "./requester.ts";
import { bearer } from "./service.ts";
import { type DenialThrottle, refuseCall, tarpit } from "./throttle.ts";
import { CookieSessions, checkCookieOrigin, readLogin, SECURITY_HEADERS, sessionCookie, setCookie, webError, webJson } from "./web-auth.ts";

/** Where and how the web listener listens. */
export interface WebOptions {
  /** Default 127.0.0.1. */
  readonly host?: string;
  /** Default 7444; 0 picks a free port. */
  readonly port?: number;
  /**
   * An operator's certificate and key (PEM files, e.g. a public certificate), used instead of the
   * gateway's server certificate and loaded again whenever either file changes.
   */
  readonly certFile?: string;
  readonly keyFile?: string;
  /** How often the operator's files are checked for changes (default 2000 ms). */
  readonly certPollMs?: number;
  /**
   * More origins that are this listener's own, beside `https://<host>:<port>` (and, on a loopback
   * address, `https://localhost:<port>`): the public name a certificate is for, like `https://solo.example.com`.
   */
  readonly origins?: readonly string[];
  /** Cookie sessions held at once (default 10,000; the oldest ends beyond it). */
  readonly maxCookieSessions?: number;
  /** Told when the operator's certificate was reloaded, or why a change was not taken. */
  readonly onCertificate?: (event: { readonly loaded: boolean; readonly why?: string }) => void;
}

/** A running web listener. */
export interface WebListener {
  /** `https://host:port`. */
  readonly url: string;
  readonly port: number;
  /** TCP connections open now. */
  readonly connections: number;
  /** Cookie sessions held now. */
  readonly cookieSessions: number;
  /** Stops admitting, lets requests in flight finish for up to `graceMs`, then closes every connection. */
  close(graceMs?: number): Promise<void>;
}

/** What the gateway shares with its web listener. */
export interface WebShared {
  readonly core: GatewayCore;
  readonly throttle: DenialThrottle;
  readonly limits: Required<ConnectionLimits>;
  /** The gateway's `/mcp` endpoint (its sessions and their limits are shared with the main port). */
  readonly mcp: McpHttp | undefined;
  /** The gateway's server certificate and key (PEM), used unless the operator gives their own. */
  readonly tls: { readonly cert: string; readonly key: string };
  readonly onEdgeClose: (why: EdgeClosure, address: string) => void;
}

/** The default port of the web listener. */
export const DEFAULT_WEB_PORT = 7444;
/** HTTP/1.1 header bytes, and HTTP/2's header list size, a request may carry (as node's default). */
export const WEB_MAX_HEADER_BYTES = 16 * 1024;
const API_PREFIX = "/solo.v1.";

/**
 * Opens the web listener beside a gateway (see the module's doc). `startGateway` opens it when
 * given `web`; this is its half of that.
 */
export async function startWebListener(shared: WebShared, options: WebOptions = {}): Promise<WebListener> {
  const { core, throttle, limits, mcp } = shared;
  const kernel = core.kernel;
  const host = options.host ?? "127.0.0.1";
  const operator = options.certFile !== undefined || options.keyFile !== undefined ? loadOperatorPair(options) : undefined;
  const tls = operator ?? shared.tls;
  const cookies = new CookieSessions(options.maxCookieSessions !== undefined ? { max: options.maxCookieSessions } : {});
  const api = apiHandler(core, throttle, { grpc: false });
  const own = new Set<string>(options.origins ?? []);

  const server: Http2SecureServer = createSecureServer(
    {
      cert: tls.cert,
      key: tls.key,
      requestCert: false,
      allowHTTP1: true,
      ...TLS_POLICY,
      handshakeTimeout: limits.handshakeTimeoutMs,
      settings: { maxConcurrentStreams: limits.maxStreamsPerConnection, maxHeaderListSize: WEB_MAX_HEADER_BYTES },
    },
    (req, res) => handle(req, res),
  );
  // HTTP/1.1's limits, which node applies to the HTTP/1.1 connections of an HTTP/2 server that
  // allows them: header bytes (431 beyond), the time to send a request's headers and the whole
  // request (408), and how long a kept-alive connection may sit idle.
  const h1 = server as unknown as {
    maxHeaderSize: number;
    headersTimeout: number;
    requestTimeout: number;
    keepAliveTimeout: number;
    connectionsCheckingInterval: number;
  };
  h1.maxHeaderSize = WEB_MAX_HEADER_BYTES;
  h1.headersTimeout = limits.headersTimeoutMs;
  // Node's requestTimeout ends a request whose body is still arriving; streams (MCP's GET) have
  // sent theirs whole, so it never cuts one short. The guard's own body-rate check is finer.
  h1.requestTimeout = Math.max(limits.requestTimeoutMs, limits.headersTimeoutMs);
  h1.keepAliveTimeout = limits.idleTimeoutMs;
  h1.connectionsCheckingInterval = Math.max(50, Math.min(1000, Math.floor(limits.headersTimeoutMs / 4)));

  const guard = new ConnectionGuard(server, limits, {
    lasting: (h) => h[":method"] === "GET" && String(h[":path"] ?? "").startsWith("/mcp"),
    onClose: shared.onEdgeClose,
  });
  server.on("sessionError", () => undefined);
  // An HTTP/1.1 answer goes out in several small writes (headers, then each event of a stream);
  // with Nagle's algorithm each waits on the client's delayed ACK, tens of ms per call.
  server.on("connection", (socket: Socket) => socket.setNoDelay(true));

  function handle(req: HttpRequest, res: HttpResponse): void {
    const out = plain(res);
    for (const [k, v] of Object.entries(SECURITY_HEADERS)) out.setHeader(k, v);
    const path = (req.url ?? "/").split("?")[0] ?? "/";
    // HTTP/2's advertised header list size binds only once the client has acknowledged it (its
    // first requests may precede that): the same limit is enforced here for every request.
    if (req.httpVersionMajor === 2 && headerBytes(req.rawHeaders) > WEB_MAX_HEADER_BYTES) {
      req.resume();
      webError(
        res,
        new SoloError("SOLO_ERR_WEB_HEADERS_TOO_LARGE", `the request's headers are over ${WEB_MAX_HEADER_BYTES} bytes`, {
          field: "headers",
          hint: "send smaller headers (a token is at most 1 KiB)",
        }),
      );
      return;
    }
    if (req.httpVersionMajor === 1) guard.request(req as IncomingMessage, res as ServerResponse, req.method === "GET" && path === "/mcp");
    // Health answers everyone, before the throttle: a load balancer's probe must not be slowed.
    if (path === "/healthz") {
      if (req.method !== "GET" && req.method !== "HEAD") {
        webError(res, notFound(req, path, "GET"));
        return;
      }
      webJson(res, 200, { status: "ok" });
      return;
    }
    // A request that presents a valid credential is throttled apart from its address (markRequester).
    const presented = presentedBy(req);
    if (presented.valid && presented.token !== undefined) {
      markRequester(req, { ...requesterOf(req), credential: credentialDigest(presented.token) });
    }
    const ticket = throttle.admit(requesterOf(req), req);
    if (!ticket) {
      core.telemetry?.edgeClosed("throttled");
      tarpit(req, res, limits.denialsPerSecond);
      return;
    }
    if (ticket.charged) out.once("close", () => throttle.settle(ticket));
    if (path.startsWith(API_PREFIX)) {
      serveApi(req, res);
      return;
    }
    const page = PAGES.get(path);
    if (page) {
      if (req.method !== page.method) {
        webError(res, notFound(req, path, page.method));
        return;
      }
      // A denial counts against the requester here, once, whichever page refused.
      Promise.resolve()
        .then(() => page.serve(req, res, presented))
        .catch((err: unknown) => {
          throttle.deniedBy(req, err);
          webError(res, err);
        });
      return;
    }
    if (path === "/mcp") {
      serveMcp(req, res, presented);
      return;
    }
    // The body of a request to nowhere is read and dropped, so the connection stays usable.
    req.resume();
    webError(res, notFound(req, path));
  }

  // The session's pages: each answers one method, and any other is told which.
  type Page = { method: string; serve: (req: HttpRequest, res: HttpResponse, presented: Presented) => void | Promise<void> };
  const PAGES: ReadonlyMap<string, Page> = new Map<string, Page>([
    ["/login", { method: "POST", serve: login }],
    ["/logout", { method: "POST", serve: logout }],
    ["/session", { method: "GET", serve: session }],
    ...(core.telemetry ? ([["/metrics", { method: "GET", serve: metrics }]] as const) : []),
  ]);

  function serveApi(req: HttpRequest, res: HttpResponse): void {
    const ct = String(req.headers["content-type"] ?? "");
    if (ct.startsWith("application/grpc") && !ct.startsWith("application/grpc-web")) {
      req.resume();
      refuseCall(
        req,
        res,
        new SoloError("SOLO_ERR_WEB_PROTOCOL_UNSUPPORTED", "the web listener serves the API in Connect and gRPC-Web, not gRPC", {
          field: "content-type",
          hint: "use the Connect or gRPC-Web protocol here, or gRPC on the gateway's main port (mutual TLS)",
        }),
      );
      return;
    }
    // A cookie never authenticates the API: a page on any site could make the browser send it.
    if (req.headers.authorization === undefined && sessionCookie(req) !== undefined) {
      req.resume();
      refuseCall(
        req,
        res,
        new SoloError("SOLO_ERR_WEB_COOKIE_REFUSED", "the API takes a bearer token; a session cookie is not accepted for it", {
          field: "authorization",
          hint: "send authorization: Bearer <token> (the cookie serves /mcp and /session only)",
        }),
      );
      return;
    }
    api(req, res);
  }

  /**
   * What a request presents to act with, looked up and verified once: a bearer token, or a session
   * cookie (`token` then is its session's, undefined if it has none), and whether the token is valid.
   */
  function presentedBy(req: HttpRequest): Presented {
    if (req.headers.authorization !== undefined) {
      const token = bearer(req.headers.authorization);
      return { token, cookie: undefined, valid: token !== undefined && kernel.as(token).reach().valid };
    }
    const cookie = sessionCookie(req);
    const token = cookie === undefined ? undefined : cookies.tokenOf(cookie);
    return { token, cookie, valid: token !== undefined && kernel.as(token).reach().valid };
  }

  /** The token a request acts with: its bearer header, else its session cookie (Origin-checked). */
  function tokenOf(req: HttpRequest, p: Presented): string | undefined {
    if (p.cookie === undefined) return p.token;
    if (p.token === undefined) {
      throw new SoloError("SOLO_ERR_WEB_SESSION_ENDED", "the session cookie names no session: it ended or expired", {
        field: "cookie",
        hint: "log in again (POST /login with a token)",
      });
    }
    checkCookieOrigin(req, own);
    // Verified on every request: a token revoked (or expired) ends its sessions at once.
    if (!p.valid) cookies.endToken(p.token);
    return p.token;
  }

  function serveMcp(req: HttpRequest, res: HttpResponse, presented: Presented): void {
    if (!mcp) {
      req.resume();
      webError(res, notFound(req, "/mcp"));
      return;
    }
    let token: string | undefined;
    try {
      token = tokenOf(req, presented);
    } catch (err) {
      req.resume();
      throttle.deniedBy(req, err);
      webError(res, err);
      return;
    }
    // This listener's own origin is allowed; another is left to /mcp's allowedOrigins.
    const origin = req.headers.origin;
    mcp.handle(req, res, { token, originChecked: origin === undefined || own.has(origin) });
  }

  async function login(req: HttpRequest, res: HttpResponse): Promise<void> {
    const origin = req.headers.origin;
    // A login from another site would sign the browser in as someone else (login CSRF).
    if (origin !== undefined && !own.has(origin)) {
      req.resume();
      checkCookieOrigin(req, own); // throws: the origin is not this listener's
    }
    const token = await readLogin(req);
    const info = await kernel.as(token, viaOfRequest(req)).whoami();
    const { id, maxAgeSeconds } = cookies.open(token, info.expiresAt === null ? null : Date.parse(info.expiresAt));
    webJson(res, 200, principal(info), { "set-cookie": setCookie(id, maxAgeSeconds) });
  }

  function logout(req: HttpRequest, res: HttpResponse): void {
    req.resume();
    // Checked with or without a cookie: another site's form must not clear the browser's cookie.
    try {
      checkCookieOrigin(req, own);
    } catch (err) {
      webError(res, err);
      return;
    }
    const id = sessionCookie(req);
    webJson(res, 200, { ended: id !== undefined && cookies.end(id) }, { "set-cookie": setCookie("", 0) });
  }

  async function session(req: HttpRequest, res: HttpResponse, presented: Presented): Promise<void> {
    const info = await kernel.as(tokenOf(req, presented), viaOfRequest(req)).whoami();
    webJson(res, 200, { ...principal(info), via: presented.cookie !== undefined ? "cookie" : "bearer" });
  }

  function metrics(req: HttpRequest, res: HttpResponse): void {
    if (core.telemetry) serveMetrics(kernel, core.telemetry, req, res, throttle);
  }

  await new Promise<void>((resolve, reject) => {
    server.once("error", (err: NodeJS.ErrnoException) =>
      reject(
        new SoloError(
          "SOLO_ERR_KERNEL_OPTIONS_INVALID",
          `the web listener cannot listen on ${host}:${options.port ?? DEFAULT_WEB_PORT}: ${err.message}`,
          {
            field: "webPort",
            hint: err.code === "EADDRINUSE" ? "another process uses the port; choose another with --web-port, or --no-web" : undefined,
          },
          { cause: err },
        ),
      ),
    );
    server.listen(options.port ?? DEFAULT_WEB_PORT, host, () => resolve());
  });
  const port = (server.address() as AddressInfo).port;
  const url = `https://${host.includes(":") ? `[${host}]` : host}:${port}`;
  own.add(url);
  if (/^(127\.|::1$|localhost$)/.test(host)) {
    for (const name of ["localhost", "127.0.0.1", "[::1]"]) own.add(`https://${name}:${port}`);
  }
  const stopWatching = operator ? watchOperatorPair(server, options) : () => undefined;
  let closing: Promise<void> | undefined;
  return {
    url,
    port,
    get connections() {
      return guard.connections;
    },
    get cookieSessions() {
      return cookies.size;
    },
    close(graceMs = 5000) {
      closing ??= new Promise<void>((resolve) => {
        stopWatching();
        const timer = setTimeout(() => guard.destroyAll(), graceMs);
        timer.unref();
        server.close(() => {
          clearTimeout(timer);
          guard.destroyAll();
          resolve();
        });
        guard.drain();
      });
      return closing;
    },
  };
}

// As HTTP/2 counts a header list: each name and value, and 32 bytes per field.
function headerBytes(raw: readonly string[]): number {
  let n = 0;
  for (const s of raw) n += s.length + 16;
  return n;
}

function principal(info: {
  id: string;
  tenant: string | null;
  permissions: readonly string[];
  expiresAt: string | null;
  label: string;
}): Record<string, unknown> {
  return { tokenId: info.id, tenant: info.tenant, permissions: info.permissions, expiresAt: info.expiresAt, label: info.label };
}

function notFound(req: HttpRequest, path: string, method?: string): SoloError {
  const shown = JSON.stringify(path.slice(0, 200));
  return new SoloError(
    "SOLO_ERR_WEB_NOT_FOUND",
    method ? `${shown} takes ${method}, not ${req.method}` : `the web listener serves nothing at ${req.method} ${shown}`,
    {
      field: method ? ":method" : ":path",
      hint: "it serves /mcp, the Connect API (/solo.v1.KernelService/...), POST /login, POST /logout, GET /session, GET /healthz and GET /metrics",
    },
  );
}

/** The operator's pair, read and checked (a key that does not match its certificate is refused). */
function loadOperatorPair(o: WebOptions): { cert: string; key: string } {
  if (o.certFile === undefined || o.keyFile === undefined) {
    throw new SoloError("SOLO_ERR_KERNEL_OPTIONS_INVALID", "the web listener's certificate needs both its certificate and its key", {
      field: o.certFile === undefined ? "webCert" : "webKey",
      hint: "give both --web-cert and --web-key (PEM files), or neither to use Solo's own server certificate",
    });
  }
  try {
    const pair = { cert: readFileSync(o.certFile, "utf8"), key: readFileSync(o.keyFile, "utf8") };
    createSecureContext(pair);
    return pair;
  } catch (err) {
    throw new SoloError(
      "SOLO_ERR_KERNEL_OPTIONS_INVALID",
      `the web listener's certificate ${o.certFile} and key ${o.keyFile} cannot be used: ${(err as Error).message}`,
      { field: "webCert", hint: "give a PEM certificate and the PEM private key that matches it (--web-cert, --web-key)" },
      { cause: err },
    );
  }
}

/**
 * Loads the operator's pair again whenever either file changes; a pair that does not load or does
 * not match is not taken (the one in use stays) and `onCertificate` is told why. Returns the stop.
 */
function watchOperatorPair(server: Http2SecureServer, o: WebOptions): () => void {
  const files = [o.certFile as string, o.keyFile as string];
  let timer: NodeJS.Timeout | undefined;
  const reload = (): void => {
    // Both files usually change together: one reload after both have been written.
    clearTimeout(timer);
    timer = setTimeout(() => {
      try {
        const pair = loadOperatorPair(o);
        server.setSecureContext({ ...TLS_POLICY, ...pair });
        o.onCertificate?.({ loaded: true });
      } catch (err) {
        o.onCertificate?.({ loaded: false, why: (err as Error).message });
      }
    }, 100);
    timer.unref();
  };
  const interval = o.certPollMs ?? 2000;
  for (const f of files) watchFile(f, { interval, persistent: false }, reload);
  return () => {
    clearTimeout(timer);
    for (const f of files) unwatchFile(f, reload);
  };
}

// Names a credential for the throttle without being one, nor the store's key for it: a salted,
// truncated SHA-256.
function credentialDigest(token: string): string {
  return createHash("sha256").update("solo web requester\0").update(token).digest("base64url").slice(0, 22);
}

/** What a request presents to act with (see presentedBy). */
interface Presented {
  readonly token: string | undefined;
  /** The session cookie's id, when it came by cookie. */
  readonly cookie: string | undefined;
  readonly valid: boolean;
}
