// The registry: every service the kernel knows, by name and by instance id, and which operations
// are under way on which names. It owns the maps; the other parts ask it, and register what they
// start. Waiting for a name to run again (after its scheduler was replaced) is here too, since
// only the registry sees a name change hands.

import type { Crash } from "../../api/crash.ts";
import type { Clock } from "../../api/kernel.ts";
import { SoloError } from "../../lib/errors/errors.ts";
import { words } from "../../lib/errors/transport.ts";
import { checkService, checkTenant } from "../../lib/names.ts";
import { crashError } from "../../sandbox/crash.ts";
import { keyOf, type ServiceRecord, serviceNotFound } from "./record.ts";

const CRASH_UNKNOWN: Crash = { kind: "scheduler_failed", reason: "SOLO_ERR_SCHEDULER_FAILED", message: "its scheduler stopped" };

export class Registry {
  private readonly byTenant = new Map<string, Map<string, ServiceRecord>>();
  private readonly bySid = new Map<number, ServiceRecord>();
  /** Versions being started (deploy, restart, rollback), by tenant/service, until init answers. */
  private readonly starting = new Map<string, ServiceRecord>();
  /** Names with a deploy, restart, swap or rollback under way. */
  private readonly busy = new Set<string>();
  /** The highest version each service has ever had, so versions never repeat across restarts. */
  private readonly highest = new Map<string, number>();
  /** Which scheduler each tenant lives on. */
  private readonly placement = new Map<string, number>();
  /** Calls waiting for a service to run again after its scheduler was replaced, by tenant/service. */
  private readonly revivals = new Map<string, Set<() => void>>();
  private nextSid = 0;
  private readonly clock: Clock;
  private readonly schedulers: number;
  private readonly closed: () => boolean;

  constructor(clock: Clock, schedulers: number, closed: () => boolean) {
    this.clock = clock;
    this.schedulers = schedulers;
    this.closed = closed;
  }

  newSid(): number {
    return ++this.nextSid;
  }

  // ---- names and instances ----------------------------------------------------------------

  /** The record under a name (whatever its state), if any. */
  current(tenant: string, service: string): ServiceRecord | undefined {
    return this.byTenant.get(tenant)?.get(service);
  }

  /** Whether `r` is the record under its name now. */
  isCurrent(r: ServiceRecord): boolean {
    return this.byTenant.get(r.tenant)?.get(r.service) === r;
  }

  services(tenant: string): Iterable<ServiceRecord> {
    return this.byTenant.get(tenant)?.values() ?? [];
  }

  hasTenant(tenant: string): boolean {
    return this.byTenant.has(tenant);
  }

  tenants(): Iterable<[string, ReadonlyMap<string, ServiceRecord>]> {
    return this.byTenant.entries();
  }

  instance(sid: number): ServiceRecord | undefined {
    return this.bySid.get(sid);
  }

  instances(): Iterable<ServiceRecord> {
    return this.bySid.values();
  }

  /** Makes an instance known by its id (not yet by its name). */
  track(r: ServiceRecord): void {
    this.bySid.set(r.sid, r);
  }

  untrack(r: ServiceRecord): void {
    this.bySid.delete(r.sid);
  }

  /** Puts `r` under its name (and its id). */
  name(r: ServiceRecord): void {
    this.bySid.set(r.sid, r);
    let named = this.byTenant.get(r.tenant);
    if (!named) {
      named = new Map();
      this.byTenant.set(r.tenant, named);
    }
    named.set(r.service, r);
  }

  /** Takes `r` away from its name, if it is still the one there. */
  unname(r: ServiceRecord): void {
    if (this.isCurrent(r)) this.byTenant.get(r.tenant)?.delete(r.service);
  }

  /** Finds a deployed service, or throws not-found. Records being deployed are not under a name yet. */
  lookup(tenant: string, service: string): ServiceRecord {
    const t = checkTenant(tenant);
    const s = checkService(service);
    const r = this.byTenant.get(t)?.get(s);
    if (!r) throw serviceNotFound(t, s);
    return r;
  }

