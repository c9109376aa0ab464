// A deployed service as the kernel keeps it: one record per running instance (a restart or swap
// makes a new one), and the conversions between it, the store's rows and the public ServiceInfo.

import type { Crash } from "../../api/crash.ts";
import type { ServiceGrants } from "../../api/grants.ts";
import { grantsData } from "../../api/grants.ts";
import type { Clock } from "../../api/kernel.ts";
import type { ServiceLimits } from "../../api/limits.ts";
import type { ServiceInfo, ServiceUsage } from "../../api/services.ts";
import type { SupervisionPolicy } from "../../api/supervision.ts";
import { SoloError } from "../../lib/errors/errors.ts";
import { words } from "../../lib/errors/transport.ts";
import { NO_META, type ServiceMeta } from "../../lib/names.ts";
import type { PendingTimer } from "../../scheduler/index.ts";
import type { DeploymentRecord } from "../../store/store.ts";
import { resolveGrants } from "../powers/grants.ts";

/** A hot swap's rollback window: the version to go back to and the state captured at the swap. */
export interface SwapWatch {
  readonly from: ServiceRecord;
  readonly state: string;
  /** The `sendAfter` timers pending with that state, armed again if it comes back. */
  readonly timers: readonly PendingTimer[];
  readonly timer: unknown | undefined;
}

/**
 * A service's stage: running; restarting (when the supervisor's restart is due, and its timer);
 * crashed or failed (the crash is the record's `crash`); stopped (and whether the kill that stopped
 * it is in the store, so that it will not be recovered, or whether it ended normally on its own).
 */
export type Lifecycle =
  | { readonly state: "running" }
  | { readonly state: "restarting"; readonly at: number; readonly timer: unknown }
  | { readonly state: "crashed" }
  | { readonly state: "failed" }
  | { readonly state: "stopped"; readonly durable: boolean; readonly normal?: true };

export const RUNNING: Lifecycle = Object.freeze({ state: "running" });
export const CRASHED: Lifecycle = Object.freeze({ state: "crashed" });
export const FAILED: Lifecycle = Object.freeze({ state: "failed" });
export const STOPPED: Lifecycle = Object.freeze({ state: "stopped", durable: false });
/** Stopped by a kill that is in the store. */
export const KILLED: Lifecycle = Object.freeze({ state: "stopped", durable: true });
/** Ended on its own (a handler returned stop: true), and its supervisor left it down. */
export const EXITED: Lifecycle = Object.freeze({ state: "stopped", durable: false, normal: true });

/** Restarting, due at `at` (clock ms; 0 when no restart is pending) by `timer`. */
export function restarting(at: number, timer: unknown): Lifecycle {
  return { state: "restarting", at, timer };
}

/** Whether a kill stopped it and is in the store. */
export function killedDurably(r: ServiceRecord): boolean {
  return r.life.state === "stopped" && r.life.durable;
}

export interface ServiceRecord {
  readonly tenant: string;
  readonly service: string;
  readonly sid: number;
  readonly version: number;
  /** The author's source and the init args, to start this version again. */
  readonly code: string;
  readonly args: string;
  readonly meta: ServiceMeta;
  readonly supervision: SupervisionPolicy;
  readonly grants: ServiceGrants;
  restarts: number;
  /** When the supervisor restarted it (clock ms), for the intensity window. */
  restartTimes: number[];
  /** After a swap, until its rollback window ends. */
  swapWatch?: SwapWatch;
  /** kill() was asked for it (in any state): whatever was starting it in the meantime must not bring it back. */
  killed?: boolean;
  /** Crashed before it was registered under its name (right after init): handled once it is. */
  earlyCrash?: Crash | null;
  /** The event that recorded this version's start (deploy or recovery): the cause of what follows. */
  causeId: number | null;
  readonly scheduler: number;
  readonly limits: ServiceLimits;
  readonly deployedAt: string;
  /** The file name it was deployed as (errors and crashes name it); undefined: `<service>.ts`/`.js`. */
  readonly file?: string | undefined;
  /** Where it is in its life, with what only that stage has. */
  life: Lifecycle;
  handlers: readonly string[];
  usage: ServiceUsage;
  crash?: Crash;
}

