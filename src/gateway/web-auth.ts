/**
 * The web listener's authentication and browser safety: session cookies made from a token at
 * login (a random id mapped here to the token, never the token itself), the Origin rules that
 * stop cross-site requests riding on a cookie (CSRF), and the security headers of every response.
 */
import { isUtf8 } from "node:buffer";
import { randomBytes } from "node:crypto";
import { SoloError } from "../lib/errors/errors.ts";
import { httpRefusal } from "./errors.ts";
import { type HttpRequest, type HttpResponse, plain, readBody } from "./http-types.ts";

/**
 * The session cookie's name. `__Host-` makes browsers take it only when Secure, with Path=/ and no
 * Domain: no other host (a sibling subdomain) can set or shadow it.
 */
export const SESSION_COOKIE = "__Host-solo-session";

/** A cookie session lasts as long as its token, and at most this long (default 12 hours). */
export const DEFAULT_SESSION_MAX_MS = 12 * 60 * 60 * 1000;
/** Cookie sessions held at once (default 10,000): beyond it the oldest ends. */
export const DEFAULT_MAX_COOKIE_SESSIONS = 10_000;
/** Sessions one token may hold at once (a browser and a few more); its oldest ends past that. */
export const MAX_SESSIONS_PER_TOKEN = 16;
/** The largest login body (a token is at most 1 KiB). */
export const MAX_LOGIN_BYTES = 4096;

/**
 * Sent with every response of the web listener. It serves no page yet: nothing may be framed,
 * scripted or loaded, and nothing cached or leaked through a Referer. A dashboard served here later
 * loosens the CSP for its own pages only (`'self'` scripts and styles), never the API's.
 */
export const SECURITY_HEADERS: Readonly<Record<string, string>> = Object.freeze({
  "content-security-policy": "default-src 'none'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'",
  "x-content-type-options": "nosniff",
  "referrer-policy": "no-referrer",
  "strict-transport-security": "max-age=31536000",
  "x-frame-options": "DENY",
  "cross-origin-opener-policy": "same-origin",
  "cross-origin-resource-policy": "same-origin",
  "cache-control": "no-store",
});

interface CookieSession {
  readonly token: string;
  /** Epoch ms it ends. */
  readonly expires: number;
}

/**
 * Cookie sessions: a random 256-bit id per login, mapped to the token it was made from. Bounded:
 * the oldest ends when the table is full. The token is verified again on every request (its
 * revocation ends the session at once); the table only saves browsers from holding the token.
 */
export class CookieSessions {
  private readonly table = new Map<string, CookieSession>();
  private readonly max: number;
  private readonly maxMs: number;
  private readonly now: () => number;

  constructor(o: { max?: number; maxMs?: number; now?: () => number } = {}) {
    this.max = o.max ?? DEFAULT_MAX_COOKIE_SESSIONS;
    this.maxMs = o.maxMs ?? DEFAULT_SESSION_MAX_MS;
    this.now = o.now ?? Date.now;
  }

  /** Sessions held now. */
  get size(): number {
    return this.table.size;
  }

  /**
   * A new session for `token` (expiring with it, if sooner than the cap): its id and lifetime in
   * seconds. A token holds at most {@link MAX_SESSIONS_PER_TOKEN}, its own oldest ending past
   * that; when the table is full of others' live sessions the login is refused, never another's
   * session ended (one token's logins must not log everyone else out).
   */
  open(token: string, tokenExpires: number | null): { id: string; maxAgeSeconds: number } {
    const now = this.now();
    const expires = Math.min(now + this.maxMs, tokenExpires ?? Number.POSITIVE_INFINITY);
    const own: string[] = [];
    for (const [id, s] of this.table) if (s.token === token) own.push(id);
    while (own.length >= MAX_SESSIONS_PER_TOKEN) this.table.delete(own.shift() as string);
    if (this.table.size >= this.max) {
      for (const [id, s] of this.table) if (s.expires <= now) this.table.delete(id);
    }
    if (this.table.size >= this.max) {
      throw new SoloError("SOLO_ERR_OVERLOADED", `the web listener holds ${this.max} login sessions, its limit`, {
        tenant: null,
        retryAfterMs: 60_000,
        hint: "log out the sessions you no longer use (POST /logout), or use a bearer token instead of a cookie",
      });
    }
    const id = randomBytes(32).toString("base64url");
    this.table.set(id, { token, expires });
    return { id, maxAgeSeconds: Math.max(0, Math.floor((expires - now) / 1000)) };
  }

  /** The token of session `id`, or undefined if there is none (ended, expired, evicted). */
  tokenOf(id: string): string | undefined {
    const s = this.table.get(id);
    if (!s) return undefined;
    if (s.expires <= this.now()) {
      this.table.delete(id);
      return undefined;
    }
    return s.token;
  }

