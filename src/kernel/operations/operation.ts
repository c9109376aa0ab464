// What an operation of the embedding API is: how a token is admitted to it, and what it does for a
// principal once admitted. The Kernel runs it for the embedder (always admitted); a session admits
// its token first. Each operation is defined once, in this folder.

import type { Via } from "../../api/tokens.ts";
import type { Permission } from "../auth/permissions.ts";
import type { Principal, TokenPrincipal } from "../auth/tokens.ts";
import { assertOpen, type Parts } from "../parts.ts";

/** A session's checks of its token, each audited when it denies. */
export interface Gate {
  /** Verifies the token and checks that it holds `need` on the target. */
  require(operation: string, tenant: string | null, need: Permission | null, subject?: string | null): Promise<TokenPrincipal>;
  /** Verifies the token only (any valid token may do what needs no permission). */
  verify(operation: string): Promise<TokenPrincipal>;
  /** Checks a principal already verified. */
  permit(p: TokenPrincipal, operation: string, tenant: string | null, need: Permission | null, subject?: string | null): Promise<void>;
  /** Records a denial found after the checks (asking for more than the token holds). */
  denied(err: unknown, operation: string, tenant: string | null, p: TokenPrincipal): Promise<void>;
}

export interface Operation<A extends readonly unknown[], R> {
  /** For a token: checks the names it is given (a malformed one is not a denial), then the token. */
  readonly admit: (gate: Gate, ...args: A) => Promise<TokenPrincipal>;
  /** Does it, for a principal already admitted; `via` is the request a session serves. */
  readonly run: (k: Parts, p: Principal, via: Via | undefined, ...args: A) => R;
}

/** A call or cast: the hot path, decided without a promise of its own. */
export interface HotOperation<A extends readonly unknown[], R> {
  /** What the token must hold: the target's tenant and service (names checked), and the permission. */
  readonly target: (...args: A) => { readonly tenant: string; readonly subject: string; readonly need: Permission };
  readonly run: (k: Parts, ...args: A) => R;
}

/** Runs `fn` once the kernel is known open; a synchronous throw becomes a rejection. */
export function settled<T>(k: Parts, fn: () => Promise<T>): Promise<T> {
  try {
    assertOpen(k.lifetime);
    return fn();
  } catch (err) {
    return Promise.reject(err);
  }
}
