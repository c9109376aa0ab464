/**
 * What a scheduler holds for each tenant and service: the records its parts share (run loop, host
 * powers, lifecycle, swap, usage), and the accounting of their waiting messages, which count
 * against the tenant's memory limit.
 * @internal
 */
import { type ApplicationError, type DetailsOf, type ErrorData, REASONS, type Reason, SoloError } from "../../lib/errors/errors.ts";
import type { Result } from "../../sandbox/contract.ts";
import type { TenantEngine } from "../../sandbox/engine.ts";
import type { ServiceSandbox } from "../../sandbox/service.ts";
import { type PendingTimer, type SwapOp, waitingBytes } from "../protocol.ts";
import { Queue } from "./queue.ts";

/**
 * A message in a service's mailbox. "adopt" starts a service from a given state instead of init (a
 * rollback); "swap" replaces its code between two messages.
 * @internal
 */
export type Message =
  | (MessageFields & { readonly kind: "init" | "adopt" | "call" | "cast" | "info" })
  | (MessageFields & { readonly kind: "swap"; readonly swap: SwapOp });

interface MessageFields {
  readonly payload: string;
  /** Control-plane request id awaiting the outcome (deploy or external call). */
  readonly rid?: number;
  /** A service awaiting the reply of this call. */
  readonly from?: { readonly svc: Service; readonly callId: string };
  readonly fromName: string;
  /** Date.now() after which nobody awaits this message any more; 0 for none. */
  readonly deadline: number;
  /** Services (sids) transitively awaiting this message, for deadlock detection. */
  readonly chain: readonly number[];
  /** A cast from the control plane: its number, acknowledged once the cast is consumed. */
  readonly cid?: number;
  /** The bytes it counts in its tenant's waiting messages (set by enqueue; 0 for a deploy's or swap's own). */
  bytes?: number;
}

/** Who awaits a call's answer: the control plane (`rid`) or a service (`from`); what `respond` needs. @internal */
export type Caller = Pick<MessageFields, "rid" | "from">;

/** A call whose handler answered `noreply`: its caller waits for `solo.reply` until `deadline` (0: none). @internal */
export interface Deferred extends Caller {
  readonly deadline: number;
}

/** Whether a deferred call's caller gave up: the calling service no longer awaits it, or its deadline passed. @internal */
export function callerGone(d: Deferred, now: number): boolean {
  return d.from ? !d.from.svc.outCalls.has(d.from.callId) : d.deadline !== 0 && now > d.deadline;
}

/** How many answered or abandoned reply handles a service remembers, to say why a late reply fails. */
const REMEMBERED_HANDLES = 256;

/** A tenant on this scheduler: its WebAssembly instance and its services by name. @internal */
export interface Tenant {
  readonly name: string;
  engine: Promise<TenantEngine> | undefined;
  /** The engine once instantiated, for work that cannot wait (a swap between two messages). */
  module?: TenantEngine;
  /** The tenant's memory limit: the maximum of its next instance's linear memory. */
  capBytes: number;
  /** Deploys under way, which hold on to the instance while it has no running service. */
  deploying: number;
  /** What was last reported to the control plane (linear memory, maximum, waiting bytes). */
  reported: string;
  /**
   * Bytes of the messages waiting in its services' mailboxes and timers (two per UTF-16 unit: what
   * this thread may hold for them). They may add up to the tenant's memory limit, no more.
   */
  queuedBytes: number;
  /** A fresh instance being made to move the tenant's services into (a reclaim). */
  reclaiming?: Promise<void>;
  /** No reclaim before this time (epoch ms): after one failed, or found nothing quiet. */
  reclaimAfter: number;
  /** While cooling down (epoch ms): its services' messages wait, timers and service-to-service traffic included. */
  heldUntil: number;
  readonly byName: Map<string, Service>;
}

/** A tenant with no instance and nothing waiting yet. @internal */
export function newTenant(name: string, capBytes: number): Tenant {
  return {
    name,
    engine: undefined,
    capBytes,
    deploying: 0,
    reported: "",
    queuedBytes: 0,
    reclaimAfter: 0,
    heldUntil: 0,
    byName: new Map(),
  };
}

