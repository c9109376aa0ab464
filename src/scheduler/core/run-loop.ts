/**
 * The scheduler's run loop: services run one message at a time each, round-robin across services,
 * in bounded slices so new work is always admitted. A message's outcome answers its sender (the
 * control plane or a service awaiting a call); a failure crashes its service, and an engine fault
 * its tenant's whole instance.
 * @internal
 */
import type { Crash } from "../../api/crash.ts";
import type { ApplicationError, ErrorData } from "../../lib/errors/errors.ts";
import { failed, type Outcome, type Result, replied } from "../../sandbox/contract.ts";
import { threadClock } from "../../sandbox/cpu-clock.ts";
import { crashError, deployFailure } from "../../sandbox/crash.ts";
import { overByteLimit } from "../../sandbox/json.ts";
import { EngineFault } from "../../sandbox/service.ts";
import { hardLimitMs, type StepBoard } from "../board.ts";
import type { Deployed, SwapOp } from "../protocol.ts";
import type { Outbox } from "./outbox.ts";
import { Queue } from "./queue.ts";
import {
  applicationError,
  type Caller,
  callerGone,
  errorAnswerOf,
  errorOf,
  liveServices,
  type Message,
  type Service,
  type Tenant,
} from "./service.ts";
import { collectSoon } from "./soon.ts";

/** The most CPU `terminate` may take when a service is killed or stops. */
const TERMINATE_MS = 500;
/** The hold a scheduler applies by itself after a stall (the control plane's first cooldown). */
const FIRST_HOLD_MS = 1000;
/** An overrun past a message's budget longer than this (and than the budget) counts as a stall. */
const STALL_MS = 100;
const SLICE_MS = 10;

/** The tenants and services of one scheduler, and the loop that runs their messages. @internal */
export class RunLoop {
  readonly tenants = new Map<string, Tenant>();
  readonly services = new Map<number, Service>();
  readonly outbox: Outbox;
  readonly board: StepBoard;
  /** The scheduler's number, for its diagnostics. */
  readonly index: number;
  /** True while a slice runs: what it sends leaves at its end. */
  draining = false;
  /** Carries out a swap when its turn in the service's mailbox comes. */
  onSwap: (s: Service, m: Message, spec: SwapOp) => void = () => {};
  private readonly runQueue = new Queue<Service>();
  private drainScheduled = false;
  private readonly drainLater = (): void => this.drain();

  constructor(board: StepBoard, outbox: Outbox, index: number) {
    this.board = board;
    this.outbox = outbox;
    this.index = index;
  }

  // Every entry into a service's code is announced on the board, so the control plane's watchdog
  // can see a step that runs past its hard limit even while this thread cannot answer.
  guest<T>(sid: number, budgetMs: number, fn: () => T): T {
    this.board.begin(sid, hardLimitMs(budgetMs));
    try {
      return fn();
    } finally {
      this.board.end();
    }
  }

  /** Puts the service on the run queue if it has work and its tenant is not held. */
  schedule(s: Service): void {
    if (s.queued || !s.hasWork() || s.tenant.heldUntil > Date.now()) return;
    s.queued = true;
    this.runQueue.push(s);
    if (!this.draining && !this.drainScheduled) {
      this.drainScheduled = true;
      setImmediate(this.drainLater);
    }
  }

  /** Holds a tenant's messages for `ms` (or longer, if it is held already), then schedules them again. */
  hold(t: Tenant, ms: number): void {
    const until = Date.now() + ms;
    if (until <= t.heldUntil) return;
    t.heldUntil = until;
    setTimeout(() => {
      for (const s of t.byName.values()) this.schedule(s);
    }, ms + 1).unref();
  }

  /** Runs queued services for one slice, then sends what it produced. */
  drain(): void {
    this.drainScheduled = false;
    this.draining = true;
    // A fresh reading of the thread's CPU time: what ran before this drain (receiving a batch) is
    // not counted against its first message.
    threadClock.read();
    const started = performance.now();
    try {
      while (this.runQueue.length > 0 && performance.now() - started < SLICE_MS) {
        const s = this.runQueue.shift() as Service;
        s.queued = false;
        this.step(s);
        this.schedule(s);
      }
    } finally {
      this.draining = false;
    }
    if (this.runQueue.length > 0 && !this.drainScheduled) {
      this.drainScheduled = true;
      setImmediate(this.drainLater);
    }
    this.outbox.flush();
  }

