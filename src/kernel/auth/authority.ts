import { createHash } from "node:crypto";
import type { GrantedToken, TokenInfo, Via } from "../../api/tokens.ts";
import { type DetailsOf, SoloError } from "../../lib/errors/errors.ts";
import { words } from "../../lib/errors/transport.ts";
import { checkName, describeType } from "../../lib/names.ts";
import type { TokenRow } from "../../store/store.ts";
import type { EventLog } from "../log/event-log.ts";
import { DenialLedger } from "./denials.ts";
import { allows, formatPermission, type Permission, parsePermissions } from "./permissions.ts";
import { checkTokenId, type Principal, type TokenPrincipal, type TokenTable, tokenInfo } from "./tokens.ts";

/** A verified principal allowed to go on, or the denial (to record with `denied` before reporting it). */
export type Decision =
  | { readonly ok: true; readonly principal: TokenPrincipal }
  | { readonly ok: false; readonly error: unknown; readonly principal?: TokenPrincipal };

/** What an operation needs: a permission, or (for the tenant- and vault-wide operations) an unscoped token. */
export type Need = Permission | null;

/** The operation and the tenant it touches, for the check and its audit record. */
export interface Target {
  /** `deploy`, `call`, `events`, `tokens.grant`, ... */
  readonly operation: string;
  /** The tenant acted on; null for kernel-wide operations (tenants, vault, the admin read). */
  readonly tenant: string | null;
  /** The service, secret or token acted on, when there is one. */
  readonly subject?: string | null;
  /** The request it serves (who sent it, its id), for the audit record of a denial. */
  readonly via?: Via | undefined;
}

const MAX_TTL_MS = 10 * 365 * 24 * 3600 * 1000;
const MAX_LABEL = 200;
const SPEC_KEYS = new Set(["tenant", "permissions", "ttlMs", "label"]);
/** A token's successful verifications are recorded at most this often (per token). */
export const VERIFIED_RECORD_INTERVAL_MS = 60_000;

/**
 * Decides who may do what. Every operation of a session comes here first: the token is verified,
 * its reach and permissions are checked against the operation, and a denial is recorded
 * (`capability_denied`, with the operation and the reason, never the token) before the caller
 * hears of it. Successful verifications are counted, and recorded at most once a minute per token.
 */
export class Authority {
  private readonly log: EventLog;
  readonly tokens: TokenTable;
  private readonly now: () => number;
  private readonly tenantLive: (name: string) => boolean;
  private readonly verified = new Map<string, { count: number; recordedAt: number }>();
  /** Denials, recorded and counted so that a flood of them costs a handful of writes. */
  readonly denials: DenialLedger;
  /** Successful verifications since the kernel opened (all tokens). */
  verifications = 0;

  constructor(log: EventLog, tokens: TokenTable, now: () => number, tenantLive: (name: string) => boolean) {
    this.log = log;
    this.tokens = tokens;
    this.now = now;
    this.tenantLive = tenantLive;
    this.denials = new DenialLedger((e) => log.append(e), now);
  }

  /** Verifies `token` and checks it may do `target` with `need`; audits a denial. */
  async authorize(token: unknown, target: Target, need: Need): Promise<TokenPrincipal> {
    const decision = this.decide(token, target, need);
    if (decision.ok) return decision.principal;
    await this.denied(decision.error, target, decision.principal, token);
    throw decision.error;
  }

  /**
   * The same decision without a promise, for the call path: the principal (counted), or the
   * denial, which the caller must record with {@link denied} before reporting it.
   */
  decide(token: unknown, target: Target, need: Need): Decision {
    let principal: TokenPrincipal | undefined;
    try {
      principal = this.tokens.verify(token, this.now());
      this.check(principal, target, need);
    } catch (error) {
      return principal ? { ok: false, error, principal } : { ok: false, error };
    }
    this.count(principal);
    return { ok: true, principal };
  }

  /**
   * The decision for a principal whose token was verified moments ago, for the request it serves
   * (a session's pinned verification): the same check and count as {@link decide}, without hashing
   * the token again.
   */
  decideFor(principal: TokenPrincipal, target: Target, need: Need): Decision {
    try {
      this.check(principal, target, need);
    } catch (error) {
      return { ok: false, error, principal };
    }
    this.count(principal);
    return { ok: true, principal };
  }

