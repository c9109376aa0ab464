// A token's view of the kernel: the operations table (operations/) behind a gate that verifies the
// token and checks its permissions at every operation, so a revocation or expiry takes effect at
// once. A denial is audited and changes nothing.

import type { EventPage, EventQuery, SoloEvent, SubscribeOptions, VerifyReport } from "../api/events.ts";
import type { KernelSession } from "../api/kernel.ts";
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
import type { TenantUsage } from "../api/tenants.ts";
import type { TokenInfo, Via } from "../api/tokens.ts";
import { SoloError } from "../lib/errors/errors.ts";
import type { Decision, Target } from "./auth/authority.ts";
import type { Permission } from "./auth/permissions.ts";
import type { Principal, TokenPrincipal } from "./auth/tokens.ts";
import { admin, events, type Gate, type HotOperation, type Operation, services, settled } from "./operations/index.ts";
import { assertOpen, kernelClosed, type Parts } from "./parts.ts";

/** @internal */
export class Session implements KernelSession {
  private readonly k: Parts;
  private readonly token: unknown;
  private readonly via: Via | undefined;
  private gated: Gate | undefined;
  private readonly pinned: boolean;
  private verified: TokenPrincipal | undefined;
  /** The grouped APIs, made when first read: a session that only calls (the gateway's) makes none. */
  private readonly apis: {
    tokens?: KernelSession["tokens"];
    tenants?: KernelSession["tenants"];
    secrets?: KernelSession["secrets"];
    vault?: KernelSession["vault"];
  } = {};

  constructor(parts: Parts, token: unknown, via?: Via) {
    this.k = parts;
    this.token = token;
    this.via = via;
    this.pinned = via !== undefined;
  }

  // Made at the first gated operation: calls, casts and reach() (the hot path) never need it.
  private get gate(): Gate {
    this.gated ??= this.makeGate();
    return this.gated;
  }

  private makeGate(): Gate {
    const { k, token, via } = this;
    const { authority } = k;
    const target = (operation: string, tenant: string | null, subject: string | null = null): Target => ({
      operation,
      tenant,
      subject,
      via,
    });
    return {
      require: (operation, tenant, need, subject) =>
        settled(k, () => {
          const known = this.known();
          const t = target(operation, tenant, subject);
          return known ? authority.authorizeFor(known, t, need) : authority.authorize(token, t, need);
        }),
      verify: (operation) =>
        settled(k, async () => {
          const known = this.known();
          return known ? authority.vouch(known) : authority.verifyToken(token, operation, via);
        }),
      permit: (p, operation, tenant, need, subject) => authority.permit(p, target(operation, tenant, subject), need),
      denied: (err, operation, tenant, p) => authority.denied(err, target(operation, tenant), p),
    };
  }

  // A session that serves one request (made with `via`) verifies its token once, at its first
  // check, and that verification stands for the rest of the request: the gateway's admission and
  // the operation share one hash and lookup. A token that fails is not remembered: each operation
  // then fails (and is audited) on its own. Sessions without `via` verify at every operation.
  private known(): TokenPrincipal | undefined {
    if (!this.pinned) return undefined;
    this.verified ??= this.verifyQuietly();
    return this.verified;
  }

  /** The token's principal if it is valid now, recording nothing; undefined if not. */
  private verifyQuietly(): TokenPrincipal | undefined {
    try {
      return this.k.authority.tokens.verify(this.token, this.k.opts.clock.now());
    } catch {
      return undefined;
    }
  }

  /** Admits the token to `op`, then runs it for the token's principal. */
  private async invoke<A extends readonly unknown[], R>(op: Operation<A, R>, ...args: A): Promise<Awaited<R>> {
    const p = await op.admit(this.gate, ...args);
    return await op.run(this.k, p, this.via, ...args);
  }

  // Calls and casts are the hot path: decided synchronously, without a promise of their own. Only
  // a refusal is audited (a closed kernel is not one).
  private hot<A extends readonly unknown[], R>(operation: "call" | "cast", op: HotOperation<A, Promise<R>>, ...args: A): Promise<R> {
    try {
      const { tenant, subject, need } = op.target(...args);
      const target: Target = { operation, tenant, subject, via: this.via };
      const d = this.decide(target, need);
      if (d.ok) return op.run(this.k, ...args);
      const code = d.error instanceof SoloError ? d.error.code : "internal";
      if (code !== "unauthenticated" && code !== "permission_denied") return Promise.reject(d.error);
      return this.k.authority.denied(d.error, target, d.principal, this.token).then(() => {
        throw d.error;
      });
    } catch (err) {
      return Promise.reject(err);
    }
  }

  reach(): { readonly valid: boolean; readonly tenant: string | null } {
    const p = this.k.lifetime.closed ? undefined : this.pinned ? this.known() : this.verifyQuietly();
    return p ? { valid: true, tenant: p.tenant } : { valid: false, tenant: null };
  }

  /** The hot path's decision: a closed kernel refuses; a request's session reuses its verification. */
  private decide(target: Target, need: Permission): Decision {
    if (this.k.lifetime.closed) return { ok: false, error: kernelClosed() };
    const known = this.known();
    return known ? this.k.authority.decideFor(known, target, need) : this.k.authority.decide(this.token, target, need);
  }

  async whoami(): Promise<TokenInfo> {
    return admin.tokenInfo(this.k, (await this.gate.verify("whoami")).id);
  }

