// Recovery when a kernel opens over existing state: every service deployed and not killed starts
// again, from its latest version's code, args and limits; its durable data comes back through
// solo.storage. One service failing to recover (its init throws now, say) leaves it listed as
// crashed, supervised like any crash, and does not stop the others.

import type { SoloEvent } from "../../api/events.ts";
import type { ServiceLimits } from "../../api/limits.ts";
import type { SupervisionPolicy } from "../../api/supervision.ts";
import { SoloError } from "../../lib/errors/errors.ts";
import type { DeploymentRecord, Store } from "../../store/store.ts";
import { clampStoredServiceLimits, resolveLimits } from "../limits.ts";
import type { EventInput, EventLog } from "../log/event-log.ts";
import { CRASHED, crashOf, EMPTY_USAGE, grantsOf, metaOf, type Registry, type ServiceRecord } from "../registry/index.ts";
import { resolveSupervision } from "../supervisor/policy.ts";
import type { Supervisor } from "../supervisor/supervisor.ts";
import type { Launcher } from "./launch.ts";

// Services recovered at once.
const RECOVERY_CONCURRENCY = 64;
const FAILURES_LISTED = 100;

export interface RecoveryParts {
  readonly registry: Registry;
  readonly launcher: Launcher;
  readonly supervisor: Supervisor;
  readonly store: Store;
  readonly log: EventLog;
  readonly schedulers: number;
  readonly limits: ServiceLimits;
  readonly supervision: SupervisionPolicy;
}

export async function recover(k: RecoveryParts): Promise<void> {
  const started = performance.now();
  for (const v of await k.store.latestVersions()) k.registry.takeVersion(`${v.tenant}/${v.service}`, v.version);
  const deployments = recoveryOrder(k, await k.store.activeDeployments());
  const up: ServiceRecord[] = [];
  const down: Array<{ d: DeploymentRecord; error: SoloError }> = [];
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < deployments.length) {
      const d = deployments[next++] as DeploymentRecord;
      let limits = k.limits;
      let supervision = k.supervision;
      try {
        // Limits are re-resolved over today's defaults: a field added since has its default.
        limits = resolveLimits(clampStoredServiceLimits(JSON.parse(d.limits) as unknown), k.limits);
        supervision = resolveSupervision(d.supervision ? (JSON.parse(d.supervision) as unknown) : undefined, k.supervision);
        up.push(
          await k.launcher.launch({
            ...d,
            limits,
            supervision,
            meta: metaOf(d),
            grants: grantsOf(d),
            file: d.file,
            deployedAt: new Date(d.deployedAt).toISOString(),
          }),
        );
      } catch (err) {
        const error = SoloError.from(err);
        down.push({ d, error });
        registerCrashed(k.registry, d, limits, supervision, error);
      }
    }
  };
  await Promise.all(Array.from({ length: Math.min(RECOVERY_CONCURRENCY, deployments.length) }, worker));
  const kernelEvent = await k.log.append({
    tenant: null,
    type: "kernel_started",
    payload: {
      store: k.store.kind,
      schedulers: k.schedulers,
      recovered: up.length,
      failed: down.length,
      failures: down.slice(0, FAILURES_LISTED).map(({ d, error }) => ({
        tenant: d.tenant,
        service: d.service,
        version: d.version,
        reason: error.reason,
        message: error.message.slice(0, 200),
      })),
      durationMs: Math.round(performance.now() - started),
    },
  });
  const inputs: EventInput[] = [];
  for (const r of up) {
    inputs.push({
      tenant: r.tenant,
      type: "service_started",
      subject: r.service,
      payload: { version: r.version, recovered: true },
      causationId: kernelEvent.id,
    });
  }
  for (const { d, error } of down) {
    inputs.push({
      tenant: d.tenant,
      type: "service_crashed",
      subject: d.service,
      payload: { version: d.version, phase: "recovery", crash: crashOf(error) },
      causationId: kernelEvent.id,
    });
  }
  if (inputs.length === 0) return;
  const { events } = await k.log.write([], inputs);
  for (let i = 0; i < up.length; i++) {
    (up[i] as ServiceRecord).causeId = (events[i] as SoloEvent).id;
    k.supervisor.afterStart(up[i] as ServiceRecord);
  }
  // A service that could not start is supervised like any crash: restarted, or failed.
  for (let i = 0; i < down.length; i++) {
    const { d } = down[i] as { d: DeploymentRecord };
    const r = k.registry.current(d.tenant, d.service);
    if (r) k.supervisor.supervise(r, (events[up.length + i] as SoloEvent).id);
  }
}

// Tenants are placed before anything starts (largest first, each on the least loaded
// scheduler), and their services are interleaved, so every scheduler has work throughout: in
// store order all services in flight would belong to one tenant, hence to one scheduler.
function recoveryOrder(k: RecoveryParts, deployments: readonly DeploymentRecord[]): DeploymentRecord[] {
  const byTenant = new Map<string, DeploymentRecord[]>();
  for (const d of deployments) {
    const list = byTenant.get(d.tenant);
    if (list) list.push(d);
    else byTenant.set(d.tenant, [d]);
  }
  const lists = [...byTenant.values()].sort((a, b) => b.length - a.length);
  const load = new Array<number>(k.schedulers).fill(0);
  for (const list of lists) {
    const tenant = (list[0] as DeploymentRecord).tenant;
    let best = 0;
    for (let i = 1; i < load.length; i++) if ((load[i] ?? 0) < (load[best] ?? 0)) best = i;
    k.registry.setPlacement(tenant, best);
    load[best] = (load[best] ?? 0) + list.length;
  }
  const order: DeploymentRecord[] = [];
  for (let i = 0; order.length < deployments.length; i++) {
    for (const list of lists) {
      const d = list[i];
      if (d) order.push(d);
    }
  }
  return order;
}

function registerCrashed(
  registry: Registry,
  d: DeploymentRecord,
  limits: ServiceLimits,
  supervision: SupervisionPolicy,
  error: SoloError,
): void {
  registry.name({
    tenant: d.tenant,
    service: d.service,
    sid: registry.newSid(),
    version: d.version,
    code: d.code,
    args: d.args,
    meta: metaOf(d),
    supervision,
    grants: grantsOf(d),
    restarts: 0,
    restartTimes: [],
    causeId: null,
    scheduler: -1,
    limits,
    deployedAt: new Date(d.deployedAt).toISOString(),
    ...(d.file ? { file: d.file } : {}),
    life: CRASHED,
    handlers: [],
    usage: EMPTY_USAGE,
    crash: crashOf(error),
  });
}
