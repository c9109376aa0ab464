// The deployer: a new version from a deploy (checked, analyzed, started, made durable, recorded),
// a kill, and the stored history of each service's versions.

import { hash } from "node:crypto";
import type { SoloEvent } from "../../api/events.ts";
import { grantsData } from "../../api/grants.ts";
import type { Clock } from "../../api/kernel.ts";
import type { Deployment, DeploySpec, ServiceSource, ServiceVersion } from "../../api/services.ts";
import type { Via } from "../../api/tokens.ts";
import { SoloError } from "../../lib/errors/errors.ts";
import { words } from "../../lib/errors/transport.ts";
import { checkService, checkTenant } from "../../lib/names.ts";
import type { DeploymentRecord, Store } from "../../store/store.ts";
import type { Authority } from "../auth/authority.ts";
import type { Principal } from "../auth/tokens.ts";
import type { Breakers } from "../breaker/index.ts";
import type { EventLog } from "../log/event-log.ts";
import type { LogLines } from "../log/lines.ts";
import {
  CRASHED,
  cancelRestart,
  cancelSwapWatch,
  clipDetails,
  deploymentRow,
  grantsOf,
  KILLED,
  keyOf,
  killedDurably,
  type Registry,
  STOPPED,
  serviceNotFound,
} from "../registry/index.ts";
import type { Resources } from "../resources/index.ts";
import type { Supervisor } from "../supervisor/supervisor.ts";
import { type TenantLifecycle, tenantBusy } from "../tenants/lifecycle.ts";
import type { TenantRegistry } from "../tenants/tenants.ts";
import { type CodeChecks, checkIdentity, checkVersion, FINDINGS_RECORDED, permitGrants } from "./checks.ts";
import type { Launcher } from "./launch.ts";

export interface DeployerParts {
  readonly registry: Registry;
  readonly launcher: Launcher;
  readonly supervisor: Supervisor;
  readonly resources: Resources;
  readonly breakers: Breakers;
  readonly checks: CodeChecks;
  readonly lifecycle: TenantLifecycle;
  readonly tenants: TenantRegistry;
  readonly authority: Authority;
  readonly store: Store;
  readonly log: EventLog;
  readonly lines: LogLines;
  readonly clock: Clock;
}

export class Deployer {
  /** The parts it works with, as open.ts gave them. */
  private readonly p: DeployerParts;

  constructor(parts: DeployerParts) {
    this.p = parts;
  }

