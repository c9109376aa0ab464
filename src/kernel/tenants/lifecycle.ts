import type { SoloEvent } from "../../api/events.ts";
import type { TenantLimits } from "../../api/limits.ts";
import type { TenantDeletion, TenantInfo, TenantsApi } from "../../api/tenants.ts";
import { type At, checkFlag, checkKeys, checkObject } from "../../lib/check.ts";
import { SoloError } from "../../lib/errors/errors.ts";
import { words } from "../../lib/errors/transport.ts";
import { checkTenant } from "../../lib/names.ts";
import type { Store, TenantRow } from "../../store/store.ts";
import type { Authority } from "../auth/authority.ts";
import { resolveTenantLimits } from "../limits.ts";
import type { EventLog } from "../log/event-log.ts";
import type { TenantRegistry } from "./tenants.ts";

/** What tenant lifecycle needs of the kernel. @internal */
export interface TenantHost {
  assertOpen(): void;
  readonly registry: TenantRegistry;
  readonly log: EventLog;
  readonly store: Store;
  readonly authority: Authority;
  /** The kernel's default tenant limits. */
  readonly defaults: TenantLimits;
  /** The memory all tenants may be given together. */
  readonly budgetBytes: number;
  /** The most the tenant's current instance may hold (its maximum), 0 when it has none. */
  instanceCap(tenant: string): number;
  now(): number;
  /** Whether a deploy, swap or restart of one of the tenant's services is in flight. */
  busy(tenant: string): boolean;
  /** Kills every service of the tenant (running `terminate`); returns how many it had. */
  stopServices(tenant: string): Promise<number>;
  /** Drops the tenant's services from memory, once its deletion is durable. */
  forget(tenant: string): void;
  /** The tenant's limits changed (durably): what runs applies them. */
  limitsChanged(tenant: string): void;
}

/**
 * Creating, changing and deleting tenants. Creates of one name are serialized (the second is
 * refused once the first has decided); a delete waits for no deploy and lets none start.
 * @internal
 */
export class TenantLifecycle implements TenantsApi {
  private readonly host: TenantHost;
  private readonly creating = new Map<string, Promise<TenantInfo>>();
  private readonly deleting = new Set<string>();
  /** Memory limits of creates and updates whose writes are in flight, already counted against the budget. */
  private readonly reserved = new Map<string, number>();

  constructor(host: TenantHost) {
    this.host = host;
  }

  /** Whether the tenant is being deleted (a deploy into it is refused). */
  isDeleting(name: string): boolean {
    return this.deleting.has(name);
  }

  async list(): Promise<TenantInfo[]> {
    this.host.assertOpen();
    const reg = this.host.registry;
    return reg.names().map((n) => reg.info(n));
  }

  async get(name: unknown): Promise<TenantInfo> {
    this.host.assertOpen();
    return this.host.registry.info(checkTenant(name));
  }

  /**
   * The embedder deploys into a tenant that does not exist yet by creating it (with the default
   * limits); a name whose tenant was deleted is refused, never silently reused.
   */
  async ensure(name: string): Promise<void> {
    const reg = this.host.registry;
    if (this.deleting.has(name)) throw tenantBusy(name, "is being deleted");
    if (reg.has(name)) return;
    // Concurrent first deploys into one new tenant: the first creates it, the others wait for it.
    await this.creating.get(name)?.catch(() => undefined);
    if (reg.has(name)) return;
    if (reg.retiredRow(name)) throw reg.missing(name);
    await this.create(name, {}).catch((err: unknown) => {
      if (!(err instanceof SoloError && err.reason === "SOLO_ERR_TENANT_EXISTS" && reg.has(name))) throw err;
    });
  }

  create(nameInput: unknown, options: unknown = {}): Promise<TenantInfo> {
    try {
      this.host.assertOpen();
      const name = checkTenant(nameInput);
      const o = checkTenantOptions(options);
      const pending = this.creating.get(name);
      // A second create of a name being created is refused once the first has decided, like any
      // create of an existing tenant (and if the first failed, this one is retried).
      if (pending)
        return pending.then(
          () => this.create(nameInput, options),
          () => this.create(nameInput, options),
        );
      const reg = this.host.registry;
      if (reg.has(name)) {
        throw new SoloError("SOLO_ERR_TENANT_EXISTS", `tenant ${name} already exists`, {
          tenant: name,
          hint: `${words("tenant.update", { name })} changes its limits`,
        });
      }
      const retired = reg.retiredRow(name);
      if (retired && !o.reuseName) throw reg.missing(name);
      const overrides = o.limits === undefined ? {} : o.limits;
      const resolved = resolveTenantLimits(overrides, this.host.defaults, "limits");
      this.checkBudget(name, resolved.memoryBytes, "create");
      const createdAt = this.host.now();
      this.reserved.set(name, resolved.memoryBytes);
      const run = (async (): Promise<TenantInfo> => {
        const { events } = await this.host.log.write(
          [{ t: "tenant.create", name, limits: JSON.stringify(overrides), createdAt }],
          [
            {
              tenant: name,
              type: "tenant_created",
              subject: name,
              payload: { limits: overrides, incarnation: (retired?.incarnation ?? 0) + 1 },
            },
          ],
        );
        const first = events[0] as SoloEvent;
        reg.put({
          name,
          incarnation: (retired?.incarnation ?? 0) + 1,
          limits: JSON.stringify(overrides),
          createdAt,
          eventsAfter: first.id - 1,
          deletedAt: null,
        });
        return reg.info(name);
      })().finally(() => {
        this.creating.delete(name);
        this.reserved.delete(name);
      });
      this.creating.set(name, run);
      return run;
    } catch (err) {
      return Promise.reject(err);
    }
  }

