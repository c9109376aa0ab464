/**
 * A scheduler: one worker thread hosting tenants' WebAssembly instances and their services'
 * mailboxes. The control plane sends it batches of operations; it runs services one message at a
 * time each, round-robin across services, in bounded slices so new work is always admitted, and
 * sends back batches of replies.
 * @internal
 */
import v8 from "node:v8";
import { runInNewContext } from "node:vm";
import { parentPort, workerData } from "node:worker_threads";
import { DEFAULT_GRANTS, type ServiceGrants } from "../api/grants.ts";
import type { ServiceLimits } from "../api/limits.ts";
import { type ErrorData, REASONS, type Reason, SoloError } from "../lib/errors/errors.ts";
import { NAME_PATTERN } from "../lib/names.ts";
import { ENGINE_MIN_BYTES, instanceCapBytes, instantiateEngine, type TenantEngine } from "../sandbox/engine.ts";
import { overByteLimit } from "../sandbox/json.ts";
import {
  type Crash,
  crashError,
  deployFailure,
  EngineFault,
  type Outcome,
  ServiceSandbox,
  threadClock,
  threadCpuMs,
} from "../sandbox/service.ts";
import { hardLimitMs, StepBoard } from "./board.ts";
import {
  type FromScheduler,
  type IoKind,
  type PendingTimer,
  type SchedulerData,
  type ToScheduler,
  type UsageSample,
  waitingBytes,
} from "./protocol.ts";

const DEFAULT_CALL_TIMEOUT_MS = 5000;
/** The most CPU `terminate` may take when a service is killed. */
const TERMINATE_MS = 500;
/** The hold a scheduler applies by itself after a stall (the control plane's first cooldown). */
const FIRST_HOLD_MS = 1000;
/** An overrun past a message's budget longer than this (and than the budget) counts as a stall. */
const STALL_MS = 100;
/** The CPU a swap's export or adoption may take at least, whatever the service's budget. */
const STATE_MOVE_MS = 1000;
const IO_TIMEOUT_MS = 30_000;
const SLICE_MS = 10;

// "adopt" starts a service from a given state instead of init (a rollback); "swap" replaces its
// code between two messages.
type MessageKind = "init" | "adopt" | "call" | "cast" | "info" | "swap";

interface Message {
  readonly kind: MessageKind;
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

interface OutCall {
  readonly timer: NodeJS.Timeout;
}

interface Tenant {
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

type Status = "starting" | "running" | "crashed" | "stopped";

class Service {
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
  readonly resumes: Array<readonly [string, string]> = [];
  readonly outCalls = new Map<string, OutCall>();
  readonly timers = new Map<number, { readonly timer: NodeJS.Timeout; readonly dueAt: number; readonly body: string }>();
  queued = false;
  dirty = true;
  messages = 0;
  unhandled = 0;
  /** Casts and timer messages refused because the mailbox was full. */
  dropped = 0;
  /** The log rate limit's bucket. */
  logTokens = Number.POSITIVE_INFINITY;
  logAt = 0;
  logDropped = 0;

  constructor(sid: number, name: string, tenant: Tenant, sandbox: ServiceSandbox, code: string) {
    this.sid = sid;
    this.name = name;
    this.tenant = tenant;
    this.sandbox = sandbox;
    this.code = code;
  }

