// Starting one version of a service on its tenant's scheduler, and stopping an instance: what a
// deploy, a restart (the supervisor's or an operator's) and a rollback all do the same way.

import type { Clock } from "../../api/kernel.ts";
import { SoloError } from "../../lib/errors/errors.ts";
import { deployFailure } from "../../sandbox/crash.ts";
import { stripTypes } from "../../sandbox/typescript.ts";
import type { Deployed, PendingTimer, SchedulerPool } from "../../scheduler/index.ts";
import {
  cancelRestart,
  cancelSwapWatch,
  EMPTY_USAGE,
  type LaunchSpec,
  type Registry,
  RUNNING,
  type ServiceRecord,
} from "../registry/index.ts";
import type { TenantRegistry } from "../tenants/tenants.ts";

/** The state (and its pending timers) a version starts with instead of running init. */
export interface Adopted {
  readonly state: string;
  readonly timers: readonly PendingTimer[];
}

export interface LauncherParts {
  readonly registry: Registry;
  readonly pool: SchedulerPool;
  readonly tenants: TenantRegistry;
  readonly clock: Clock;
}

export class Launcher {
  /** The parts it works with, as open.ts gave them. */
  private readonly p: LauncherParts;

  constructor(parts: LauncherParts) {
    this.p = parts;
  }

  /**
   * Starts one version on its tenant's scheduler and runs init; on success the record is
   * registered under its name (replacing `previous`). Throws the deploy error otherwise.
   * `revive`: it brings `previous` back (a restart or rollback), so a kill of that stops it too.
   */
  async launch(spec: LaunchSpec, previous?: ServiceRecord, adopt?: Adopted, revive = false): Promise<ServiceRecord> {
    const { tenant, service, version, code, args, limits, supervision, deployedAt, meta, grants, file } = spec;
    const stripped = spec.stripped ?? stripTypes(code, sourceName(service, file, true));
    const filename = sourceName(service, file, stripped !== code);
    const scheduler = this.p.registry.place(tenant);
    const record: ServiceRecord = {
      tenant,
      service,
      sid: this.p.registry.newSid(),
      version,
      code,
      args,
      meta,
      supervision,
      grants,
      restarts: 0,
      restartTimes: [],
      causeId: null,
      scheduler,
      limits,
      deployedAt,
      ...(file !== undefined ? { file } : {}),
      // Counted as running (for placement) from the start; it is reachable by name only once
      // init has succeeded, and a failed deploy removes it.
      life: RUNNING,
      handlers: [],
      usage: EMPTY_USAGE,
    };
    // Until init succeeds the new record is known only by its sid: the previous version (crashed
    // or stopped) stays visible under the name, and a failed deploy leaves nothing behind. A kill
    // meanwhile finds it as the one starting.
    this.p.registry.track(record);
    this.p.registry.beginStart(record);
    try {
      const { promise } = this.p.pool.request(scheduler, (rid) => ({
        op: "deploy",
        rid,
        sid: record.sid,
        tenant,
        service,
        version,
        filename,
        code: stripped,
        args,
        limits,
        grants,
        tenantMemoryBytes: this.p.tenants.limits(tenant).memoryBytes,
        ...(adopt !== undefined ? { state: adopt.state, timers: adopt.timers } : {}),
      }));
      const reply = JSON.parse(await promise) as Deployed;
      // Killed while it was starting (its init stopped, or it got through just before), or, for a
      // revival, the version it revives was killed meanwhile: the new instance goes too.
      if (record.killed || (revive && previous?.killed)) {
        record.killed = true;
        await this.stop(record);
        throw new SoloError("SOLO_ERR_SERVICE_STOPPED", `service ${service} was killed while it was starting`, { tenant, service });
      }
      record.handlers = Object.freeze([...reply.handlers]);
      if (previous) {
        cancelRestart(previous, this.p.clock);
        cancelSwapWatch(previous, this.p.clock);
        this.p.registry.untrack(previous);
      }
      this.p.registry.name(record);
      return record;
    } catch (err) {
      this.p.registry.untrack(record);
      if (record.killed) {
        throw new SoloError("SOLO_ERR_SERVICE_STOPPED", `service ${service} was killed while it was starting`, { tenant, service });
      }
      // Its own start ran past the hard limit and the watchdog replaced the scheduler: a CPU breach.
      if (err instanceof SoloError && err.reason === "SOLO_ERR_SCHEDULER_FAILED" && err.details.culpritSid === record.sid) {
        throw deployFailure({
          kind: "cpu_limit",
          reason: "SOLO_ERR_LIMIT_CPU",
          message: "starting it ran past its hard CPU limit inside code the engine could not interrupt; its scheduler was replaced",
        });
      }
      throw err;
    } finally {
      this.p.registry.endStart(record);
    }
  }

  // Asks the service's scheduler to stop it. If the scheduler is replaced meanwhile (the watchdog
  // stopped another service's runaway, or this one's), the service went with it: stopped as asked.
  async stop(r: ServiceRecord, reason: "killed" | "restart" = "killed"): Promise<void> {
    try {
      await this.p.pool.request(r.scheduler, (rid) => ({ op: "kill", rid, sid: r.sid, reason })).promise;
    } catch (err) {
      if (!(err instanceof SoloError && err.reason === "SOLO_ERR_SCHEDULER_FAILED")) throw err;
    }
  }
}

/** The name errors and stack frames give a service's code: the file as deployed, else `<service>.ts` or `.js`. */
export function sourceName(service: string, file: string | undefined, typescript: boolean): string {
  return file ?? `${service}.${typescript ? "ts" : "js"}`;
}
