// Each tenant's supervisor at run time: told that a child exited and why, it decides from the
// service's policy (policy.ts) whether to restart it, after what backoff, or give it up; it runs
// the restart, and the operator's. A scheduler that died is many children exiting at once.

import type { Crash } from "../../api/crash.ts";
import type { SoloEvent } from "../../api/events.ts";
import type { Clock } from "../../api/kernel.ts";
import type { Deployment } from "../../api/services.ts";
import { SoloError } from "../../lib/errors/errors.ts";
import type { Culprit } from "../../scheduler/index.ts";
import type { Audit } from "../audit/index.ts";
import type { Launcher } from "../deployer/launch.ts";
import type { EventLog } from "../log/event-log.ts";
import type { LogLines } from "../log/lines.ts";
import {
  CRASHED,
  cancelRestart,
  cancelSwapWatch,
  crashOf,
  EXITED,
  FAILED,
  keyOf,
  type Registry,
  restarting,
  type ServiceRecord,
  STOPPED,
  type SwapWatch,
} from "../registry/index.ts";
import type { Resources } from "../resources/index.ts";
import { decide } from "./policy.ts";

/** What a rollback starts the previous code with: the state and timers captured at the swap. */
type Carried = Parameters<Launcher["launch"]>[2];

/** What the supervisor hands on: a crash inside a swap's window goes to the hot swap's watchdog. */
export interface SupervisorLinks {
  readonly rollBack: (r: ServiceRecord, watch: SwapWatch, cause: Promise<SoloEvent | undefined>) => void;
  readonly recast: (old: ServiceRecord, casts: readonly string[]) => void;
}

/** How a service went down: its own fault, or none of it (its scheduler went for another's runaway). */
type Cause = number | null | Promise<SoloEvent | undefined>;

export interface SupervisorParts {
  readonly registry: Registry;
  readonly launcher: Launcher;
  readonly resources: Resources;
  readonly audit: Audit;
  readonly lines: LogLines;
  readonly log: EventLog;
  readonly clock: Clock;
  readonly closed: () => boolean;
  readonly links: SupervisorLinks;
}

export class Supervisor {
  /** The parts it works with, as open.ts gave them. */
  private readonly p: SupervisorParts;

  constructor(parts: SupervisorParts) {
    this.p = parts;
  }

  /** A child exited abnormally: the crash is recorded, then the supervisor decides. */
  crashed(r: ServiceRecord, crash: Crash | null, phase?: string, innocent = false): void {
    // Decided now, so calls see "restarting" (with a retry hint) from the moment of the crash.
    const cause = this.p.audit.record({
      tenant: r.tenant,
      type: "service_crashed",
      subject: r.service,
      // The lines just before the crash come with it (the rest: logs()).
      payload: { version: r.version, crash, ...(phase ? { phase } : {}), logs: this.p.lines.forCrash(r.tenant, r.service) },
      causationId: r.causeId,
    });
    const watch = r.swapWatch;
    if (watch) {
      r.swapWatch = undefined;
      if (watch.timer !== undefined) this.p.clock.clearTimeout(watch.timer);
      r.life = restarting(0, undefined);
      this.p.links.rollBack(r, watch, cause);
      return;
    }
    this.supervise(r, cause, innocent);
  }

  /** A status report from a scheduler: the running service `r` stopped or crashed on its own. */
  exited(r: ServiceRecord, status: "crashed" | "stopped", crash: Crash | undefined, stalledMs: number | undefined): void {
    r.life = status === "crashed" ? CRASHED : STOPPED;
    if (crash) r.crash = crash;
    if (status !== "crashed") {
      this.endedNormally(r);
      return;
    }
    // Held its thread far past its budget inside a built-in: its neighbours waited, so its
    // tenant cools down as if the watchdog had had to step in.
    if (stalledMs !== undefined) this.p.resources.strike(r.tenant);
    // Not under its name yet (the crash came right after init): whoever is starting it handles it.
    if (!this.p.registry.isCurrent(r)) r.earlyCrash = crash ?? null;
    else this.crashed(r, crash ?? null);
  }

