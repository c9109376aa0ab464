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

  /** What `handleCall` returns (or resolves with). */
  interface CallResult<S, R> {
    readonly reply: R;
    readonly state: S;
  }

  /** What `handleCast` and `handleInfo` return (or resolve with). */
  interface NoReply<S> {
    readonly state: S;
  }

  /** The errors `solo.call`, `solo.storage`, `solo.emit`, `solo.secrets` and `solo.fetch` reject with. */
  interface Error extends globalThis.Error {
    readonly name: "SoloError";
    /** A Connect code name: `not_found`, `permission_denied`, `unavailable`, ... */
    readonly code: string;
    /** `SOLO_ERR_...` (docs/errors.md). */
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
