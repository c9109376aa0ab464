import { SoloError } from "../lib/errors/errors.ts";
import { checkService, checkTenant, describeType } from "../lib/names.ts";
// Types the session shares with the kernel, imported as types only (no cycle at run time).
import type {
  CallOptions,
  Deployment,
  DeploySpec,
  LogEntry,
  ServiceInfo,
  ServiceSource,
  ServiceVersion,
  SwapOptions,
  TenantUsage,
} from "./api.ts";
import type { Decision, Target, TokenSpec } from "./auth/authority.ts";
import type { Via } from "./auth/denials.ts";
import type { Permission } from "./auth/permissions.ts";
import type { GrantedToken, Principal, TokenInfo, TokenPrincipal } from "./auth/tokens.ts";
import type { TenantLimits } from "./limits.ts";
import type { SoloEvent, VerifyReport } from "./log/event-log.ts";
import type { EventPage, EventQuery, SubscribeOptions } from "./log/query.ts";
import type { TenantInfo } from "./tenants/tenants.ts";
import { checkSecretName, type SecretInfo, type VaultStatus } from "./vault/vault.ts";

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

/** Creating a tenant. */
export interface TenantCreateOptions {
  /** Overrides of the kernel's default tenant limits. */
  readonly limits?: Partial<TenantLimits>;
  /** Allow a name whose earlier tenant was deleted (the new tenant does not see the old one's events). */
  readonly reuseName?: boolean;
}

/** What deleting a tenant did. */
export interface TenantDeletion {
  readonly tenant: string;
  readonly services: number;
  readonly tokensRevoked: number;
  readonly secretsDeleted: number;
}

/** Tenants: kernel-wide, for the embedder and unscoped tokens. */
export interface TenantsApi {
  create(name: string, options?: TenantCreateOptions): Promise<TenantInfo>;
  list(): Promise<TenantInfo[]>;
  get(name: string): Promise<TenantInfo>;
  /** Replaces the tenant's limit overrides (omitted limits go back to the defaults). */
  update(name: string, limits: Partial<TenantLimits>): Promise<TenantInfo>;
  /**
   * Stops every service of the tenant (with `terminate`), revokes its tokens, deletes its secrets,
   * storage and deployments, and records `tenant_deleted`. Its events stay in the log (still
   * verifiable); the name is not reused unless asked for.
   */
  delete(name: string): Promise<TenantDeletion>;
}

/** A tenant's secrets. Values go in, and out only to services granted them. */
export interface SecretsApi {
  put(tenant: string, name: string, value: string): Promise<SecretInfo>;
  delete(tenant: string, name: string): Promise<boolean>;
  list(tenant: string): Promise<SecretInfo[]>;
}

/** The vault's keys. */
export interface VaultApi {
  status(): Promise<VaultStatus>;
  /** A new data key; secrets are re-sealed under it in the background (with `wait`, before resolving). */
  rotate(options?: { readonly wait?: boolean }): Promise<VaultStatus>;
  /**
   * A new master key: every data key is re-wrapped under it at once. With the data directory's
   * key file the kernel makes the key; with `SOLO_MASTER_KEY` give `newKey` (and start with it).
   */
  rotateMasterKey(options?: { readonly newKey?: string }): Promise<VaultStatus>;
}

/**
 * The kernel as the holder of one capability token sees it: the embedding API's operations, each
 * of which verifies the token and checks its permissions first (a denial is audited and changes
 * nothing). Tokens are checked at every operation, so a revocation or expiry takes effect at once.
 */
