// The deployer: a new version from a deploy (checked, analyzed, started, made durable, recorded),
// a kill, and the stored history of each service's versions.

import { hash } from "node:crypto";
import type { Clock } from "../../lib/clock.ts";
import { SoloError } from "../../lib/errors/errors.ts";
import { checkService, checkTenant } from "../../lib/names.ts";
import type { DeploymentRecord, Store } from "../../store/store.ts";
import type { Deployment, DeploySpec, ServiceSource, ServiceVersion } from "../api.ts";
import type { Authority } from "../auth/authority.ts";
import type { Via } from "../auth/denials.ts";
import type { Principal } from "../auth/tokens.ts";
import type { Breakers } from "../breaker/index.ts";
import type { EventLog, SoloEvent } from "../log/event-log.ts";
import { grantPermissions, grantsData, type ServiceGrants } from "../powers/grants.ts";
import {
  cancelRestart,
  cancelSwapWatch,
  clipDetails,
  deploymentRow,
  grantsOf,
  keyOf,
  type Registry,
  serviceNotFound,
} from "../registry/index.ts";
import type { Resources } from "../resources/index.ts";
import type { Supervisor } from "../supervisor/supervisor.ts";
import { type TenantLifecycle, tenantBusy } from "../tenants/lifecycle.ts";
import type { TenantRegistry } from "../tenants/tenants.ts";
import { type CodeChecks, checkIdentity, checkVersion, FINDINGS_RECORDED } from "./checks.ts";
import type { Launcher } from "./launch.ts";

export class Deployer {
  private readonly registry: Registry;
  private readonly launcher: Launcher;
  private readonly supervisor: Supervisor;
  private readonly resources: Resources;
  private readonly breakers: Breakers;
  private readonly checks: CodeChecks;
  private readonly lifecycle: TenantLifecycle;
  private readonly tenants: TenantRegistry;
  private readonly authority: Authority;
  private readonly store: Store;
  private readonly log: EventLog;
  private readonly clock: Clock;

  constructor(parts: {
    registry: Registry;
    launcher: Launcher;
    supervisor: Supervisor;
    resources: Resources;
    breakers: Breakers;
    checks: CodeChecks;
    lifecycle: TenantLifecycle;
    tenants: TenantRegistry;
    authority: Authority;
    store: Store;
    log: EventLog;
    clock: Clock;
  }) {
    this.registry = parts.registry;
    this.launcher = parts.launcher;
    this.supervisor = parts.supervisor;
    this.resources = parts.resources;
    this.breakers = parts.breakers;
    this.checks = parts.checks;
    this.lifecycle = parts.lifecycle;
    this.tenants = parts.tenants;
    this.authority = parts.authority;
    this.store = parts.store;
    this.log = parts.log;
    this.clock = parts.clock;
  }

  async deploy(p: Principal, spec: DeploySpec, via?: Via): Promise<Deployment> {
    const { tenant, service, fields } = checkIdentity(spec);
    // Only the embedder creates a tenant by deploying into it; a token needs tenants.create.
    if (p.kind === "system") await this.lifecycle.ensure(tenant);
    else if (!this.tenants.has(tenant)) throw this.tenants.missing(tenant);
    this.resources.checkCooldown(tenant);
    const key = keyOf(tenant, service);
    const version = this.registry.highestVersion(key) + 1;
    try {
      const { code, args, limits, supervision, meta, grants } = this.checks.deploy(fields);
      await this.checkGrantable(p, tenant, service, grants, via);
      const previous = this.registry.current(tenant, service);
      if (this.registry.isBusy(key) || previous?.state === "running") {
        throw new SoloError(
          "SOLO_ERR_DEPLOY_EXISTS",
          previous?.state === "running"
            ? `service ${service} already exists in tenant ${tenant} (version ${previous.version})`
            : `service ${service} is being deployed in tenant ${tenant}`,
          { tenant, service, hint: "use swap() to replace its code keeping its state, or kill it first" },
        );
      }
      this.resources.checkRoom(tenant, service);
      const { stripped, findings } = this.checks.analyze(code, service, "deploy");
      if (this.lifecycle.isDeleting(tenant)) throw tenantBusy(tenant, "is being deleted");
      // Taken now, so a number never comes back even if the outcome of the write is unknown.
      this.registry.takeVersion(key, version);
      this.registry.hold(key);
      // A new version replaces a crashed, restarting or failed one: the supervisor stands down.
      const wasRestarting = previous?.state === "restarting";
      const restartDue = previous?.restartAt ?? 0;
      if (previous && wasRestarting) {
        cancelRestart(previous, this.clock);
        previous.state = "crashed";
      }
      try {
        const deployedAt = Date.now();
        const spec = { tenant, service, version, code, stripped, args, limits, supervision, meta, grants };
        const record = await this.launcher.launch({ ...spec, deployedAt: new Date(deployedAt).toISOString() }, previous);
        // Acknowledged only once the deployment and its event are durable; if they cannot be
        // written, the new instance is stopped and nothing is left half-started.
        let event: SoloEvent;
        try {
          const { events } = await this.log.write(
            [{ t: "deployment.put", deployment: deploymentRow(spec, deployedAt) }],
            [
              {
                tenant,
                type: "service_deployed",
                subject: service,
                payload: {
                  version,
                  codeBytes: Buffer.byteLength(code),
                  codeSha256: hash("sha256", code),
                  handlers: [...record.handlers],
                  findings: findings.slice(0, FINDINGS_RECORDED),
                },
              },
            ],
          );
          event = events[0] as SoloEvent;
        } catch (err) {
          await this.launcher.stop(record).catch(() => undefined);
          this.registry.untrack(record);
          if (this.registry.isCurrent(record)) {
            if (previous) this.registry.name(previous);
            else this.registry.unname(record);
          }
          throw err;
        }
        record.causeId = event.id;
        this.supervisor.afterStart(record);
        this.registry.takeVersion(key, version);
        this.breakers.reset(tenant, service);
        return { tenant, service, version, findings };
      } catch (err) {
        // The new version did not start: the one it was to replace goes back to its supervisor.
        if (previous && wasRestarting && this.registry.isCurrent(previous)) {
          const cause = previous.causeId;
          this.supervisor.scheduleRestart(previous, Math.max(0, restartDue - this.clock.now()), async () => cause);
        }
        throw err;
      } finally {
        this.registry.release(key);
      }
    } catch (err) {
      const error = SoloError.from(err);
      // Recorded before the caller hears of it; a store that cannot record it fails the same way.
      if (error.reason !== "SOLO_ERR_KERNEL_CLOSED" && !error.reason.startsWith("SOLO_ERR_STORE_")) {
        await this.log
          .append({
            tenant,
            type: "service_deployment_failed",
            subject: service,
            payload: { version, reason: error.reason, message: error.message.slice(0, 1000), details: clipDetails(error.details) },
          })
          .catch(() => undefined);
      }
      throw error;
    }
  }

