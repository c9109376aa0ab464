// The kernel facade: the embedding API's members, each handed to the part that owns it. It owns
// no state of its own; open.ts builds the parts and closes them.

import { SoloError } from "../lib/errors/errors.ts";
import { checkTenant, TAG_PATTERN } from "../lib/names.ts";
import type {
  CallOptions,
  Deployment,
  DeploySpec,
  Kernel,
  KernelObserver,
  KernelStats,
  LogEntry,
  ServiceInfo,
  ServiceSource,
  ServiceVersion,
  SwapOptions,
  TenantUsage,
} from "./api.ts";
import type { Decision, Target } from "./auth/authority.ts";
import type { Via } from "./auth/denials.ts";
import type { Permission } from "./auth/permissions.ts";
import { type GrantedToken, type Principal, SYSTEM, type TokenInfo, type TokenPrincipal } from "./auth/tokens.ts";
import type { SoloEvent, VerifyReport } from "./log/event-log.ts";
import type { EventPage, EventQuery, SubscribeOptions } from "./log/query.ts";
import { type EventScope, followEvents, readEvents } from "./log/scope.ts";
import { assertOpen, type Parts } from "./parts.ts";
import { infoOf, type ServiceRecord } from "./registry/index.ts";
import {
  type KernelSession,
  type SecretsApi,
  Session,
  type SessionHost,
  type TenantsApi,
  type TokensApi,
  type VaultApi,
} from "./session.ts";

export type * from "./api.ts";

/** Runs `fn` once the kernel is known open; a synchronous throw becomes a rejection. */
function settled<T>(k: Parts, fn: () => Promise<T>): Promise<T> {
  try {
    assertOpen(k.lifetime);
    return fn();
  } catch (err) {
    return Promise.reject(err);
  }
}

/** @internal */
export class KernelImpl implements Kernel, SessionHost {
  readonly dataDir: string;
  readonly schedulers: number;
  private readonly k: Parts;
  private readonly closeParts: () => Promise<void>;
  private closing: Promise<void> | undefined;

  constructor(parts: Parts, close: () => Promise<void>) {
    this.k = parts;
    this.closeParts = close;
    this.dataDir = parts.lock.path;
    this.schedulers = parts.opts.schedulers;
  }

  get store(): { readonly kind: "sqlite" | "postgres"; readonly location: string } {
    return { kind: this.k.store.kind, location: this.k.store.location };
  }

  // ---- services ---------------------------------------------------------------------------

  deploy(spec: DeploySpec): Promise<Deployment> {
    return this.deployAs(SYSTEM, spec);
  }

  deployAs(p: Principal, spec: DeploySpec, via?: Via): Promise<Deployment> {
    return settled(this.k, () => this.k.deployer.deploy(p, spec, via));
  }

  call(tenant: string, service: string, request?: unknown, options: CallOptions = {}): Promise<unknown> {
    return settled(this.k, () => this.k.calls.call(tenant, service, request, options));
  }

  cast(tenant: string, service: string, message?: unknown): Promise<void> {
    return settled(this.k, async () => this.k.calls.cast(tenant, service, message));
  }

  kill(tenant: string, service: string): Promise<void> {
    return settled(this.k, () => this.k.deployer.kill(tenant, service));
  }

  list(tenant: string, filter: { readonly tag?: string } = {}): ServiceInfo[] {
    const t = checkTenant(tenant);
    const tag = filter?.tag;
    if (tag !== undefined && (typeof tag !== "string" || !TAG_PATTERN.test(tag))) {
      throw new SoloError("SOLO_ERR_REQUEST_INVALID", "list: tag must be a valid tag", { field: "tag" });
    }
    const out: ServiceInfo[] = [];
    for (const r of this.k.registry.services(t)) if (tag === undefined || r.meta.tags.includes(tag)) out.push(this.info(r));
    return out.sort((a, b) => (a.service < b.service ? -1 : a.service > b.service ? 1 : 0));
  }

  status(tenant: string, service: string): ServiceInfo {
    return this.info(this.k.registry.lookup(tenant, service));
  }

  private info(r: ServiceRecord): ServiceInfo {
    return infoOf(r, this.k.breakers.view(r));
  }