export interface KernelSession {
  /** The token's own description. */
  whoami(): Promise<TokenInfo>;
  /**
   * Whether the token is valid now and which tenant it reaches (null: every tenant), without
   * recording anything: for routing and admission (the gateway's per-tenant lanes), never for
   * deciding what the token may do.
   */
  reach(): { readonly valid: boolean; readonly tenant: string | null };
  deploy(spec: DeploySpec): Promise<Deployment>;
  call(tenant: string, service: string, request?: unknown, options?: CallOptions): Promise<unknown>;
  cast(tenant: string, service: string, message?: unknown): Promise<void>;
  kill(tenant: string, service: string): Promise<void>;
  list(tenant: string, filter?: { readonly tag?: string }): Promise<ServiceInfo[]>;
  status(tenant: string, service: string): Promise<ServiceInfo>;
  tenantUsage(tenant: string): Promise<TenantUsage>;
  /**
   * What of the kernel's metrics this token may read: `{ tenant: null }` for an unscoped token
   * (everything), `{ tenant }` for a scoped one (that tenant's series only). Needs
   * `services:read`; a denial is audited like any other.
   */
  metricsScope(): Promise<{ readonly tenant: string | null }>;
  restart(tenant: string, service: string): Promise<Deployment>;
  swap(tenant: string, service: string, code: string, options?: SwapOptions): Promise<Deployment>;
  rollback(tenant: string, service: string, version?: number): Promise<Deployment>;
  logs(tenant: string, service: string): Promise<LogEntry[]>;
  versions(tenant: string, service: string): Promise<ServiceVersion[]>;
  source(tenant: string, service: string, version?: number): Promise<ServiceSource>;
  /** Events of the token's tenant (an unscoped token: any tenant, or all). */
  events(query?: EventQuery): Promise<EventPage>;
  subscribe(options?: SubscribeOptions): AsyncIterableIterator<SoloEvent>;
  verify(): Promise<VerifyReport>;
  readonly tokens: TokensApi & {
    /** Derives a token from this one: a subset of its permissions, expiring no later. */
    attenuate(spec: Omit<TokenSpec, "tenant"> & { readonly tenant?: string | null }): Promise<GrantedToken>;
  };
  readonly tenants: TenantsApi;
  readonly secrets: SecretsApi;
  readonly vault: VaultApi;
}

/** What a session needs of the kernel: its operations, run for a principal already checked. @internal */
export interface SessionHost {
  authorize(token: unknown, target: Target, need: Permission | null): Promise<TokenPrincipal>;
  /** The same decision, synchronously: a denial must then be recorded with `denied`. */
  decide(token: unknown, target: Target, need: Permission): Decision;
  /** Whether a token is valid and which tenant it reaches; records nothing. */
  reach(token: unknown): { readonly valid: boolean; readonly tenant: string | null };
  /** Checks a principal already verified (by `verifyToken`); audits a denial. */
  permit(p: TokenPrincipal, target: Target, need: Permission | null): Promise<void>;
  /** Verifies the token only (any valid token may do what needs no permission); audits a failure. */
  verifyToken(token: unknown, operation: string, via?: Via): Promise<TokenPrincipal>;
  denied(err: unknown, target: Target, principal?: TokenPrincipal, token?: unknown): Promise<void>;
  /** Where a scoped principal's event reads start (its tenant's incarnation). */
  eventsFloor(tenant: string): number;
  tokenInfo(id: string): TokenInfo;
  deployAs(p: Principal, spec: DeploySpec, via?: Via): Promise<Deployment>;
  call(tenant: string, service: string, request?: unknown, options?: CallOptions): Promise<unknown>;
  cast(tenant: string, service: string, message?: unknown): Promise<void>;
  kill(tenant: string, service: string): Promise<void>;
  list(tenant: string, filter?: { readonly tag?: string }): ServiceInfo[];
  status(tenant: string, service: string): ServiceInfo;
  tenantUsage(tenant: string): TenantUsage;
  restart(tenant: string, service: string): Promise<Deployment>;
  swap(tenant: string, service: string, code: string, options?: SwapOptions): Promise<Deployment>;
  rollback(tenant: string, service: string, version?: number): Promise<Deployment>;
  logs(tenant: string, service: string): LogEntry[];
  versions(tenant: string, service: string): Promise<ServiceVersion[]>;
  source(tenant: string, service: string, version?: number): Promise<ServiceSource>;
  eventsIn(query: EventQuery | undefined, scope: { tenant: string; floor: number } | undefined): Promise<EventPage>;
  subscribeIn(
    options: SubscribeOptions | undefined,
    scope: { tenant: string; floor: number } | undefined,
  ): AsyncIterableIterator<SoloEvent>;
  verify(): Promise<VerifyReport>;
  grantToken(p: Principal, spec: unknown, operation: "tokens.grant" | "tokens.attenuate"): Promise<GrantedToken>;
  listTokens(p: Principal, tenant?: string | null): TokenInfo[];
  revokeToken(p: Principal, id: unknown, via?: Via): Promise<{ readonly revoked: readonly string[] }>;
  readonly tenants: TenantsApi;
  secretsFor(p: Principal): SecretsApi;
  readonly vault: VaultApi;
}

