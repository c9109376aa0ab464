// The resources part: what each tenant holds (memory, waiting messages), what each service uses
// (as its scheduler samples it), the room a deploy needs, and the cooldown of a tenant whose
// service stalled a scheduler. Limits met are recorded here.

import type { Clock, KernelStats } from "../../api/kernel.ts";
import type { ServiceState } from "../../api/services.ts";
import type { TenantUsage } from "../../api/tenants.ts";
import { SoloError } from "../../lib/errors/errors.ts";
import { checkTenant } from "../../lib/names.ts";
import type { SchedulerPool, UsageSample } from "../../scheduler/index.ts";
import type { Audit } from "../audit/index.ts";
import type { Registry, ServiceRecord } from "../registry/index.ts";
import type { TenantRegistry } from "../tenants/tenants.ts";

/** A tenant's cooldown after its service stalled a scheduler: the first, the longest, and how long strikes are remembered. */
const COOLDOWN_FIRST_MS = 1000;
const COOLDOWN_MAX_MS = 300_000;
const COOLDOWN_MEMORY_MS = 600_000;

export interface ResourcesParts {
  readonly registry: Registry;
  readonly tenants: TenantRegistry;
  readonly pool: SchedulerPool;
  readonly audit: Audit;
  readonly clock: Clock;
}

export class Resources {
  /** The parts it works with, as open.ts gave them. */
  private readonly p: ResourcesParts;
  /** Each tenant's instance as its scheduler last reported it: linear memory, maximum, bytes of waiting messages. */
  private readonly tenantMemory = new Map<string, { readonly bytes: number; readonly cap: number; readonly queued: number }>();
  // A tenant whose service stalled a scheduler (the watchdog had to replace it) cools down: for a
  // while its calls, casts, deploys, swaps and restarts are refused at once, and its services'
  // restarts wait, so the services it shared the thread with come back and are served first. The
  // wait doubles with each strike within ten minutes (1 s, 2 s, 4 s ... at most 5 min): a tenant
  // that keeps stalling its scheduler holds it a shrinking share of the time.
  private readonly cooldowns = new Map<string, { until: number; strikes: number; at: number }>();

  constructor(parts: ResourcesParts) {
    this.p = parts;
  }

  /** The maximum of a tenant's instance (0: it has none). */
  instanceCap(tenant: string): number {
    return this.tenantMemory.get(tenant)?.cap ?? 0;
  }

  /** A scheduler's report: its tenants' instances and its services' usage. */
  sampled(tenants: ReadonlyArray<readonly [string, number, number, number]>, samples: readonly UsageSample[]): void {
    for (const [tenant, bytes, cap, queued] of tenants) {
      if (bytes === 0 && queued === 0) this.tenantMemory.delete(tenant);
      else this.tenantMemory.set(tenant, { bytes, cap, queued });
    }
    for (const [sid, messages, cpuMs, memoryBytes, mailbox, unhandled, dropped, logDropped] of samples) {
      const r = this.p.registry.instance(sid);
      if (!r) continue;
      const before = r.usage.dropped;
      r.usage = { messages, cpuMs, memoryBytes, mailbox, unhandled, dropped, logDropped };
      // At most one event per service per sample interval, however many messages were dropped.
      if (dropped > before) {
        void this.p.audit.record({
          tenant: r.tenant,
          type: "resource_violation",
          subject: r.service,
          payload: { version: r.version, resource: "mailbox", limit: r.limits.mailbox, dropped: dropped - before, droppedTotal: dropped },
          causationId: r.causeId,
        });
      }
    }
  }

  tenantUsage(tenant: string): TenantUsage {
    const t = checkTenant(tenant);
    const { byState, heapBytes, mailbox, dropped } = tally(this.p.registry.services(t));
    const memoryBytes = this.tenantMemory.get(t)?.bytes ?? 0;
    const queuedBytes = this.tenantMemory.get(t)?.queued ?? 0;
    const services = byState.running + byState.restarting + byState.crashed + byState.failed;
    return {
      tenant: t,
      services,
      running: byState.running,
      memoryBytes,
      heapBytes,
      queuedBytes,
      mailbox,
      dropped,
      limits: this.p.tenants.limits(t),
    };
  }

  /** Every tenant's services by state and what they hold, for `stats()`. */
  tenantStats(): Array<KernelStats["tenants"][number]> {
    const out: Array<KernelStats["tenants"][number]> = [];
    for (const [tenant, named] of this.p.registry.tenants()) {
      const { byState, heapBytes, mailbox, restarts, dropped, droppedStopped } = tally(named.values());
      const memoryBytes = this.tenantMemory.get(tenant)?.bytes ?? 0;
      const limitBytes = this.p.tenants.limits(tenant).memoryBytes;
      out.push({ tenant, services: byState, memoryBytes, limitBytes, heapBytes, mailbox, restarts, dropped: dropped + droppedStopped });
    }
    return out;
  }

