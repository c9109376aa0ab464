import { AsyncLocalStorage } from "node:async_hooks";
import { isUtf8 } from "node:buffer";
import { createHash, randomUUID, timingSafeEqual } from "node:crypto";
import type { IncomingMessage, ServerResponse } from "node:http";
import { StreamableHTTPServerTransport } from "@modelcontextprotocol/sdk/server/streamableHttp.js";
import type { EventId, EventStore, StreamId } from "@modelcontextprotocol/sdk/server/webStandardStreamableHttp.js";
import { isInitializeRequest, type JSONRPCMessage } from "@modelcontextprotocol/sdk/types.js";
import type { Clients } from "../gateway/client.ts";
import { httpRefusal } from "../gateway/errors.ts";
import { type HttpRequest, type HttpResponse, plain, readBody } from "../gateway/http-types.ts";
import { requesterOf, viaOfRequest } from "../gateway/requester.ts";
import { bearer, type VerifiedSession } from "../gateway/service.ts";
import { isDenial } from "../gateway/throttle.ts";
import type { Kernel, KernelSession, Requester } from "../kernel/index.ts";
import { SoloError } from "../lib/errors/errors.ts";
import { createMcpServer } from "./server.ts";

/** How the gateway serves MCP's Streamable HTTP transport at `/mcp`. */
export interface McpHttpOptions {
  readonly kernel: Kernel;
  /** Clients of the gateway's own services acting with `token` (in-process: validated and admitted like any call). */
  /**
   * The in-process clients a session's tools act through, as `token`. `verified` gives the
   * session of the HTTP request a tool call is made in (its token verified once, by this
   * endpoint), for the edge to use instead of verifying again.
   */
  readonly clientsFor: (token: string, requester?: Requester, verified?: VerifiedSession) => Clients;
  /** Told of each request refused for its token (the gateway throttles requesters that keep being). */
  readonly onDenied?: (req: HttpRequest) => void;
  readonly version: string;
  /** Sessions open at once, in all (default 1024) and per tenant a token reaches (default 32). */
  readonly maxSessions?: number;
  readonly maxSessionsPerTenant?: number;
  /** A session with no request for this long, and none in flight, is closed (default 30 minutes). */
  readonly idleMs?: number;
  /** Largest request body (default 4 MiB: deploy takes code up to 1 MiB, JSON-escaped). */
  readonly maxBodyBytes?: number;
  /** Messages a session keeps for clients that resume a stream with Last-Event-ID (default 256)... */
  readonly replayMessages?: number;
  /** ...and at most this many bytes of them as JSON (default 4 MiB); a larger message is not kept. */
  readonly replayBytes?: number;
  /** Web origins whose pages may call `/mcp` (exact, like `https://console.example.com`); default none. */
  readonly allowedOrigins?: readonly string[];
}

/** The `/mcp` endpoint: one MCP server per session, each bound to the token that opened it. */
export interface McpHttp {
  /**
   * Serves one request to `/mcp` (POST, GET or DELETE), over HTTP/2 or HTTP/1.1. A listener that
   * authenticates the request itself (the web listener: a bearer token or a session cookie, and
   * its Origin checked by the listener's own rules) passes `auth`.
   */
  handle(req: HttpRequest, res: HttpResponse, auth?: McpAuth): void;
  /** Sessions open now. */
  readonly sessions: number;
  /** Ends every session's standing and resumed event streams (GET), so a closing gateway is not held open by idle clients. */
  drain(): void;
  /**
   * Closes, with their streams, the sessions idle longer than `idleMs` with nothing in flight (as
   * of `now`) and those whose token was revoked or has expired; the endpoint runs it every quarter
   * of `idleMs` (at least every minute).
   */
  sweep(now?: number): void;
  /** Closes every session and its streams. */
  close(): Promise<void>;
}

/** How a request to `/mcp` was authenticated by the listener that took it. */
export interface McpAuth {
  /** The token the request acts with (from its bearer header, or its session cookie). */
  readonly token: string | undefined;
  /** Its Origin was checked by the listener (so `allowedOrigins` does not apply). */
  readonly originChecked: boolean;
}

interface Session {
  /** Its key in the table: `pending-…` until initialize gives it its id. */
  id: string;
  readonly transport: StreamableHTTPServerTransport;
  readonly close: () => Promise<void>;
  /** The token that opened it (its tools act with it), and its SHA-256. */
  readonly token: string;
  readonly tokenHash: Buffer;
  /** The tenant the token reaches ("*" for every tenant): the session counts against it. */
  readonly lane: string;
  lastSeen: number;
  inFlight: number;
}

// An initialize is a few hundred bytes of capabilities and client info, which its session keeps
// for as long as it is open: a larger one could pin megabytes per session.
const MAX_INITIALIZE_BYTES = 64 * 1024;

