import type { TenantLimits } from "../../api/limits.ts";
import type { TenantInfo } from "../../api/tenants.ts";
import { SoloError } from "../../lib/errors/errors.ts";
import { words } from "../../lib/errors/transport.ts";
import type { TenantRow } from "../../store/store.ts";
import { clampStoredTenantLimits, resolveTenantLimits } from "../limits.ts";

interface Tenant {
  row: TenantRow;
  overrides: Partial<TenantLimits>;
  limits: TenantLimits;
}

/**
 * The tenants, in memory (the store keeps them durably): the live incarnation of each name, and
 * the names whose last tenant was deleted, which are not reused by accident.
 */
export class TenantRegistry {
  private readonly live = new Map<string, Tenant>();
  private readonly retired = new Map<string, TenantRow>();
  private readonly defaults: TenantLimits;

  constructor(rows: readonly TenantRow[], defaults: TenantLimits) {
    this.defaults = defaults;
    for (const r of rows) this.put(r);
  }

  /** Records a row (live or deleted) once it is durable. */
  put(row: TenantRow): void {
    if (row.deletedAt !== null) {
      const live = this.live.get(row.name);
      if (live && live.row.incarnation <= row.incarnation) this.live.delete(row.name);
      if (!this.live.has(row.name)) this.retired.set(row.name, row);
      return;
    }
    const overrides = parseOverrides(row.limits);
    this.live.set(row.name, { row, overrides, limits: resolveTenantLimits(clampStoredTenantLimits(overrides), this.defaults) });
    this.retired.delete(row.name);
  }

  has(name: string): boolean {
    return this.live.has(name);
  }

  /** The live tenant's row, or undefined. */
  row(name: string): TenantRow | undefined {
    return this.live.get(name)?.row;
  }

  /** The deleted tenant a name last belonged to, if it has no live one. */
  retiredRow(name: string): TenantRow | undefined {
    return this.retired.get(name);
  }

  /** Throws the precise error unless the tenant is live. */
  require(name: string): TenantRow {
    const t = this.live.get(name);
    if (t) return t.row;
    throw this.missing(name);
  }

  missing(name: string): SoloError {
    const gone = this.retired.get(name);
    if (gone) {
      return new SoloError(
        "SOLO_ERR_TENANT_DELETED",
        `tenant ${name} was deleted${gone.deletedAt ? ` at ${new Date(gone.deletedAt).toISOString()}` : ""}`,
        {
          tenant: name,
          hint: `create it again with ${words("tenant.create.reuse", { name })} to start a new tenant of that name`,
        },
      );
    }
    return new SoloError("SOLO_ERR_TENANT_NOT_FOUND", `no tenant named ${name}`, {
      tenant: name,
      hint: `${words("tenant.create", { name })} makes one`,
    });
  }

  limits(name: string): TenantLimits {
    return this.live.get(name)?.limits ?? this.defaults;
  }

  info(name: string): TenantInfo {
    const t = this.live.get(name);
    if (!t) throw this.missing(name);
    return {
      name,
      incarnation: t.row.incarnation,
      limits: t.limits,
      overrides: t.overrides,
      createdAt: new Date(t.row.createdAt).toISOString(),
    };
  }

  /**
   * Memory given to live tenants, except `except`'s: each one's `memoryBytes`, or what `held`
   * says it may still hold if that is more (an instance made under a higher limit).
   */
  committedBytes(except?: string, held: (tenant: string) => number = () => 0): number {
    let sum = 0;
    for (const [name, t] of this.live) if (name !== except) sum += Math.max(t.limits.memoryBytes, held(name));
    return sum;
  }

  names(): string[] {
    return [...this.live.keys()].sort();
  }
}

function parseOverrides(text: string): Partial<TenantLimits> {
  try {
    const v = JSON.parse(text) as unknown;
    return v !== null && typeof v === "object" && !Array.isArray(v) ? (v as Partial<TenantLimits>) : {};
  } catch {
    return {};
  }
}
