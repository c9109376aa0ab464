/**
 * The host side of a service's `solo` object: calls and casts to the tenant's other services,
 * timers, logs, and the requests only the control plane can answer (storage, events, secrets,
 * fetch). Each power is checked against the service's grants here, where it runs.
 * @internal
 */
import { DEFAULT_GRANTS, type ServiceGrants } from "../../api/grants.ts";
import type { ErrorData } from "../../lib/errors/errors.ts";
import { SoloError } from "../../lib/errors/errors.ts";
import { NAME_PATTERN, serviceMatches } from "../../lib/names.ts";
import { failed, type HostHandler, type HostRequest, type IoKind, replied, type SandboxSpec } from "../../sandbox/contract.ts";
import type { TenantEngine } from "../../sandbox/engine.ts";
import { overByteLimit } from "../../sandbox/json.ts";
import { ServiceSandbox } from "../../sandbox/service.ts";
import { type DeniedGrant, type PendingTimer, waitingBytes } from "../protocol.ts";
import type { RunLoop } from "./run-loop.ts";
import { applicationError, callerGone, errorOf, parseErrorAnswer, type Service } from "./service.ts";
import { stdCall } from "./std-host.ts";

const DEFAULT_CALL_TIMEOUT_MS = 5000;
const IO_TIMEOUT_MS = 30_000;
const IO_NAMES: Record<IoKind, string> = { kv: "solo.storage", emit: "solo.emit", secret: "solo.secrets.get", fetch: "solo.fetch" };

type Request<Op extends HostRequest["op"]> = Extract<HostRequest, { readonly op: Op }>;

/** What a scheduler's services may ask of it. @internal */
export class HostPowers {
  private readonly loop: RunLoop;
  private callSeq = 0;
  private timerSeq = 0;

  constructor(loop: RunLoop) {
    this.loop = loop;
  }

  /**
   * A sandbox for service `sid`, its `solo` object served here; its message stops at once when
   * the control plane asks to kill the service.
   */
  sandbox(engine: TenantEngine, spec: SandboxSpec, sid: number): ServiceSandbox {
    const { board } = this.loop;
    return new ServiceSandbox(engine, spec, this.handlerFor(sid, spec), { shouldStop: () => board.stopRequested(sid) });
  }

  private handlerFor(sid: number, spec: SandboxSpec): HostHandler {
    return (req) => {
      // The standard web APIs (URL, crypto, ...) touch nothing outside the service: no grant, and
      // no service record needed (they work at module top level and while a new version loads).
      if (req.op === "std") return stdCall(req, spec.limits);
      const s = this.loop.services.get(sid);
      if (!s) throw new SoloError("SOLO_ERR_SERVICE_STOPPED", "this service has been stopped");
      switch (req.op) {
        case "call":
          return this.call(s, req);
        case "cast":
          return this.cast(s, req);
        case "timer":
          return this.timer(s, req);
        case "cancel":
          return s.disarm(req.id) ? "1" : "0";
        case "log":
          return this.log(s, req);
        case "reply":
          return this.reply(s, req);
        default:
          return this.io(s, req);
      }
    };
  }

  private call(s: Service, req: Request<"call">): string {
    const current = s.current;
    if (!current) {
      throw new SoloError(
        "SOLO_ERR_CALL_NOT_IN_MESSAGE",
        "solo.call can only be used while handling a message (in init or a handler), not at module top level",
      );
    }
    const { service: name, body } = req;
    this.needCall(s, name, "solo.call");
    const t = this.target(s, name, "solo.call");
    if (t === s || current.chain.includes(t.sid)) {
      const names = [...current.chain.map((sid) => this.loop.services.get(sid)?.name ?? "?"), s.name, t.name];
      throw new SoloError(
        "SOLO_ERR_CALL_DEADLOCK",
        t === s
          ? `solo.call: service ${s.name} called itself; it handles one message at a time, so it would wait for itself forever`
          : `solo.call: calling ${t.name} would deadlock: ${names.join(" -> ")} is a cycle of services waiting on each other`,
        { cycle: names, hint: "use solo.cast for messages that need no reply, or restructure so calls never form a cycle" },
      );
    }
    checkSize(t, body, "solo.call: the request");
    if (t.full(body)) throw t.mailboxFull(body);
    const timeout = req.timeoutMs ?? DEFAULT_CALL_TIMEOUT_MS;
    const callId = this.awaitAnswer(
      s,
      timeout,
      errorOf("SOLO_ERR_CALL_TIMEOUT", `solo.call to ${t.name} timed out after ${timeout} ms`, { service: t.name, timeoutMs: timeout }),
    );
    t.enqueue({
      kind: "call",
      payload: body,
      from: { svc: s, callId },
      fromName: s.name,
      deadline: Date.now() + timeout,
      chain: [...current.chain, s.sid],
    });
    this.loop.schedule(t);
    return callId;
  }