  private step(s: Service): void {
    try {
      if (s.current) {
        const next = s.resumes.shift();
        if (next)
          this.settle(
            s,
            this.guest(s.sid, s.sandbox.spec.limits.cpuMsPerMessage, () => s.sandbox.resume(next[0], next[1])),
          );
        return;
      }
      const m = s.mailbox.shift();
      if (!m) return;
      s.unqueued(m);
      this.outbox.consumed(m);
      if (m.deadline !== 0 && Date.now() > m.deadline) return; // its caller has given up already
      s.dirty = true;
      if (m.kind === "swap") {
        this.onSwap(s, m, m.swap);
        return;
      }
      s.current = m;
      const kind = m.kind;
      // A call's handler gets a handle to answer it later with (ctx.replyTo), before its sender's name.
      const from = kind === "call" ? `${s.nextReplyTo()}\n${m.fromName}` : m.fromName;
      this.settle(
        s,
        this.guest(s.sid, s.sandbox.spec.limits.cpuMsPerMessage, () => s.sandbox.begin(kind, m.payload, from)),
      );
    } catch (err) {
      this.poisonTenant(s.tenant, err);
    }
  }

  private settle(s: Service, o: Outcome): void {
    const m = s.current;
    if (!m) return;
    if (o.t === "pending") {
      // Resumes when a reply or a timeout arrives, or with the answers already waiting to run.
      if (s.outCalls.size > 0 || s.resumes.length > 0) return;
      const handler = m.kind === "init" ? "init" : `handle${m.kind[0]?.toUpperCase()}${m.kind.slice(1)}`;
      this.crash(s, {
        kind: "unsettled",
        reason: "SOLO_ERR_HANDLER_UNSETTLED",
        message: `${handler} returned a promise that can never settle: it awaits something that is not a solo.call and no job is left to run`,
      });
      return;
    }
    if (o.t === "stop") {
      // Its last answer first, as any; then, unless that answer crashed it, it ends normally.
      this.settle(s, o.answer);
      if (s.status === "running") this.stopNormally(s);
      return;
    }
    s.current = undefined;
    s.sandbox.endMessage();
    s.messages++;
    switch (o.t) {
      case "reply": {
        // The reply text was produced inside the sandbox: a service that tampered with its own
        // intrinsics could hand back something that is not JSON or not within its size limit.
        const bad = checkReply(s, o.json);
        if (bad) {
          s.current = m;
          this.crash(s, bad);
          return;
        }
        this.respond(m, replied(o.json));
        return;
      }
      case "error-answer": {
        // The service's own error for its caller: the service keeps running and its state.
        const answer = checkErrorAnswer(s, o.json);
        if ("crash" in answer) {
          s.current = m;
          this.crash(s, answer.crash);
          return;
        }
        if (m.kind === "call") this.respond(m, failed(applicationError(s.name, answer)));
        return;
      }
      case "deferred":
        if (m.kind === "call") this.defer(s, m);
        return;
      case "done":
        if (m.kind === "init" || m.kind === "adopt") {
          s.status = "running";
          this.respond(m, replied(JSON.stringify({ handlers: s.handlers } satisfies Deployed)));
        } else if (m.kind === "call") {
          this.respond(m, failed(errorOf("SOLO_ERR_INTERNAL", "the call finished without a reply")));
        }
        return;
      case "missing":
        if (m.kind === "call") {
          this.respond(
            m,
            failed(
              errorOf("SOLO_ERR_HANDLER_MISSING", `service ${s.name} has no handleCall, so it cannot answer calls`, {
                hint: "use cast for this service, or deploy a version with handleCall",
              }),
            ),
          );
        } else {
          s.unhandled++;
        }
        return;
      case "failed":
        s.current = m; // crash() answers the message that failed
        this.crash(s, o.crash);
        return;
      case "stopped":
        // Stopped mid-message for a kill that is on its way: the kill finds it stopped.
        s.current = m;
        this.stop(
          s,
          "stopped",
          errorOf("SOLO_ERR_SERVICE_STOPPED", `service ${s.name} was stopped (killed) while it handled this message`),
        );
        return;
    }
  }

