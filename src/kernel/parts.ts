// The kernel's parts, as the composition root (open.ts) builds them and the facade (kernel.ts)
// and the operations use them.

import { SoloError } from "../lib/errors/errors.ts";
import type { SchedulerPool } from "../scheduler/index.ts";
import type { Store } from "../store/store.ts";
import type { Audit } from "./audit/index.ts";
import type { Authority } from "./auth/authority.ts";
import type { Breakers } from "./breaker/index.ts";
import type { Calls } from "./calls/index.ts";
import type { DataDirLock } from "./data-dir.ts";
import type { CodeChecks, Deployer, Launcher } from "./deployer/index.ts";
import type { HotSwap } from "./hotswap/index.ts";
import type { ServiceIo } from "./io/index.ts";
import type { EventLog } from "./log/event-log.ts";
import type { LogLines } from "./log/lines.ts";
import type { ResolvedOptions } from "./options.ts";
import type { Registry } from "./registry/index.ts";
import type { Resources } from "./resources/index.ts";
import type { Supervisor } from "./supervisor/index.ts";
import type { TenantLifecycle } from "./tenants/lifecycle.ts";
import type { TenantRegistry } from "./tenants/tenants.ts";
import type { Vault } from "./vault/vault.ts";

/** Whether the kernel is closing; set once, at the start of close(). */
export interface Lifetime {
  closed: boolean;
}

export interface Parts {
  readonly opts: ResolvedOptions;
  readonly lock: DataDirLock;
  readonly lifetime: Lifetime;
  readonly openedAt: number;
  readonly pool: SchedulerPool;
  readonly store: Store;
  readonly log: EventLog;
  readonly vault: Vault;
  readonly authority: Authority;
  readonly tenants: TenantRegistry;
  readonly lifecycle: TenantLifecycle;
  readonly io: ServiceIo;
  readonly registry: Registry;
  readonly audit: Audit;
  /** Each service's recent log lines, by name (they outlive its instances). */
  readonly lines: LogLines;
  readonly breakers: Breakers;
  readonly resources: Resources;
  readonly calls: Calls;
  readonly checks: CodeChecks;
  readonly launcher: Launcher;
  readonly supervisor: Supervisor;
  readonly hotswap: HotSwap;
  readonly deployer: Deployer;
}

/** The error of an operation on a kernel that is closing or closed. */
export function kernelClosed(): SoloError {
  return new SoloError("SOLO_ERR_KERNEL_CLOSED", "the kernel is closed; open a new one with openKernel()");
}

/** Throws if the kernel is closing or closed. */
export function assertOpen(lifetime: Lifetime): void {
  if (lifetime.closed) throw kernelClosed();
}