const DEFAULTS = {
  maxSessions: 1024,
  maxSessionsPerTenant: 32,
  idleMs: 30 * 60_000,
  maxBodyBytes: 4 * 1024 * 1024,
  replayMessages: 256,
  replayBytes: 4 * 1024 * 1024,
  allowedOrigins: [] as readonly string[],
};

/**
 * MCP over Streamable HTTP on the gateway's port. The port's mutual TLS has admitted the client;
 * every request must carry `authorization: Bearer <token>`, verified (and a failure audited) before
 * anything else, and a session answers only the token that opened it. Tools act through the
 * gateway's own services with that token, so they are validated, admitted per tenant and checked
 * exactly as calls that come over gRPC or Connect.
 */
export function createMcpHttp(options: McpHttpOptions): McpHttp {
  const o = { ...DEFAULTS, ...options };
  const sessions = new Map<string, Session>();
  // The HTTP request a tool call runs in, for its in-process calls (see clientsFor).
  const current = new AsyncLocalStorage<KernelSession>();
  const perLane = new Map<string, number>();
  // Streams resumed with Last-Event-ID: the SDK keeps one open after its replay (for what may
  // follow) and ends it only with its session, so drain() ends them itself.
  const resumed = new Set<HttpResponse>();

  const drop = (id: string): void => {
    const s = sessions.get(id);
    if (!s) return;
    sessions.delete(id);
    const n = (perLane.get(s.lane) ?? 1) - 1;
    if (n > 0) perLane.set(s.lane, n);
    else perLane.delete(s.lane);
  };

  const sweep = (now = Date.now()): void => {
    const stale = now - o.idleMs;
    for (const [id, s] of sessions) {
      // A session whose token was revoked or has expired can do nothing more; a stream it holds
      // open would otherwise keep it, and its place in its tenant's count, for good.
      if ((s.inFlight === 0 && s.lastSeen < stale) || !o.kernel.as(s.token).reach().valid) {
        drop(id);
        void s.close();
      }
    }
  };
  const sweeper = setInterval(sweep, Math.max(1000, Math.min(60_000, o.idleMs / 4)));
  sweeper.unref();

  async function open(token: string, tokenHash: Buffer, lane: string, requester: Requester): Promise<Session> {
    if (sessions.size >= o.maxSessions || (perLane.get(lane) ?? 0) >= o.maxSessionsPerTenant) {
      const full = sessions.size >= o.maxSessions;
      throw new SoloError(
        "SOLO_ERR_OVERLOADED",
        full
          ? `the gateway has ${o.maxSessions} MCP sessions open, its limit`
          : `${lane === "*" ? "unscoped tokens have" : `tenant ${lane} has`} ${o.maxSessionsPerTenant} MCP sessions open, the limit per tenant`,
        { retryAfterMs: 1000, hint: "close sessions you no longer use (DELETE /mcp with their mcp-session-id), or reuse one" },
      );
    }
    // Counted before the first await, so concurrent initializes cannot overshoot the limits.
    perLane.set(lane, (perLane.get(lane) ?? 0) + 1);
    const placeholder = `pending-${randomUUID()}`;
    const server = createMcpServer(
      o.clientsFor(token, requester, () => current.getStore()),
      o.version,
    );
    let session: Session | undefined;
    const transport = new StreamableHTTPServerTransport({
      sessionIdGenerator: randomUUID,
      eventStore: new ReplayStore(o.replayMessages, o.replayBytes),
      onsessioninitialized: (id) => {
        if (!session) return;
        sessions.delete(session.id);
        session.id = id;
        sessions.set(id, session);
      },
      onsessionclosed: (id) => drop(id),
    });
    transport.onclose = () => {
      if (session) drop(session.id);
    };
    session = {
      id: placeholder,
      transport,
      close: () => server.close(),
      token,
      tokenHash,
      lane,
      lastSeen: Date.now(),
      inFlight: 0,
    };
    // Until initialize assigns the id, the session holds its place under a name no client can send.
    sessions.set(placeholder, session);
    await server.connect(transport);
    return session;
  }

  async function serve(req: HttpRequest, res: HttpResponse, auth: McpAuth | undefined): Promise<void> {
    // MCP asks servers to check Origin against DNS rebinding: agents' clients send none, and a
    // web page may call only from an origin the operator allowed (or, on the web listener, its own).
    const origin = req.headers.origin;
    if (origin !== undefined && !auth?.originChecked && !o.allowedOrigins.includes(origin)) {
      throw new SoloError(
        "SOLO_ERR_MCP_ORIGIN_DENIED",
        `requests from the web origin ${JSON.stringify(origin.slice(0, 200))} are not allowed`,
        {
          field: "origin",
          hint: "MCP clients send no Origin; to let a web page call /mcp, add its origin to the gateway's mcp.allowedOrigins",
        },
      );
    }
    const token = auth ? auth.token : bearer(req.headers.authorization ?? null);
    const requester = requesterOf(req);
    // The request's one verification of its token: the tools it calls act on this session too.
    const verified = o.kernel.as(token, viaOfRequest(req));
    const principal = await verified.whoami();
    const tokenHash = createHash("sha256")
      .update(token ?? "")
      .digest();
    const sid = req.headers["mcp-session-id"];
    let session: Session | undefined;
    if (sid !== undefined) {
      session = typeof sid === "string" ? sessions.get(sid) : undefined;
      if (!session || session.id.startsWith("pending-")) {
        throw new SoloError("SOLO_ERR_MCP_SESSION_NOT_FOUND", `no MCP session ${JSON.stringify(String(sid).slice(0, 80))} is open`, {
          hint: "it was closed, idle too long, or the gateway restarted: send initialize again without mcp-session-id",
        });
      }
      if (!timingSafeEqual(session.tokenHash, tokenHash)) {
        throw new SoloError("SOLO_ERR_MCP_SESSION_FORBIDDEN", "this MCP session was opened with another token", {
          hint: "a session answers only the token that opened it; initialize your own",
        });
      }
    }
    if (req.method !== "POST" && req.method !== "GET" && req.method !== "DELETE") {
      throw new SoloError("SOLO_ERR_MCP_REQUEST_INVALID", `/mcp takes POST, GET and DELETE, not ${req.method}`, { field: ":method" });
    }
    const body =
      req.method === "POST" ? await readJson(req, session ? o.maxBodyBytes : Math.min(o.maxBodyBytes, MAX_INITIALIZE_BYTES)) : undefined;
    if (!session) {
      if (req.method !== "POST" || !isInitializeRequest(body)) {
        throw new SoloError("SOLO_ERR_MCP_REQUEST_INVALID", "a request without mcp-session-id must be a POST of initialize", {
          field: "mcp-session-id",
          hint: "initialize first; send the mcp-session-id it answers with on every later request",
        });
      }
      session = await open(token as string, tokenHash, principal.tenant ?? "*", requester);
    }
    const s = session;
    s.lastSeen = Date.now();
    s.inFlight++;
    plain(res).once("close", () => {
      s.inFlight--;
      s.lastSeen = Date.now();
    });
    if (req.method === "GET" && req.headers["last-event-id"] !== undefined) {
      resumed.add(res);
      plain(res).once("close", () => resumed.delete(res));
    }
    ownHeaders(res, req.httpVersionMajor === 2);
    // The SDK converts Node's request and response with @hono/node-server's listener, which takes
    // node:http2's compatibility objects as well as node:http's; its types name only the latter.
    await current.run(verified, () => s.transport.handleRequest(req as unknown as IncomingMessage, res as unknown as ServerResponse, body));
    if (s.id.startsWith("pending-")) {
      // The initialize was refused (the SDK answered why): the session never opened.
      drop(s.id);
      await s.close();
    }
  }

  return {
    handle(req, res, auth) {
      serve(req, res, auth).catch((err: unknown) => {
        if (isDenial(err)) o.onDenied?.(req);
        refuse(res, err);
      });
    },
    get sessions() {
      return [...sessions.keys()].filter((k) => !k.startsWith("pending-")).length;
    },
    drain() {
      for (const s of sessions.values()) s.transport.closeStandaloneSSEStream();
      for (const res of resumed) {
        if (res.headersSent) res.end();
        else plain(res).destroy();
      }
    },
    sweep,
    async close() {
      clearInterval(sweeper);
      const all = [...sessions.values()];
      sessions.clear();
      perLane.clear();
      await Promise.allSettled(all.map((s) => s.close()));
    },
  };
}