const service = (pattern: string, action: "deploy" | "call"): Permission => ({ action, pattern });

/** @internal */
export class Session implements KernelSession {
  private readonly host: SessionHost;
  private readonly token: unknown;
  private readonly via: Via | undefined;

  constructor(host: SessionHost, token: unknown, via?: Via) {
    this.host = host;
    this.token = token;
    this.via = via;
  }

  /** The target of an operation of this session: what its audit record of a denial names, with the request it serves. */
  private target(operation: string, tenant: string | null, subject: string | null = null): Target {
    return { operation, tenant, subject, via: this.via };
  }

  // Names are checked before the token is, so a denial is audited with the names as given (and a
  // malformed name is a plain invalid_argument, not an audit record).
  private gate(operation: string, tenant: string | null, need: Permission | null, subject?: string): Promise<TokenPrincipal> {
    return this.host.authorize(this.token, this.target(operation, tenant, subject ?? null), need);
  }

  reach(): { readonly valid: boolean; readonly tenant: string | null } {
    return this.host.reach(this.token);
  }

  async whoami(): Promise<TokenInfo> {
    return this.host.tokenInfo((await this.verifyOnly("whoami")).id);
  }

  private verifyOnly(operation: string): Promise<TokenPrincipal> {
    return this.host.verifyToken(this.token, operation, this.via);
  }

  async deploy(spec: DeploySpec): Promise<Deployment> {
    const { tenant, name } = specNames(spec);
    const p = await this.gate("deploy", tenant, service(name, "deploy"), name);
    return this.host.deployAs(p, spec, this.via);
  }

  // Calls and casts are the hot path: decided without a promise of their own.
  call(tenant: string, svc: string, request?: unknown, options?: CallOptions): Promise<unknown> {
    try {
      const t = checkTenant(tenant);
      const s = checkService(svc);
      const denial = this.decideNow("call", t, s);
      return denial ?? this.host.call(t, s, request, options);
    } catch (err) {
      return Promise.reject(err);
    }
  }

  cast(tenant: string, svc: string, message?: unknown): Promise<void> {
    try {
      const t = checkTenant(tenant);
      const s = checkService(svc);
      const denial = this.decideNow("cast", t, s);
      return denial ?? this.host.cast(t, s, message);
    } catch (err) {
      return Promise.reject(err);
    }
  }

  private decideNow(operation: "call" | "cast", tenant: string, svc: string): Promise<never> | undefined {
    const target = this.target(operation, tenant, svc);
    const d = this.host.decide(this.token, target, service(svc, "call"));
    if (d.ok) return undefined;
    // Only a refusal is audited (a closed kernel is not one).
    const code = d.error instanceof SoloError ? d.error.code : "internal";
    if (code !== "unauthenticated" && code !== "permission_denied") return Promise.reject(d.error);
    return this.host.denied(d.error, target, d.principal, this.token).then(() => {
      throw d.error;
    });
  }

  async kill(tenant: string, svc: string): Promise<void> {
    const t = checkTenant(tenant);
    const s = checkService(svc);
    await this.gate("kill", t, service(s, "deploy"), s);
    return this.host.kill(t, s);
  }

  async list(tenant: string, filter?: { readonly tag?: string }): Promise<ServiceInfo[]> {
    const t = checkTenant(tenant);
    await this.gate("list", t, { action: "services:read" });
    return this.host.list(t, filter);
  }

  async status(tenant: string, svc: string): Promise<ServiceInfo> {
    const t = checkTenant(tenant);
    const s = checkService(svc);
    await this.gate("status", t, { action: "services:read" }, s);
    return this.host.status(t, s);
  }

  async tenantUsage(tenant: string): Promise<TenantUsage> {
    const t = checkTenant(tenant);
    await this.gate("tenantUsage", t, { action: "services:read" });
    return this.host.tenantUsage(t);
  }