  // A handler returned stop: true. Recorded, then decided as OTP does a normal exit: a permanent
  // service is restarted (counting in its intensity), a transient or temporary one stays down.
  private endedNormally(r: ServiceRecord): void {
    if (this.p.closed() || !this.p.registry.isCurrent(r)) return;
    const event = this.p.audit.record({
      tenant: r.tenant,
      type: "service_stopped",
      subject: r.service,
      payload: { version: r.version, reason: "normal", restart: r.supervision.restart },
      causationId: r.causeId,
    });
    const now = this.p.clock.now();
    const d = decide(r.supervision, r.restartTimes, false, now, this.p.clock.random());
    if (d.action === "restart") {
      noteRestart(r, now);
      this.scheduleRestart(r, d.delayMs, async () => (await event)?.id ?? r.causeId);
      return;
    }
    if (d.action === "fail") {
      this.supervise(r, event);
      return;
    }
    r.life = EXITED;
    this.p.registry.wake(r);
  }

  // `innocent`: the service went down through no fault of its own (its scheduler was replaced for
  // another service's runaway step), so the restart does not use up its restart intensity.
  supervise(r: ServiceRecord, cause: Cause, innocent = false): void {
    if (this.p.closed() || !this.p.registry.isCurrent(r)) return;
    const now = this.p.clock.now();
    const d = decide(r.supervision, innocent ? [] : r.restartTimes, true, now, this.p.clock.random());
    const causeId = async (): Promise<number | null> =>
      typeof cause === "object" && cause !== null ? ((await cause)?.id ?? r.causeId) : cause;
    if (d.action === "stay_down") {
      this.p.registry.wake(r);
      return;
    }
    if (d.action === "fail") {
      r.life = FAILED;
      this.p.registry.wake(r);
      void causeId().then((id) =>
        this.p.audit.record({
          tenant: r.tenant,
          type: "service_failed",
          subject: r.service,
          payload: {
            version: r.version,
            restarts: r.restarts,
            restartsInPeriod: d.restartsInPeriod,
            periodMs: r.supervision.periodMs,
            crash: r.crash ?? null,
          },
          causationId: id,
        }),
      );
      return;
    }
    if (!innocent) noteRestart(r, now);
    this.scheduleRestart(r, d.delayMs, causeId);
  }

  scheduleRestart(r: ServiceRecord, backoffMs: number, causeId: () => Promise<number | null>): void {
    // A tenant cooling down after stalling its scheduler starts nothing again before it ends.
    const delayMs = Math.max(backoffMs, this.p.resources.cooldownLeft(r.tenant));
    const at = this.p.clock.now() + delayMs;
    r.life = restarting(at, undefined);
    const timer = this.p.clock.setTimeout(() => {
      if (r.life.state === "restarting") r.life = restarting(r.life.at, undefined);
      // The restart does not wait for the crash event's commit; only the restart event needs its id.
      void this.restartNow(r, causeId, delayMs);
    }, delayMs);
    // Unless a clock fired it at once, the timer is what a cancel must clear.
    if (r.life.state === "restarting" && r.life.at === at && r.life.timer === undefined) r.life = restarting(at, timer);
  }

