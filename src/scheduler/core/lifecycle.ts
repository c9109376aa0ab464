/**
 * A service's start and end on a scheduler: a deploy loads its module in its tenant's instance
 * (made on the tenant's first deploy) and puts its init (or, for a rollback, the state it adopts)
 * first in its mailbox; a kill runs its terminate when it is between messages, then stops it.
 * @internal
 */
import { SoloError } from "../../lib/errors/errors.ts";
import { type EngineImage, instantiateEngine, type TenantEngine } from "../../sandbox/engine.ts";
import { EngineFault } from "../../sandbox/service.ts";
import type { DeployOp } from "../protocol.ts";
import type { HostPowers } from "./host-powers.ts";
import type { RunLoop } from "./run-loop.ts";
import { errorOf, newTenant, Service, type Tenant } from "./service.ts";

/** What the scheduler's lifecycle and usage parts work with. @internal */
export interface CoreParts {
  readonly loop: RunLoop;
  readonly powers: HostPowers;
  readonly engine: EngineImage;
}

/** Deploys and kills on one scheduler. @internal */
export class Lifecycle {
  private readonly c: CoreParts;

  constructor(parts: CoreParts) {
    this.c = parts;
  }

  /** Starts the service `op` describes; its init's outcome (or the failure to load it) answers `op`. */
  async deploy(op: DeployOp): Promise<void> {
    let t = this.c.loop.tenants.get(op.tenant);
    if (!t) {
      t = newTenant(op.tenant, op.tenantMemoryBytes);
      this.c.loop.tenants.set(op.tenant, t);
    }
    t.capBytes = op.tenantMemoryBytes;
    t.engine ??= instantiateEngine(this.c.engine, t.capBytes);
    t.deploying++;
    try {
      await this.deployIn(t, op);
    } finally {
      t.deploying--;
      this.c.loop.release(t);
    }
  }

  private async deployIn(t: Tenant, op: DeployOp): Promise<void> {
    const { loop } = this.c;
    let engine: TenantEngine;
    try {
      engine = await (t.engine ?? instantiateEngine(this.c.engine, t.capBytes));
      t.module = engine;
    } catch (err) {
      t.engine = undefined;
      loop.outbox.send({ op: "err", rid: op.rid, error: SoloError.from(err).toData() });
      return;
    }
    const previous = t.byName.get(op.service);
    if (previous?.live) {
      loop.outbox.send({
        op: "err",
        rid: op.rid,
        error: errorOf("SOLO_ERR_DEPLOY_EXISTS", `service ${op.service} is already running in tenant ${op.tenant}`),
      });
      return;
    }
    let s: Service | undefined;
    try {
      const sandbox = this.c.powers.sandbox(
        engine,
        { tenant: op.tenant, service: op.service, version: op.version, filename: op.filename, limits: op.limits, grants: op.grants },
        op.sid,
      );
      s = new Service(op.sid, op.service, t, sandbox, op.code);
      loop.services.set(op.sid, s);
      s.handlers = loop.guest(op.sid, op.limits.cpuMsPerMessage, () => sandbox.load(op.code));
    } catch (err) {
      if (s) {
        loop.services.delete(s.sid);
        s.sandbox.dispose();
      }
      if (err instanceof EngineFault) loop.poisonTenant(t, err);
      loop.outbox.send({ op: "err", rid: op.rid, error: SoloError.from(err).toData() });
      return;
    }
    if (previous) loop.services.delete(previous.sid);
    t.byName.set(op.service, s);
    if (op.state === undefined) {
      s.mailbox.push({ kind: "init", payload: op.args, rid: op.rid, fromName: "", deadline: 0, chain: [] });
    } else {
      s.mailbox.push({ kind: "adopt", payload: op.state, rid: op.rid, fromName: "", deadline: 0, chain: [] });
      // A rollback's state expects the timers that were pending with it.
      if (s.handlers.includes("handleInfo")) this.c.powers.rearm(s, op.timers ?? []);
    }
    loop.schedule(s);
  }

  /** Stops service `s` (its terminate runs first, if it is between messages), then answers request `rid`. */
  kill(rid: number, s: Service, reason: string): void {
    const { loop } = this.c;
    // Its running message has been stopped (or it had none); terminate runs under its own budget.
    loop.board.killing(s.sid);
    if (s.live) {
      if (s.status === "running" && !s.current) loop.terminate(s, reason);
      if (s.live) loop.stop(s, "stopped", errorOf("SOLO_ERR_SERVICE_STOPPED", `service ${s.name} was stopped (${reason})`));
    }
    loop.board.killing(0);
    loop.outbox.send({ op: "ok", rid, value: "" });
  }
}