  async update(nameInput: unknown, limitsInput: unknown): Promise<TenantInfo> {
    this.host.assertOpen();
    const name = checkTenant(nameInput);
    const reg = this.host.registry;
    const row = reg.require(name);
    checkObject(limitsInput, { reason: "SOLO_ERR_LIMITS_INVALID", field: "limits", label: "tenants.update: limits" });
    const resolved = resolveTenantLimits(limitsInput, this.host.defaults, "limits");
    if (this.reserved.has(name)) throw tenantBusy(name, "has a change of its limits in flight");
    this.checkBudget(name, resolved.memoryBytes, "update");
    const overrides = JSON.stringify(limitsInput);
    this.reserved.set(name, resolved.memoryBytes);
    try {
      await this.host.log.write(
        [{ t: "tenant.limits", name, limits: overrides }],
        [{ tenant: name, type: "tenant_updated", subject: name, payload: { limits: limitsInput } }],
      );
    } finally {
      this.reserved.delete(name);
    }
    reg.put({ ...row, limits: overrides });
    this.host.limitsChanged(name);
    return reg.info(name);
  }

  // The sum of all tenants' memory limits stays within the kernel's budget, so every tenant can
  // hold what it was promised at once: a create or a raise past it is refused.
  private checkBudget(name: string, memoryBytes: number, what: "create" | "update"): void {
    // A tenant whose limit was lowered still counts its old one until its instance is replaced.
    let others = this.host.registry.committedBytes(name, (t) => this.host.instanceCap(t));
    for (const [n, bytes] of this.reserved) if (n !== name) others += bytes;
    const budget = this.host.budgetBytes;
    if (others + memoryBytes <= budget) return;
    const free = Math.max(0, budget - others);
    throw new SoloError(
      "SOLO_ERR_MEMORY_BUDGET",
      `tenants.${what}: tenant ${name}'s memory limit of ${mib(memoryBytes)} does not fit in the kernel's memory budget of ${mib(budget)}: other tenants are given ${mib(others)}, ${mib(free)} is left`,
      {
        tenant: name,
        field: "limits.memoryBytes",
        requested: memoryBytes,
        budget,
        committed: others,
        available: free,
        hint: "give the tenant a smaller memoryBytes, lower or delete other tenants, or start the kernel with a larger memory budget",
      },
    );
  }

  // Everything of the tenant goes but its events: services stop (terminate runs), tokens are
  // revoked, secrets, storage and deployments are deleted, in one transaction with tenant_deleted.
  async delete(nameInput: unknown): Promise<TenantDeletion> {
    this.host.assertOpen();
    const name = checkTenant(nameInput);
    const reg = this.host.registry;
    const row = reg.require(name);
    if (this.deleting.has(name)) throw tenantBusy(name, "is already being deleted");
    if (this.host.busy(name)) throw tenantBusy(name, "has a deploy, swap or restart in flight");
    this.deleting.add(name);
    try {
      return await this.deleteTenantNow(name, row);
    } finally {
      this.deleting.delete(name);
    }
  }

  private async deleteTenantNow(name: string, row: TenantRow): Promise<TenantDeletion> {
    const reg = this.host.registry;
    const services = await this.host.stopServices(name);
    const secrets = (await this.host.store.secrets(name)).length;
    const tokens = this.host.authority.tokens.list((t) => t.tenant === name && t.revokedAt === null, this.host.now()).length;
    const deletedAt = this.host.now();
    await this.host.log.write(
      [{ t: "tenant.delete", name, deletedAt }],
      [
        {
          tenant: name,
          type: "tenant_deleted",
          subject: name,
          payload: { incarnation: row.incarnation, services, tokensRevoked: tokens, secretsDeleted: secrets },
        },
      ],
    );
    reg.put({ ...row, deletedAt });
    this.host.authority.tokens.revokeTenant(name, deletedAt);
    this.host.forget(name);
    return { tenant: name, services, tokensRevoked: tokens, secretsDeleted: secrets };
  }
}

const TENANT_OPTION_KEYS = new Set(["limits", "reuseName"]);

function checkTenantOptions(input: unknown): { limits?: Partial<TenantLimits>; reuseName: boolean } {
  const at: At = { reason: "SOLO_ERR_REQUEST_INVALID", field: "", label: "tenants.create options" };
  const o = checkObject(input, at);
  checkKeys(o, TENANT_OPTION_KEYS, { ...at, label: "tenants.create" }, "option");
  const reuseName = checkFlag(o.reuseName, { reason: "SOLO_ERR_REQUEST_INVALID", field: "reuseName" });
  if (o.limits !== undefined)
    checkObject(o.limits, { reason: "SOLO_ERR_LIMITS_INVALID", field: "limits", label: "tenants.create: limits" });
  return { ...(o.limits !== undefined ? { limits: o.limits as Partial<TenantLimits> } : {}), reuseName };
}

function mib(bytes: number): string {
  return `${Math.round((bytes / (1024 * 1024)) * 10) / 10} MiB`;
}

/** @internal */
export function tenantBusy(tenant: string, why: string): SoloError {
  return new SoloError("SOLO_ERR_TENANT_BUSY", `tenant ${tenant} ${why}`, { tenant, hint: "retry once it is done" });
}