  /**
   * Starts `r` again: the one path of the supervisor's restarts, an operator's restart and the swap
   * watchdog's rollback. It starts as a revival (a kill meanwhile keeps it down) from `from`'s code
   * and, for a rollback, with `carried` state and timers. A name the caller `held` is free again
   * once the service runs (or did not start), so an operator can act during the event's write.
   * Once running, `record` writes the event that says why (its id becomes the service's cause) and
   * calls waiting for it go on. If it did not start, `failed` has the error and the result is
   * undefined; a service killed meanwhile (`r.killed`) stays down.
   */
  async startAgain(
    r: ServiceRecord,
    how: {
      readonly from: ServiceRecord;
      readonly carried?: Carried;
      readonly held?: string;
      readonly failed: (error: SoloError) => void;
      readonly record: (fresh: ServiceRecord) => Promise<number | null>;
    },
  ): Promise<ServiceRecord | undefined> {
    let fresh: ServiceRecord;
    try {
      fresh = await this.p.launcher.launch(how.from, r, how.carried, true);
    } catch (err) {
      if (how.held !== undefined) this.p.registry.release(how.held);
      how.failed(SoloError.from(err));
      return undefined;
    }
    if (how.held !== undefined) this.p.registry.release(how.held);
    fresh.crash = r.crash;
    fresh.causeId = r.causeId; // until the event that says why is written
    fresh.causeId = await how.record(fresh);
    this.afterStart(fresh);
    return fresh;
  }

  /** It did not start again (init throws now, say): one more crash, for its supervisor or a swap's watchdog. */
  private notBack(r: ServiceRecord, error: SoloError): void {
    if (r.killed) return; // killed while it was starting again: it stays down
    // Unless the scheduler it was starting on was replaced for another service's runaway.
    const innocent = error.reason === "SOLO_ERR_SCHEDULER_FAILED";
    r.life = CRASHED;
    r.crash = innocent ? { kind: "scheduler_failed", reason: error.reason, message: error.message.slice(0, 1000) } : crashOf(error);
    r.restarts += 1;
    this.crashed(r, r.crash, "restart", innocent);
  }

  private async restartNow(r: ServiceRecord, causeId: () => Promise<number | null>, delayMs: number): Promise<void> {
    if (this.p.closed() || r.life.state !== "restarting" || !this.p.registry.isCurrent(r)) return;
    const key = keyOf(r.tenant, r.service);
    this.p.registry.hold(key);
    await this.startAgain(r, {
      from: r,
      held: key,
      failed: (error) => this.notBack(r, error),
      record: async (fresh) => {
        fresh.restarts = r.restarts + 1;
        fresh.restartTimes = r.restartTimes;
        // The restart does not wait for the crash event's commit; only the restart event needs its id.
        const cause = await causeId();
        const event = await this.p.audit.record({
          tenant: r.tenant,
          type: "service_restarted",
          subject: r.service,
          payload: { version: r.version, restarts: fresh.restarts, delayMs, by: "supervisor" },
          causationId: cause,
        });
        return event?.id ?? cause;
      },
    });
  }

  /** An operator's restart: stopped (if running) and started again at once, as a revival. */
  async restart(r: ServiceRecord): Promise<Deployment> {
    this.p.resources.checkCooldown(r.tenant);
    if (r.life.state === "stopped" && r.life.normal !== true) {
      throw new SoloError("SOLO_ERR_SERVICE_STOPPED", `service ${r.service} was killed; deploy it to start it again`, {
        tenant: r.tenant,
        service: r.service,
      });
    }
    const key = this.p.registry.claim(r);
    try {
      cancelRestart(r, this.p.clock);
      if (r.life.state === "running") {
        await this.p.launcher.stop(r, "restart");
        r.life = STOPPED;
      }
      // An operator's restart starts the intensity count afresh; a swap's rollback window goes on.
      const watch = r.swapWatch;
      r.swapWatch = undefined;
      let refused: SoloError | undefined;
      const fresh = await this.startAgain(r, {
        from: r,
        failed: (error) => {
          refused = error;
          if (r.killed) return;
          r.swapWatch = watch; // inside a swap's window, the watchdog has it
          this.notBack(r, error);
        },
        record: async (fresh) => {
          fresh.restarts = r.restarts + 1;
          fresh.swapWatch = watch;
          const event = await this.p.log.append({
            tenant: r.tenant,
            type: "service_restarted",
            subject: r.service,
            payload: { version: r.version, restarts: fresh.restarts, by: "operator" },
            causationId: r.causeId,
          });
          return event.id;
        },
      });
      if (fresh === undefined) throw refused; // set: it did not start
      return { tenant: r.tenant, service: r.service, version: r.version, findings: [] };
    } finally {
      this.p.registry.release(key);
    }
  }

