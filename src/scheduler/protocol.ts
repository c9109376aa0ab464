import type { ServiceGrants } from "../api/grants.ts";
import type { ServiceLimits } from "../api/limits.ts";
import type { ErrorData } from "../lib/errors/errors.ts";
import type { EngineImage } from "../sandbox/engine.ts";
import type { Crash } from "../sandbox/service.ts";

/**
 * Messages between the control plane (main thread) and a scheduler (worker thread). Both sides
 * batch: one `postMessage` carries an array of these. Services are named by a numeric `sid` the
 * control plane assigns; replies are matched by a request id `rid`.
 * @internal
 */
export type ToScheduler =
  | {
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
  | {
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
  | { readonly op: "call"; readonly rid: number; readonly sid: number; readonly payload: string; readonly deadline: number }
  /** `cid` numbers the cast on this scheduler, so one never started can be delivered again after the thread is replaced. */
  | { readonly op: "cast"; readonly sid: number; readonly cid: number; readonly payload: string }
  | { readonly op: "kill"; readonly rid: number; readonly sid: number }
  /** The outcome (`R<json>` or `E<error json>`) of a service's storage or emit request. */
  | { readonly op: "io"; readonly sid: number; readonly cid: string; readonly outcome: string }
  | { readonly op: "shutdown"; readonly rid: number }
  /** The tenant is cooling down: none of its services' messages run for `ms` (they wait in their mailboxes). */
  | { readonly op: "hold"; readonly tenant: string; readonly ms: number }
  /** The tenant's memory limit changed: its instance is replaced at the next quiet moment to apply it. */
  | { readonly op: "tenantMemory"; readonly tenant: string; readonly memoryBytes: number };

/** One usage sample: sid, messages handled, CPU ms, heap bytes, mailbox length, unhandled messages, dropped messages. @internal */
export type UsageSample = readonly [number, number, number, number, number, number, number];

/** @internal */
export type FromScheduler =
  | { readonly op: "ready" }
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
  | {
      readonly op: "usage";
      readonly samples: readonly UsageSample[];
      /** Each tenant whose instance or waiting messages changed: its linear memory, its maximum (0 and 0: it has none), and the bytes of its waiting messages. */
      readonly tenants: ReadonlyArray<readonly [string, number, number, number]>;
    }
  | { readonly op: "log"; readonly sid: number; readonly level: string; readonly text: string; readonly at: number }
  /** A service's request to the control plane (durable storage, events); answered by an `io` message. */
  | { readonly op: "io"; readonly sid: number; readonly cid: string; readonly kind: IoKind; readonly arg: string }
  /** A service used a power it was not granted (`grant` names it; `detail`, the service or secret asked for). */
  | { readonly op: "denied"; readonly sid: number; readonly grant: string; readonly detail: string };

/** A `sendAfter` timer: its id, when it is due (epoch ms) and its message (JSON). @internal */
export type PendingTimer = readonly [number, number, string];

/**
 * What a waiting message (a mailbox entry, a timer, a cast on its way) counts against its tenant's
 * memory limit: two bytes per UTF-16 unit, the most a JavaScript string holds. @internal
 */
export function waitingBytes(payload: string): number {
  return payload.length * 2;
}

/** What a service may ask of the control plane. @internal */
export type IoKind = "kv" | "emit" | "secret" | "fetch";

/** What the control plane hands a new scheduler thread. @internal */
export interface SchedulerData {
  readonly engine: EngineImage;
  /** The scheduler's StepBoard: what it runs now, read by the control plane's watchdog. */
  readonly board: SharedArrayBuffer;
  readonly index: number;
  readonly usageIntervalMs: number;
}
