import { hash, randomBytes, timingSafeEqual } from "node:crypto";
import type { TokenInfo } from "../../api/tokens.ts";
import { SoloError } from "../../lib/errors/errors.ts";
import { words } from "../../lib/errors/transport.ts";
import { describeType } from "../../lib/names.ts";
import type { TokenRow } from "../../store/store.ts";
import { formatPermission, type Permission, parsePermissions } from "./permissions.ts";

/** Every token starts with this, so a leaked one is easy to recognise (and to scan for). */
export const TOKEN_PREFIX = "solo_";
const TOKEN_PATTERN = /^solo_[A-Za-z0-9_-]{43}$/;
const ID_PATTERN = /^tok_[A-Za-z0-9_-]{12}$/;

/** Who an operation acts for: the embedder itself, or the holder of a verified token. */
export type Principal = SystemPrincipal | TokenPrincipal;

/** The embedding process: it holds the kernel object, so it already has every power. */
export interface SystemPrincipal {
  readonly kind: "system";
}

/** A verified capability token. */
export interface TokenPrincipal {
  readonly kind: "token";
  readonly id: string;
  /** The one tenant it reaches, or null for an unscoped (admin) token. */
  readonly tenant: string | null;
  readonly permissions: readonly Permission[];
  /** Expiry (ms since the epoch) or null. */
  readonly expiresAt: number | null;
}

/** The system principal. */
export const SYSTEM: SystemPrincipal = Object.freeze({ kind: "system" });

interface Entry {
  row: TokenRow;
  readonly hash: Buffer;
  readonly permissions: readonly Permission[];
}

/**
 * The kernel's tokens, all in memory (the store keeps them durably; this is the copy every
 * operation checks). Looked up by the SHA-256 of the presented token, compared in constant time.
 * Revocation reaches every descendant at once, and is marked here only after it is durable.
 */
export class TokenTable {
  private readonly byHash = new Map<string, Entry>();
  private readonly byId = new Map<string, Entry>();
  private readonly children = new Map<string, Set<string>>();

  constructor(rows: readonly TokenRow[]) {
    for (const r of rows) this.add(r);
  }

  /** Adds a token once its grant is durable. */
  add(row: TokenRow): void {
    const permissions = parsePermissions(JSON.parse(row.permissions), "permissions", row.tenant === null);
    const entry: Entry = { row, hash: Buffer.from(row.hash, "hex"), permissions };
    this.byHash.set(row.hash, entry);
    this.byId.set(row.id, entry);
    if (row.parent !== null) {
      const set = this.children.get(row.parent) ?? new Set<string>();
      set.add(row.id);
      this.children.set(row.parent, set);
    }
  }

  /** Checks a presented token; throws the precise `unauthenticated` reason. */
  verify(token: unknown, now: number): TokenPrincipal {
    if (token === undefined || token === null || token === "") {
      throw new SoloError("SOLO_ERR_TOKEN_MISSING", "no capability token was given", {
        hint: `${words("token.pass")}; see docs/security.md`,
      });
    }
    if (typeof token !== "string" || !TOKEN_PATTERN.test(token)) {
      throw new SoloError(
        "SOLO_ERR_TOKEN_MALFORMED",
        `the capability token is malformed: expected "${TOKEN_PREFIX}" and 43 base64url characters`,
        {
          got: typeof token === "string" ? `a string of ${token.length} characters` : describeType(token),
        },
      );
    }
    const digest = hash("sha256", token, "buffer");
    const entry = this.byHash.get(digest.toString("hex"));
    if (!entry || !timingSafeEqual(entry.hash, digest)) {
      throw new SoloError("SOLO_ERR_TOKEN_UNKNOWN", "the capability token is not one this kernel granted", {
        hint: "check you copied the whole token; a token of a deleted tenant is gone with it",
      });
    }
    const r = entry.row;
    if (r.revokedAt !== null) {
      throw new SoloError("SOLO_ERR_TOKEN_REVOKED", `capability token ${r.id} was revoked`, {
        tokenId: r.id,
        revokedAt: new Date(r.revokedAt).toISOString(),
      });
    }
    if (r.expiresAt !== null && now >= r.expiresAt) {
      throw new SoloError("SOLO_ERR_TOKEN_EXPIRED", `capability token ${r.id} expired at ${new Date(r.expiresAt).toISOString()}`, {
        tokenId: r.id,
        expiredAt: new Date(r.expiresAt).toISOString(),
        hint: "ask whoever granted it for a new one",
      });
    }
    return { kind: "token", id: r.id, tenant: r.tenant, permissions: entry.permissions, expiresAt: r.expiresAt };
  }