  /** A crash that came before the service was registered is handled now that it is. */
  afterStart(r: ServiceRecord): void {
    this.p.registry.wake(r);
    if (r.earlyCrash === undefined) return;
    const crash = r.earlyCrash;
    r.earlyCrash = undefined;
    if (this.p.registry.isCurrent(r) && r.life.state === "crashed") this.crashed(r, crash);
  }

  // A scheduler thread is gone: it died, or the watchdog replaced it to stop one service's step
  // that could not be interrupted (the culprit). The culprit crashes with SOLO_ERR_LIMIT_CPU (or,
  // if an operator was killing it, the kill simply completes); every other service that shared
  // the thread comes back on the fresh one through its supervisor, without using up its restart
  // intensity, and the calls that were waiting on them are delivered to them afterwards.
  schedulerDied(index: number, error: SoloError, culprit: Culprit | undefined, unstarted: ReadonlyMap<number, readonly string[]>): void {
    const blamed = culprit ? this.p.registry.instance(culprit.sid) : undefined;
    const lost: Crash = {
      kind: "scheduler_failed",
      reason: "SOLO_ERR_SCHEDULER_FAILED",
      message: blamed
        ? `its scheduler was replaced to stop ${blamed.tenant}/${blamed.service}, which ${culprit?.why === "killed" ? "was being killed inside code that could not be interrupted" : "ran past its hard CPU limit"}; it is started again on a fresh scheduler`
        : error.message,
    };
    const affected: ServiceRecord[] = [];
    for (const r of this.p.registry.instances()) if (r.scheduler === index && r.life.state === "running") affected.push(r);
    this.p.resources.schedulerGone(this.p.registry.unplace(index));
    // Stalling a scheduler costs the tenant a strike whether the watchdog found the step past its
    // hard limit or an operator's kill found it unable to let go: either way its neighbours lost
    // their state.
    if (blamed) this.p.resources.strike(blamed.tenant);
    if (culprit) {
      void this.p.audit.record({
        tenant: null,
        type: "scheduler_replaced",
        payload: {
          scheduler: index,
          reason: culprit.why === "killed" ? "killed" : "cpu_limit",
          culprit: blamed ? { tenant: blamed.tenant, service: blamed.service, version: blamed.version } : null,
          usedMs: Math.round(culprit.usedMs),
          hardLimitMs: culprit.hardLimitMs,
          services: affected.length,
        },
      });
    }
    for (const r of affected) {
      if (r.killed || (culprit?.why === "killed" && r.sid === culprit.sid)) continue; // the kill or restart in progress finishes it
      if (culprit && r.sid === culprit.sid) {
        const crash: Crash = {
          kind: "cpu_limit",
          reason: "SOLO_ERR_LIMIT_CPU",
          message: `one message ran ${Math.round(culprit.usedMs)} ms of CPU, past its hard limit of ${culprit.hardLimitMs} ms (10 times its budget of ${r.limits.cpuMsPerMessage} ms, at least 1 s), inside code the engine could not interrupt; its scheduler was replaced`,
        };
        r.life = CRASHED;
        r.crash = crash;
        this.crashed(r, crash);
        continue;
      }
      r.life = CRASHED;
      r.crash = lost;
      this.crashed(r, lost, undefined, culprit !== undefined);
      const casts = unstarted.get(r.sid);
      if (casts) this.p.links.recast(r, casts);
    }
  }

  /** Stands every pending restart and swap window down (the kernel is closing). */
  standDown(): void {
    for (const r of this.p.registry.instances()) {
      cancelRestart(r, this.p.clock);
      cancelSwapWatch(r, this.p.clock);
    }
  }
}

/** Counts a restart at `now` against the service's intensity: the restarts of its period, and this one. */
function noteRestart(r: ServiceRecord, now: number): void {
  r.restartTimes = [...r.restartTimes.filter((t) => t > now - r.supervision.periodMs), now];
}
