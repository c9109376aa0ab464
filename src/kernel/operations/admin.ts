// The operations on tokens, tenants, secrets and the vault.

import type { TenantLimits } from "../../api/limits.ts";
import type { SecretInfo, VaultStatus } from "../../api/secrets.ts";
import type { TenantCreateOptions, TenantDeletion, TenantInfo } from "../../api/tenants.ts";
import type { GrantedToken, TokenInfo, TokenSpec } from "../../api/tokens.ts";
import { SoloError } from "../../lib/errors/errors.ts";
import { checkTenant } from "../../lib/names.ts";
import type { Principal } from "../auth/tokens.ts";
import { assertOpen, type Parts } from "../parts.ts";
import { checkSecretName } from "../vault/vault.ts";
import { type Operation, settled } from "./operation.ts";

// ---- tokens -----------------------------------------------------------------------------------

export const grantToken: Operation<[spec: TokenSpec], Promise<GrantedToken>> = {
  admit: async (g, spec) => {
    const asked = specTenant(spec);
    if (asked !== undefined) return g.require("tokens.grant", asked, { action: "tokens:grant" });
    // An omitted tenant means the granter's own (as for attenuate).
    const p = await g.verify("tokens.grant");
    await g.permit(p, "tokens.grant", p.tenant, { action: "tokens:grant" });
    return p;
  },
  run: (k, p, _via, spec) => settled(k, () => k.authority.grant(p, spec, "tokens.grant")),
};

export const listTokens: Operation<[filter?: { readonly tenant?: string | null }], Promise<TokenInfo[]>> = {
  admit: (g) => g.verify("tokens.list"),
  run: async (k, p, _via, filter) => {
    assertOpen(k.lifetime);
    const tenant = filter?.tenant;
    if (tenant !== undefined && tenant !== null) checkTenant(tenant);
    return k.authority.list(p, tenant);
  },
};

export const revokeToken: Operation<[id: string], Promise<{ readonly revoked: readonly string[] }>> = {
  admit: (g) => g.verify("tokens.revoke"),
  run: (k, p, via, id) => settled(k, () => k.authority.revoke(p, id, via)),
};

/** A token's own description (a session's `whoami`). */
export function tokenInfo(k: Parts, id: string): TokenInfo {
  const found = k.authority.tokens.info(id, k.opts.clock.now());
  if (!found) throw new SoloError("SOLO_ERR_TOKEN_NOT_FOUND", `no token ${id}`, { tokenId: id });
  return found;
}

function specTenant(spec: unknown): string | null | undefined {
  if (spec === null || typeof spec !== "object") return undefined;
  const t = (spec as { tenant?: unknown }).tenant;
  if (t === undefined || t === null) return t;
  return checkTenant(t);
}

// ---- tenants ----------------------------------------------------------------------------------

const TENANTS_WRITE = { action: "tenants:write" } as const;

export const createTenant: Operation<[name: string, options?: TenantCreateOptions], Promise<TenantInfo>> = {
  admit: async (g, name) => g.require("tenants.create", null, TENANTS_WRITE, checkTenant(name)),
  run: (k, _p, _via, name, options) => k.lifecycle.create(name, options),
};

export const listTenants: Operation<[], Promise<TenantInfo[]>> = {
  admit: (g) => g.require("tenants.list", null, { action: "tenants:read" }),
  run: (k) => k.lifecycle.list(),
};

export const getTenant: Operation<[name: string], Promise<TenantInfo>> = {
  admit: async (g, name) => {
    const t = checkTenant(name);
    const who = await g.verify("tenants.get");
    // A scoped token may read its own tenant's record.
    if (who.tenant === t) await g.permit(who, "tenants.get", t, { action: "services:read" });
    else await g.permit(who, "tenants.get", null, { action: "tenants:read" }, t);
    return who;
  },
  run: (k, _p, _via, name) => k.lifecycle.get(name),
};

export const updateTenant: Operation<[name: string, limits: Partial<TenantLimits>], Promise<TenantInfo>> = {
  admit: async (g, name) => g.require("tenants.update", null, TENANTS_WRITE, checkTenant(name)),
  run: (k, _p, _via, name, limits) => k.lifecycle.update(name, limits),
};

export const deleteTenant: Operation<[name: string], Promise<TenantDeletion>> = {
  admit: async (g, name) => g.require("tenants.delete", null, TENANTS_WRITE, checkTenant(name)),
  run: (k, _p, _via, name) => k.lifecycle.delete(name),
};

// ---- secrets ----------------------------------------------------------------------------------

/** The tenant of a secrets operation: the kernel open, the name valid, the tenant there. */
function secretsTenant(k: Parts, tenant: string): string {
  assertOpen(k.lifetime);
  const t = checkTenant(tenant);
  k.tenants.require(t);
  return t;
}

const by = (p: Principal): string => (p.kind === "token" ? p.id : "system");

export const putSecret: Operation<[tenant: string, name: string, value: string], Promise<SecretInfo>> = {
  admit: async (g, tenant, name) => g.require("secrets.put", checkTenant(tenant), { action: "secrets:write" }, checkSecretName(name)),
  run: async (k, p, _via, tenant, name, value) => k.vault.put(secretsTenant(k, tenant), name, value, by(p), k.opts.clock.now()),
};

export const deleteSecret: Operation<[tenant: string, name: string], Promise<boolean>> = {
  admit: async (g, tenant, name) => g.require("secrets.delete", checkTenant(tenant), { action: "secrets:write" }, checkSecretName(name)),
  run: async (k, p, _via, tenant, name) => k.vault.delete(secretsTenant(k, tenant), name, by(p)),
};

export const listSecrets: Operation<[tenant: string], Promise<SecretInfo[]>> = {
  admit: async (g, tenant) => g.require("secrets.list", checkTenant(tenant), { action: "secrets:read" }),
  run: async (k, _p, _via, tenant) => k.vault.list(secretsTenant(k, tenant)),
};

// ---- the vault --------------------------------------------------------------------------------

const ROTATE = { action: "vault:rotate" } as const;

export const vaultStatus: Operation<[], Promise<VaultStatus>> = {
  admit: (g) => g.require("vault.status", null, ROTATE),
  run: async (k) => {
    assertOpen(k.lifetime);
    return k.vault.status();
  },
};

export const rotateDataKey: Operation<[options?: { readonly wait?: boolean }], Promise<VaultStatus>> = {
  admit: (g) => g.require("vault.rotate", null, ROTATE),
  run: async (k, _p, _via, options) => {
    assertOpen(k.lifetime);
    const wait = options?.wait ?? false;
    if (typeof wait !== "boolean") {
      throw new SoloError("SOLO_ERR_REQUEST_INVALID", "vault.rotate: wait must be a boolean", { field: "wait" });
    }
    return k.vault.rotate(k.opts.clock.now(), wait);
  },
};

export const rotateMasterKey: Operation<[options?: { readonly newKey?: string }], Promise<VaultStatus>> = {
  admit: (g) => g.require("vault.rotateMasterKey", null, ROTATE),
  run: async (k, _p, _via, options) => {
    assertOpen(k.lifetime);
    const o = options ?? {};
    if (o === null || typeof o !== "object" || Object.keys(o).some((key) => key !== "newKey")) {
      throw new SoloError("SOLO_ERR_REQUEST_INVALID", "vault.rotateMasterKey takes { newKey? }", { field: "options" });
    }
    return k.vault.rotateMaster((o as { newKey?: unknown }).newKey);
  },
};
