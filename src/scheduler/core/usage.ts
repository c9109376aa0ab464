/**
 * What a scheduler reports of its services' and tenants' usage, and how it gives a tenant's memory
 * back: a WebAssembly memory never shrinks, so a tenant whose instance holds far more than its
 * services do moves them to a fresh one at a quiet moment.
 * @internal
 */
import { SoloError } from "../../lib/errors/errors.ts";
import { threadClock, threadCpuMs } from "../../sandbox/cpu-clock.ts";
import { ENGINE_MIN_BYTES, instanceCapBytes, instantiateEngine, type TenantEngine } from "../../sandbox/engine.ts";
import { EngineFault, type ServiceSandbox } from "../../sandbox/service.ts";
import type { TenantSample, UsageSample } from "../protocol.ts";
import type { CoreParts } from "./lifecycle.ts";
import { liveServices, type Service, type Tenant } from "./service.ts";
import { collectSoon } from "./soon.ts";

/** Below this, an instance is not worth replacing: the engine's initial memory plus some slack. */
const RECLAIM_MIN_BYTES = ENGINE_MIN_BYTES + 8 * 1024 * 1024;
/** How long after a reclaim that failed, or a tenant that was never quiet, before trying again. */
const RECLAIM_BACKOFF_MS = 30_000;
/** CPU one move of a tenant's services to a fresh instance may take in all. */
const RECLAIM_ALLOWANCE_MS = 250;
/** How soon to try again when the tenant was in the middle of a message. */
const RECLAIM_RETRY_MS = 1000;

/** Usage reports and memory reclaims of one scheduler. @internal */
export class Usage {
  private readonly c: CoreParts;

  constructor(parts: CoreParts) {
    this.c = parts;
  }

  /** Sends what changed since the last sample: each service's usage, each tenant's memory. */
  sample(): void {
    const { loop } = this.c;
    // Settles the CPU time of the steps charged to the clock since its last reading (their
    // services were marked dirty when they ran), so what is sent counts them.
    threadClock.read();
    const samples: UsageSample[] = [];
    for (const s of loop.services.values()) {
      if (!s.dirty) continue;
      s.dirty = false;
      let memory = 0;
      if (s.live) {
        try {
          memory = s.sandbox.memoryBytes();
        } catch (err) {
          loop.poisonTenant(s.tenant, err);
        }
      }
      samples.push([
        s.sid,
        s.messages,
        Math.round(s.sandbox.cpuMs * 1000) / 1000,
        memory,
        s.mailbox.length,
        s.unhandled,
        s.dropped,
        s.logLost,
      ]);
    }
    // Each tenant's linear memory: what the host holds for it, which its memory limit caps.
    const memory: TenantSample[] = [];
    for (const t of loop.tenants.values()) {
      this.considerReclaim(t);
      const bytes = t.module?.memory.buffer.byteLength ?? 0;
      const cap = t.module?.capBytes ?? 0;
      const report = `${bytes}/${cap}/${t.queuedBytes}`;
      if (report === t.reported) continue;
      t.reported = report;
      memory.push([t.name, bytes, cap, t.queuedBytes]);
    }
    if (samples.length > 0 || memory.length > 0) {
      loop.outbox.send({ op: "usage", samples, tenants: memory });
      loop.outbox.flush();
    }
  }