  /** Finds a running service, or throws what keeps it from running. */
  running(tenant: string, service: string): ServiceRecord {
    const r = this.lookup(tenant, service);
    if (r.life.state === "restarting") {
      const retryAfterMs = Math.max(0, r.life.at - this.clock.now());
      throw new SoloError("SOLO_ERR_SERVICE_RESTARTING", `service ${r.service} crashed and is being restarted: ${r.crash?.message ?? ""}`, {
        tenant: r.tenant,
        service: r.service,
        retryAfterMs,
        ...(r.crash ? { crash: r.crash } : {}),
        hint: `retry in ${retryAfterMs} ms`,
      });
    }
    if (r.life.state === "failed") {
      throw new SoloError(
        "SOLO_ERR_SERVICE_FAILED",
        `service ${r.service} crashed ${r.restartTimes.length + 1} times within ${r.supervision.periodMs} ms and was given up: ${r.crash?.message ?? ""}`,
        {
          tenant: r.tenant,
          service: r.service,
          ...(r.crash ? { crash: r.crash } : {}),
          hint: `fix the cause and deploy a new version, or ${words("service.restart", { tenant: r.tenant, service: r.service })} to try again`,
        },
      );
    }
    if (r.life.state === "crashed") {
      throw new SoloError("SOLO_ERR_SERVICE_CRASHED", `service ${r.service} has crashed: ${r.crash?.message ?? "unknown reason"}`, {
        tenant: r.tenant,
        service: r.service,
        ...(r.crash ? { crash: r.crash } : {}),
        hint: "deploy it again to start a new version",
      });
    }
    if (r.life.state === "stopped") {
      const normal = r.life.normal === true;
      throw new SoloError(
        "SOLO_ERR_SERVICE_STOPPED",
        normal ? `service ${r.service} stopped normally` : `service ${r.service} is stopped`,
        {
          tenant: r.tenant,
          service: r.service,
          hint: normal
            ? "it ended on its own (a handler returned stop: true) and its restart policy leaves it down; restart it, or deploy it again"
            : "deploy it again to start it",
        },
      );
    }
    return r;
  }

  // ---- starts and operations under way ----------------------------------------------------

  /** The version being started under a name, if one is. */
  startingAt(tenant: string, service: string): ServiceRecord | undefined {
    return this.starting.get(keyOf(tenant, service));
  }

  beginStart(r: ServiceRecord): void {
    this.starting.set(keyOf(r.tenant, r.service), r);
  }

  endStart(r: ServiceRecord): void {
    const key = keyOf(r.tenant, r.service);
    if (this.starting.get(key) === r) this.starting.delete(key);
  }

  isBusy(key: string): boolean {
    return this.busy.has(key);
  }

  hold(key: string): void {
    this.busy.add(key);
  }

  release(key: string): void {
    this.busy.delete(key);
  }

  /** Marks an operation under way on a service (restart, swap, rollback), or refuses if one is. */
  claim(r: ServiceRecord): string {
    const key = keyOf(r.tenant, r.service);
    if (this.busy.has(key)) {
      throw new SoloError("SOLO_ERR_DEPLOY_EXISTS", `service ${r.service} is being deployed, restarted or swapped in tenant ${r.tenant}`, {
        tenant: r.tenant,
        service: r.service,
      });
    }
    this.busy.add(key);
    return key;
  }

  /** Whether any operation is under way in a tenant. */
  tenantBusy(tenant: string): boolean {
    for (const k of this.busy) if (k.startsWith(`${tenant}/`)) return true;
    return false;
  }

  /** New names (not yet registered) being deployed in a tenant, other than `service`. */
  newNamesStarting(tenant: string, service: string): number {
    let n = 0;
    for (const k of this.busy) {
      if (k.startsWith(`${tenant}/`) && k !== keyOf(tenant, service) && !this.byTenant.get(tenant)?.has(k.slice(tenant.length + 1))) n++;
    }
    return n;
  }

  // ---- versions ---------------------------------------------------------------------------

  highestVersion(key: string): number {
    return this.highest.get(key) ?? 0;
  }

  /** Takes a version number: it never comes back, even if the outcome of its write is unknown. */
  takeVersion(key: string, version: number): void {
    this.highest.set(key, version);
  }

  // ---- placement --------------------------------------------------------------------------