  // Deploy refuses a service the tenant has no room for: a name beyond its service count, or any
  // new service while its services already hold its memory.
  checkRoom(tenant: string, service: string): void {
    const limits = this.p.tenants.limits(tenant);
    const usage = this.tenantUsage(tenant);
    const replacing = this.p.registry.current(tenant, service);
    // Deploys of new names still starting count too, so concurrent deploys cannot overshoot.
    const starting = this.p.registry.newNamesStarting(tenant, service);
    const others = usage.services + starting - (replacing && replacing.life.state !== "stopped" ? 1 : 0);
    if (others >= limits.maxServices) {
      throw new SoloError("SOLO_ERR_TENANT_LIMIT", `tenant ${tenant} already has ${others} services, its limit`, {
        tenant,
        limit: limits.maxServices,
        resource: "services",
        hint: "kill services the tenant no longer needs",
      });
    }
  }

  // A service failed because its tenant's memory was full: the engine refused to grow the tenant's
  // instance past its limit. The service crashed (and is supervised as any crash); the record says
  // which tenant limit it met and what its neighbours held, so an operator can see who fills it.
  tenantFull(r: ServiceRecord, largest: ReadonlyArray<readonly [string, number]>): void {
    const holders = largest.map(([service, bytes]) => ({ service, bytes }));
    const limit = this.p.tenants.limits(r.tenant).memoryBytes;
    void this.p.audit.record({
      tenant: r.tenant,
      type: "resource_violation",
      subject: r.service,
      payload: {
        version: r.version,
        resource: "tenant_memory",
        limit,
        used: this.tenantMemory.get(r.tenant)?.bytes ?? limit,
        largest: holders,
      },
      causationId: r.causeId,
    });
  }

  /** A tenant's memory limit changed: its scheduler enforces the new one from now on. */
  limitsChanged(tenant: string): void {
    const index = this.p.registry.placed(tenant);
    if (index !== undefined)
      this.p.pool.post(index, { op: "tenantMemory", tenant, memoryBytes: this.p.tenants.limits(tenant).memoryBytes });
  }

  /** A tenant's service stalled its scheduler: it cools down, longer with each strike. */
  strike(tenant: string): void {
    const now = this.p.clock.now();
    const seen = this.cooldowns.get(tenant);
    const strikes = seen && now - seen.at < COOLDOWN_MEMORY_MS ? seen.strikes + 1 : 1;
    const holdMs = Math.min(COOLDOWN_MAX_MS, COOLDOWN_FIRST_MS * 2 ** (strikes - 1));
    this.cooldowns.set(tenant, { until: now + holdMs, strikes, at: now });
    // Its services' own traffic (timers, calls between them) waits too, on its scheduler.
    const index = this.p.registry.placed(tenant);
    if (index !== undefined) this.p.pool.post(index, { op: "hold", tenant, ms: holdMs });
  }

  cooldownLeft(tenant: string): number {
    const c = this.cooldowns.get(tenant);
    return c ? Math.max(0, c.until - this.p.clock.now()) : 0;
  }

  /** Refuses an operation of a tenant cooling down. */
  checkCooldown(tenant: string): void {
    const left = this.cooldownLeft(tenant);
    if (left === 0) return;
    const strikes = this.cooldowns.get(tenant)?.strikes ?? 1;
    throw new SoloError(
      "SOLO_ERR_TENANT_COOLDOWN",
      `tenant ${tenant} is cooling down for ${left} ms: one of its services ran a message past its hard CPU limit and stalled its scheduler (${strikes} time${strikes === 1 ? "" : "s"} in the last ten minutes)`,
      {
        tenant,
        retryAfterMs: left,
        strikes,
        hint: `retry in ${left} ms; find the message that stalls (service_crashed events with a cpu_limit crash after scheduler_replaced) and fix it`,
      },
    );
  }

  /** The tenants that lived on a scheduler that is gone have no instance any more. */
  schedulerGone(tenants: readonly string[]): void {
    for (const t of tenants) this.tenantMemory.delete(t);
  }

  forgetTenant(tenant: string): void {
    this.tenantMemory.delete(tenant);
    this.cooldowns.delete(tenant);
  }
}

/**
 * A tenant's services summed: how many in each state; what the running ones hold (heap, mailbox);
 * restarts; messages dropped by the services still deployed, and by the stopped ones.
 */
function tally(services: Iterable<ServiceRecord>): {
  byState: Record<ServiceState, number>;
  heapBytes: number;
  mailbox: number;
  restarts: number;
  dropped: number;
  droppedStopped: number;
} {
  const t = {
    byState: { running: 0, restarting: 0, crashed: 0, failed: 0, stopped: 0 },
    heapBytes: 0,
    mailbox: 0,
    restarts: 0,
    dropped: 0,
    droppedStopped: 0,
  };
  for (const r of services) {
    t.byState[r.life.state]++;
    t.restarts += r.restarts;
    if (r.life.state === "stopped") t.droppedStopped += r.usage.dropped;
    else t.dropped += r.usage.dropped;
    if (r.life.state === "running") {
      t.heapBytes += r.usage.memoryBytes;
      t.mailbox += r.usage.mailbox;
    }
  }
  return t;
}