  // When a tenant's instance holds far more than its services do (a hog crashed or was killed, a
  // service shrank), or its memory limit changed, its services move to a fresh instance at a quiet
  // moment: each one's state leaves through the same strict export a hot swap uses and is adopted,
  // as it is, by the same code loaded in the new instance. Mailboxes and timers stay where they are
  // (on this thread), so no message is lost; module-level variables start afresh, as after a swap.
  // The old instance is then dropped.
  considerReclaim(t: Tenant): void {
    const engine = t.module;
    if (!engine || t.reclaiming || t.deploying > 0 || Date.now() < t.reclaimAfter) return;
    const live = liveServices(t);
    if (live.length === 0) return;
    const size = engine.memory.buffer.byteLength;
    const held = live.reduce((sum, s) => sum + s.sandbox.memoryBytes(), 0);
    const capChanged = instanceCapBytes(t.capBytes) !== engine.capBytes;
    const oversized = size > RECLAIM_MIN_BYTES && size > 2 * held + ENGINE_MIN_BYTES;
    if (!capChanged && !oversized) return;
    t.reclaiming = instantiateEngine(this.c.engine, t.capBytes).then(
      (fresh) => {
        t.reclaiming = undefined;
        // After a move, or one that failed, not again for a while: a service that keeps growing the
        // instance for a moment and letting go would otherwise have its tenant moved at every
        // sample. A tenant that was not quiet is tried again soon.
        const outcome = t.module === engine ? this.moveTo(t, fresh) : "failed";
        t.reclaimAfter = Date.now() + (outcome === "busy" ? RECLAIM_RETRY_MS : RECLAIM_BACKOFF_MS);
        this.c.loop.outbox.flushSoon();
      },
      (err: unknown) => {
        t.reclaiming = undefined;
        t.reclaimAfter = Date.now() + RECLAIM_BACKOFF_MS;
        console.error(`solo scheduler ${this.c.loop.index}: a fresh instance for tenant ${t.name} failed:`, err);
      },
    );
  }

  // Moves every service of the tenant into `fresh`, all or none. Only between messages: a service
  // in the middle of one (awaiting a call) holds a stack in the old instance.
  private moveTo(t: Tenant, fresh: TenantEngine): "moved" | "busy" | "failed" {
    const { loop } = this.c;
    const live = liveServices(t);
    if (t.deploying > 0 || live.some((s) => s.status !== "running" || s.current !== undefined)) return "busy";
    const moved: Array<[Service, ServiceSandbox]> = [];
    const abandon = (): "failed" => {
      for (const [, next] of moved) next.dispose();
      collectSoon();
      return "failed";
    };
    // The whole move shares one CPU allowance, and each state moves within what is left of it (and
    // within the service's own budget): a tenant whose states are slow to move (getters, say) keeps
    // its big instance, and holds this thread no longer than the allowance.
    const startedCpu = threadCpuMs();
    const left = (s: Service): number =>
      Math.min(s.sandbox.spec.limits.cpuMsPerMessage, RECLAIM_ALLOWANCE_MS - (threadCpuMs() - startedCpu));
    try {
      for (const s of live) {
        const old = s.sandbox;
        const exportMs = left(s);
        if (exportMs <= 0) return abandon();
        const exported = loop.guest(s.sid, exportMs, () => old.begin("export", "", "", exportMs));
        old.endMessage();
        if (exported.t !== "reply") return abandon();
        const next = this.c.powers.sandbox(fresh, old.spec, s.sid);
        moved.push([s, next]);
        loop.guest(s.sid, old.spec.limits.cpuMsPerMessage, () => next.load(s.code));
        const adoptMs = left(s);
        if (adoptMs <= 0) return abandon();
        const adopted = loop.guest(s.sid, adoptMs, () => next.begin("adopt", exported.json, "", adoptMs));
        next.endMessage();
        if (adopted.t !== "done") return abandon();
      }
    } catch (err) {
      // The fresh instance could not take them (its limit is lower than what they hold, say): the
      // services stay where they are. An engine fault here concerns only the fresh instance.
      if (!(err instanceof SoloError) && !(err instanceof EngineFault)) {
        console.error(`solo scheduler ${loop.index}: moving tenant ${t.name} to a fresh instance failed:`, err);
      }
      return abandon();
    }
    for (const [s, next] of moved) {
      next.cpuMs = s.sandbox.cpuMs;
      s.sandbox.dispose();
      s.sandbox = next;
      s.dirty = true;
    }
    t.module = fresh;
    t.engine = Promise.resolve(fresh);
    collectSoon();
    return "moved";
  }
}