  async metricsScope(): Promise<{ readonly tenant: string | null }> {
    const who = await this.verifyOnly("metrics");
    await this.host.permit(who, this.target("metrics", who.tenant), { action: "services:read" });
    return { tenant: who.tenant };
  }

  async restart(tenant: string, svc: string): Promise<Deployment> {
    const t = checkTenant(tenant);
    const s = checkService(svc);
    await this.gate("restart", t, service(s, "deploy"), s);
    return this.host.restart(t, s);
  }

  async swap(tenant: string, svc: string, code: string, options?: SwapOptions): Promise<Deployment> {
    const t = checkTenant(tenant);
    const s = checkService(svc);
    await this.gate("swap", t, service(s, "deploy"), s);
    return this.host.swap(t, s, code, options);
  }

  async rollback(tenant: string, svc: string, version?: number): Promise<Deployment> {
    const t = checkTenant(tenant);
    const s = checkService(svc);
    await this.gate("rollback", t, service(s, "deploy"), s);
    return this.host.rollback(t, s, version);
  }

  async logs(tenant: string, svc: string): Promise<LogEntry[]> {
    const t = checkTenant(tenant);
    const s = checkService(svc);
    await this.gate("logs", t, { action: "services:read" }, s);
    return this.host.logs(t, s);
  }

  async versions(tenant: string, svc: string): Promise<ServiceVersion[]> {
    const t = checkTenant(tenant);
    const s = checkService(svc);
    await this.gate("versions", t, { action: "services:read" }, s);
    return this.host.versions(t, s);
  }

  async source(tenant: string, svc: string, version?: number): Promise<ServiceSource> {
    const t = checkTenant(tenant);
    const s = checkService(svc);
    await this.gate("source", t, { action: "services:read" }, s);
    return this.host.source(t, s, version);
  }

  // A scoped token reads its own tenant's events (of this incarnation of it) whatever the query
  // says; asking for another tenant's is a denial, not a silently narrowed answer.
  private async eventScope(
    operation: string,
    query: { readonly tenant?: unknown } | undefined,
  ): Promise<{ tenant: string; floor: number } | undefined> {
    const asked = query !== null && typeof query === "object" ? query.tenant : undefined;
    if (asked !== undefined && asked !== null) checkTenant(asked);
    const p = await this.verifyScope(operation, asked);
    if (p.tenant === null) return undefined;
    return { tenant: p.tenant, floor: this.host.eventsFloor(p.tenant) };
  }

  private async verifyScope(operation: string, asked: unknown): Promise<TokenPrincipal> {
    // First the token, to learn its reach; then the check against the tenant it reads.
    const who = await this.verifyOnly(operation);
    const tenant = typeof asked === "string" ? asked : who.tenant;
    await this.host.permit(who, this.target(operation, tenant), { action: "events:read" });
    return who;
  }

  async events(query?: EventQuery): Promise<EventPage> {
    const scope = await this.eventScope("events", query);
    return this.host.eventsIn(query, scope);
  }

  subscribe(options?: SubscribeOptions): AsyncIterableIterator<SoloEvent> {
    // The check is asynchronous; the iterator starts once it passes (and throws its error if not).
    const host = this.host;
    const scoped = this.eventScope("subscribe", options);
    let inner: AsyncIterableIterator<SoloEvent> | undefined;
    const start = async (): Promise<AsyncIterableIterator<SoloEvent>> => {
      inner ??= host.subscribeIn(options, await scoped);
      return inner;
    };
    scoped.catch(() => undefined); // reported by the first next()
    const it: AsyncIterableIterator<SoloEvent> = {
      next: async () => (await start()).next(),
      return: async (value?: unknown) => {
        if (inner?.return) return inner.return(value);
        return { done: true, value: undefined };
      },
      [Symbol.asyncIterator]: () => it,
    };
    return it;
  }

  async verify(): Promise<VerifyReport> {
    const who = await this.verifyOnly("verify");
    await this.host.permit(who, this.target("verify", who.tenant), { action: "events:read" });
    return this.host.verify();
  }

