// The kernel facade: the embedding API, each member the operations table's entry run for the
// embedder (who holds this object and so has every power). It owns no state; open.ts builds the
// parts it runs on and closes them.

import type { EventPage, EventQuery, SoloEvent, SubscribeOptions, VerifyReport } from "../api/events.ts";
import type { Kernel, KernelObserver, KernelSession, KernelStats } from "../api/kernel.ts";
import type { SecretsApi, VaultApi } from "../api/secrets.ts";
import type {
  CallOptions,
  Deployment,
  DeploySpec,
  LogEntry,
  ServiceInfo,
  ServiceSource,
  ServiceVersion,
  SwapOptions,
} from "../api/services.ts";
import type { TenantsApi, TenantUsage } from "../api/tenants.ts";
import type { TokensApi, Via } from "../api/tokens.ts";
import { SYSTEM } from "./auth/tokens.ts";
import { admin, events, services } from "./operations/index.ts";
import { assertOpen, type Parts } from "./parts.ts";
import { Session } from "./session.ts";

/** @internal */
export class KernelImpl implements Kernel {
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

  deploy(spec: DeploySpec): Promise<Deployment> {
    return services.deploy.run(this.k, SYSTEM, undefined, spec);
  }

  call(tenant: string, service: string, request?: unknown, options?: CallOptions): Promise<unknown> {
    return services.call.run(this.k, tenant, service, request, options);
  }

  cast(tenant: string, service: string, message?: unknown): Promise<void> {
    return services.cast.run(this.k, tenant, service, message);
  }

  kill(tenant: string, service: string): Promise<void> {
    return services.kill.run(this.k, SYSTEM, undefined, tenant, service);
  }

  list(tenant: string, filter?: { readonly tag?: string }): ServiceInfo[] {
    return services.list.run(this.k, SYSTEM, undefined, tenant, filter);
  }

  status(tenant: string, service: string): ServiceInfo {
    return services.status.run(this.k, SYSTEM, undefined, tenant, service);
  }

  tenantUsage(tenant: string): TenantUsage {
    return services.tenantUsage.run(this.k, SYSTEM, undefined, tenant);
  }

  restart(tenant: string, service: string): Promise<Deployment> {
    return services.restart.run(this.k, SYSTEM, undefined, tenant, service);
  }

  swap(tenant: string, service: string, code: string, options?: SwapOptions): Promise<Deployment> {
    return services.swap.run(this.k, SYSTEM, undefined, tenant, service, code, options);
  }

  rollback(tenant: string, service: string, version?: number): Promise<Deployment> {
    return services.rollback.run(this.k, SYSTEM, undefined, tenant, service, version);
  }

  logs(tenant: string, service: string): LogEntry[] {
    return services.logs.run(this.k, SYSTEM, undefined, tenant, service);
  }

  followLogs(tenant: string, service: string, options?: { readonly signal?: AbortSignal }): AsyncIterableIterator<LogEntry> {
    return services.followLogs.run(this.k, SYSTEM, undefined, tenant, service, options);
  }

  versions(tenant: string, service: string): Promise<ServiceVersion[]> {
    return services.versions.run(this.k, SYSTEM, undefined, tenant, service);
  }

  source(tenant: string, service: string, version?: number): Promise<ServiceSource> {
    return services.source.run(this.k, SYSTEM, undefined, tenant, service, version);
  }

  events(query?: EventQuery): Promise<EventPage> {
    return events.events.run(this.k, SYSTEM, undefined, query);
  }

  subscribe(options?: SubscribeOptions): AsyncIterableIterator<SoloEvent> {
    return events.subscribe.run(this.k, SYSTEM, undefined, options);
  }

  verify(): Promise<VerifyReport> {
    return events.verify.run(this.k, SYSTEM, undefined);
  }

  as(token: string | undefined, via?: Via): KernelSession {
    return new Session(this.k, token, via);
  }

  readonly tokens: TokensApi = {
    grant: (spec) => admin.grantToken.run(this.k, SYSTEM, undefined, spec),
    list: (filter) => admin.listTokens.run(this.k, SYSTEM, undefined, filter),
    revoke: (id) => admin.revokeToken.run(this.k, SYSTEM, undefined, id),
  };

  readonly tenants: TenantsApi = {
    create: (name, options) => admin.createTenant.run(this.k, SYSTEM, undefined, name, options),
    list: () => admin.listTenants.run(this.k, SYSTEM, undefined),
    get: (name) => admin.getTenant.run(this.k, SYSTEM, undefined, name),
    update: (name, limits) => admin.updateTenant.run(this.k, SYSTEM, undefined, name, limits),
    delete: (name) => admin.deleteTenant.run(this.k, SYSTEM, undefined, name),
  };

  readonly secrets: SecretsApi = {
    put: (tenant, name, value) => admin.putSecret.run(this.k, SYSTEM, undefined, tenant, name, value),
    delete: (tenant, name) => admin.deleteSecret.run(this.k, SYSTEM, undefined, tenant, name),
    list: (tenant) => admin.listSecrets.run(this.k, SYSTEM, undefined, tenant),
  };

  readonly vault: VaultApi = {
    status: () => admin.vaultStatus.run(this.k, SYSTEM, undefined),
    rotate: (options) => admin.rotateDataKey.run(this.k, SYSTEM, undefined, options),
    rotateMasterKey: (options) => admin.rotateMasterKey.run(this.k, SYSTEM, undefined, options),
  };

  stats(): KernelStats {
    assertOpen(this.k.lifetime);
    const { registry, resources, tenants, authority, log, pool, opts, breakers } = this.k;
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
      breakers: breakers.counts(),
      log: { headId: log.headId, queued: log.queued, commits: log.counts.commits, ops: log.counts.ops },
      verifications: authority.verifications,
      denials: { seen: authority.denials.seen, written: authority.denials.written },
    };
  }

  observe(observer: KernelObserver): () => void {
    assertOpen(this.k.lifetime);
    return this.k.log.onCommit((ms, ops) => observer.commit?.(ms, ops));
  }

  close(): Promise<void> {
    this.closing ??= this.closeParts();
    return this.closing;
  }
}