/** What starting one version of a service needs. */
export interface LaunchSpec {
  readonly tenant: string;
  readonly service: string;
  readonly version: number;
  readonly code: string;
  /** The code with its types stripped, when the caller has it already. */
  readonly stripped?: string;
  readonly meta: ServiceMeta;
  readonly args: string;
  readonly limits: ServiceLimits;
  readonly supervision: SupervisionPolicy;
  readonly grants: ServiceGrants;
  /** The file name it was deployed as; undefined: `<service>.ts` or `.js`. */
  readonly file?: string | undefined;
  readonly deployedAt: string;
}

export const EMPTY_USAGE: ServiceUsage = Object.freeze({
  messages: 0,
  cpuMs: 0,
  memoryBytes: 0,
  mailbox: 0,
  unhandled: 0,
  dropped: 0,
  logDropped: 0,
});

/** The key of a service's name: maps by tenant/service (breakers, versions, operations under way). */
export function keyOf(tenant: string, service: string): string {
  return `${tenant}/${service}`;
}

export function infoOf(r: ServiceRecord, breaker: ServiceInfo["breaker"]): ServiceInfo {
  return {
    tenant: r.tenant,
    service: r.service,
    version: r.version,
    state: r.life.state,
    handlers: r.handlers,
    limits: r.limits,
    usage: r.usage,
    deployedAt: r.deployedAt,
    ...(r.crash ? { crash: r.crash } : {}),
    restarts: r.restarts,
    supervision: r.supervision,
    breaker,
    tags: r.meta.tags,
    metadata: r.meta.metadata,
    grants: grantsData(r.grants),
  };
}

/** A service's not-found error, for lookups in the registry and in the stored history alike. */
export function serviceNotFound(tenant: string, service: string): SoloError {
  return new SoloError("SOLO_ERR_SERVICE_NOT_FOUND", `no service named ${service} in tenant ${tenant}`, {
    tenant,
    service,
    hint: `${words("services.list", { tenant })} shows the deployed services`,
  });
}

/** The grants stored with a version (the defaults for one deployed before grants existed). */
export function grantsOf(d: DeploymentRecord): ServiceGrants {
  return d.grants ? resolveGrants(JSON.parse(d.grants) as unknown) : resolveGrants(undefined);
}

/** The tags and metadata stored with a version. */
export function metaOf(d: DeploymentRecord): ServiceMeta {
  if (!d.meta) return NO_META;
  const m = JSON.parse(d.meta) as ServiceMeta;
  return Object.freeze({ tags: Object.freeze([...m.tags]), metadata: Object.freeze({ ...m.metadata }) });
}

/** The crash a failed start describes, or one made from the error itself. */
export function crashOf(error: SoloError): Crash {
  return (error.details as { crash?: Crash }).crash ?? { kind: "exception", reason: error.reason, message: error.message.slice(0, 1000) };
}

/** The deployment row a version is stored as. */
export function deploymentRow(
  s: Pick<LaunchSpec, "tenant" | "service" | "version" | "code" | "args" | "limits" | "supervision" | "meta" | "grants" | "file">,
  deployedAt: number,
): DeploymentRecord {
  return {
    tenant: s.tenant,
    service: s.service,
    version: s.version,
    code: s.code,
    args: s.args,
    limits: JSON.stringify(s.limits),
    supervision: JSON.stringify(s.supervision),
    ...(s.meta !== NO_META ? { meta: JSON.stringify(s.meta) } : {}),
    grants: JSON.stringify(grantsData(s.grants)),
    ...(s.file !== undefined ? { file: s.file } : {}),
    deployedAt,
  };
}

// Error details go into a failure event; a pathological one must not make it oversized.
export function clipDetails(details: Readonly<Record<string, unknown>>): unknown {
  const json = JSON.stringify(details);
  return json.length <= 4096 ? details : { clipped: true, keys: Object.keys(details).slice(0, 20) };
}

/** Stands a pending restart down (the service stays restarting, with none due, until its caller moves it on). */
export function cancelRestart(r: ServiceRecord, clock: Clock): void {
  if (r.life.state !== "restarting") return;
  if (r.life.timer !== undefined) clock.clearTimeout(r.life.timer);
  r.life = restarting(0, undefined);
}

/** Ends a swap's rollback window without a verdict. */
export function cancelSwapWatch(r: ServiceRecord, clock: Clock): void {
  if (!r.swapWatch) return;
  if (r.swapWatch.timer !== undefined) clock.clearTimeout(r.swapWatch.timer);
  r.swapWatch = undefined;
}