  // The handler answered noreply: the call waits for solo.reply under its handle, within the
  // service's mailbox limit (deferred calls are messages it still holds). Past it, callers that
  // gave up are let go first; if none has, this call is answered at once with the refusal.
  private defer(s: Service, m: Message): void {
    const limit = s.sandbox.spec.limits.mailbox;
    if (s.deferred.size >= limit) {
      const now = Date.now();
      for (const [handle, d] of s.deferred) {
        if (callerGone(d, now)) s.endReply(handle, "gave_up");
      }
    }
    if (s.deferred.size >= limit) {
      s.endReply(s.replyTo, "gave_up");
      this.respond(
        m,
        failed(
          errorOf("SOLO_ERR_MAILBOX_FULL", `service ${s.name} holds ${s.deferred.size} calls waiting for solo.reply, its mailbox limit`, {
            service: s.name,
            limit,
            resource: "deferred_calls",
            hint: "the service defers calls faster than it answers them; retry later, or deploy it with a larger limits.mailbox",
          }),
        ),
      );
      return;
    }
    s.deferred.set(s.replyTo, { rid: m.rid, from: m.from, deadline: m.deadline });
  }

  /**
   * Runs `terminate(reason, state)` of a service between messages, under its budget (at most
   * half a second): what it returns is not waited on, and a failure is logged, not a crash. The
   * service is going away either way.
   */
  terminate(s: Service, reason: string): void {
    try {
      const terminateMs = Math.min(s.sandbox.spec.limits.cpuMsPerMessage, TERMINATE_MS);
      const o = this.guest(s.sid, terminateMs, () => s.sandbox.begin("terminate", JSON.stringify(reason), "", terminateMs));
      s.sandbox.endMessage();
      if (o.t === "failed") {
        this.outbox.send({ op: "log", sid: s.sid, level: "warn", text: `terminate failed: ${o.crash.message}`, at: Date.now() });
      }
    } catch (err) {
      if (err instanceof EngineFault) this.poisonTenant(s.tenant, err);
    }
  }

  // A handler returned stop: true. As in OTP: terminate("normal") runs, what waits in the mailbox
  // (and calls it deferred) is answered that it stopped, and its supervisor hears of a normal exit.
  private stopNormally(s: Service): void {
    this.terminate(s, "normal");
    if (!s.live) return; // terminate's own failure took it down already
    this.stop(s, "stopped", errorOf("SOLO_ERR_SERVICE_STOPPED", `service ${s.name} stopped normally`));
    this.outbox.send({ op: "status", sid: s.sid, status: "stopped" });
  }

  /** Answers a message's sender: the control plane, or a service awaiting a call. */
  respond(m: Caller, result: Result): void {
    if (m.rid !== undefined) {
      this.outbox.send(result.ok ? { op: "ok", rid: m.rid, value: result.json } : { op: "err", rid: m.rid, error: result.error });
      return;
    }
    if (m.from) {
      const caller = m.from.svc;
      const out = caller.outCalls.get(m.from.callId);
      if (!out || !caller.current) return; // the caller timed out, crashed or was stopped
      clearTimeout(out.timer);
      caller.outCalls.delete(m.from.callId);
      caller.resumes.push([m.from.callId, result]);
      this.schedule(caller);
    }
  }

  /** The service crashed (or failed to start): what it was handling is answered, and it stops. */
  crash(s: Service, c: Crash): void {
    const m = s.current;
    s.current = undefined;
    const starting = s.status === "starting";
    // Who held the tenant's memory when it was full, measured now, before this one's runtime goes.
    const holders = c.resource === "tenant_memory" ? largestHolders(s.tenant) : undefined;
    // A message that held the thread far past its budget inside a built-in stalled its neighbours.
    const overrun = c.kind === "cpu_limit" ? s.sandbox.overrunMs : 0;
    const stalledMs = overrun > Math.max(STALL_MS, s.sandbox.spec.limits.cpuMsPerMessage) ? Math.round(overrun) : 0;
    // Held at once, before the control plane's cooldown (which may be longer) arrives: its other
    // services' messages must not stall the thread again meanwhile.
    if (stalledMs > 0) this.hold(s.tenant, FIRST_HOLD_MS);
    if (m) {
      if (m.kind === "init") {
        this.respond(m, failed(deployFailure(c).toData()));
      } else if (m.kind === "call") {
        this.respond(m, failed(crashError(c, s.name)));
      }
    }
    const reason = starting ? "it failed to start" : `it crashed: ${c.message}`;
    this.stop(
      s,
      starting ? "stopped" : "crashed",
      errorOf("SOLO_ERR_SERVICE_CRASHED", `service ${s.name} is not running: ${reason}`, { crash: c }),
    );
    if (starting) {
      this.services.delete(s.sid);
      if (s.tenant.byName.get(s.name) === s) s.tenant.byName.delete(s.name);
    } else {
      this.outbox.send({
        op: "status",
        sid: s.sid,
        status: "crashed",
        crash: c,
        ...(holders ? { holders } : {}),
        ...(stalledMs ? { stalledMs } : {}),
      });
    }
  }