type Status = "starting" | "running" | "crashed" | "stopped";

/** A service on this scheduler: its sandbox, mailbox, timers and usage. @internal */
export class Service {
  readonly sid: number;
  readonly name: string;
  readonly tenant: Tenant;
  sandbox: ServiceSandbox;
  /** The module it runs (types stripped), to load it again in a fresh instance (a reclaim). */
  code: string;
  status: Status = "starting";
  handlers: readonly string[] = [];
  readonly mailbox = new Queue<Message>();
  current: Message | undefined;
  /** Answers to calls the current message made, waiting to resume it: the call's id and its result. */
  readonly resumes: Array<readonly [string, Result]> = [];
  /** Answers the current message awaits, by call id: each with the timer that gives up on it. */
  readonly outCalls = new Map<string, { readonly timer: NodeJS.Timeout }>();
  readonly timers = new Map<number, { readonly timer: NodeJS.Timeout; readonly dueAt: number; readonly body: string }>();
  queued = false;
  dirty = true;
  messages = 0;
  unhandled = 0;
  /** Casts and timer messages refused because the mailbox was full. */
  dropped = 0;
  /** Calls its handler answered `noreply`, waiting for `solo.reply`, by the handle the handler got as `ctx.replyTo`. */
  readonly deferred = new Map<string, Deferred>();
  /** Handles no longer waiting, and why: answered, or the caller gave up (oldest first, bounded). */
  readonly ended = new Map<string, "answered" | "gave_up">();
  /** The handle of the call being handled now (its handler's `ctx.replyTo`). */
  replyTo = "";
  private replySeq = 0;
  /** The log rate limit's bucket. */
  logTokens = Number.POSITIVE_INFINITY;
  logAt = 0;
  logDropped = 0;
  /** Log lines dropped in all: without the log grant, or over its rate. */
  logLost = 0;

  constructor(sid: number, name: string, tenant: Tenant, sandbox: ServiceSandbox, code: string) {
    this.sid = sid;
    this.name = name;
    this.tenant = tenant;
    this.sandbox = sandbox;
    this.code = code;
  }

  /** A fresh handle for the next call's `ctx.replyTo`: unique to this service instance. */
  nextReplyTo(): string {
    this.replySeq++;
    this.replyTo = `${this.sid.toString(36)}.${this.replySeq.toString(36)}`;
    return this.replyTo;
  }

  /** Remembers why `handle` waits no more, forgetting the oldest past the bound. */
  endReply(handle: string, why: "answered" | "gave_up"): void {
    this.deferred.delete(handle);
    this.ended.set(handle, why);
    if (this.ended.size > REMEMBERED_HANDLES) {
      const oldest = this.ended.keys().next().value;
      if (oldest !== undefined) this.ended.delete(oldest);
    }
  }

  /** Running, or starting (its init waits in its mailbox or runs). */
  get live(): boolean {
    return this.status === "running" || this.status === "starting";
  }

  hasWork(): boolean {
    if (!this.live) return false;
    return this.current ? this.resumes.length > 0 : this.mailbox.length > 0;
  }

  /** Whether `payload` cannot join the mailbox: it has `limits.mailbox` messages, or its tenant's waiting messages fill its memory limit. */
  full(payload: string): boolean {
    return (
      this.mailbox.length >= this.sandbox.spec.limits.mailbox || this.tenant.queuedBytes + waitingBytes(payload) > this.tenant.capBytes
    );
  }

