// The hot-swap part: a running service's code replaced between two messages with its state kept;
// a rollback window whose watchdog brings the previous version back (with the state captured at
// the swap) if the new one crashes; and an operator's rollback to any stored version.

import type { SoloEvent } from "../../api/events.ts";
import type { ServiceGrants } from "../../api/grants.ts";
import { grantsData } from "../../api/grants.ts";
import type { Clock } from "../../api/kernel.ts";
import type { Deployment, SwapOptions } from "../../api/services.ts";
import type { Via } from "../../api/tokens.ts";
import { type At, checkKeys, checkObject, checkWhole } from "../../lib/check.ts";
import { SoloError } from "../../lib/errors/errors.ts";
import { checkFile } from "../../lib/names.ts";
import { stripTypes } from "../../sandbox/typescript.ts";
import type { PendingTimer, SchedulerPool, Swapped } from "../../scheduler/index.ts";
import type { Store } from "../../store/store.ts";
import type { Audit } from "../audit/index.ts";
import type { Authority } from "../auth/authority.ts";
import type { Principal } from "../auth/tokens.ts";
import type { Breakers } from "../breaker/index.ts";
import type { CodeChecks } from "../deployer/checks.ts";
import { checkVersion, permitGrants } from "../deployer/checks.ts";
import { type Launcher, sourceName } from "../deployer/launch.ts";
import type { EventLog } from "../log/event-log.ts";
import { resolveGrants } from "../powers/grants.ts";
import {
  CRASHED,
  cancelSwapWatch,
  clipDetails,
  deploymentRow,
  grantsOf,
  keyOf,
  type Registry,
  type ServiceRecord,
  STOPPED,
  type SwapWatch,
} from "../registry/index.ts";
import type { Resources } from "../resources/index.ts";
import type { Supervisor } from "../supervisor/supervisor.ts";

const DEFAULT_ROLLBACK_WINDOW_MS = 30_000;
const MAX_ROLLBACK_WINDOW_MS = 3_600_000;

export interface HotSwapParts {
  readonly registry: Registry;
  readonly launcher: Launcher;
  readonly supervisor: Supervisor;
  readonly resources: Resources;
  readonly breakers: Breakers;
  readonly checks: CodeChecks;
  readonly authority: Authority;
  readonly pool: SchedulerPool;
  readonly store: Store;
  readonly log: EventLog;
  readonly audit: Audit;
  readonly clock: Clock;
  readonly closed: () => boolean;
}

export class HotSwap {
  /** The parts it works with, as open.ts gave them. */
  private readonly p: HotSwapParts;

  constructor(parts: HotSwapParts) {
    this.p = parts;
  }