  // solo.reply / solo.replyError: answers a call this service's handler deferred (noreply), by the
  // handle it got as ctx.replyTo. Only this service's own waiting calls are found under it.
  private reply(s: Service, req: Request<"reply">): string {
    const what = req.error ? "solo.replyError" : "solo.reply";
    const waiting = s.deferred.get(req.to);
    if (!waiting) {
      const ended = s.ended.get(req.to);
      const handle = JSON.stringify(req.to.slice(0, 80));
      if (ended === "gave_up") throw replyTooLate(what, handle);
      throw new SoloError(
        "SOLO_ERR_REPLY_UNKNOWN",
        ended === "answered"
          ? `${what}: the call under ${handle} was answered already; a call is answered once`
          : `${what}: no call of this service waits under ${handle}`,
        {
          service: s.name,
          hint: "reply with the ctx.replyTo of a call whose handler returned { noreply: true, state }, once",
        },
      );
    }
    // Its caller gave up (timed out, or the calling service stopped): nobody would hear the reply.
    if (callerGone(waiting, Date.now())) {
      s.endReply(req.to, "gave_up");
      throw replyTooLate(what, JSON.stringify(req.to.slice(0, 80)));
    }
    if (req.error) {
      // Its size first, as for a reply: a body over the limit is not parsed at all.
      checkSize(s, req.body, `${what}: the error`);
      const answer = parseErrorAnswer(req.body);
      if (!answer) {
        throw new SoloError("SOLO_ERR_REPLY_UNKNOWN", `${what}: the error is not { code, message, details? }`, { service: s.name });
      }
      this.loop.respond(waiting, failed(applicationError(s.name, answer)));
    } else {
      checkSize(s, req.body, `${what}: the reply`);
      this.loop.respond(waiting, replied(req.body));
    }
    s.endReply(req.to, "answered");
    return "";
  }

  // Storage, events, secrets and fetch live in the control plane: the request goes there and the
  // message waits, like a solo.call, until the answer (or the timeout) resumes it. The grant is
  // checked here first; the control plane checks what it alone knows (a fetch's host).
  private io(s: Service, req: Request<IoKind>): string {
    const { op: kind, arg } = req;
    const g = grantsOf(s);
    if (kind === "kv" && !g.storage) throw this.missing(s, "storage", "", "solo.storage needs the grant storage: true");
    if (kind === "emit" && !g.emit) throw this.missing(s, "emit", "", "solo.emit needs the grant emit: true");
    if (kind === "fetch" && !g.fetch) throw this.missing(s, "fetch", "", 'solo.fetch needs the grant fetch: { hosts: ["..."] }');
    if (kind === "secret" && !g.secrets.includes(arg)) {
      throw this.missing(
        s,
        "secrets",
        arg.slice(0, 128),
        `solo.secrets.get(${JSON.stringify(arg.slice(0, 128))}) needs that name in the grant secrets`,
      );
    }
    if (!s.current) {
      throw new SoloError(
        "SOLO_ERR_CALL_NOT_IN_MESSAGE",
        `${IO_NAMES[kind]} can only be used while handling a message (in init or a handler), not at module top level`,
      );
    }
    // A fetch may take its grant's whole time (its redirects included); the store answers sooner.
    const timeoutMs = kind === "fetch" && g.fetch ? g.fetch.timeoutMs + 1000 : IO_TIMEOUT_MS;
    const callId = this.awaitAnswer(
      s,
      timeoutMs,
      kind === "fetch"
        ? errorOf("SOLO_ERR_FETCH_TIMEOUT", `solo.fetch did not complete within ${timeoutMs} ms`, { timeoutMs, limit: timeoutMs })
        : errorOf("SOLO_ERR_STORE_UNAVAILABLE", `the store did not answer within ${timeoutMs} ms`, { timeoutMs }),
    );
    this.loop.outbox.send({ op: "io", sid: s.sid, cid: callId, kind, arg });
    return callId;
  }