  /** Why `payload` cannot join the mailbox. */
  mailboxFull(payload: string): SoloError {
    const limit = this.sandbox.spec.limits.mailbox;
    const t = this.tenant;
    if (this.mailbox.length < limit) {
      return new SoloError(
        "SOLO_ERR_MAILBOX_FULL",
        `tenant ${t.name}'s waiting messages and timers hold ${t.queuedBytes} bytes; with this one (${waitingBytes(payload)}) they would pass its memory limit of ${t.capBytes}`,
        {
          service: this.name,
          resource: "queued_bytes",
          limit: t.capBytes,
          hint: "the tenant's services cannot keep up; retry later, send smaller messages, or raise the tenant's memoryBytes",
        },
      );
    }
    return new SoloError("SOLO_ERR_MAILBOX_FULL", `service ${this.name} has ${this.mailbox.length} messages waiting, its mailbox limit`, {
      service: this.name,
      limit,
      hint: "the service cannot keep up; retry later, or deploy it with a larger limits.mailbox",
    });
  }

  /** Puts `m` in the mailbox, counting its bytes against the tenant. */
  enqueue(m: Message): void {
    m.bytes = waitingBytes(m.payload);
    this.mailbox.push(m);
    this.tenant.queuedBytes += m.bytes;
  }

  /** A message left the mailbox: what it counted (if anything) is counted no more. */
  unqueued(m: Message): void {
    this.tenant.queuedBytes -= m.bytes ?? 0;
  }

  // A cast or timer message that finds the mailbox full is counted (usage.dropped) and reported by
  // the control plane as a resource_violation event: never lost without a trace.
  drop(): void {
    this.dropped++;
    this.dirty = true;
  }

  /** Takes timer `id` off the service (cancelled, fired, or the service stopped): its message counts no more. */
  disarm(id: number): boolean {
    const t = this.timers.get(id);
    if (!t) return false;
    clearTimeout(t.timer);
    this.timers.delete(id);
    this.tenant.queuedBytes -= waitingBytes(t.body);
    return true;
  }

  /** The pending timers, as a swap captures them with its state. */
  pendingTimers(): PendingTimer[] {
    return [...this.timers].map(([id, t]) => [id, t.dueAt, t.body] as const);
  }
}

/** The tenant's services that are running or starting. @internal */
export function liveServices(t: Tenant): Service[] {
  return [...t.byName.values()].filter((s) => s.live);
}

/** An error as data, without the cost of an Error's stack. @internal */
export function errorOf<R extends Reason>(reason: R, message: string, details?: NoInfer<DetailsOf<R>>): ErrorData {
  return { code: REASONS[reason], reason, message, details: details ?? {} };
}

/** Why a message cannot go to `s`: a stopped (killed) service says so; anything else that is not running has crashed. @internal */
export function notRunning(s: Service | undefined): ErrorData {
  return s?.status === "stopped"
    ? errorOf("SOLO_ERR_SERVICE_STOPPED", `service ${s.name} was stopped`)
    : errorOf("SOLO_ERR_SERVICE_CRASHED", "the service is not running");
}

const ERROR_CODE = /^[A-Za-z][A-Za-z0-9_.:-]{0,63}$/;

/** A service's error answer from its JSON, if it is `{ code, message, details? }` as the contract says. @internal */
export function parseErrorAnswer(json: string): ApplicationError | undefined {
  try {
    return errorAnswerOf(JSON.parse(json));
  } catch {
    return undefined;
  }
}

/** A parsed value as a service's error answer, if it is `{ code, message, details? }`. @internal */
export function errorAnswerOf(o: unknown): ApplicationError | undefined {
  if (o === null || typeof o !== "object" || Array.isArray(o)) return undefined;
  const r = o as Record<string, unknown>;
  const ok =
    typeof r.code === "string" &&
    ERROR_CODE.test(r.code) &&
    typeof r.message === "string" &&
    r.message.length <= 2000 &&
    Object.keys(r).every((k) => k === "code" || k === "message" || k === "details");
  return ok ? (r as unknown as ApplicationError) : undefined;
}

/** What a caller gets when the service answered its call with an error of its own. @internal */
export function applicationError(service: string, answer: ApplicationError): ErrorData {
  return errorOf("SOLO_ERR_APPLICATION_ERROR", `service ${service} answered with an error: ${answer.code}: ${answer.message}`, {
    service,
    answer,
  });
}
