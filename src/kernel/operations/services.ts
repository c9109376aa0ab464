// The services' operations: deploy, call and cast, kill, the reads, restart, swap and rollback.

import type {
  CallOptions,
  Deployment,
  DeploySpec,
  LogEntry,
  ServiceInfo,
  ServiceSource,
  ServiceVersion,
  SwapOptions,
} from "../../api/services.ts";
import type { TenantUsage } from "../../api/tenants.ts";
import { SoloError } from "../../lib/errors/errors.ts";
import { checkService, checkTenant, TAG_PATTERN } from "../../lib/names.ts";
import type { Permission } from "../auth/permissions.ts";
import { checkIdentity } from "../deployer/index.ts";
import { assertOpen, type Parts } from "../parts.ts";
import { infoOf } from "../registry/index.ts";
import { type HotOperation, type Operation, settled } from "./operation.ts";

const deploys = (pattern: string): Permission => ({ action: "deploy", pattern });
const calls = (pattern: string): Permission => ({ action: "call", pattern });
const READ: Permission = { action: "services:read" };

export const deploy: Operation<[spec: DeploySpec], Promise<Deployment>> = {
  admit: async (g, spec) => {
    const { tenant, service } = checkIdentity(spec);
    return g.require("deploy", tenant, deploys(service), service);
  },
  run: (k, p, via, spec) => settled(k, () => k.deployer.deploy(p, spec, via)),
};

export const call: HotOperation<[tenant: string, service: string, request?: unknown, options?: CallOptions], Promise<unknown>> = {
  target: (tenant, service) => {
    const subject = checkService(service);
    return { tenant: checkTenant(tenant), subject, need: calls(subject) };
  },
  run: (k, tenant, service, request, options) =>
    settled(k, () => k.calls.call(tenant, service, request, options === undefined ? {} : options)),
};

export const cast: HotOperation<[tenant: string, service: string, message?: unknown], Promise<void>> = {
  target: (tenant, service) => {
    const subject = checkService(service);
    return { tenant: checkTenant(tenant), subject, need: calls(subject) };
  },
  run: (k, tenant, service, message) => settled(k, async () => k.calls.cast(tenant, service, message)),
};

export const kill: Operation<[tenant: string, service: string], Promise<void>> = {
  admit: async (g, tenant, service) => {
    const s = checkService(service);
    return g.require("kill", checkTenant(tenant), deploys(s), s);
  },
  run: (k, _p, _via, tenant, service) => settled(k, () => k.deployer.kill(tenant, service)),
};

export const list: Operation<[tenant: string, filter?: { readonly tag?: string }], ServiceInfo[]> = {
  admit: async (g, tenant) => g.require("list", checkTenant(tenant), READ),
  run: (k, _p, _via, tenant, filter = {}) => {
    const t = checkTenant(tenant);
    // A tenant that does not exist is said so; one with no services lists [].
    k.tenants.require(t);
    const tag = filter?.tag;
    if (tag !== undefined && (typeof tag !== "string" || !TAG_PATTERN.test(tag))) {
      throw new SoloError("SOLO_ERR_REQUEST_INVALID", "list: tag must be a valid tag", { field: "tag" });
    }
    const out: ServiceInfo[] = [];
    for (const r of k.registry.services(t)) if (tag === undefined || r.meta.tags.includes(tag)) out.push(infoOf(r, k.breakers.view(r)));
    return out.sort((a, b) => (a.service < b.service ? -1 : a.service > b.service ? 1 : 0));
  },
};

export const status: Operation<[tenant: string, service: string], ServiceInfo> = {
  admit: async (g, tenant, service) => g.require("status", checkTenant(tenant), READ, checkService(service)),
  run: (k, _p, _via, tenant, service) => {
    const r = k.registry.lookup(tenant, service);
    return infoOf(r, k.breakers.view(r));
  },
};

export const tenantUsage: Operation<[tenant: string], TenantUsage> = {
  admit: async (g, tenant) => g.require("tenantUsage", checkTenant(tenant), READ),
  run: (k, _p, _via, tenant) => k.resources.tenantUsage(tenant),
};

export const restart: Operation<[tenant: string, service: string], Promise<Deployment>> = {
  admit: async (g, tenant, service) => {
    const s = checkService(service);
    return g.require("restart", checkTenant(tenant), deploys(s), s);
  },
  run: (k, _p, _via, tenant, service) => settled(k, () => k.supervisor.restart(k.registry.lookup(tenant, service))),
};

export const swap: Operation<[tenant: string, service: string, code: string, options?: SwapOptions], Promise<Deployment>> = {
  admit: async (g, tenant, service) => {
    const s = checkService(service);
    return g.require("swap", checkTenant(tenant), deploys(s), s);
  },
  run: (k, p, via, tenant, service, code, options) =>
    settled(k, () => k.hotswap.swap(p, via, tenant, service, code, options === undefined ? {} : options)),
};

export const rollback: Operation<[tenant: string, service: string, version?: number], Promise<Deployment>> = {
  admit: async (g, tenant, service) => {
    const s = checkService(service);
    return g.require("rollback", checkTenant(tenant), deploys(s), s);
  },
  run: (k, _p, _via, tenant, service, version) => settled(k, () => k.hotswap.rollback(tenant, service, version)),
};

export const logs: Operation<[tenant: string, service: string], LogEntry[]> = {
  admit: async (g, tenant, service) => g.require("logs", checkTenant(tenant), READ, checkService(service)),
  run: (k, _p, _via, tenant, service) => {
    const r = k.registry.lookup(tenant, service);
    return k.lines.read(r.tenant, r.service);
  },
};

/** A service's kept lines, then each new one as it is logged, until `signal` aborts or the kernel closes. */
export const followLogs: Operation<
  [tenant: string, service: string, options?: { readonly signal?: AbortSignal }],
  AsyncIterableIterator<LogEntry>
> = {
  admit: async (g, tenant, service) => g.require("followLogs", checkTenant(tenant), READ, checkService(service)),
  run: (k, _p, _via, tenant, service, options) => {
    assertOpen(k.lifetime);
    const r = k.registry.lookup(tenant, service);
    return k.lines.follow(r.tenant, r.service, options?.signal);
  },
};

export const versions: Operation<[tenant: string, service: string], Promise<ServiceVersion[]>> = {
  admit: async (g, tenant, service) => g.require("versions", checkTenant(tenant), READ, checkService(service)),
  run: (k, _p, _via, tenant, service) => settled(k, () => k.deployer.versions(tenant, service)),
};

export const source: Operation<[tenant: string, service: string, version?: number], Promise<ServiceSource>> = {
  admit: async (g, tenant, service) => g.require("source", checkTenant(tenant), READ, checkService(service)),
  run: (k, _p, _via, tenant, service, version) => settled(k, () => k.deployer.source(tenant, service, version)),
};

/** What a token must be allowed to read of the kernel's metrics: its own tenant's, or (unscoped) all. */
export const metricsScope: Operation<[], { readonly tenant: string | null }> = {
  admit: async (g) => {
    const who = await g.verify("metrics");
    await g.permit(who, "metrics", who.tenant, READ);
    return who;
  },
  run: (_k: Parts, p) => ({ tenant: p.kind === "token" ? p.tenant : null }),
};