  deploy(spec: DeploySpec): Promise<Deployment> {
    return this.invoke(services.deploy, spec);
  }

  call(tenant: string, service: string, request?: unknown, options?: CallOptions): Promise<unknown> {
    return this.hot("call", services.call, tenant, service, request, options);
  }

  cast(tenant: string, service: string, message?: unknown): Promise<void> {
    return this.hot("cast", services.cast, tenant, service, message);
  }

  kill(tenant: string, service: string): Promise<void> {
    return this.invoke(services.kill, tenant, service);
  }

  list(tenant: string, filter?: { readonly tag?: string }): Promise<ServiceInfo[]> {
    return this.invoke(services.list, tenant, filter);
  }

  status(tenant: string, service: string): Promise<ServiceInfo> {
    return this.invoke(services.status, tenant, service);
  }

  tenantUsage(tenant: string): Promise<TenantUsage> {
    return this.invoke(services.tenantUsage, tenant);
  }

  metricsScope(): Promise<{ readonly tenant: string | null }> {
    return this.invoke(services.metricsScope);
  }

  restart(tenant: string, service: string): Promise<Deployment> {
    return this.invoke(services.restart, tenant, service);
  }

  swap(tenant: string, service: string, code: string, options?: SwapOptions): Promise<Deployment> {
    return this.invoke(services.swap, tenant, service, code, options);
  }

  rollback(tenant: string, service: string, version?: number): Promise<Deployment> {
    return this.invoke(services.rollback, tenant, service, version);
  }

  logs(tenant: string, service: string): Promise<LogEntry[]> {
    return this.invoke(services.logs, tenant, service);
  }

  versions(tenant: string, service: string): Promise<ServiceVersion[]> {
    return this.invoke(services.versions, tenant, service);
  }

  source(tenant: string, service: string, version?: number): Promise<ServiceSource> {
    return this.invoke(services.source, tenant, service, version);
  }

  events(query?: EventQuery): Promise<EventPage> {
    return this.invoke(events.events, query);
  }

  subscribe(options?: SubscribeOptions): AsyncIterableIterator<SoloEvent> {
    return admittedStream(events.subscribe.admit(this.gate, options), (p) => events.subscribe.run(this.k, p, this.via, options));
  }

  followLogs(tenant: string, service: string, options?: { readonly signal?: AbortSignal }): AsyncIterableIterator<LogEntry> {
    return admittedStream(services.followLogs.admit(this.gate, tenant, service, options), (p) =>
      services.followLogs.run(this.k, p, this.via, tenant, service, options),
    );
  }

  verify(): Promise<VerifyReport> {
    return this.invoke(events.verify);
  }

  get tokens(): KernelSession["tokens"] {
    this.apis.tokens ??= {
      grant: (spec) => this.invoke(admin.grantToken, spec),
      attenuate: async (spec) => {
        const p = await this.gate.verify("tokens.attenuate");
        try {
          assertOpen(this.k.lifetime);
          return await this.k.authority.grant(p, spec, "tokens.attenuate");
        } catch (err) {
          // Asking for more than the token holds is a denial like any other: audited.
          if (err instanceof SoloError && err.code === "permission_denied") await this.gate.denied(err, "tokens.attenuate", p.tenant, p);
          throw err;
        }
      },
      list: (filter) => this.invoke(admin.listTokens, filter),
      revoke: (id) => this.invoke(admin.revokeToken, id),
    };
    return this.apis.tokens;
  }

  get tenants(): KernelSession["tenants"] {
    this.apis.tenants ??= {
      create: (name, options) => this.invoke(admin.createTenant, name, options),
      list: () => this.invoke(admin.listTenants),
      get: (name) => this.invoke(admin.getTenant, name),
      update: (name, limits) => this.invoke(admin.updateTenant, name, limits),
      delete: (name) => this.invoke(admin.deleteTenant, name),
    };
    return this.apis.tenants;
  }

  get secrets(): KernelSession["secrets"] {
    this.apis.secrets ??= {
      put: (tenant, name, value) => this.invoke(admin.putSecret, tenant, name, value),
      delete: (tenant, name) => this.invoke(admin.deleteSecret, tenant, name),
      list: (tenant) => this.invoke(admin.listSecrets, tenant),
    };
    return this.apis.secrets;
  }

  get vault(): KernelSession["vault"] {
    this.apis.vault ??= {
      status: () => this.invoke(admin.vaultStatus),
      rotate: (options) => this.invoke(admin.rotateDataKey, options),
      rotateMasterKey: (options) => this.invoke(admin.rotateMasterKey, options),
    };
    return this.apis.vault;
  }
}

// A stream whose check is asynchronous: the iterator starts once it passes (and its first next()
// throws the check's error if not).
function admittedStream<T>(admitted: Promise<Principal>, open: (p: Principal) => AsyncIterableIterator<T>): AsyncIterableIterator<T> {
  admitted.catch(() => undefined); // reported by the first next()
  let inner: AsyncIterableIterator<T> | undefined;
  const start = async (): Promise<AsyncIterableIterator<T>> => {
    const p = await admitted;
    inner ??= open(p);
    return inner;
  };
  const it: AsyncIterableIterator<T> = {
    next: async () => (await start()).next(),
    return: async (value?: unknown) => {
      if (inner?.return) return inner.return(value);
      return { done: true, value: undefined };
    },
    [Symbol.asyncIterator]: () => it,
  };
  return it;
}