  /** Makes a new token (not yet added: add its row once the grant is durable). */
  mint(spec: Omit<TokenRow, "id" | "hash" | "revokedAt">): { row: TokenRow; token: string } {
    const token = TOKEN_PREFIX + randomBytes(32).toString("base64url");
    let id: string;
    do id = `tok_${randomBytes(9).toString("base64url")}`;
    while (this.byId.has(id));
    return { row: { ...spec, id, hash: hash("sha256", token, "hex"), revokedAt: null }, token };
  }

  /** One token's description, or undefined. */
  info(id: string, now: number): TokenInfo | undefined {
    const e = this.byId.get(id);
    return e ? tokenInfo(e.row, e.permissions, now) : undefined;
  }

  get(id: string): TokenRow | undefined {
    return this.byId.get(id)?.row;
  }

  /** `id` and every token derived from it, transitively, that is not revoked yet. */
  lineage(id: string): string[] {
    const out: string[] = [];
    const walk = (t: string): void => {
      const e = this.byId.get(t);
      if (!e) return;
      if (e.row.revokedAt === null) out.push(t);
      for (const c of this.children.get(t) ?? []) walk(c);
    };
    walk(id);
    return out;
  }

  /** Whether `id` is `ancestor` or derived from it. */
  descendsFrom(id: string, ancestor: string): boolean {
    for (let t: string | null = id; t !== null; t = this.byId.get(t)?.row.parent ?? null) if (t === ancestor) return true;
    return false;
  }

  /** Marks tokens revoked, once that is durable. */
  revoked(ids: readonly string[], at: number): void {
    for (const id of ids) {
      const e = this.byId.get(id);
      if (e && e.row.revokedAt === null) e.row = { ...e.row, revokedAt: at };
    }
  }

  /** Marks every token of a tenant revoked (it was deleted). */
  revokeTenant(tenant: string, at: number): void {
    for (const e of this.byId.values()) if (e.row.tenant === tenant && e.row.revokedAt === null) e.row = { ...e.row, revokedAt: at };
  }

  /** Tokens matching a filter, oldest first. */
  list(filter: (row: TokenRow) => boolean, now: number): TokenInfo[] {
    const out: TokenInfo[] = [];
    for (const e of this.byId.values()) if (filter(e.row)) out.push(tokenInfo(e.row, e.permissions, now));
    return out;
  }
}

/** A token's public description. */
export function tokenInfo(r: TokenRow, permissions: readonly Permission[], now: number): TokenInfo {
  const iso = (ms: number | null): string | null => (ms === null ? null : new Date(ms).toISOString());
  return {
    id: r.id,
    tenant: r.tenant,
    permissions: permissions.map(formatPermission),
    expiresAt: iso(r.expiresAt),
    createdAt: new Date(r.createdAt).toISOString(),
    creator: r.creator,
    parent: r.parent,
    label: r.label,
    state: r.revokedAt !== null ? "revoked" : r.expiresAt !== null && now >= r.expiresAt ? "expired" : "active",
    revokedAt: iso(r.revokedAt),
  };
}

/** Checks a token id as given to revoke. */
export function checkTokenId(value: unknown, field = "id"): string {
  if (typeof value !== "string" || !ID_PATTERN.test(value)) {
    throw new SoloError("SOLO_ERR_REQUEST_INVALID", `${field} must be a token id like "tok_AbCdEfGhIjKl", got ${describeType(value)}`, {
      field,
      hint: `token ids are shown by ${words("tokens.list")}; a token itself (solo_...) is not its id`,
    });
  }
  return value;
}
