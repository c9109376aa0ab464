/**
 * The globals a Solo service sees (docs/programming-model.md), as types for authors writing
 * services in TypeScript. Types only: Solo strips them at deploy, so a service never imports this
 * file; an editor or `tsc` finds it through the project's `include`.
 *
 * Beyond `solo` (below), a service has `console` and these standard web APIs, which TypeScript's
 * own `dom` library declares (`"lib": ["esnext", "dom"]`), so they are not declared again here:
 * `URL`, `URLSearchParams`, `TextEncoder`, `TextDecoder` (UTF-8 only), `atob`, `btoa`,
 * `structuredClone`, `crypto.getRandomValues`, `crypto.randomUUID`, and `crypto.subtle.digest`
 * (SHA-1, SHA-256, SHA-384, SHA-512) with HMAC `importKey("raw", ...)`, `sign` and `verify`. Those
 * libraries declare more than a service has: no `fetch` (use `solo.fetch`), `setTimeout`
 * (`solo.sendAfter`), `localStorage` (`solo.storage`), `Blob`, `Intl`, nor the rest of
 * `crypto.subtle`; the analyzer warns when code reads a global the sandbox lacks.
 */

/** JSON data: what requests, replies, messages, state and stored values are made of. */
type SoloJson = null | boolean | number | string | SoloJson[] | { [key: string]: SoloJson | undefined };

/** Types for the handler object a service exports. */
declare namespace Solo {
  /** The second-to-last argument of every handler. */
  interface Context {
    readonly tenant: string;
    readonly service: string;
    readonly version: number;
    /** The calling service's name, or null for calls and casts from outside (the gateway). */
    readonly from: string | null;
  }

  /** `handleCall`'s context: a call's also carries the handle to answer it later with. */
  interface CallContext extends Context {
    /**
     * This call's reply handle, for `solo.reply(ctx.replyTo, value)` or `solo.replyError(...)`
     * after `handleCall` returned `{ noreply: true, state }`. A short string unique to this service
     * instance: keep it in the state until the answer is known.
     */
    readonly replyTo: string;
  }

  /**
   * An error of the service's own, answering a call instead of a reply. The service does not
   * crash and keeps the state it returned; the caller gets `SOLO_ERR_APPLICATION_ERROR`
   * (`failed_precondition`) with `details: { service, answer: { code, message, details? } }`.
   */
  interface ErrorAnswer {
    /** The service's own code: 1-64 of letters, digits, `_ . : -`, starting with a letter (`not_found`). */
    readonly code: string;
    /** At most 2000 characters. */
    readonly message: string;
    /** Anything else the caller may use (the field at fault, a retry hint): JSON data. */
    readonly details?: SoloJson;
  }

  /**
   * What `handleCall` returns (or resolves with), one of three answers:
   * - `{ reply, state }`: the reply (`reply` undefined or left out: the caller gets no value);
   * - `{ error: { code, message, details? }, state }`: an error of the service's own;
   * - `{ noreply: true, state }`: no answer yet; answer later, from any handler, with
   *   `solo.reply(ctx.replyTo, value)` or `solo.replyError(ctx.replyTo, error)`. The caller
   *   still waits no longer than its own timeout (5 s by default).
   */
  type CallResult<S, R> = Replied<S, R> | Refused<S> | Deferred<S>;

  /** Answered with a value (or none). */
  interface Replied<S, R> {
    readonly reply?: R;
    readonly state: S;
    readonly error?: never;
    readonly noreply?: never;
  }

  /** Answered with an error of the service's own; the service goes on with `state`. */
  interface Refused<S> {
    readonly error: ErrorAnswer;
    readonly state: S;
    readonly reply?: never;
    readonly noreply?: never;
  }

  /** Not answered yet: keep `ctx.replyTo` and answer with `solo.reply` or `solo.replyError`. */
  interface Deferred<S> {
    readonly noreply: true;
    readonly state: S;
    readonly reply?: never;
    readonly error?: never;
  }

  /** What `handleCast` and `handleInfo` return (or resolve with): the next state. */
  interface Handled<S> {
    readonly state: S;
  }

  /**
   * The errors `solo.call`, `solo.storage`, `solo.emit`, `solo.secrets` and `solo.fetch` reject
   * with, and `solo.reply` and `solo.replyError` throw.
   */
  interface Error extends globalThis.Error {
    readonly name: "SoloError";
    /** A Connect code name: `not_found`, `permission_denied`, `unavailable`, ... */
    readonly code: string;
    /**
     * `SOLO_ERR_...` (docs/errors.md). `SOLO_ERR_APPLICATION_ERROR` from `solo.call` is the called
     * service's own error answer: its `details` are `{ service, answer: ErrorAnswer }`.
     */
    readonly reason: string;
    readonly details: Record<string, SoloJson>;
  }

  interface FetchRequest {
    readonly method?: "GET" | "HEAD" | "POST" | "PUT" | "PATCH" | "DELETE" | "OPTIONS";
    readonly headers?: Readonly<Record<string, string>>;
    readonly body?: string;
  }

  interface FetchResponse {
    readonly status: number;
    readonly statusText: string;
    /** Lower-case names. */
    readonly headers: Readonly<Record<string, string>>;
    /** The body as text (`JSON.parse` it for JSON). */
    readonly body: string;
    readonly url: string;
    readonly redirected: boolean;
    readonly bytes: number;
  }

  interface Storage {
    get<T = SoloJson>(key: string): Promise<T | undefined>;
    put(key: string, value: SoloJson): Promise<void>;
    delete(key: string): Promise<boolean>;
    list<T = SoloJson>(prefix?: string, options?: { after?: string; limit?: number }): Promise<Array<{ key: string; value: T }>>;
  }

  interface Api {
    call<T = SoloJson>(service: string, request: SoloJson, options?: { timeoutMs?: number }): Promise<T>;
    cast(service: string, message: SoloJson): void;
    /** Delivers `message` to this service's `handleInfo` after `ms` (0-86400000); returns the timer id. */
    sendAfter(ms: number, message: SoloJson): number;
    cancelTimer(id: number): boolean;
    /**
     * Answers a call whose `handleCall` returned `{ noreply: true, state }`, by its `ctx.replyTo`,
     * with `value` (undefined: no value). A call is answered once: a handle answered already, or
     * not this service's, throws `SOLO_ERR_REPLY_UNKNOWN`; a caller that gave up (its timeout
     * passed, or the calling service stopped) throws `SOLO_ERR_REPLY_TOO_LATE`, which a service
     * answering callers that may have gone should catch. Needs no grant.
     */
    reply(replyTo: string, value?: SoloJson): void;
    /**
     * Answers such a call with an error of the service's own, as `{ error }` from `handleCall`
     * would. Throws as `reply` does, and a TypeError for an error that is not `{ code, message, details? }`.
     */
    replyError(replyTo: string, error: ErrorAnswer): void;
    log(...args: unknown[]): void;
    warn(...args: unknown[]): void;
    error(...args: unknown[]): void;
    readonly storage: Storage;
    readonly secrets: { get(name: string): Promise<string> };
    fetch(url: string, init?: FetchRequest): Promise<FetchResponse>;
    /** Appends `svc.<service>.<name>`; resolves with the event id once durable. */
    emit(name: string, payload: SoloJson): Promise<number>;
  }
}

/** The service's only door to the world: each member is a power its deployment must be granted. */
declare const solo: Solo.Api;