  /** Ends session `id`. */
  end(id: string): boolean {
    return this.table.delete(id);
  }

  /** Ends every session of `token` (it was revoked or has expired). */
  endToken(token: string): void {
    for (const [id, s] of this.table) if (s.token === token) this.table.delete(id);
  }
}

/** The session id in the request's cookie, if it carries one. */
export function sessionCookie(req: HttpRequest): string | undefined {
  const header = req.headers.cookie;
  if (header === undefined) return undefined;
  for (const part of (Array.isArray(header) ? header.join("; ") : header).split(";")) {
    const at = part.indexOf("=");
    if (at > 0 && part.slice(0, at).trim() === SESSION_COOKIE) return part.slice(at + 1).trim();
  }
  return undefined;
}

/** The Set-Cookie of a session (`maxAgeSeconds` 0 ends it in the browser). */
export function setCookie(id: string, maxAgeSeconds: number): string {
  return `${SESSION_COOKIE}=${id}; Max-Age=${maxAgeSeconds}; Path=/; Secure; HttpOnly; SameSite=Strict`;
}

/**
 * Whether a request authenticated by cookie may act: its Origin must be one of the listener's
 * own; a request with no Origin only if the browser says it is same-origin (Sec-Fetch-Site). A
 * safe request (GET, HEAD) with no Origin passes: browsers send none on same-origin GETs, and
 * reading the answer cross-site is what the same-origin policy already forbids.
 */
export function checkCookieOrigin(req: HttpRequest, own: ReadonlySet<string>): void {
  const origin = req.headers.origin;
  const site = req.headers["sec-fetch-site"];
  const safe = req.method === "GET" || req.method === "HEAD";
  if (origin !== undefined) {
    if (own.has(origin)) return;
  } else if (safe || site === "same-origin") {
    return;
  }
  throw new SoloError(
    "SOLO_ERR_WEB_ORIGIN_DENIED",
    origin !== undefined
      ? `a request from the web origin ${JSON.stringify(origin.slice(0, 200))} may not act with this listener's session cookie`
      : "a request authenticated by session cookie must say where it comes from (Origin or Sec-Fetch-Site: same-origin)",
    {
      field: "origin",
      hint: "pages of other origins cannot use a Solo session (CSRF); a program should send authorization: Bearer <token> instead of the cookie",
    },
  );
}

/**
 * Reads a login body: JSON `{"token": "..."}` or a form `token=...`, at most {@link MAX_LOGIN_BYTES}.
 * Anything else is refused precisely.
 */
export async function readLogin(req: HttpRequest): Promise<string> {
  const invalid = (message: string, hint: string): SoloError =>
    new SoloError("SOLO_ERR_WEB_LOGIN_INVALID", message, { field: "body", hint });
  const how = 'POST /login with {"token": "<token>"} as application/json, or token=<token> as a form';
  const bytes = await readBody(req, MAX_LOGIN_BYTES, () => invalid(`the login body is over ${MAX_LOGIN_BYTES} bytes`, how));
  if (!isUtf8(bytes)) throw invalid("the login body is not valid UTF-8", how);
  const text = bytes.toString("utf8");
  const type = String(req.headers["content-type"] ?? "")
    .split(";")[0]
    ?.trim()
    .toLowerCase();
  let token: unknown;
  if (type === "application/json") {
    try {
      token = (JSON.parse(text) as { token?: unknown } | null)?.token;
    } catch (err) {
      throw invalid(`the login body is not JSON: ${(err as Error).message}`, how);
    }
  } else if (type === "application/x-www-form-urlencoded") {
    token = new URLSearchParams(text).get("token") ?? undefined;
  } else {
    throw invalid(`the login body's content-type must be application/json or a form, not ${JSON.stringify(type?.slice(0, 80) ?? "")}`, how);
  }
  if (typeof token !== "string" || token.length === 0) throw invalid("the login body has no token", how);
  return token;
}

/** A JSON error answer of the web listener's own endpoints: `{ code, reason, message, field?, hint? }`. */
export function webError(response: HttpResponse, err: unknown): void {
  const res = plain(response);
  const e = err instanceof SoloError ? err : SoloError.from(err);
  if (res.headersSent) {
    res.destroy();
    return;
  }
  const { field } = e.details as { field?: string };
  // The web listener's HTTP clients read the network API's words.
  const hint = e.hintFor("rpc");
  const { status, headers } = httpRefusal(e);
  res.writeHead(status, headers);
  res.end(JSON.stringify({ code: e.code, reason: e.reason, message: e.message, ...(field ? { field } : {}), ...(hint ? { hint } : {}) }));
}

/** A JSON answer. */
export function webJson(response: HttpResponse, status: number, body: unknown, headers: Record<string, string> = {}): void {
  const res = plain(response);
  res.writeHead(status, { "content-type": "application/json", ...headers });
  res.end(JSON.stringify(body));
}