  tenantUsage(tenant: string): TenantUsage {
    return this.k.resources.tenantUsage(tenant);
  }

  restart(tenant: string, service: string): Promise<Deployment> {
    return settled(this.k, () => this.k.supervisor.restart(this.k.registry.lookup(tenant, service)));
  }

  swap(tenant: string, service: string, code: string, options: SwapOptions = {}): Promise<Deployment> {
    return settled(this.k, () => this.k.hotswap.swap(tenant, service, code, options));
  }

  rollback(tenant: string, service: string, version?: number): Promise<Deployment> {
    return settled(this.k, () => this.k.hotswap.rollback(tenant, service, version));
  }

  logs(tenant: string, service: string): LogEntry[] {
    return [...this.k.registry.lookup(tenant, service).logs];
  }

  versions(tenant: string, service: string): Promise<ServiceVersion[]> {
    return settled(this.k, () => this.k.deployer.versions(tenant, service));
  }

  source(tenant: string, service: string, version?: number): Promise<ServiceSource> {
    return settled(this.k, () => this.k.deployer.source(tenant, service, version));
  }

  // ---- events -----------------------------------------------------------------------------

  events(query?: EventQuery): Promise<EventPage> {
    return this.eventsIn(query, undefined);
  }

  eventsIn(query: EventQuery | undefined, scope: EventScope | undefined): Promise<EventPage> {
    return settled(this.k, () => readEvents(this.k.log, query, scope));
  }

  subscribe(options?: SubscribeOptions): AsyncIterableIterator<SoloEvent> {
    return this.subscribeIn(options, undefined);
  }

  subscribeIn(options: SubscribeOptions | undefined, scope: EventScope | undefined): AsyncIterableIterator<SoloEvent> {
    assertOpen(this.k.lifetime);
    return followEvents(this.k.log, options, scope);
  }

  verify(): Promise<VerifyReport> {
    return settled(this.k, () => this.k.log.verify());
  }

  // ---- the kernel -------------------------------------------------------------------------

  close(): Promise<void> {
    this.closing ??= this.closeParts();
    return this.closing;
  }

  stats(): KernelStats {
    assertOpen(this.k.lifetime);
    const { registry, resources, tenants, authority, log, pool, opts } = this.k;
    const schedulers = pool.steps().map((step, index) => {
      const r = step ? registry.instance(step.sid) : undefined;
      return {
        index,
        running: step && r ? { tenant: r.tenant, service: r.service, forMs: Math.max(0, Date.now() - step.startedAt) } : null,
      };
    });
    return {
      tenants: resources.tenantStats(),
      memory: { budgetBytes: opts.memoryBudgetBytes, committedBytes: tenants.committedBytes(undefined, (t) => resources.instanceCap(t)) },
      schedulers,
      breakers: this.k.breakers.counts(),
      log: { headId: log.headId, queued: log.queued, commits: log.counts.commits, ops: log.counts.ops },
      verifications: authority.verifications,
      denials: { seen: authority.denials.seen, written: authority.denials.written },
    };
  }

  observe(observer: KernelObserver): () => void {
    assertOpen(this.k.lifetime);
    return this.k.log.onCommit((ms, ops) => observer.commit?.(ms, ops));
  }

  // ---- principals, tenants, secrets -------------------------------------------------------

  as(token: string | undefined, via?: Via): KernelSession {
    return new Session(this, token, via);
  }

  authorize(token: unknown, target: Target, need: Permission | null): Promise<TokenPrincipal> {
    return settled(this.k, () => this.k.authority.authorize(token, target, need));
  }

  decide(token: unknown, target: Target, need: Permission): Decision {
    if (this.k.lifetime.closed) return { ok: false, error: closedError() };
    return this.k.authority.decide(token, target, need);
  }

  reach(token: unknown): { readonly valid: boolean; readonly tenant: string | null } {
    if (this.k.lifetime.closed) return { valid: false, tenant: null };
    try {
      const p = this.k.authority.tokens.verify(token, this.k.opts.clock.now());
      return { valid: true, tenant: p.tenant };
    } catch {
      return { valid: false, tenant: null };
    }
  }