  /** {@link authorize} for a principal verified moments ago (see {@link decideFor}). */
  async authorizeFor(principal: TokenPrincipal, target: Target, need: Need): Promise<TokenPrincipal> {
    const decision = this.decideFor(principal, target, need);
    if (decision.ok) return decision.principal;
    await this.denied(decision.error, target, principal);
    throw decision.error;
  }

  /** {@link verifyToken} for a principal verified moments ago: counted as a verification. */
  vouch(principal: TokenPrincipal): TokenPrincipal {
    this.count(principal);
    return principal;
  }

  /** Checks an already verified principal against `target` and `need`; audits a denial. */
  async permit(p: Principal, target: Target, need: Need): Promise<void> {
    try {
      this.check(p, target, need);
    } catch (err) {
      await this.denied(err, target, p.kind === "token" ? p : undefined);
      throw err;
    }
  }

  /** Verifies `token` alone (for what any valid token may do); audits a failure. */
  async verifyToken(token: unknown, operation: string, via?: Via): Promise<TokenPrincipal> {
    let principal: TokenPrincipal;
    try {
      principal = this.tokens.verify(token, this.now());
    } catch (err) {
      await this.denied(err, { operation, tenant: null, via }, undefined, token);
      throw err;
    }
    this.count(principal);
    return principal;
  }

  /** Throws SOLO_ERR_PERMISSION_DENIED unless `p` may do `target` with `need`. */
  check(p: Principal, target: Target, need: Need): void {
    if (p.kind === "system") return;
    if (p.tenant !== null && p.tenant !== target.tenant) {
      throw new SoloError(
        "SOLO_ERR_PERMISSION_DENIED",
        target.tenant === null
          ? `${target.operation} reaches across tenants; token ${p.id} is scoped to tenant ${p.tenant}`
          : `token ${p.id} is scoped to tenant ${p.tenant} and cannot ${target.operation} in tenant ${target.tenant}`,
        { operation: target.operation, tokenId: p.id, tenant: target.tenant, hint: "use a token of that tenant, or an unscoped one" },
      );
    }
    if (need === null) {
      if (p.tenant !== null) {
        throw new SoloError("SOLO_ERR_PERMISSION_DENIED", `${target.operation} needs an unscoped (admin) token`, {
          operation: target.operation,
          tokenId: p.id,
        });
      }
      return;
    }
    if (!allows(p.permissions, need)) {
      const required = formatPermission(need);
      throw new SoloError(
        "SOLO_ERR_PERMISSION_DENIED",
        `token ${p.id} lacks the permission ${required} that ${target.operation}${target.subject ? ` of ${target.subject}` : ""} needs`,
        {
          operation: target.operation,
          required,
          tokenId: p.id,
          ...(target.tenant !== null ? { tenant: target.tenant } : {}),
          hint: `ask for a token that includes ${required}`,
        },
      );
    }
  }

  /** Whether `p` holds `need` within `tenant` (no audit): for choices, not for gates. */
  holds(p: Principal, tenant: string | null, need: Permission): boolean {
    if (p.kind === "system") return true;
    if (p.tenant !== null && p.tenant !== tenant) return false;
    return allows(p.permissions, need);
  }

  /**
   * Records a denial (the error is the caller's to throw), against the requester: in its own
   * tenant's chain when it proved one with a valid scoped token, else in the kernel's, never in
   * the chain of a tenant it could not prove it may act for. Repeats are counted (DenialLedger).
   */
  denied(err: unknown, target: Target, principal?: TokenPrincipal, token?: unknown): Promise<void> {
    const e = SoloError.from(err);
    // Without a valid token, repeats are told apart by what was presented (never recorded).
    const credential = principal
      ? ""
      : createHash("sha256")
          .update(`${typeof token}:${String(token)}`)
          .digest("base64url")
          .slice(0, 16);
    const tokenId = principal?.id ?? (typeof e.details.tokenId === "string" ? e.details.tokenId : null);
    return this.denials.record({
      tenant: principal?.tenant ?? null,
      subject: target.subject ?? null,
      operation: target.operation,
      targetTenant: target.tenant,
      reason: e.reason,
      message: e.message,
      tokenId,
      ...(typeof e.details.required === "string" ? { required: e.details.required } : {}),
      via: target.via,
      credential,
    });
  }

