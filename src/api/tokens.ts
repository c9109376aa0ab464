// Public types: capability tokens, the request an operation serves, and the embedding API's `tokens`.

/** What a new token is to be: given to `tokens.grant` and `tokens.attenuate`. */
export interface TokenSpec {
  /** The tenant the token reaches; null (or omitted, for an unscoped granter) for an unscoped (admin) token. */
  readonly tenant?: string | null;
  /** What it allows, e.g. `["call:billing", "events:read"]`. */
  readonly permissions: readonly string[];
  /** Lifetime from now; omitted: the parent's expiry (none for a token the embedder grants). */
  readonly ttlMs?: number;
  /** A note for whoever lists tokens (who it is for). */
  readonly label?: string;
}

/** A token as listed: everything but the token itself, which is shown once, at grant. */
export interface TokenInfo {
  readonly id: string;
  /** Null for an unscoped (admin) token. */
  readonly tenant: string | null;
  readonly permissions: readonly string[];
  readonly expiresAt: string | null;
  readonly createdAt: string;
  /** The id of the token that granted it, or `system`. */
  readonly creator: string;
  /** The token it was derived from; revoking that one revoked this one. */
  readonly parent: string | null;
  readonly label: string;
  readonly state: "active" | "expired" | "revoked";
  readonly revokedAt: string | null;
}

/** A token just granted: its info and, this once, the token. */
export interface GrantedToken extends TokenInfo {
  readonly token: string;
}

/** Tokens: grant, derive, list and revoke. */
export interface TokensApi {
  /**
   * Makes a token. The embedder may grant any tenant anything; a token with `tokens:grant` only
   * what it holds itself, within its reach (the new token is its child, as with `attenuate`).
   */
  grant(spec: TokenSpec): Promise<GrantedToken>;
  /** Lists the tokens the principal can see (never the tokens themselves). */
  list(filter?: { readonly tenant?: string | null }): Promise<TokenInfo[]>;
  /** Revokes a token and every token derived from it, at once and for good. */
  revoke(id: string): Promise<{ readonly revoked: readonly string[] }>;
}

/** Who made a request, as the edge saw it (the gateway fills it in; an embedder may). */
export interface Requester {
  /** The client's network address. */
  readonly address?: string;
  /** The SHA-256 fingerprint of its client certificate (hex, no colons). */
  readonly certificate?: string;
  /** Its certificate's subject common name. */
  readonly name?: string;
}

/** The request an operation serves: who sent it and its id (for audit records). */
export interface Via {
  readonly requester?: Requester;
  /** The request id: the correlation id of the events it causes. */
  readonly correlationId?: string;
}