  verifyToken(token: unknown, operation: string, via?: Via): Promise<TokenPrincipal> {
    return settled(this.k, () => this.k.authority.verifyToken(token, operation, via));
  }

  permit(p: TokenPrincipal, target: Target, need: Permission | null): Promise<void> {
    return this.k.authority.permit(p, target, need);
  }

  denied(err: unknown, target: Target, principal?: TokenPrincipal, token?: unknown): Promise<void> {
    return this.k.authority.denied(err, target, principal, token);
  }

  eventsFloor(tenant: string): number {
    return this.k.tenants.row(tenant)?.eventsAfter ?? this.k.log.headId;
  }

  tokenInfo(id: string): TokenInfo {
    const found = this.k.authority.tokens.info(id, this.k.opts.clock.now());
    if (!found) throw new SoloError("SOLO_ERR_TOKEN_NOT_FOUND", `no token ${id}`, { tokenId: id });
    return found;
  }

  grantToken(p: Principal, spec: unknown, operation: "tokens.grant" | "tokens.attenuate"): Promise<GrantedToken> {
    return settled(this.k, () => this.k.authority.grant(p, spec, operation));
  }

  listTokens(p: Principal, tenant?: string | null): TokenInfo[] {
    assertOpen(this.k.lifetime);
    if (tenant !== undefined && tenant !== null) checkTenant(tenant);
    return this.k.authority.list(p, tenant);
  }

  revokeToken(p: Principal, id: unknown, via?: Via): Promise<{ readonly revoked: readonly string[] }> {
    return settled(this.k, () => this.k.authority.revoke(p, id, via));
  }

  readonly tokens: TokensApi = {
    grant: (spec) => this.grantToken(SYSTEM, spec, "tokens.grant"),
    list: async (filter) => this.listTokens(SYSTEM, filter?.tenant),
    revoke: (id) => this.revokeToken(SYSTEM, id),
  };

  readonly tenants: TenantsApi = {
    create: (name, options) => this.k.lifecycle.create(name, options),
    list: () => this.k.lifecycle.list(),
    get: (name) => this.k.lifecycle.get(name),
    update: (name, limits) => this.k.lifecycle.update(name, limits),
    delete: (name) => this.k.lifecycle.delete(name),
  };

  secretsFor(p: Principal): SecretsApi {
    const by = p.kind === "token" ? p.id : "system";
    // Read when called: the embedder's own secrets API is made before the constructor has run.
    const open = (tenant: string): string => {
      assertOpen(this.k.lifetime);
      const t = checkTenant(tenant);
      this.k.tenants.require(t);
      return t;
    };
    return {
      put: async (tenant, name, value) => this.k.vault.put(open(tenant), name, value, by, this.k.opts.clock.now()),
      delete: async (tenant, name) => this.k.vault.delete(open(tenant), name, by),
      list: async (tenant) => this.k.vault.list(open(tenant)),
    };
  }

  readonly secrets: SecretsApi = this.secretsFor(SYSTEM);

  readonly vault: VaultApi = {
    status: async () => {
      assertOpen(this.k.lifetime);
      return this.k.vault.status();
    },
    rotate: async (options) => {
      assertOpen(this.k.lifetime);
      const wait = options?.wait ?? false;
      if (typeof wait !== "boolean") {
        throw new SoloError("SOLO_ERR_REQUEST_INVALID", "vault.rotate: wait must be a boolean", { field: "wait" });
      }
      return this.k.vault.rotate(this.k.opts.clock.now(), wait);
    },
    rotateMasterKey: async (options) => {
      assertOpen(this.k.lifetime);
      const o = options ?? {};
      if (o === null || typeof o !== "object" || Object.keys(o).some((key) => key !== "newKey")) {
        throw new SoloError("SOLO_ERR_REQUEST_INVALID", "vault.rotateMasterKey takes { newKey? }", { field: "options" });
      }
      return this.k.vault.rotateMaster((o as { newKey?: unknown }).newKey);
    },
  };
}

function closedError(): SoloError {
  return new SoloError("SOLO_ERR_KERNEL_CLOSED", "the kernel is closed; open a new one with openKernel()");
}