  readonly tokens: KernelSession["tokens"] = {
    grant: async (spec) => {
      const asked = specTenant(spec);
      if (asked !== undefined) {
        const p = await this.gate("tokens.grant", asked, { action: "tokens:grant" });
        return this.host.grantToken(p, spec, "tokens.grant");
      }
      // An omitted tenant means the granter's own (as for attenuate).
      const p = await this.verifyOnly("tokens.grant");
      await this.host.permit(p, this.target("tokens.grant", p.tenant), { action: "tokens:grant" });
      return this.host.grantToken(p, spec, "tokens.grant");
    },
    attenuate: async (spec) => {
      const p = await this.verifyOnly("tokens.attenuate");
      try {
        return await this.host.grantToken(p, spec, "tokens.attenuate");
      } catch (err) {
        // Asking for more than the token holds is a denial like any other: audited.
        if (err instanceof SoloError && err.code === "permission_denied") {
          await this.host.denied(err, this.target("tokens.attenuate", p.tenant), p);
        }
        throw err;
      }
    },
    list: async (filter) => {
      const p = await this.verifyOnly("tokens.list");
      return this.host.listTokens(p, filter?.tenant);
    },
    revoke: async (id) => {
      const p = await this.verifyOnly("tokens.revoke");
      return this.host.revokeToken(p, id, this.via);
    },
  };

  readonly tenants: TenantsApi = {
    create: async (name, options) => {
      const t = checkTenant(name);
      await this.gate("tenants.create", null, { action: "tenants:write" }, t);
      return this.host.tenants.create(t, options);
    },
    list: async () => {
      await this.gate("tenants.list", null, { action: "tenants:read" });
      return this.host.tenants.list();
    },
    get: async (name) => {
      const t = checkTenant(name);
      const who = await this.verifyOnly("tenants.get");
      // A scoped token may read its own tenant's record.
      if (who.tenant === t) await this.host.permit(who, this.target("tenants.get", t), { action: "services:read" });
      else await this.host.permit(who, this.target("tenants.get", null, t), { action: "tenants:read" });
      return this.host.tenants.get(t);
    },
    update: async (name, limits) => {
      const t = checkTenant(name);
      await this.gate("tenants.update", null, { action: "tenants:write" }, t);
      return this.host.tenants.update(t, limits);
    },
    delete: async (name) => {
      const t = checkTenant(name);
      await this.gate("tenants.delete", null, { action: "tenants:write" }, t);
      return this.host.tenants.delete(t);
    },
  };

  readonly secrets: SecretsApi = {
    put: async (tenant, name, value) => {
      const t = checkTenant(tenant);
      const p = await this.gate("secrets.put", t, { action: "secrets:write" }, checkSecretName(name));
      return this.host.secretsFor(p).put(t, name, value);
    },
    delete: async (tenant, name) => {
      const t = checkTenant(tenant);
      const p = await this.gate("secrets.delete", t, { action: "secrets:write" }, checkSecretName(name));
      return this.host.secretsFor(p).delete(t, name);
    },
    list: async (tenant) => {
      const t = checkTenant(tenant);
      const p = await this.gate("secrets.list", t, { action: "secrets:read" });
      return this.host.secretsFor(p).list(t);
    },
  };

  readonly vault: VaultApi = {
    status: async () => {
      await this.gate("vault.status", null, { action: "vault:rotate" });
      return this.host.vault.status();
    },
    rotate: async (options) => {
      await this.gate("vault.rotate", null, { action: "vault:rotate" });
      return this.host.vault.rotate(options);
    },
    rotateMasterKey: async (options) => {
      await this.gate("vault.rotateMasterKey", null, { action: "vault:rotate" });
      return this.host.vault.rotateMasterKey(options);
    },
  };
}

function specNames(spec: unknown): { tenant: string; name: string } {
  if (spec === null || typeof spec !== "object" || Array.isArray(spec)) {
    throw new SoloError("SOLO_ERR_REQUEST_INVALID", `deploy: the request must be an object, got ${describeType(spec)}`);
  }
  const s = spec as { tenant?: unknown; service?: unknown };
  return { tenant: checkTenant(s.tenant), name: checkService(s.service) };
}

function specTenant(spec: unknown): string | null | undefined {
  if (spec === null || typeof spec !== "object") return undefined;
  const t = (spec as { tenant?: unknown }).tenant;
  if (t === undefined || t === null) return t;
  return checkTenant(t);
}