  hasWork(): boolean {
    if (this.status !== "running" && this.status !== "starting") return false;
    return this.current ? this.resumes.length > 0 : this.mailbox.length > 0;
  }
}

/** A FIFO with O(1) push and shift. */
class Queue<T> {
  private items: Array<T | undefined> = [];
  private head = 0;
  get length(): number {
    return this.items.length - this.head;
  }
  push(item: T): void {
    this.items.push(item);
  }
  shift(): T | undefined {
    if (this.head >= this.items.length) return undefined;
    const item = this.items[this.head];
    this.items[this.head++] = undefined;
    if (this.head > 1024 && this.head * 2 > this.items.length) {
      this.items = this.items.slice(this.head);
      this.head = 0;
    }
    return item;
  }
  drain(): T[] {
    const rest = this.items.slice(this.head) as T[];
    this.items = [];
    this.head = 0;
    return rest;
  }
}

const data = workerData as SchedulerData;
const port = parentPort;
if (!port) throw new Error("the scheduler must run in a worker thread");
const board = new StepBoard(data.board);
board.publishThread();

// Every entry into a service's code is announced on the board, so the control plane's watchdog
// can see a step that runs past its hard limit even while this thread cannot answer.
function guest<T>(sid: number, budgetMs: number, fn: () => T): T {
  board.begin(sid, hardLimitMs(budgetMs));
  try {
    return fn();
  } finally {
    board.end();
  }
}

const tenants = new Map<string, Tenant>();
const services = new Map<number, Service>();
const runQueue = new Queue<Service>();
let outbox: FromScheduler[] = [];
let draining = false;
let drainScheduled = false;
let callSeq = 0;
let timerSeq = 0;

// Replies leave in small batches even in the middle of a long drain, so the control plane can
// send the next requests while this thread is still busy: the pipeline never empties.
const EARLY_FLUSH = 16;

function send(msg: FromScheduler): void {
  outbox.push(msg);
  if (outbox.length >= EARLY_FLUSH) flush();
}

function flush(): void {
  if (taken.length > 0 || startedCalls.length > 0) {
    outbox.push({ op: "taken", cids: taken, rids: startedCalls });
    taken = [];
    startedCalls = [];
  }
  if (outbox.length === 0) return;
  const batch = outbox;
  outbox = [];
  port?.postMessage(batch);
}

// Casts from the control plane consumed since the last batch; reported in it, and kept on the
// board meanwhile (whose ring is far larger than this threshold).
let taken: number[] = [];
/** Calls from the control plane whose message started since the last batch (kept on the board too). */
let startedCalls: number[] = [];
const TAKEN_FLUSH = 1024;

// A message taken from a mailbox: a cast is consumed, and a call from the control plane started,
// so that if this thread is replaced, the control plane knows what not to deliver again (a cast)
// and what may have had effects already (a call: its outcome is unknown).
function consumed(m: Message): void {
  if (m.cid !== undefined) castTaken(m.cid);
  else if (m.rid !== undefined && m.kind === "call") {
    board.started(m.rid);
    startedCalls.push(m.rid);
  } else return;
  if (taken.length + startedCalls.length >= TAKEN_FLUSH) flush();
}

/** A cast from the control plane is consumed: started, dropped or refused, it is not sent again. */
function castTaken(cid: number): void {
  board.consumed(cid);
  taken.push(cid);
}

function errorData(reason: Reason, message: string, details: Record<string, unknown> = {}): ErrorData {
  return { code: REASONS[reason], reason, message, details };
}

function encodeError(e: ErrorData): string {
  return `E${JSON.stringify(e)}`;
}

// ---- message delivery ---------------------------------------------------------------------

function schedule(s: Service): void {
  if (s.queued || !s.hasWork() || s.tenant.heldUntil > Date.now()) return;
  s.queued = true;
  runQueue.push(s);
  if (!draining && !drainScheduled) {
    drainScheduled = true;
    setImmediate(drain);
  }
}

/** Holds a tenant's messages for `ms` (or longer, if it is held already), then schedules them again. */
function hold(t: Tenant, ms: number): void {
  const until = Date.now() + ms;
  if (until <= t.heldUntil) return;
  t.heldUntil = until;
  setTimeout(() => {
    for (const s of t.byName.values()) schedule(s);
  }, ms + 1).unref();
}

function drain(): void {
  drainScheduled = false;
  draining = true;
  // A fresh reading of the thread's CPU time: what ran before this drain (receiving a batch) is
  // not counted against its first message.
  threadClock.read();
  const started = performance.now();
  try {
    while (runQueue.length > 0 && performance.now() - started < SLICE_MS) {
      const s = runQueue.shift() as Service;
      s.queued = false;
      step(s);
      schedule(s);
    }
  } finally {
    draining = false;
  }
  if (runQueue.length > 0 && !drainScheduled) {
    drainScheduled = true;
    setImmediate(drain);
  }
  flush();
}

function step(s: Service): void {
  try {
    if (s.current) {
      const next = s.resumes.shift();
      if (next)
        settle(
          s,
          guest(s.sid, s.sandbox.spec.limits.cpuMsPerMessage, () => s.sandbox.resume(next[0], next[1])),
        );
      return;
    }
    const m = s.mailbox.shift();
    if (!m) return;
    unqueued(s, m);
    consumed(m);
    if (m.deadline !== 0 && Date.now() > m.deadline) return; // its caller has given up already
    s.dirty = true;
    if (m.kind === "swap") {
      swapNow(s, m);
      return;
    }
    s.current = m;
    const kind = m.kind;
    settle(
      s,
      guest(s.sid, s.sandbox.spec.limits.cpuMsPerMessage, () => s.sandbox.begin(kind, m.payload, m.fromName)),
    );
  } catch (err) {
    poisonTenant(s.tenant, err);
  }
}

function settle(s: Service, o: Outcome): void {
  const m = s.current;
  if (!m) return;
  if (o.t === "pending") {
    // Resumes when a reply or a timeout arrives, or with the answers already waiting to run.
    if (s.outCalls.size > 0 || s.resumes.length > 0) return;
    const handler = m.kind === "init" ? "init" : `handle${m.kind[0]?.toUpperCase()}${m.kind.slice(1)}`;
    crash(s, {
      kind: "unsettled",
      reason: "SOLO_ERR_HANDLER_UNSETTLED",
      message: `${handler} returned a promise that can never settle: it awaits something that is not a solo.call and no job is left to run`,
    });
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
        crash(s, bad);
        return;
      }
      respond(m, `R${o.json}`);
      return;
    }
    case "done":
      if (m.kind === "init" || m.kind === "adopt") {
        s.status = "running";
        respond(m, `R${JSON.stringify({ handlers: s.handlers })}`);
      } else if (m.kind === "call") {
        respond(m, encodeError(errorData("SOLO_ERR_INTERNAL", "the call finished without a reply")));
      }
      return;
    case "missing":
      if (m.kind === "call") {
        respond(
          m,
          encodeError(
            errorData("SOLO_ERR_HANDLER_MISSING", `service ${s.name} has no handleCall, so it cannot answer calls`, {
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
      crash(s, o.crash);
      return;
    case "stopped":
      // Stopped mid-message for a kill that is on its way: the kill finds it stopped.
      s.current = m;
      stop(s, "stopped", errorData("SOLO_ERR_SERVICE_STOPPED", `service ${s.name} was stopped (killed) while it handled this message`));
      return;
  }
}

// A hot swap, between two messages: the state leaves the old version as JSON, the new module is
// loaded in a fresh runtime, adopts the state through its codeChange(fromVersion, state), and only
// then replaces the old one. Any failure leaves the old version running, untouched.
function swapNow(s: Service, m: Message): void {
  const spec = JSON.parse(m.payload) as {
    version: number;
    fromVersion: number;
    filename: string;
    code: string;
    limits: ServiceLimits;
    grants: ServiceGrants;
  };
  const fail = (e: ErrorData): void => respond(m, encodeError(e));
  const engine = s.tenant.module;
  if (!engine) {
    fail(errorData("SOLO_ERR_INTERNAL", "the tenant's engine is not ready"));
    return;
  }
  const old = s.sandbox;
  // Each phase (export, load, adopt) is a step of its own on the board, each under its own limit.
  // A swap is an operator's act: moving the state may take a second whatever the service's budget.
  const moveMs = Math.max(old.spec.limits.cpuMsPerMessage, STATE_MOVE_MS);
  const exported = guest(s.sid, moveMs, () => old.begin("export", "", "", moveMs));
  old.endMessage();
  if (exported.t !== "reply") {
    const why = exported.t === "failed" ? exported.crash.message : "no state";
    fail(errorData("SOLO_ERR_SWAP_FAILED", `the state of ${s.name} cannot move to the new version: ${why}`, { phase: "export" }));
    return;
  }
  let next: ServiceSandbox | undefined;
  try {
    next = new ServiceSandbox(
      engine,
      { tenant: s.tenant.name, service: s.name, version: spec.version, filename: spec.filename, limits: spec.limits, grants: spec.grants },
      hostFor(s.sid),
      stopOptions(s.sid),
    );
    const fresh = next;
    const handlers = guest(s.sid, spec.limits.cpuMsPerMessage, () => fresh.load(spec.code));
    const from = spec.fromVersion === 0 ? "" : String(spec.fromVersion);
    const adopted = guest(s.sid, moveMs, () => fresh.begin("adopt", exported.json, from, moveMs));
    next.endMessage();
    if (adopted.t !== "done") {
      const why =
        adopted.t === "failed"
          ? adopted.crash.message
          : adopted.t === "pending"
            ? "codeChange returned a promise; it must return the new state synchronously"
            : "codeChange gave no state";
      next.dispose();
      fail(
        errorData("SOLO_ERR_SWAP_FAILED", `codeChange of the new version failed: ${why}`, {
          phase: "codeChange",
          ...(adopted.t === "failed" ? { crash: adopted.crash } : {}),
        }),
      );
      return;
    }
    s.sandbox = next;
    s.handlers = handlers;
    s.code = spec.code;
    old.dispose();
    respond(m, `R${JSON.stringify({ handlers, state: exported.json, timers: pendingTimers(s) })}`);
  } catch (err) {
    if (err instanceof EngineFault) {
      fail(SoloError.from(err).toData());
      poisonTenant(s.tenant, err);
      return;
    }
    next?.dispose();
    const e = SoloError.from(err);
    fail(errorData("SOLO_ERR_SWAP_FAILED", `the new version cannot be loaded: ${e.message}`, { phase: "load", cause: e.toData() }));
  }
}

function checkReply(s: Service, json: string): Crash | undefined {
  const limit = s.sandbox.spec.limits.messageBytes;
  if (overByteLimit(json, limit)) {
    return { kind: "invalid_value", reason: "SOLO_ERR_VALUE_TOO_LARGE", message: `the reply is larger than ${limit} bytes of JSON` };
  }
  try {
    JSON.parse(json);
    return undefined;
  } catch {
    return {
      kind: "invalid_value",
      reason: "SOLO_ERR_VALUE_NOT_JSON",
      message: "the service produced a reply that is not valid JSON (its intrinsics were tampered with)",
    };
  }
}

/** Answers a message's sender: the control plane, or a service awaiting a call. */
function respond(m: Message, outcome: string): void {
  if (m.rid !== undefined) {
    if (outcome.charCodeAt(0) === 82) send({ op: "ok", rid: m.rid, value: outcome.slice(1) });
    else send({ op: "err", rid: m.rid, error: JSON.parse(outcome.slice(1)) as ErrorData });
    return;
  }
  if (m.from) {
    const caller = m.from.svc;
    const out = caller.outCalls.get(m.from.callId);
    if (!out || !caller.current) return; // the caller timed out, crashed or was stopped
    clearTimeout(out.timer);
    caller.outCalls.delete(m.from.callId);
    caller.resumes.push([m.from.callId, outcome]);
    schedule(caller);
  }
}

function crash(s: Service, c: Crash): void {
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
  if (stalledMs > 0) hold(s.tenant, FIRST_HOLD_MS);
  if (m) {
    if (m.kind === "init") {
      respond(m, encodeError(deployFailure(c).toData()));
    } else if (m.kind === "call") {
      respond(m, encodeError(crashError(c, s.name)));
    }
  }
  const reason = starting ? "it failed to start" : `it crashed: ${c.message}`;
  stop(
    s,
    starting ? "stopped" : "crashed",
    errorData("SOLO_ERR_SERVICE_CRASHED", `service ${s.name} is not running: ${reason}`, { crash: c }),
  );
  if (starting) {
    services.delete(s.sid);
    if (s.tenant.byName.get(s.name) === s) s.tenant.byName.delete(s.name);
  } else {
    send({ op: "status", sid: s.sid, status: "crashed", crash: c, ...(holders ? { holders } : {}), ...(stalledMs ? { stalledMs } : {}) });
  }
}

/** The tenant's five services holding the most memory, as the engine counts it. */
function largestHolders(t: Tenant): Array<readonly [string, number]> {
  return liveServices(t)
    .map((s) => [s.name, s.sandbox.memoryBytes()] as const)
    .sort((a, b) => b[1] - a[1])
    .slice(0, 5);
}

/** Takes a service down: rejects what waits on it, cancels its timers, frees its runtime. */
function stop(s: Service, status: "crashed" | "stopped", rejection: ErrorData): void {
  s.status = status;
  s.dirty = true;
  const encoded = encodeError(rejection);
  if (s.current) {
    respond(s.current, encoded);
    s.current = undefined;
  }
  for (const m of s.mailbox.drain()) {
    unqueued(s, m);
    consumed(m);
    if (m.rid !== undefined || m.from) respond(m, encoded);
    else s.unhandled++;
  }
  for (const id of [...s.timers.keys()]) disarm(s, id);
  for (const out of s.outCalls.values()) clearTimeout(out.timer);
  s.outCalls.clear();
  s.resumes.length = 0;
  try {
    s.sandbox.dispose();
  } catch (err) {
    // The runtime could not be freed cleanly; its memory goes with the tenant's instance later.
    console.error(`solo scheduler ${data.index}: freeing ${s.tenant.name}/${s.name} failed:`, err);
  }
  release(s.tenant);
}

// A tenant with no running service and no deploy under way gives its WebAssembly instance back:
// linear memory never shrinks, so the next deploy starts on a fresh one (at the tenant's current
// limit) instead of inheriting the high-water mark of everything that ran before.
function release(t: Tenant): void {
  if (t.deploying > 0 || !t.engine || liveServices(t).length > 0) return;
  t.engine = undefined;
  t.module = undefined;
  collectSoon();
}

// A dropped instance's linear memory goes back to the host only when V8 collects it, which it
// might not do for a long while on its own: it is asked to, once the instance is unreachable.
// (V8 takes --expose-gc only process-wide, so it is set here, where it is needed.)
v8.setFlagsFromString("--expose-gc");
const collectSoon = soon(runInNewContext("gc") as () => void);

/** `fn` as a function that runs it once on the next turn, however often it is called before. */
function soon(fn: () => void): () => void {
  let pending = false;
  return () => {
    if (pending) return;
    pending = true;
    setImmediate(() => {
      pending = false;
      fn();
    });
  };
}

// The WebAssembly instance of a tenant threw outside the guest: nothing in it can be trusted, so
// every service of that tenant crashes and the next deploy gets a fresh instance. Other tenants
// have their own instances and do not notice.
function poisonTenant(t: Tenant, err: unknown): void {
  const fault = err instanceof EngineFault;
  if (!fault) console.error(`solo scheduler ${data.index}: internal error in tenant ${t.name}:`, err);
  const message = fault ? `the engine failed (${err.message}); the tenant's WebAssembly instance was replaced` : "internal scheduler error";
  const c: Crash = { kind: "engine_fault", reason: "SOLO_ERR_ENGINE_FAULT", message };
  t.engine = undefined;
  t.module = undefined;
  for (const s of [...t.byName.values()]) {
    if (s.status === "running" || s.status === "starting") crash(s, c);
  }
  collectSoon();
}

// ---- the solo host object -----------------------------------------------------------------

function hostFor(sid: number): (op: string, arg: string) => string {
  return (op, arg) => {
    const s = services.get(sid);
    if (!s) throw new SoloError("SOLO_ERR_SERVICE_STOPPED", "this service has been stopped");
    switch (op) {
      case "call":
        return hostCall(s, arg);
      case "cast":
        return hostCast(s, arg);
      case "timer":
        return hostTimer(s, arg);
      case "cancel":
        return hostCancel(s, arg);
      case "log":
        return hostLog(s, arg);
      case "kv":
      case "emit":
      case "secret":
      case "fetch":
        return hostIo(s, op, arg);
      default:
        throw new SoloError("SOLO_ERR_INTERNAL", `unknown host operation ${JSON.stringify(op.slice(0, 40))}`);
    }
  };
}

function grantsOf(s: Service): ServiceGrants {
  return s.sandbox.spec.grants ?? DEFAULT_GRANTS;
}

function needCall(s: Service, name: string, what: string): void {
  if (!grantsOf(s).call.includes(name)) {
    throw missing(s, "call", name.slice(0, 80), `${what}(${JSON.stringify(name.slice(0, 80))}) needs that service in the grant call`);
  }
}

// A power used without its grant: an error inside the service, and (through the control plane)
// an audit record.
function missing(s: Service, grant: string, detail: string, message: string): SoloError {
  send({ op: "denied", sid: s.sid, grant, detail });
  if (!draining) flushSoon();
  return new SoloError("SOLO_ERR_GRANT_MISSING", `${message}; service ${s.name} was deployed without it`, {
    grant,
    ...(detail ? { requested: detail } : {}),
    hint: `deploy the service with grants that include ${grant}`,
  });
}

function splitOnce(arg: string): [string, string] {
  const i = arg.indexOf("\n");
  return i < 0 ? [arg, ""] : [arg.slice(0, i), arg.slice(i + 1)];
}

function target(s: Service, name: string, what: string): Service {
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

function checkSize(t: Service, body: string, what: string): void {
  const limit = t.sandbox.spec.limits.messageBytes;
  if (overByteLimit(body, limit)) {
    throw new SoloError(
      "SOLO_ERR_VALUE_TOO_LARGE",
      `${what} is larger than ${t.name}'s message limit of ${t.sandbox.spec.limits.messageBytes} bytes`,
      {
        limit: t.sandbox.spec.limits.messageBytes,
      },
    );
  }
}

function hostCall(s: Service, arg: string): string {
  const [name, rest] = splitOnce(arg);
  const [timeoutText, body] = splitOnce(rest);
  const current = s.current;
  if (!current) {
    throw new SoloError(
      "SOLO_ERR_CALL_NOT_IN_MESSAGE",
      "solo.call can only be used while handling a message (in init or a handler), not at module top level",
    );
  }
  needCall(s, name, "solo.call");
  const t = target(s, name, "solo.call");
  if (t === s || current.chain.includes(t.sid)) {
    const names = [...current.chain.map((sid) => services.get(sid)?.name ?? "?"), s.name, t.name];
    throw new SoloError(
      "SOLO_ERR_CALL_DEADLOCK",
      t === s
        ? `solo.call: service ${s.name} called itself; it handles one message at a time, so it would wait for itself forever`
        : `solo.call: calling ${t.name} would deadlock: ${names.join(" -> ")} is a cycle of services waiting on each other`,
      { cycle: names, hint: "use solo.cast for messages that need no reply, or restructure so calls never form a cycle" },
    );
  }
  checkSize(t, body, "solo.call: the request");
  if (full(t, body)) throw mailboxFull(t, body);
  const timeout = Number(timeoutText) > 0 ? Number(timeoutText) : DEFAULT_CALL_TIMEOUT_MS;
  const callId = awaitAnswer(
    s,
    timeout,
    errorData("SOLO_ERR_CALL_TIMEOUT", `solo.call to ${t.name} timed out after ${timeout} ms`, { service: t.name, timeoutMs: timeout }),
  );
  enqueue(t, {
    kind: "call",
    payload: body,
    from: { svc: s, callId },
    fromName: s.name,
    deadline: Date.now() + timeout,
    chain: [...current.chain, s.sid],
  });
  schedule(t);
  return `I${callId}`;
}

const IO_NAMES: Record<IoKind, string> = { kv: "solo.storage", emit: "solo.emit", secret: "solo.secrets.get", fetch: "solo.fetch" };

// Storage, events, secrets and fetch live in the control plane: the request goes there and the
// message waits, like a solo.call, until the answer (or the timeout) resumes it. The grant is
// checked here first; the control plane checks what it alone knows (a fetch's host).
function hostIo(s: Service, kind: IoKind, arg: string): string {
  const g = grantsOf(s);
  if (kind === "kv" && !g.storage) throw missing(s, "storage", "", "solo.storage needs the grant storage: true");
  if (kind === "emit" && !g.emit) throw missing(s, "emit", "", "solo.emit needs the grant emit: true");
  if (kind === "fetch" && !g.fetch) throw missing(s, "fetch", "", 'solo.fetch needs the grant fetch: { hosts: ["..."] }');
  if (kind === "secret" && !g.secrets.includes(arg)) {
    throw missing(
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
  const callId = awaitAnswer(
    s,
    timeoutMs,
    kind === "fetch"
      ? errorData("SOLO_ERR_FETCH_TIMEOUT", `solo.fetch did not complete within ${timeoutMs} ms`, { timeoutMs })
      : errorData("SOLO_ERR_STORE_UNAVAILABLE", `the store did not answer within ${timeoutMs} ms`, { timeoutMs }),
  );
  send({ op: "io", sid: s.sid, cid: callId, kind, arg });
  return `I${callId}`;
}

// Registers an answer the current message awaits (a call's reply, a store's answer); if none
// arrives within `timeoutMs`, the message resumes with `onTimeout` instead.
function awaitAnswer(s: Service, timeoutMs: number, onTimeout: ErrorData): string {
  const callId = String(++callSeq);
  const timer = setTimeout(() => {
    if (!s.outCalls.delete(callId) || !s.current) return;
    s.resumes.push([callId, encodeError(onTimeout)]);
    schedule(s);
    if (!draining) flushSoon();
  }, timeoutMs);
  s.outCalls.set(callId, { timer });
  return callId;
}

function hostCast(s: Service, arg: string): string {
  const [name, body] = splitOnce(arg);
  needCall(s, name, "solo.cast");
  const t = target(s, name, "solo.cast");
  checkSize(t, body, "solo.cast: the message");
  if (full(t, body)) {
    drop(t);
    return "I";
  }
  enqueue(t, { kind: "cast", payload: body, fromName: s.name, deadline: 0, chain: [] });
  schedule(t);
  return "I";
}

// A stopped (killed) service says so; anything else that is not running has crashed.
function notRunning(s: Service | undefined): ErrorData {
  return s?.status === "stopped"
    ? errorData("SOLO_ERR_SERVICE_STOPPED", `service ${s.name} was stopped`)
    : errorData("SOLO_ERR_SERVICE_CRASHED", "the service is not running");
}

/** Whether `payload` cannot join the service's mailbox: it has `limits.mailbox` messages, or its tenant's waiting messages fill its memory limit. */
function full(s: Service, payload: string): boolean {
  return s.mailbox.length >= s.sandbox.spec.limits.mailbox || s.tenant.queuedBytes + waitingBytes(payload) > s.tenant.capBytes;
}

function mailboxFull(s: Service, payload: string): SoloError {
  const limit = s.sandbox.spec.limits.mailbox;
  if (s.mailbox.length < limit) {
    return new SoloError(
      "SOLO_ERR_MAILBOX_FULL",
      `tenant ${s.tenant.name}'s waiting messages and timers hold ${s.tenant.queuedBytes} bytes; with this one (${waitingBytes(payload)}) they would pass its memory limit of ${s.tenant.capBytes}`,
      {
        service: s.name,
        resource: "queued_bytes",
        limit: s.tenant.capBytes,
        hint: "the tenant's services cannot keep up; retry later, send smaller messages, or raise the tenant's memoryBytes",
      },
    );
  }
  return new SoloError("SOLO_ERR_MAILBOX_FULL", `service ${s.name} has ${s.mailbox.length} messages waiting, its mailbox limit`, {
    service: s.name,
    limit,
    hint: "the service cannot keep up; retry later, or deploy it with a larger limits.mailbox",
  });
}

function enqueue(s: Service, m: Message): void {
  m.bytes = waitingBytes(m.payload);
  s.mailbox.push(m);
  s.tenant.queuedBytes += m.bytes;
}

/** A message left its mailbox: what it counted (if anything) is counted no more. */
function unqueued(s: Service, m: Message): void {
  s.tenant.queuedBytes -= m.bytes ?? 0;
}

// A cast or timer message that finds the mailbox full is counted (usage.dropped) and reported by
// the control plane as a resource_violation event: never lost without a trace.
function drop(s: Service): void {
  s.dropped++;
  s.dirty = true;
}

function hostTimer(s: Service, arg: string): string {
  if (!grantsOf(s).timers) throw missing(s, "timers", "", "solo.sendAfter needs the grant timers: true");
  const [msText, body] = splitOnce(arg);
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
  if (s.tenant.queuedBytes + waitingBytes(body) > s.tenant.capBytes) {
    throw new SoloError(
      "SOLO_ERR_LIMIT_TIMERS",
      `solo.sendAfter: tenant ${s.tenant.name}'s waiting messages and timers hold ${s.tenant.queuedBytes} bytes; this one would pass its memory limit of ${s.tenant.capBytes}`,
      { resource: "queued_bytes", limit: s.tenant.capBytes },
    );
  }
  const id = ++timerSeq;
  arm(s, id, Date.now() + Math.max(0, Number(msText) || 0), body);
  return `I${id}`;
}

/** Arms a timer that puts `body` in the service's mailbox for handleInfo at `dueAt`. */
function arm(s: Service, id: number, dueAt: number, body: string): void {
  const timer = setTimeout(
    () => {
      if (!disarm(s, id)) return; // from the timer to the mailbox, or dropped
      // A service still starting gets it after its init, which is ahead of it in the mailbox.
      if (s.status !== "running" && s.status !== "starting") return;
      if (full(s, body)) {
        drop(s);
        return;
      }
      enqueue(s, { kind: "info", payload: body, fromName: "", deadline: 0, chain: [] });
      schedule(s);
    },
    Math.max(0, dueAt - Date.now()),
  );
  timer.unref();
  s.timers.set(id, { timer, dueAt, body });
  s.tenant.queuedBytes += waitingBytes(body);
}

/** The service's pending timers, as a swap captures them with its state. */
function pendingTimers(s: Service): PendingTimer[] {
  return [...s.timers].map(([id, t]) => [id, t.dueAt, t.body] as const);
}

function hostCancel(s: Service, arg: string): string {
  return disarm(s, Number(arg)) ? "I1" : "I0";
}

/** Takes timer `id` off the service (cancelled, fired, or the service stopped): its message counts no more. */
function disarm(s: Service, id: number): boolean {
  const t = s.timers.get(id);
  if (!t) return false;
  clearTimeout(t.timer);
  s.timers.delete(id);
  s.tenant.queuedBytes -= waitingBytes(t.body);
  return true;
}

function hostLog(s: Service, arg: string): string {
  const rate = grantsOf(s).logPerSecond;
  if (rate === 0) throw missing(s, "log", "", "solo.log and console need the grant log: true");
  // A token bucket: `rate` lines a second, bursts of as many; beyond it lines are dropped and
  // counted, and the next line that gets through says how many.
  const now = performance.now();
  s.logTokens = Math.min(rate, s.logTokens + ((now - s.logAt) / 1000) * rate);
  s.logAt = now;
  if (s.logTokens < 1) {
    s.logDropped++;
    return "I";
  }
  s.logTokens -= 1;
  if (s.logDropped > 0) {
    send({
      op: "log",
      sid: s.sid,
      level: "warn",
      text: `${s.logDropped} log lines dropped: over the grant's ${rate} lines a second`,
      at: Date.now(),
    });
    s.logDropped = 0;
  }
  const [level, text] = splitOnce(arg);
  const lvl = level === "warn" || level === "error" || level === "debug" ? level : "info";
  send({ op: "log", sid: s.sid, level: lvl, text: text.slice(0, 8192), at: Date.now() });
  return "I";
}

const flushSoon = soon(() => flush());

// ---- operations from the control plane ----------------------------------------------------

async function deploy(op: Extract<ToScheduler, { op: "deploy" }>): Promise<void> {
  let t = tenants.get(op.tenant);
  if (!t) {
    t = {
      name: op.tenant,
      engine: undefined,
      capBytes: op.tenantMemoryBytes,
      deploying: 0,
      reported: "",
      queuedBytes: 0,
      reclaimAfter: 0,
      heldUntil: 0,
      byName: new Map(),
    };
    tenants.set(op.tenant, t);
  }
  t.capBytes = op.tenantMemoryBytes;
  t.engine ??= instantiateEngine(data.engine, t.capBytes);
  t.deploying++;
  try {
    await deployIn(t, op);
  } finally {
    t.deploying--;
    release(t);
  }
}

async function deployIn(t: Tenant, op: Extract<ToScheduler, { op: "deploy" }>): Promise<void> {
  let engine: TenantEngine;
  try {
    engine = await (t.engine ?? instantiateEngine(data.engine, t.capBytes));
    t.module = engine;
  } catch (err) {
    t.engine = undefined;
    send({ op: "err", rid: op.rid, error: SoloError.from(err).toData() });
    return;
  }
  const previous = t.byName.get(op.service);
  if (previous && (previous.status === "running" || previous.status === "starting")) {
    send({
      op: "err",
      rid: op.rid,
      error: errorData("SOLO_ERR_DEPLOY_EXISTS", `service ${op.service} is already running in tenant ${op.tenant}`),
    });
    return;
  }
  let s: Service | undefined;
  try {
    const sandbox = new ServiceSandbox(
      engine,
      { tenant: op.tenant, service: op.service, version: op.version, filename: op.filename, limits: op.limits, grants: op.grants },
      hostFor(op.sid),
      stopOptions(op.sid),
    );
    s = new Service(op.sid, op.service, t, sandbox, op.code);
    services.set(op.sid, s);
    s.handlers = guest(op.sid, op.limits.cpuMsPerMessage, () => sandbox.load(op.code));
  } catch (err) {
    if (s) {
      services.delete(s.sid);
      s.sandbox.dispose();
    }
    if (err instanceof EngineFault) poisonTenant(t, err);
    send({ op: "err", rid: op.rid, error: SoloError.from(err).toData() });
    return;
  }
  if (previous) services.delete(previous.sid);
  t.byName.set(op.service, s);
  if (op.state === undefined) {
    s.mailbox.push({ kind: "init", payload: op.args, rid: op.rid, fromName: "", deadline: 0, chain: [] });
  } else {
    s.mailbox.push({ kind: "adopt", payload: op.state, rid: op.rid, fromName: "", deadline: 0, chain: [] });
    // A rollback's state expects the timers that were pending with it: armed again, ids and all
    // (an id in the state still cancels its timer), and due when they were due, or at once.
    if (s.handlers.includes("handleInfo")) {
      for (const [id, dueAt, body] of op.timers ?? []) {
        timerSeq = Math.max(timerSeq, id);
        arm(s, id, dueAt, body);
      }
    }
  }
  schedule(s);
}

function kill(rid: number, s: Service, reason: string): void {
  // Its running message has been stopped (or it had none); terminate runs under its own budget.
  board.killing(s.sid);
  if (s.status === "running" || s.status === "starting") {
    if (s.status === "running" && !s.current) {
      // terminate(reason, state) runs under the usual budget; what it returns or throws is not
      // waited on beyond its own jobs: the service is going away either way.
      try {
        // At most half a second, so a kill completes well within the watchdog's grace.
        const terminateMs = Math.min(s.sandbox.spec.limits.cpuMsPerMessage, TERMINATE_MS);
        const o = guest(s.sid, terminateMs, () => s.sandbox.begin("terminate", JSON.stringify(reason), "", terminateMs));
        s.sandbox.endMessage();
        if (o.t === "failed") send({ op: "log", sid: s.sid, level: "warn", text: `terminate failed: ${o.crash.message}`, at: Date.now() });
      } catch (err) {
        if (err instanceof EngineFault) poisonTenant(s.tenant, err);
      }
    }
    if (s.status === "running" || s.status === "starting") {
      stop(s, "stopped", errorData("SOLO_ERR_SERVICE_STOPPED", `service ${s.name} was stopped (${reason})`));
    }
  }
  board.killing(0);
  send({ op: "ok", rid, value: "" });
}

/** A service's sandbox stops its message at once when the control plane asks to kill it. */
function stopOptions(sid: number): { shouldStop: () => boolean } {
  return { shouldStop: () => board.stopRequested(sid) };
}

function receive(batch: readonly ToScheduler[]): void {
  for (const op of batch) {
    switch (op.op) {
      case "deploy":
        deploy(op).then(flush, (err: unknown) => {
          send({ op: "err", rid: op.rid, error: SoloError.from(err).toData() });
          flush();
        });
        break;
      case "call": {
        const s = services.get(op.sid);
        if (!s || (s.status !== "running" && s.status !== "starting")) {
          send({ op: "err", rid: op.rid, error: notRunning(s) });
          break;
        }
        if (full(s, op.payload)) {
          send({ op: "err", rid: op.rid, error: mailboxFull(s, op.payload).toData() });
          break;
        }
        enqueue(s, { kind: "call", payload: op.payload, rid: op.rid, fromName: "", deadline: op.deadline, chain: [] });
        schedule(s);
        break;
      }
      case "cast": {
        const s = services.get(op.sid);
        if (s && (s.status === "running" || s.status === "starting")) {
          if (full(s, op.payload)) {
            drop(s);
            castTaken(op.cid);
          } else {
            enqueue(s, { kind: "cast", payload: op.payload, fromName: "", deadline: 0, chain: [], cid: op.cid });
            schedule(s);
          }
        } else {
          if (s) s.unhandled++;
          castTaken(op.cid);
        }
        break;
      }
      case "io": {
        const s = services.get(op.sid);
        const out = s?.outCalls.get(op.cid);
        if (!s || !out || !s.current) break; // the message timed out, or the service stopped
        clearTimeout(out.timer);
        s.outCalls.delete(op.cid);
        s.resumes.push([op.cid, op.outcome]);
        schedule(s);
        break;
      }
      case "swap": {
        const s = services.get(op.sid);
        if (s?.status !== "running") {
          send({ op: "err", rid: op.rid, error: notRunning(s) });
          break;
        }
        // In mailbox order: what was sent before the swap is handled by the old version.
        s.mailbox.push({ kind: "swap", payload: JSON.stringify(op), rid: op.rid, fromName: "", deadline: 0, chain: [] });
        schedule(s);
        break;
      }
      case "kill": {
        const s = services.get(op.sid);
        if (s) kill(op.rid, s, "killed");
        else send({ op: "ok", rid: op.rid, value: "" });
        break;
      }
      case "hold": {
        const t = tenants.get(op.tenant);
        if (t) hold(t, op.ms);
        break;
      }
      case "tenantMemory": {
        const t = tenants.get(op.tenant);
        if (t) {
          t.capBytes = op.memoryBytes;
          t.reclaimAfter = 0;
          considerReclaim(t);
        }
        break;
      }
      case "shutdown":
        for (const s of services.values()) kill(-1, s, "shutdown");
        outbox = outbox.filter((m) => !(m.op === "ok" && m.rid === -1));
        send({ op: "ok", rid: op.rid, value: "" });
        break;
    }
  }
  if (!draining) drain();
}

function sampleUsage(): void {
  const samples: UsageSample[] = [];
  for (const s of services.values()) {
    if (!s.dirty) continue;
    s.dirty = false;
    const running = s.status === "running" || s.status === "starting";
    let memory = 0;
    if (running) {
      try {
        memory = s.sandbox.memoryBytes();
      } catch (err) {
        poisonTenant(s.tenant, err);
      }
    }
    samples.push([s.sid, s.messages, Math.round(s.sandbox.cpuMs * 1000) / 1000, memory, s.mailbox.length, s.unhandled, s.dropped]);
  }
  // Each tenant's linear memory: what the host holds for it, which its memory limit caps.
  const memory: Array<readonly [string, number, number, number]> = [];
  for (const t of tenants.values()) {
    considerReclaim(t);
    const bytes = t.module?.memory.buffer.byteLength ?? 0;
    const cap = t.module?.capBytes ?? 0;
    const report = `${bytes}/${cap}/${t.queuedBytes}`;
    if (report === t.reported) continue;
    t.reported = report;
    memory.push([t.name, bytes, cap, t.queuedBytes]);
  }
  if (samples.length > 0 || memory.length > 0) {
    send({ op: "usage", samples, tenants: memory });
    flush();
  }
}

// ---- giving memory back ---------------------------------------------------------------------

/** Below this, an instance is not worth replacing: the engine's initial memory plus some slack. */
const RECLAIM_MIN_BYTES = ENGINE_MIN_BYTES + 8 * 1024 * 1024;
/** How long after a reclaim that failed, or a tenant that was never quiet, before trying again. */
const RECLAIM_BACKOFF_MS = 30_000;
/** CPU one move of a tenant's services to a fresh instance may take in all. */
const RECLAIM_ALLOWANCE_MS = 250;
/** How soon to try again when the tenant was in the middle of a message. */
const RECLAIM_RETRY_MS = 1000;

// A WebAssembly memory never shrinks. When a tenant's instance holds far more than its services
// do (a hog crashed or was killed, a service shrank), or its memory limit changed, its services
// move to a fresh instance at a quiet moment: each one's state leaves through the same strict
// export a hot swap uses and is adopted, as it is, by the same code loaded in the new instance.
// Mailboxes and timers stay where they are (on this thread), so no message is lost; module-level
// variables start afresh, as after a swap. The old instance is then dropped.
function considerReclaim(t: Tenant): void {
  const engine = t.module;
  if (!engine || t.reclaiming || t.deploying > 0 || Date.now() < t.reclaimAfter) return;
  const live = liveServices(t);
  if (live.length === 0) return;
  const size = engine.memory.buffer.byteLength;
  const held = live.reduce((sum, s) => sum + s.sandbox.memoryBytes(), 0);
  const capChanged = instanceCapBytes(t.capBytes) !== engine.capBytes;
  const oversized = size > RECLAIM_MIN_BYTES && size > 2 * held + ENGINE_MIN_BYTES;
  if (!capChanged && !oversized) return;
  t.reclaiming = instantiateEngine(data.engine, t.capBytes).then(
    (fresh) => {
      t.reclaiming = undefined;
      // After a move, or one that failed, not again for a while: a service that keeps growing the
      // instance for a moment and letting go would otherwise have its tenant moved at every
      // sample. A tenant that was not quiet is tried again soon.
      const outcome = t.module === engine ? moveTo(t, fresh) : "failed";
      t.reclaimAfter = Date.now() + (outcome === "busy" ? RECLAIM_RETRY_MS : RECLAIM_BACKOFF_MS);
      flushSoon();
    },
    (err: unknown) => {
      t.reclaiming = undefined;
      t.reclaimAfter = Date.now() + RECLAIM_BACKOFF_MS;
      console.error(`solo scheduler ${data.index}: a fresh instance for tenant ${t.name} failed:`, err);
    },
  );
}

function liveServices(t: Tenant): Service[] {
  return [...t.byName.values()].filter((s) => s.status === "running" || s.status === "starting");
}

// Moves every service of the tenant into `fresh`, all or none. Only between messages: a service
// in the middle of one (awaiting a call) holds a stack in the old instance.
function moveTo(t: Tenant, fresh: TenantEngine): "moved" | "busy" | "failed" {
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
  const left = (s: Service): number => Math.min(s.sandbox.spec.limits.cpuMsPerMessage, RECLAIM_ALLOWANCE_MS - (threadCpuMs() - startedCpu));
  try {
    for (const s of live) {
      const old = s.sandbox;
      const exportMs = left(s);
      if (exportMs <= 0) return abandon();
      const exported = guest(s.sid, exportMs, () => old.begin("export", "", "", exportMs));
      old.endMessage();
      if (exported.t !== "reply") return abandon();
      const next = new ServiceSandbox(fresh, old.spec, hostFor(s.sid), stopOptions(s.sid));
      moved.push([s, next]);
      guest(s.sid, old.spec.limits.cpuMsPerMessage, () => next.load(s.code));
      const adoptMs = left(s);
      if (adoptMs <= 0) return abandon();
      const adopted = guest(s.sid, adoptMs, () => next.begin("adopt", exported.json, "", adoptMs));
      next.endMessage();
      if (adopted.t !== "done") return abandon();
    }
  } catch (err) {
    // The fresh instance could not take them (its limit is lower than what they hold, say): the
    // services stay where they are. An engine fault here concerns only the fresh instance.
    if (!(err instanceof SoloError) && !(err instanceof EngineFault)) {
      console.error(`solo scheduler ${data.index}: moving tenant ${t.name} to a fresh instance failed:`, err);
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

port.on("message", (batch: readonly ToScheduler[]) => receive(batch));
setInterval(sampleUsage, data.usageIntervalMs).unref();
port.postMessage([{ op: "ready" }] satisfies FromScheduler[]);