  // A tenant lives on one scheduler for its whole life (its WebAssembly instance is there); a new
  // tenant goes to the scheduler running the fewest services. Counted on demand: placement happens
  // once per tenant, so the scan is cheap and never drifts from the records.
  place(tenant: string): number {
    const existing = this.placement.get(tenant);
    if (existing !== undefined) return existing;
    const load = new Array<number>(this.schedulers).fill(0);
    for (const r of this.bySid.values()) if (r.life.state === "running") load[r.scheduler] = (load[r.scheduler] ?? 0) + 1;
    let best = 0;
    for (let i = 1; i < load.length; i++) if ((load[i] ?? 0) < (load[best] ?? 0)) best = i;
    this.placement.set(tenant, best);
    return best;
  }

  placed(tenant: string): number | undefined {
    return this.placement.get(tenant);
  }

  setPlacement(tenant: string, index: number): void {
    this.placement.set(tenant, index);
  }

  /** Forgets which tenants lived on a scheduler that is gone; returns them. */
  unplace(index: number): string[] {
    const gone: string[] = [];
    for (const [tenant, i] of this.placement) {
      if (i !== index) continue;
      this.placement.delete(tenant);
      gone.push(tenant);
    }
    return gone;
  }

  /** Forgets a deleted tenant's services, versions and placement. */
  forgetTenant(tenant: string): void {
    for (const r of this.byTenant.get(tenant)?.values() ?? []) {
      this.bySid.delete(r.sid);
      this.highest.delete(keyOf(tenant, r.service));
    }
    this.byTenant.delete(tenant);
    this.placement.delete(tenant);
  }

  // ---- waiting for a name to run again ----------------------------------------------------

  /** Waits until the service under `old`'s name runs again (a new instance), within `deadline`. */
  whenRunning(
    old: ServiceRecord,
    deadline: number,
    onTimeout: () => SoloError,
    onAbort: () => SoloError,
    signal?: AbortSignal,
  ): Promise<ServiceRecord> {
    const key = keyOf(old.tenant, old.service);
    return new Promise<ServiceRecord>((resolve, reject) => {
      const done = (): void => {
        clearTimeout(timer);
        signal?.removeEventListener("abort", aborted);
        this.revivals.get(key)?.delete(check);
      };
      const check = (): void => {
        const r = this.current(old.tenant, old.service);
        if (this.closed()) {
          done();
          reject(new SoloError("SOLO_ERR_KERNEL_CLOSED", "the kernel closed before this operation finished"));
        } else if (r && r.sid !== old.sid && r.life.state === "running") {
          done();
          resolve(r);
        } else if (!r || (r.life.state !== "restarting" && r.life.state !== "running" && r.life.state !== "crashed") || r.killed) {
          done();
          try {
            this.running(old.tenant, old.service);
            reject(
              new SoloError("SOLO_ERR_SERVICE_CRASHED", `service ${old.service} is not running`, {
                tenant: old.tenant,
                service: old.service,
              }),
            );
          } catch (e) {
            reject(e);
          }
        } else if (r.life.state === "crashed" && r.sid === old.sid && r.supervision.restart === "temporary") {
          done();
          reject(SoloError.fromData(crashError(r.crash ?? CRASH_UNKNOWN, r.service)));
        }
      };
      const aborted = (): void => {
        done();
        reject(onAbort());
      };
      const timer = setTimeout(
        () => {
          done();
          reject(onTimeout());
        },
        Math.max(1, deadline - Date.now()),
      );
      timer.unref();
      signal?.addEventListener("abort", aborted, { once: true });
      let set = this.revivals.get(key);
      if (!set) {
        set = new Set();
        this.revivals.set(key, set);
      }
      set.add(check);
      check();
    });
  }

  /** Tells the calls waiting on a service that its state changed. */
  wake(r: ServiceRecord): void {
    const key = keyOf(r.tenant, r.service);
    const waiting = this.revivals.get(key);
    if (!waiting) return;
    for (const check of [...waiting]) check();
    if (waiting.size === 0) this.revivals.delete(key);
  }

  /** Tells every waiting call that the kernel is closing. */
  wakeAll(): void {
    for (const waiting of [...this.revivals.values()]) for (const check of [...waiting]) check();
  }
}