  // A token cannot give a service more than it holds: each grant needs its permission.
  private async checkGrantable(p: Principal, tenant: string, service: string, grants: ServiceGrants, via?: Via): Promise<void> {
    for (const need of grantPermissions(grants))
      await this.authority.permit(p, { operation: "deploy", tenant, subject: service, via }, need);
  }

  async kill(tenant: string, service: string): Promise<void> {
    // A version still starting (its init running, perhaps stuck) is stopped too: its start fails.
    const starting = this.registry.startingAt(checkTenant(tenant), checkService(service));
    if (starting && !starting.killed) {
      starting.killed = true;
      await this.launcher.stop(starting);
    }
    if (starting && !this.registry.current(tenant, service)) return;
    const record = this.registry.lookup(tenant, service);
    // Stopped and durably killed: done. Killed but not recorded (the store failed): write it again.
    // Stopped by a restart that is starting it again: killed now, and the restart stands down.
    if (record.state === "stopped" && (!record.killed || record.killDurable) && !starting) return;
    const was = record.killed ? "stopped" : record.state;
    record.killed = true;
    cancelRestart(record, this.clock);
    cancelSwapWatch(record, this.clock);
    if (record.state === "running") await this.launcher.stop(record);
    record.state = "stopped";
    this.registry.wake(record);
    // A crashed service is still deployed (a restart would bring it back) until it is killed.
    await this.log.write(
      [{ t: "deployment.kill", tenant: record.tenant, service: record.service }],
      [
        {
          tenant: record.tenant,
          type: "service_killed",
          subject: record.service,
          payload: { version: record.version, was },
          causationId: record.causeId,
        },
      ],
    );
    record.killDurable = true;
  }

  /** Kills every service of a tenant being deleted (running `terminate`); returns how many it had. */
  async killTenant(tenant: string): Promise<number> {
    const services = [...this.registry.services(tenant)];
    for (const r of services) if (r.state !== "stopped" || !r.killDurable) await this.kill(tenant, r.service);
    return services.length;
  }

  async versions(tenant: string, service: string): Promise<ServiceVersion[]> {
    const { history, current } = await this.history(tenant, service);
    return history.map((d) => ({
      version: d.version,
      deployedAt: new Date(d.deployedAt).toISOString(),
      codeBytes: Buffer.byteLength(d.code),
      sha256: hash("sha256", d.code),
      grants: grantsData(grantsOf(d)),
      current: d.version === current,
    }));
  }

  async source(tenant: string, service: string, version?: number): Promise<ServiceSource> {
    checkVersion("source", version);
    const { history, current } = await this.history(tenant, service);
    const want = version ?? current;
    const d = history.find((h) => h.version === want);
    if (!d) {
      throw new SoloError("SOLO_ERR_VERSION_NOT_FOUND", `service ${service} has no version ${want}`, {
        tenant,
        service,
        versions: history.map((h) => h.version),
        hint: "versions(tenant, service) lists the versions there are",
      });
    }
    return {
      tenant: d.tenant,
      service: d.service,
      version: d.version,
      deployedAt: new Date(d.deployedAt).toISOString(),
      sha256: hash("sha256", d.code),
      code: d.code,
    };
  }

  // A service's stored versions, and the one it runs now: the registry's, else (killed, and the
  // kernel reopened since) the latest. A tenant's deletion removes its history with it.
  private async history(tenant: string, service: string): Promise<{ history: DeploymentRecord[]; current: number }> {
    const t = checkTenant(tenant);
    const s = checkService(service);
    const history = await this.store.deploymentHistory(t, s);
    const last = history.at(-1);
    if (!last) throw serviceNotFound(t, s);
    return { history, current: this.registry.current(t, s)?.version ?? last.version };
  }
}