  // Registers an answer the current message awaits (a call's reply, a store's answer); if none
  // arrives within `timeoutMs`, the message resumes with `onTimeout` instead.
  private awaitAnswer(s: Service, timeoutMs: number, onTimeout: ErrorData): string {
    const callId = String(++this.callSeq);
    const timer = setTimeout(() => {
      if (!s.outCalls.delete(callId) || !s.current) return;
      s.resumes.push([callId, { ok: false, error: onTimeout }]);
      this.loop.schedule(s);
      if (!this.loop.draining) this.loop.outbox.flushSoon();
    }, timeoutMs);
    s.outCalls.set(callId, { timer });
    return callId;
  }

  private cast(s: Service, req: Request<"cast">): string {
    const { service: name, body } = req;
    this.needCall(s, name, "solo.cast");
    const t = this.target(s, name, "solo.cast");
    checkSize(t, body, "solo.cast: the message");
    if (t.full(body)) {
      t.drop();
      return "";
    }
    t.enqueue({ kind: "cast", payload: body, fromName: s.name, deadline: 0, chain: [] });
    this.loop.schedule(t);
    return "";
  }

  private timer(s: Service, req: Request<"timer">): string {
    if (!grantsOf(s).timers) throw this.missing(s, "timers", "", "solo.sendAfter needs the grant timers: true");
    const { body } = req;
    if (!s.handlers.includes("handleInfo")) {
      throw new SoloError(
        "SOLO_ERR_HANDLER_MISSING",
        "solo.sendAfter: timer messages are delivered to handleInfo, which this service does not define",
        {
          hint: "add handleInfo(message, state, ctx) to the default export",
        },
      );
    }
    const max = s.sandbox.spec.limits.timers;
    if (s.timers.size >= max) {
      throw new SoloError("SOLO_ERR_LIMIT_TIMERS", `solo.sendAfter: the service already has ${max} pending timers, its limit`, {
        limit: max,
      });
    }
    // The guest's own check of the message's size is its code; the host checks again.
    checkSize(s, body, "solo.sendAfter: the message");
    const t = s.tenant;
    if (t.queuedBytes + waitingBytes(body) > t.capBytes) {
      throw new SoloError(
        "SOLO_ERR_LIMIT_TIMERS",
        `solo.sendAfter: tenant ${t.name}'s waiting messages and timers hold ${t.queuedBytes} bytes; this one would pass its memory limit of ${t.capBytes}`,
        { resource: "queued_bytes", limit: t.capBytes },
      );
    }
    const id = ++this.timerSeq;
    this.arm(s, id, Date.now() + req.delayMs, body);
    return String(id);
  }

  /**
   * Arms again the timers pending when a state was captured, ids and all (an id in the state still
   * cancels its timer), due when they were due, or at once.
   */
  rearm(s: Service, timers: readonly PendingTimer[]): void {
    for (const [id, dueAt, body] of timers) {
      this.timerSeq = Math.max(this.timerSeq, id);
      this.arm(s, id, dueAt, body);
    }
  }

  /** Arms a timer that puts `body` in the service's mailbox for handleInfo at `dueAt`. */
  private arm(s: Service, id: number, dueAt: number, body: string): void {
    const timer = setTimeout(
      () => {
        if (!s.disarm(id)) return; // from the timer to the mailbox, or dropped
        // A service still starting gets it after its init, which is ahead of it in the mailbox.
        if (!s.live) return;
        if (s.full(body)) {
          s.drop();
          return;
        }
        s.enqueue({ kind: "info", payload: body, fromName: "", deadline: 0, chain: [] });
        this.loop.schedule(s);
      },
      Math.max(0, dueAt - Date.now()),
    );
    timer.unref();
    s.timers.set(id, { timer, dueAt, body });
    s.tenant.queuedBytes += waitingBytes(body);
  }