// HTTP/2 forbids HTTP/1's connection-specific headers; the SDK's event streams set
// `connection: keep-alive`, which node:http2 would drop with a warning on every stream. And the
// SDK's streams say `cache-control: no-cache`: nothing /mcp answers may be stored by a cache
// (results carry services' data), so every answer says no-store, on either HTTP version.
const CONNECTION_HEADERS = new Set(["connection", "keep-alive", "proxy-connection", "transfer-encoding", "upgrade"]);
function ownHeaders(res: HttpResponse, http2: boolean): void {
  const writeHead = res.writeHead.bind(res) as (status: number, headers?: unknown) => HttpResponse;
  const patched = (status: number, ...rest: unknown[]): HttpResponse => {
    const headers = rest.find((h) => h !== null && typeof h === "object");
    if (headers && !Array.isArray(headers)) {
      const h = headers as Record<string, unknown>;
      for (const k of Object.keys(h)) {
        if (http2 && CONNECTION_HEADERS.has(k.toLowerCase())) delete h[k];
        if (k.toLowerCase() === "cache-control") delete h[k];
      }
      h["cache-control"] = "no-store";
    }
    return writeHead(status, headers ?? { "cache-control": "no-store" });
  };
  res.writeHead = patched as typeof res.writeHead;
}