  private count(p: TokenPrincipal): void {
    this.verifications++;
    const now = this.now();
    let v = this.verified.get(p.id);
    if (!v) {
      v = { count: 0, recordedAt: Number.NEGATIVE_INFINITY };
      this.verified.set(p.id, v);
    }
    v.count++;
    if (now - v.recordedAt < VERIFIED_RECORD_INTERVAL_MS) return;
    const count = v.count;
    v.count = 0;
    v.recordedAt = now;
    void this.log
      .append({ tenant: p.tenant, type: "capability_verified", subject: p.id, payload: { tokenId: p.id, verifications: count } })
      .catch((failure: unknown) => console.error("solo: recording capability_verified failed:", failure));
  }

  /**
   * Makes a token. From the system principal: any tenant, any permissions, no parent. From a
   * token: a child of that token, holding no more than it (permissions, tenant, expiry).
   */
  async grant(p: Principal, input: unknown, operation: "tokens.grant" | "tokens.attenuate"): Promise<GrantedToken> {
    const spec = checkSpec(input, p);
    const now = this.now();
    if (spec.tenant !== null && !this.tenantLive(spec.tenant)) {
      throw new SoloError("SOLO_ERR_TENANT_NOT_FOUND", `no tenant named ${spec.tenant}`, {
        tenant: spec.tenant,
        hint: `create it first with ${words("tenant.create", { name: spec.tenant })}`,
      });
    }
    let expiresAt = spec.ttlMs === undefined ? null : now + spec.ttlMs;
    if (p.kind === "token") {
      if (p.tenant !== null && spec.tenant !== p.tenant) {
        throw attenuation(
          `token ${p.id} is scoped to tenant ${p.tenant}; a token derived from it cannot reach ${spec.tenant ?? "every tenant"}`,
          {
            tenant: spec.tenant,
          },
        );
      }
      for (const want of spec.permissions) {
        if (!allows(p.permissions, want)) {
          const text = formatPermission(want);
          throw attenuation(`a token derived from ${p.id} cannot hold ${text}: ${p.id} does not`, { permission: text });
        }
      }
      if (p.expiresAt !== null) {
        if (expiresAt === null) expiresAt = p.expiresAt;
        else if (expiresAt > p.expiresAt) {
          throw attenuation(`the derived token would expire after ${p.id} does (${new Date(p.expiresAt).toISOString()})`, {
            expiresAt: new Date(p.expiresAt).toISOString(),
          });
        }
      }
    }
    const { row, token } = this.tokens.mint({
      tenant: spec.tenant,
      permissions: JSON.stringify(spec.permissions.map(formatPermission)),
      expiresAt,
      createdAt: now,
      creator: p.kind === "token" ? p.id : "system",
      parent: p.kind === "token" ? p.id : null,
      label: spec.label,
    });
    await this.log.write(
      [{ t: "token.put", token: row }],
      [
        {
          tenant: spec.tenant,
          type: "capability_granted",
          subject: row.id,
          payload: {
            tokenId: row.id,
            operation,
            permissions: JSON.parse(row.permissions) as string[],
            expiresAt: expiresAt === null ? null : new Date(expiresAt).toISOString(),
            creator: row.creator,
            parent: row.parent,
            label: row.label,
          },
        },
      ],
    );
    this.tokens.add(row);
    return { ...tokenInfo(row, spec.permissions, now), token };
  }

  /**
   * Tokens `p` may see: the system and unscoped tokens with `tokens:grant` see all (or one
   * tenant's); a tenant token with `tokens:grant` sees its tenant's; any other token, itself and
   * what was derived from it.
   */
  list(p: Principal, tenant?: string | null): TokenInfo[] {
    const now = this.now();
    const within = (r: TokenRow): boolean => tenant === undefined || r.tenant === tenant;
    if (p.kind === "system" || (p.tenant === null && this.holds(p, null, { action: "tokens:grant" }))) return this.tokens.list(within, now);
    if (p.tenant !== null && this.holds(p, p.tenant, { action: "tokens:grant" })) {
      return this.tokens.list((r) => r.tenant === p.tenant && within(r), now);
    }
    return this.tokens.list((r) => this.tokens.descendsFrom(r.id, p.id) && within(r), now);
  }