  private log(s: Service, req: Request<"log">): string {
    const rate = grantsOf(s).logPerSecond;
    // Logging never throws: without the grant a line is dropped and counted (status shows how
    // many in usage.logDropped), so a console.log left in the code cannot crash the service.
    if (rate === 0) {
      s.logLost++;
      s.dirty = true;
      return "";
    }
    // A token bucket: `rate` lines a second, bursts of as many; beyond it lines are dropped and
    // counted, and the next line that gets through says how many.
    const now = performance.now();
    s.logTokens = Math.min(rate, s.logTokens + ((now - s.logAt) / 1000) * rate);
    s.logAt = now;
    if (s.logTokens < 1) {
      s.logDropped++;
      s.logLost++;
      s.dirty = true;
      return "";
    }
    s.logTokens -= 1;
    const { outbox } = this.loop;
    if (s.logDropped > 0) {
      outbox.send({
        op: "log",
        sid: s.sid,
        level: "warn",
        text: `${s.logDropped} log lines dropped: over the grant's ${rate} lines a second`,
        at: Date.now(),
      });
      s.logDropped = 0;
    }
    outbox.send({ op: "log", sid: s.sid, level: req.level, text: req.text.slice(0, 8192), at: Date.now() });
    return "";
  }

  private needCall(s: Service, name: string, what: string): void {
    if (!grantsOf(s).call.some((pattern) => serviceMatches(pattern, name))) {
      throw this.missing(
        s,
        "call",
        name.slice(0, 80),
        `${what}(${JSON.stringify(name.slice(0, 80))}) needs that service in the grant call`,
      );
    }
  }

  // A power used without its grant: an error inside the service, and (through the control plane)
  // an audit record.
  private missing(s: Service, grant: DeniedGrant, detail: string, message: string): SoloError {
    this.loop.outbox.send({ op: "denied", sid: s.sid, grant, detail });
    if (!this.loop.draining) this.loop.outbox.flushSoon();
    return new SoloError("SOLO_ERR_GRANT_MISSING", `${message}; service ${s.name} was deployed without it`, {
      grant,
      ...(detail ? { requested: detail } : {}),
      hint: `deploy the service with grants that include ${grant}`,
    });
  }

  private target(s: Service, name: string, what: string): Service {
    const t = NAME_PATTERN.test(name) ? s.tenant.byName.get(name) : undefined;
    if (!t) {
      throw new SoloError(
        "SOLO_ERR_SERVICE_NOT_FOUND",
        `${what}: no service named ${JSON.stringify(name.slice(0, 80))} in tenant ${s.tenant.name}`,
        {
          service: name.slice(0, 80),
        },
      );
    }
    if (t.status === "crashed") throw new SoloError("SOLO_ERR_SERVICE_CRASHED", `${what}: service ${name} has crashed`, { service: name });
    if (t.status === "stopped") throw new SoloError("SOLO_ERR_SERVICE_STOPPED", `${what}: service ${name} is stopped`, { service: name });
    return t;
  }
}

function grantsOf(s: Service): ServiceGrants {
  return s.sandbox.spec.grants ?? DEFAULT_GRANTS;
}

function checkSize(t: Service, body: string, what: string): void {
  const limit = t.sandbox.spec.limits.messageBytes;
  if (overByteLimit(body, limit)) {
    throw new SoloError("SOLO_ERR_VALUE_TOO_LARGE", `${what} is larger than ${t.name}'s message limit of ${limit} bytes`, { limit });
  }
}

function replyTooLate(what: string, handle: string): SoloError {
  return new SoloError(
    "SOLO_ERR_REPLY_TOO_LATE",
    `${what}: the caller of the call under ${handle} gave up waiting (its timeout passed, or it stopped)`,
    {
      hint: "the caller's timeout bounds a deferred call too; reply sooner, or have the caller wait longer (timeoutMs)",
    },
  );
}