  async swap(p: Principal, via: Via | undefined, tenant: string, service: string, code: string, options: SwapOptions): Promise<Deployment> {
    const r = this.p.registry.running(tenant, service);
    this.p.resources.checkCooldown(r.tenant);
    const checked = this.p.checks.code(code, "swap");
    const { windowMs, grants: given, file: fileGiven } = checkSwapOptions(options);
    // New grants, if given, within what the swapping principal holds; else the running version's.
    const grants = given === undefined ? r.grants : resolveGrants(given, "grants");
    const file = fileGiven === undefined ? r.file : checkFile(fileGiven);
    if (given !== undefined)
      await permitGrants(this.p.authority, p, { operation: "swap", tenant: r.tenant, subject: r.service, via }, grants);
    const key = this.p.registry.claim(r);
    const version = this.p.registry.highestVersion(key) + 1;
    try {
      const { fresh, state, timers, findings } = await (async () => {
        const { stripped, findings } = this.p.checks.analyze(checked, r.service, "swap", file);
        return { ...(await this.swapIn(r, checked, stripped, version, r.version, grants, file)), findings };
      })().catch(async (err: unknown) => {
        const error = SoloError.from(err);
        await this.p.audit.record({
          tenant: r.tenant,
          type: "hot_swap_failed",
          subject: r.service,
          payload: {
            from: r.version,
            to: version,
            reason: error.reason,
            message: error.message.slice(0, 1000),
            details: clipDetails(error.details),
          },
          causationId: r.causeId,
        });
        throw error;
      });
      if (r.killed) {
        // Killed while the scheduler was swapping: the instance is gone, and so is the swap.
        fresh.killed = true;
        fresh.life = STOPPED;
        this.p.registry.takeVersion(key, version); // the number ran, however briefly: it is not given out again
        throw new SoloError("SOLO_ERR_SERVICE_STOPPED", `service ${r.service} was killed during the swap`, {
          tenant: r.tenant,
          service: r.service,
        });
      }
      // Armed before the new version is recorded: it takes messages already, and a crash from
      // now on rolls it back (the timer starts once the swap is durable).
      fresh.swapWatch = { from: r, state, timers, timer: undefined };
      const { events } = await this.p.log.write(
        [{ t: "deployment.put", deployment: deploymentRow({ ...r, version, code: checked, grants, file }, Date.now()) }],
        [
          {
            tenant: r.tenant,
            type: "hot_swap_started",
            subject: r.service,
            payload: {
              from: r.version,
              to: version,
              rollbackWindowMs: windowMs,
              ...(given !== undefined ? { grants: grantsData(grants) } : {}),
            },
            causationId: r.causeId,
          },
        ],
      );
      fresh.causeId = (events[0] as SoloEvent).id;
      this.p.registry.takeVersion(key, version);
      this.p.breakers.reset(r.tenant, r.service);
      // The verdict goes to whichever record carries this watch when the window ends: an
      // operator's restart() inside the window hands the watch on to the restarted instance.
      const watch = fresh.swapWatch;
      const settle = (): void => {
        const current = this.p.registry.current(r.tenant, r.service);
        if (!current || !watch || current.swapWatch?.from !== watch.from) return;
        current.swapWatch = undefined;
        void this.p.audit.record({
          tenant: r.tenant,
          type: "hot_swap_succeeded",
          subject: r.service,
          payload: { from: r.version, to: version },
          causationId: current.causeId,
        });
      };
      if (watch && fresh.swapWatch === watch) {
        if (this.p.closed())
          fresh.swapWatch = undefined; // closed meanwhile: no timer may outlive the kernel
        else if (windowMs === 0) settle();
        else fresh.swapWatch = { from: r, state, timers, timer: this.p.clock.setTimeout(settle, windowMs) };
      }
      return { tenant: r.tenant, service: r.service, version, findings };
    } finally {
      this.p.registry.release(key);
    }
  }

  async rollback(tenant: string, service: string, version?: number): Promise<Deployment> {
    const r = this.p.registry.running(tenant, service);
    this.p.resources.checkCooldown(r.tenant);
    const key = keyOf(r.tenant, r.service);
    const history = await this.p.store.deploymentHistory(r.tenant, r.service);
    const target =
      version === undefined ? [...history].reverse().find((d) => d.version < r.version) : history.find((d) => d.version === version);
    checkVersion("rollback", version);
    if (!target || target.version === r.version) {
      throw new SoloError(
        "SOLO_ERR_VERSION_NOT_FOUND",
        version === undefined
          ? `service ${r.service} has no version before ${r.version} to roll back to`
          : `service ${r.service} has no version ${version} other than the running one`,
        { tenant: r.tenant, service: r.service, versions: history.map((d) => d.version) },
      );
    }
    this.p.registry.claim(r);
    try {
      cancelSwapWatch(r, this.p.clock);
      const { fresh } = await this.swapIn(
        r,
        target.code,
        stripTypes(target.code, sourceName(r.service, target.file, true)),
        target.version,
        r.version,
        grantsOf(target),
        target.file,
      );
      const { events } = await this.p.log.write(
        [{ t: "deployment.activate", tenant: r.tenant, service: r.service, version: target.version }],
        [
          {
            tenant: r.tenant,
            type: "hot_swap_rolled_back",
            subject: r.service,
            payload: { from: r.version, to: target.version, by: "operator" },
            causationId: r.causeId,
          },
        ],
      );
      fresh.causeId = (events[0] as SoloEvent).id;
      this.p.breakers.reset(r.tenant, r.service);
      return { tenant: r.tenant, service: r.service, version: target.version, findings: [] };
    } finally {
      this.p.registry.release(key);
    }
  }