  /** Takes a service down: rejects what waits on it, cancels its timers, frees its runtime. */
  stop(s: Service, status: "crashed" | "stopped", rejection: ErrorData): void {
    s.status = status;
    s.dirty = true;
    const rejected = failed(rejection);
    if (s.current) {
      this.respond(s.current, rejected);
      s.current = undefined;
    }
    for (const m of s.mailbox.drain()) {
      s.unqueued(m);
      this.outbox.consumed(m);
      if (m.rid !== undefined || m.from) this.respond(m, rejected);
      else s.unhandled++;
    }
    for (const d of s.deferred.values()) this.respond(d, rejected);
    s.deferred.clear();
    for (const id of [...s.timers.keys()]) s.disarm(id);
    for (const out of s.outCalls.values()) clearTimeout(out.timer);
    s.outCalls.clear();
    s.resumes.length = 0;
    try {
      s.sandbox.dispose();
    } catch (err) {
      // The runtime could not be freed cleanly; its memory goes with the tenant's instance later.
      console.error(`solo scheduler ${this.index}: freeing ${s.tenant.name}/${s.name} failed:`, err);
    }
    this.release(s.tenant);
  }

  // A tenant with no running service and no deploy under way gives its WebAssembly instance back:
  // linear memory never shrinks, so the next deploy starts on a fresh one (at the tenant's current
  // limit) instead of inheriting the high-water mark of everything that ran before.
  release(t: Tenant): void {
    if (t.deploying > 0 || !t.engine || liveServices(t).length > 0) return;
    t.engine = undefined;
    t.module = undefined;
    collectSoon();
  }

  // The WebAssembly instance of a tenant threw outside the guest: nothing in it can be trusted, so
  // every service of that tenant crashes and the next deploy gets a fresh instance. Other tenants
  // have their own instances and do not notice.
  poisonTenant(t: Tenant, err: unknown): void {
    const fault = err instanceof EngineFault;
    if (!fault) console.error(`solo scheduler ${this.index}: internal error in tenant ${t.name}:`, err);
    const message = fault
      ? `the engine failed (${err.message}); the tenant's WebAssembly instance was replaced`
      : "internal scheduler error";
    const c: Crash = { kind: "engine_fault", reason: "SOLO_ERR_ENGINE_FAULT", message };
    t.engine = undefined;
    t.module = undefined;
    for (const s of [...t.byName.values()]) {
      if (s.live) this.crash(s, c);
    }
    collectSoon();
  }
}

function checkReply(s: Service, json: string): Crash | undefined {
  if (json === "") return undefined; // no value
  const r = parseAnswer(s, json);
  return "crash" in r ? r.crash : undefined;
}

// An answer's JSON as the sandbox produced it, parsed once: within the size limit and valid JSON.
function parseAnswer(s: Service, json: string): { readonly value: unknown } | { readonly crash: Crash } {
  const limit = s.sandbox.spec.limits.messageBytes;
  if (overByteLimit(json, limit)) {
    return {
      crash: { kind: "invalid_value", reason: "SOLO_ERR_VALUE_TOO_LARGE", message: `the reply is larger than ${limit} bytes of JSON` },
    };
  }
  try {
    return { value: JSON.parse(json) };
  } catch {
    return {
      crash: {
        kind: "invalid_value",
        reason: "SOLO_ERR_VALUE_NOT_JSON",
        message: "the service produced a reply that is not valid JSON (its intrinsics were tampered with)",
      },
    };
  }
}

/** The tenant's five services holding the most memory, as the engine counts it. */
function largestHolders(t: Tenant): Array<readonly [string, number]> {
  return liveServices(t)
    .map((s) => [s.name, s.sandbox.memoryBytes()] as const)
    .sort((a, b) => b[1] - a[1])
    .slice(0, 5);
}

// An error answer as the sandbox produced it, checked again here: a service that tampered with
// its own intrinsics could hand back anything.
function checkErrorAnswer(s: Service, json: string): ApplicationError | { readonly crash: Crash } {
  const parsed = json === "" ? { value: undefined } : parseAnswer(s, json);
  if ("crash" in parsed) return parsed;
  return (
    errorAnswerOf(parsed.value) ?? {
      crash: {
        kind: "invalid_result",
        reason: "SOLO_ERR_HANDLER_RESULT_INVALID",
        message: "the service produced an error answer that is not { code, message, details? } (its intrinsics were tampered with)",
      },
    }
  );
}
