/**
 * The messages between the control plane (main thread) and a scheduler (its thread, or in-thread
 * in tests), as discriminated unions on `op`. Both sides batch: one `postMessage` carries an array
 * of them. Services are named by a numeric `sid` the control plane assigns; replies are matched by
 * a request id `rid`.
 * @internal
 */
import type { Crash } from "../api/crash.ts";
import type { ServiceGrants } from "../api/grants.ts";
import type { ServiceLimits } from "../api/limits.ts";
import type { ErrorData } from "../lib/errors/errors.ts";
import type { IoKind, LogLevel, Result } from "../sandbox/contract.ts";
import type { EngineImage } from "../sandbox/engine.ts";

/** Starts a service; answered by `ok` with a {@link Deployed}, or `err`. @internal */
export interface DeployOp {
  readonly op: "deploy";
  readonly rid: number;
  readonly sid: number;
  readonly tenant: string;
  readonly service: string;
  readonly version: number;
  readonly filename: string;
  readonly code: string;
  readonly args: string;
  readonly limits: ServiceLimits;
  readonly grants: ServiceGrants;
  /** The tenant's memory limit: the most linear memory its WebAssembly instance may hold. */
  readonly tenantMemoryBytes: number;
  /** Start from this state (JSON) instead of running init: a rollback to a captured state. */
  readonly state?: string;
  /** With `state`: the timers pending when it was captured, armed again with their ids. */
  readonly timers?: readonly PendingTimer[];
}

/** Replaces a running service's code between two messages; answered by `ok` with a {@link Swapped}, or `err`. @internal */
export interface SwapOp {
  readonly op: "swap";
  readonly rid: number;
  readonly sid: number;
  readonly version: number;
  /** The version whose state the new code's codeChange receives; 0 to adopt it as it is. */
  readonly fromVersion: number;
  readonly filename: string;
  readonly code: string;
  readonly limits: ServiceLimits;
  readonly grants: ServiceGrants;
}

/** A call from the control plane; answered by `ok` with the reply's JSON, or `err`. @internal */
export interface CallOp {
  readonly op: "call";
  readonly rid: number;
  readonly sid: number;
  readonly payload: string;
  /** Date.now() after which nobody awaits the reply: the message is then not started. */
  readonly deadline: number;
}

/** `cid` numbers the cast on this scheduler, so one never started can be delivered again after the thread is replaced. @internal */
export interface CastOp {
  readonly op: "cast";
  readonly sid: number;
  readonly cid: number;
  readonly payload: string;
}

/** Stops a service (its terminate runs first if it is between messages); answered by `ok` with "". @internal */
export interface KillOp {
  readonly op: "kill";
  readonly rid: number;
  readonly sid: number;
  /** Why, as terminate and the answers to waiting callers say it: a kill (the default), or an operator's restart. */
  readonly reason?: "killed" | "restart";
}

/** The control plane's answer to a service's `io` request (storage, events, secrets, fetch). @internal */
export interface IoAnswerOp {
  readonly op: "io";
  readonly sid: number;
  readonly cid: string;
  readonly outcome: Result;
}

/** Stops every service; answered by `ok` with "". @internal */
export interface ShutdownOp {
  readonly op: "shutdown";
  readonly rid: number;
}

/** The tenant is cooling down: none of its services' messages run for `ms` (they wait in their mailboxes). @internal */
export interface HoldOp {
  readonly op: "hold";
  readonly tenant: string;
  readonly ms: number;
}

/** The tenant's memory limit changed: its instance is replaced at the next quiet moment to apply it. @internal */
export interface TenantMemoryOp {
  readonly op: "tenantMemory";
  readonly tenant: string;
  readonly memoryBytes: number;
}

/** What the control plane sends a scheduler. @internal */
export type ToScheduler = DeployOp | SwapOp | CallOp | CastOp | KillOp | IoAnswerOp | ShutdownOp | HoldOp | TenantMemoryOp;

/** The value (as JSON) of a deploy's `ok`: the handlers the module defines. @internal */
export interface Deployed {
  readonly handlers: readonly string[];
}

/** The value (as JSON) of a swap's `ok`: the new handlers, and the old version's state and timers (kept for a rollback). @internal */
export interface Swapped {
  readonly handlers: readonly string[];
  readonly state: string;
  readonly timers: readonly PendingTimer[];
}

/** One usage sample: sid, messages handled, CPU ms, heap bytes, mailbox length, unhandled messages, dropped messages, dropped log lines. @internal */
export type UsageSample = readonly [number, number, number, number, number, number, number, number];

/** A tenant whose instance or waiting messages changed: its linear memory, its maximum (0 and 0: it has none), and the bytes of its waiting messages. @internal */
export type TenantSample = readonly [string, number, number, number];

/** The grants a service can be found using without having them. @internal */
export type DeniedGrant = "call" | "storage" | "emit" | "fetch" | "secrets" | "timers" | "log";

/** What a scheduler sends the control plane. @internal */
export type FromScheduler =
  | { readonly op: "ready" }
  /** A request succeeded: `value` is its JSON ("" for none). */
  | { readonly op: "ok"; readonly rid: number; readonly value: string }
  | { readonly op: "err"; readonly rid: number; readonly error: ErrorData }
  | {
      readonly op: "status";
      readonly sid: number;
      readonly status: "crashed" | "stopped";
      readonly crash?: Crash;
      /** With a crash for a full tenant: its largest holders then, by name and bytes. */
      readonly holders?: ReadonlyArray<readonly [string, number]>;
      /** With a CPU crash found only after a built-in returned: how long it held the thread past its budget. */
      readonly stalledMs?: number;
    }
  /** Casts (by `cid`) the scheduler consumed, and calls (by `rid`) whose message it started. */
  | { readonly op: "taken"; readonly cids: readonly number[]; readonly rids: readonly number[] }
  | { readonly op: "usage"; readonly samples: readonly UsageSample[]; readonly tenants: readonly TenantSample[] }
  | { readonly op: "log"; readonly sid: number; readonly level: LogLevel; readonly text: string; readonly at: number }
  /** A service's request to the control plane (durable storage, events); answered by an `io` message. */
  | { readonly op: "io"; readonly sid: number; readonly cid: string; readonly kind: IoKind; readonly arg: string }
  /** A service used a power it was not granted (`grant` names it; `detail`, the service or secret asked for). */
  | { readonly op: "denied"; readonly sid: number; readonly grant: DeniedGrant; readonly detail: string };

/** A `sendAfter` timer: its id, when it is due (epoch ms) and its message (JSON). @internal */
export type PendingTimer = readonly [number, number, string];

/**
 * What a waiting message (a mailbox entry, a timer, a cast on its way) counts against its tenant's
 * memory limit: two bytes per UTF-16 unit, the most a JavaScript string holds. @internal
 */
export function waitingBytes(payload: string): number {
  return payload.length * 2;
}

/** What the control plane hands a new scheduler thread. @internal */
export interface SchedulerData {
  readonly engine: EngineImage;
  /** The scheduler's StepBoard: what it runs now, read by the control plane's watchdog. */
  readonly board: SharedArrayBuffer;
  readonly index: number;
  readonly usageIntervalMs: number;
}