  /** Replaces a running service's code on its scheduler (between two messages); returns the new record. */
  private async swapIn(
    r: ServiceRecord,
    code: string,
    stripped: string,
    version: number,
    fromVersion: number,
    grants: ServiceGrants,
    file: string | undefined,
  ): Promise<{ fresh: ServiceRecord; state: string; timers: readonly PendingTimer[] }> {
    const filename = sourceName(r.service, file, stripped !== code);
    const reply = JSON.parse(
      await this.p.pool.request(r.scheduler, (rid) => ({
        op: "swap",
        rid,
        sid: r.sid,
        version,
        fromVersion,
        filename,
        code: stripped,
        limits: r.limits,
        grants,
      })).promise,
    ) as Swapped;
    const fresh: ServiceRecord = {
      ...r,
      version,
      code,
      grants,
      file,
      handlers: Object.freeze([...reply.handlers]),
      causeId: r.causeId,
      restarts: 0,
      restartTimes: [],
      swapWatch: undefined,
      deployedAt: new Date().toISOString(),
    };
    delete fresh.crash;
    this.p.registry.track(fresh);
    if (this.p.registry.isCurrent(r)) this.p.registry.name(fresh);
    return { fresh, state: reply.state, timers: reply.timers };
  }

  // The new version crashed inside its rollback window: the previous code comes back with the state
  // captured at the swap (no init), and the store points at the previous version again.
  async rollBackAfterCrash(r: ServiceRecord, watch: SwapWatch, cause: Promise<SoloEvent | undefined>): Promise<void> {
    const key = keyOf(r.tenant, r.service);
    const old = watch.from;
    this.p.registry.hold(key);
    try {
      await this.p.supervisor.startAgain(r, {
        from: old,
        carried: { state: watch.state, timers: watch.timers },
        held: key,
        failed: (error) => {
          if (r.killed) return; // killed meanwhile: it stays down
          console.error(`solo: rolling ${key} back to version ${old.version} failed:`, error);
          r.life = CRASHED;
          this.p.supervisor.supervise(r, cause);
        },
        record: async () => {
          this.p.breakers.reset(r.tenant, r.service);
          const crashEvent = await cause;
          const { events } = await this.p.log.write(
            [{ t: "deployment.activate", tenant: r.tenant, service: r.service, version: old.version }],
            [
              {
                tenant: r.tenant,
                type: "hot_swap_rolled_back",
                subject: r.service,
                payload: { from: r.version, to: old.version, by: "watchdog", crash: r.crash ?? null },
                causationId: crashEvent?.id ?? r.causeId,
              },
            ],
          );
          return (events[0] as SoloEvent).id;
        },
      });
    } catch (err) {
      console.error(`solo: recording the rollback of ${key} to version ${old.version} failed:`, err);
    }
  }
}

// A swap's options, checked as every other input is (lib/check): the window in range, only known
// options; the grants and file are checked by their own parts.
function checkSwapOptions(options: unknown): { readonly windowMs: number; readonly grants: unknown; readonly file: unknown } {
  const at: At = { reason: "SOLO_ERR_REQUEST_INVALID", field: "options", label: "swap options" };
  const o = checkObject(options, at, "{ rollbackWindowMs: 30000 }");
  checkKeys(o, ["rollbackWindowMs", "grants", "file"], { ...at, field: "", label: "swap" }, "option");
  const windowMs = checkWhole(
    o.rollbackWindowMs ?? DEFAULT_ROLLBACK_WINDOW_MS,
    { min: 0, max: MAX_ROLLBACK_WINDOW_MS },
    { ...at, field: "rollbackWindowMs", label: "swap: rollbackWindowMs" },
  );
  return { windowMs, grants: o.grants, file: o.file };
}