  /** Revokes a token and everything derived from it, durably, then at once in memory. */
  async revoke(p: Principal, idInput: unknown, via?: Via): Promise<{ readonly revoked: readonly string[] }> {
    const id = checkTokenId(idInput);
    const row = this.tokens.get(id);
    const reachable =
      row !== undefined &&
      (p.kind === "system" ||
        this.tokens.descendsFrom(id, p.id) ||
        (p.tenant === null && this.holds(p, null, { action: "tokens:grant" })) ||
        (p.tenant !== null && row.tenant === p.tenant && this.holds(p, p.tenant, { action: "tokens:grant" })));
    if (!row || !reachable) {
      const err = new SoloError("SOLO_ERR_TOKEN_NOT_FOUND", `no token ${id} within this principal's reach`, {
        tokenId: id,
        hint: `${words("tokens.list")} shows the tokens you can revoke`,
      });
      // Recorded alike whether the token exists or not: the record must not tell a tenant that.
      if (p.kind === "token") await this.denied(err, { operation: "tokens.revoke", tenant: p.tenant, subject: id, via }, p);
      throw err;
    }
    const ids = this.tokens.lineage(id);
    if (ids.length === 0) return { revoked: [] };
    const at = this.now();
    await this.log.write(
      [{ t: "token.revoke", ids, revokedAt: at }],
      [
        {
          tenant: row.tenant,
          type: "capability_revoked",
          subject: id,
          payload: { tokenId: id, revoked: ids, by: p.kind === "token" ? p.id : "system" },
        },
      ],
    );
    this.tokens.revoked(ids, at);
    return { revoked: ids };
  }
}

function checkSpec(input: unknown, p: Principal): { tenant: string | null; permissions: Permission[]; ttlMs?: number; label: string } {
  if (input === null || typeof input !== "object" || Array.isArray(input)) {
    throw new SoloError("SOLO_ERR_REQUEST_INVALID", `a token spec must be an object, got ${describeType(input)}`, {
      hint: '{ tenant: "acme", permissions: ["call:*"], ttlMs: 3600000 }',
    });
  }
  const s = input as Record<string, unknown>;
  for (const k of Object.keys(s)) {
    if (!SPEC_KEYS.has(k)) {
      throw new SoloError("SOLO_ERR_REQUEST_INVALID", `unknown token spec field ${JSON.stringify(k)}`, {
        field: k,
        hint: `the fields are ${[...SPEC_KEYS].join(", ")}`,
      });
    }
  }
  // A token's own tenant is the default for what it derives; otherwise unscoped must be asked for.
  const tenantIn = s.tenant === undefined ? (p.kind === "token" ? p.tenant : undefined) : s.tenant;
  if (tenantIn === undefined) {
    throw new SoloError("SOLO_ERR_REQUEST_INVALID", "tenant is required: a tenant name, or null for an unscoped (admin) token", {
      field: "tenant",
    });
  }
  const tenant = tenantIn === null ? null : checkName(tenantIn, "tenant");
  const permissions = parsePermissions(s.permissions, "permissions", tenant === null);
  let ttlMs: number | undefined;
  if (s.ttlMs !== undefined) {
    if (typeof s.ttlMs !== "number" || !Number.isInteger(s.ttlMs) || s.ttlMs < 1000 || s.ttlMs > MAX_TTL_MS) {
      throw new SoloError(
        "SOLO_ERR_REQUEST_INVALID",
        `ttlMs must be an integer from 1000 to ${MAX_TTL_MS} (10 years), got ${describeType(s.ttlMs)}`,
        {
          field: "ttlMs",
        },
      );
    }
    ttlMs = s.ttlMs;
  }
  let label = "";
  if (s.label !== undefined) {
    // biome-ignore lint/suspicious/noControlCharactersInRegex: refusing control characters is the point
    if (typeof s.label !== "string" || s.label.length > MAX_LABEL || /[\u0000-\u001f\u007f]/.test(s.label)) {
      throw new SoloError(
        "SOLO_ERR_REQUEST_INVALID",
        `label must be a string of at most ${MAX_LABEL} characters without control characters`,
        {
          field: "label",
        },
      );
    }
    label = s.label;
  }
  return { tenant, permissions, ...(ttlMs !== undefined ? { ttlMs } : {}), label };
}

function attenuation(message: string, details: DetailsOf<"SOLO_ERR_TOKEN_ATTENUATION">): SoloError {
  return new SoloError("SOLO_ERR_TOKEN_ATTENUATION", message, {
    ...details,
    hint: "a derived token may hold only a subset of its parent's permissions, in its tenant, expiring no later",
  });
}