  async deploy(p: Principal, spec: DeploySpec, via?: Via): Promise<Deployment> {
    const { tenant, service, fields } = checkIdentity(spec);
    // Only the embedder creates a tenant by deploying into it; a token needs tenants.create.
    if (p.kind === "system") await this.p.lifecycle.ensure(tenant);
    else if (!this.p.tenants.has(tenant)) throw this.p.tenants.missing(tenant);
    this.p.resources.checkCooldown(tenant);
    const key = keyOf(tenant, service);
    const version = this.p.registry.highestVersion(key) + 1;
    try {
      const { code, args, limits, supervision, meta, grants, file } = this.p.checks.deploy(fields);
      await permitGrants(this.p.authority, p, { operation: "deploy", tenant, subject: service, via }, grants);
      const previous = this.p.registry.current(tenant, service);
      if (this.p.registry.isBusy(key) || previous?.life.state === "running") {
        throw new SoloError(
          "SOLO_ERR_DEPLOY_EXISTS",
          previous?.life.state === "running"
            ? `service ${service} already exists in tenant ${tenant} (version ${previous.version})`
            : `service ${service} is being deployed in tenant ${tenant}`,
          {
            tenant,
            service,
            hint: `use ${words("service.swap", { tenant, service })} to replace its code keeping its state, or stop it first with ${words("service.kill", { tenant, service })}`,
          },
        );
      }
      this.p.resources.checkRoom(tenant, service);
      const { stripped, findings } = this.p.checks.analyze(code, service, "deploy", file);
      if (this.p.lifecycle.isDeleting(tenant)) throw tenantBusy(tenant, "is being deleted");
      this.p.registry.hold(key);
      // A new version replaces a crashed, restarting or failed one: the supervisor stands down.
      const wasRestarting = previous?.life.state === "restarting";
      const restartDue = previous?.life.state === "restarting" ? previous.life.at : 0;
      if (previous && wasRestarting) {
        cancelRestart(previous, this.p.clock);
        previous.life = CRASHED;
      }
      try {
        const deployedAt = Date.now();
        const spec = { tenant, service, version, code, stripped, args, limits, supervision, meta, grants, file };
        const record = await this.p.launcher.launch({ ...spec, deployedAt: new Date(deployedAt).toISOString() }, previous);
        // Versions are numbered by deploys that start: one whose init failed gives its number
        // back. Taken before the write, so a number never comes back once its outcome is unknown.
        this.p.registry.takeVersion(key, version);
        // Acknowledged only once the deployment and its event are durable; if they cannot be
        // written, the new instance is stopped and nothing is left half-started.
        let event: SoloEvent;
        try {
          const { events } = await this.p.log.write(
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
          await this.p.launcher.stop(record).catch(() => undefined);
          this.p.registry.untrack(record);
          if (this.p.registry.isCurrent(record)) {
            if (previous) this.p.registry.name(previous);
            else this.p.registry.unname(record);
          }
          throw err;
        }
        record.causeId = event.id;
        this.p.supervisor.afterStart(record);
        this.p.registry.takeVersion(key, version);
        this.p.breakers.reset(tenant, service);
        return { tenant, service, version, findings };
      } catch (err) {
        // The new version did not start: the one it was to replace goes back to its supervisor.
        if (previous && wasRestarting && this.p.registry.isCurrent(previous)) {
          const cause = previous.causeId;
          this.p.supervisor.scheduleRestart(previous, Math.max(0, restartDue - this.p.clock.now()), async () => cause);
        }
        throw err;
      } finally {
        this.p.registry.release(key);
      }
    } catch (err) {
      const error = SoloError.from(err);
      // Recorded before the caller hears of it; a store that cannot record it fails the same way.
      if (error.reason !== "SOLO_ERR_KERNEL_CLOSED" && !error.reason.startsWith("SOLO_ERR_STORE_")) {
        await this.p.log
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

  async kill(tenant: string, service: string): Promise<void> {
    // A version still starting (its init running, perhaps stuck) is stopped too: its start fails.
    const starting = this.p.registry.startingAt(checkTenant(tenant), checkService(service));
    if (starting && !starting.killed) {
      starting.killed = true;
      await this.p.launcher.stop(starting);
    }
    if (starting && !this.p.registry.current(tenant, service)) return;
    const record = this.p.registry.lookup(tenant, service);
    // Stopped and durably killed: done. Killed but not recorded (the store failed): write it again.
    // Stopped by a restart that is starting it again: killed now, and the restart stands down.
    // Ended normally and left down by its supervisor: still deployed, so the kill goes on.
    const exited = record.life.state === "stopped" && record.life.normal === true;
    if (record.life.state === "stopped" && !exited && (!record.killed || killedDurably(record)) && !starting) return;
    const was = record.killed ? "stopped" : record.life.state;
    record.killed = true;
    cancelRestart(record, this.p.clock);
    cancelSwapWatch(record, this.p.clock);
    if (record.life.state === "running") await this.p.launcher.stop(record);
    record.life = STOPPED;
    this.p.registry.wake(record);
    // Its stored log goes with the kill's write; lines still waiting are not written after it.
    this.p.lines.killed(record.tenant, record.service);
    // A crashed service is still deployed (a restart would bring it back) until it is killed.
    await this.p.log.write(
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
    if (record.life.state === "stopped") record.life = KILLED;
  }

  /** Kills every service of a tenant being deleted (running `terminate`); returns how many it had. */
  async killTenant(tenant: string): Promise<number> {
    const services = [...this.p.registry.services(tenant)];
    for (const r of services) if (!killedDurably(r)) await this.kill(tenant, r.service);
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
        hint: `${words("service.versions", { tenant, service })} lists the versions there are`,
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
    const history = await this.p.store.deploymentHistory(t, s);
    const last = history.at(-1);
    if (!last) throw serviceNotFound(t, s);
    return { history, current: this.p.registry.current(t, s)?.version ?? last.version };
  }
}