async function readJson(req: HttpRequest, max: number): Promise<unknown> {
  const tooLarge = (): SoloError =>
    new SoloError("SOLO_ERR_MCP_REQUEST_TOO_LARGE", `the request body is over ${max} bytes`, {
      maxBytes: max,
      hint: "send smaller arguments (deploy takes code up to 1 MiB)",
    });
  const bytes = await readBody(req, max, tooLarge);
  // Read leniently, invalid bytes would become U+FFFD in a tool's arguments (and so in code or secrets).
  if (!isUtf8(bytes)) {
    throw new SoloError("SOLO_ERR_MCP_REQUEST_INVALID", "the request body is not valid UTF-8", {
      field: "body",
      hint: "send the JSON-RPC message encoded as UTF-8",
    });
  }
  const text = bytes.toString("utf8");
  try {
    return JSON.parse(text) as unknown;
  } catch (err) {
    throw new SoloError("SOLO_ERR_MCP_REQUEST_INVALID", `the request body is not JSON: ${(err as Error).message}`, {
      field: "body",
      hint: "send one JSON-RPC message (or a batch) as application/json",
    });
  }
}

// A refusal as MCP clients expect it: an HTTP status and a JSON-RPC error whose data carries
// Solo's code, reason, field and hint.
function refuse(response: HttpResponse, err: unknown): void {
  const res = plain(response);
  const e =
    err instanceof SoloError ? err : new SoloError("SOLO_ERR_INTERNAL", "the MCP endpoint failed unexpectedly; see the kernel's log");
  if (res.headersSent) {
    res.destroy();
    return;
  }
  const { hint: _, field, ...details } = e.details as Record<string, unknown>;
  const hint = e.hintFor("mcp");
  const jsonRpcCode = e.reason === "SOLO_ERR_MCP_REQUEST_INVALID" && field === "body" ? -32700 : -32000;
  const { status, headers } = httpRefusal(e);
  res.writeHead(status, headers);
  res.end(
    JSON.stringify({
      jsonrpc: "2.0",
      id: null,
      error: { code: jsonRpcCode, message: e.message, data: { code: e.code, reason: e.reason, field, hint, details } },
    }),
  );
}

/**
 * The messages a session sent, kept (the last `max`, and no more than `maxBytes` of their JSON) so a
 * client that lost a stream can resume it. Bounded in bytes as well as in number: results can be
 * megabytes each (a reply, a module's source), and every session of every tenant holds its own.
 */
class ReplayStore implements EventStore {
  private readonly events: Array<{ id: EventId; stream: StreamId; json: string; bytes: number }> = [];
  private bytes = 0;
  private seq = 0;
  private readonly max: number;
  private readonly maxBytes: number;
  constructor(max: number, maxBytes: number) {
    this.max = max;
    this.maxBytes = maxBytes;
  }

  async storeEvent(stream: StreamId, message: JSONRPCMessage): Promise<EventId> {
    const id = `${++this.seq}`;
    const json = JSON.stringify(message);
    const bytes = Buffer.byteLength(json);
    if (bytes > this.maxBytes) {
      // Too large to keep: what came before it goes too, so no resume can silently skip it.
      this.events.length = 0;
      this.bytes = 0;
      return id;
    }
    this.events.push({ id, stream, json, bytes });
    this.bytes += bytes;
    while (this.events.length > this.max || this.bytes > this.maxBytes) this.bytes -= this.events.shift()?.bytes ?? 0;
    return id;
  }

  async getStreamIdForEventId(id: EventId): Promise<StreamId | undefined> {
    return this.events.find((e) => e.id === id)?.stream;
  }

  async replayEventsAfter(last: EventId, { send }: { send: (id: EventId, message: JSONRPCMessage) => Promise<void> }): Promise<StreamId> {
    const at = this.events.findIndex((e) => e.id === last);
    const from = this.events[at];
    if (!from) {
      throw new SoloError("SOLO_ERR_MCP_REQUEST_INVALID", `event ${JSON.stringify(last.slice(0, 40))} is no longer kept`, {
        field: "last-event-id",
        hint: "a session keeps its last messages only; start the request again",
      });
    }
    for (const e of this.events.slice(at + 1)) if (e.stream === from.stream) await send(e.id, JSON.parse(e.json) as JSONRPCMessage);
    return from.stream;
  }
}
