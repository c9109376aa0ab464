import type { QuickJSContext, QuickJSHandle, QuickJSRuntime, QuickJSWASMModule } from "quickjs-emscripten-core";
import { type ErrorData, REASONS, type Reason, SoloError } from "../errors.ts";
import type { ServiceLimits } from "../kernel/limits.ts";
import type { ServiceGrants } from "../kernel/powers/grant-types.ts";
import { BOOTSTRAP_FILENAME, BOOTSTRAP_SOURCE } from "./bootstrap.ts";
import { FastCall } from "./fast-call.ts";
import { MAX_DEPTH } from "./json.ts";

/** Why a message failed or a service crashed, as users see it in errors and in `list()`. */
export interface Crash {
  readonly kind: CrashKind;
  readonly reason: Reason;
  readonly message: string;
  /** Position in the author's source, where the engine reported one. */
  readonly line?: number;
  readonly column?: number;
  /** JSON path of an offending value (`$.items[3]`), for value errors. */
  readonly path?: string;
}

/** The closed set of crash kinds. */
export const CRASH_KINDS = [
  "exception",
  "cpu_limit",
  "memory_limit",
  "stack_limit",
  "invalid_result",
  "invalid_value",
  "unsettled",
  "engine_fault",
  "scheduler_failed",
] as const;
export type CrashKind = (typeof CRASH_KINDS)[number];

/** What one step of a message produced. */
export type Outcome =
  | { readonly t: "reply"; readonly json: string }
  | { readonly t: "done" }
  | { readonly t: "missing" }
  | { readonly t: "pending" }
  | { readonly t: "failed"; readonly crash: Crash };

/** The service's identity and limits, as the sandbox needs them. */
export interface SandboxSpec {
  readonly tenant: string;
  readonly service: string;
  readonly version: number;
  readonly filename: string;
  readonly limits: ServiceLimits;
  /** The powers granted (the scheduler enforces them); omitted: the defaults. */
  readonly grants?: ServiceGrants;
}

/** Handles the `solo` object's requests; returns a string for the guest, or throws a SoloError. */
export type HostHandler = (op: string, arg: string) => string;

/**
 * An error the engine itself raised outside the guest (a native stack overflow through the
 * WebAssembly, an out-of-bounds access). The tenant's whole WebAssembly instance is then suspect.
 * @internal
 */
export class EngineFault extends Error {
  override readonly name = "EngineFault";
}

const SETTLE = "settle";
const BOOTSTRAP_BUDGET_MS = 5000;
const MEMORY_CHECK_MS = 2;

/**
 * One service's QuickJS runtime and context inside its tenant's WebAssembly instance, with the
 * engine-enforced limits (memory, stack, CPU per message) and the dispatcher of the bootstrap.
 * @internal
 */
export class ServiceSandbox {
  readonly spec: SandboxSpec;
  private readonly engine: QuickJSWASMModule;
  private readonly rt: QuickJSRuntime;
  private readonly ctx: QuickJSContext;
  private install: QuickJSHandle | undefined;
  private run: QuickJSHandle | undefined;
  private readonly ops = new Map<string, QuickJSHandle>();
  private fast: FastCall | undefined;
  private readonly onHost: HostHandler;
  private deadline = Number.POSITIVE_INFINITY;
  private lastMemoryCheck = 0;
  private memoryExceeded = false;
  private usedMs = 0;
  private settled: string | undefined;
  private awaitingSettle = false;
  private disposed = false;
  /** CPU milliseconds used by all messages so far. */
  cpuMs = 0;

  constructor(engine: QuickJSWASMModule, spec: SandboxSpec, onHost: HostHandler) {
    this.spec = spec;
    this.onHost = onHost;
    this.engine = engine;
    this.rt = engine.newRuntime();
    this.rt.setMemoryLimit(spec.limits.memoryBytes);
    this.rt.setMaxStackSize(spec.limits.stackBytes);
    this.rt.setInterruptHandler(() => this.shouldInterrupt());
    this.ctx = this.rt.newContext();
  }

  /**
   * Evaluates the bootstrap and the author's (already type-stripped) module, and checks the
   * default export's shape. Returns the handler names. Throws a SoloError for a bad module.
   */
  load(code: string): string[] {
    const { ctx } = this;
    // The bootstrap is the kernel's own code: it runs under a fixed allowance, not the service's
    // per-message budget, which starts with the author's module.
    this.usedMs = 0;
    this.deadline = performance.now() + BOOTSTRAP_BUDGET_MS;
    try {
      const boot = this.guard(() => ctx.evalCode(BOOTSTRAP_SOURCE, BOOTSTRAP_FILENAME));
      if (boot.error) throw this.internalFailure(boot.error, "the bootstrap failed to evaluate");
      const host = ctx.newFunction("host", (opH, argH) => this.hostCall(opH, argH));
      const meta = ctx.newString(
        JSON.stringify({
          tenant: this.spec.tenant,
          service: this.spec.service,
          version: this.spec.version,
          maxDepth: MAX_DEPTH,
          messageBytes: this.spec.limits.messageBytes,
          stateBytes: this.spec.limits.stateBytes,
        }),
      );
      const pair = this.guard(() => ctx.callFunction(boot.value, ctx.undefined, host, meta));
      host.dispose();
      meta.dispose();
      boot.value.dispose();
      if (pair.error) throw this.internalFailure(pair.error, "the bootstrap failed to start");
      this.install = ctx.getProp(pair.value, 0);
      this.run = ctx.getProp(pair.value, 1);
      pair.value.dispose();
      for (const op of ["call", "cast", "info", "init", "terminate", "resolve", "export", "adopt"]) this.ops.set(op, ctx.newString(op));
      this.fast = new FastCall(this.engine, ctx);

      this.beginMessage();
      const evaluated = this.guard(() => ctx.evalCode(code, this.spec.filename, { type: "module" }));
      if (evaluated.error) throw this.moduleError(evaluated.error);
      let ns = evaluated.value;
      const promised = ctx.getPromiseState(ns);
      if (promised.type === "pending") {
        // Top-level await: drive the module's jobs to completion under the same budget.
        const failure = this.drain();
        if (failure) {
          ns.dispose();
          throw deployFailure(failure);
        }
      }
      const settledNs = ctx.getPromiseState(ns);
      if (settledNs.type === "rejected") {
        ns.dispose();
        const crash = this.crashFrom(this.dumpError(settledNs.error));
        settledNs.error.dispose();
        throw deployFailure(crash);
      }
      if (settledNs.type === "fulfilled" && !settledNs.notAPromise) {
        ns.dispose();
        ns = settledNs.value;
      }
      const installed = this.guard(() => ctx.callFunction(this.install as QuickJSHandle, ctx.undefined, ns));
      ns.dispose();
      if (installed.error) {
        const dumped = this.dumpError(installed.error);
        installed.error.dispose();
        throw deployFailure(this.crashFrom(dumped));
      }
      const answer = ctx.getString(installed.value);
      installed.value.dispose();
      if (answer.startsWith("E")) throw deployFailure(this.crashFrom(parseGuestError(answer.slice(1))));
      const names = answer.slice(1);
      return names === "" ? [] : names.split(",");
    } finally {
      this.endMessage();
    }
  }

  /** Starts a new message (`init`, `call`, `cast`, `info`, `terminate`) with a fresh CPU budget. */
  begin(op: "init" | "call" | "cast" | "info" | "terminate" | "export" | "adopt", a: string, b = ""): Outcome {
    this.beginMessage();
    this.awaitingSettle = true;
    this.settled = undefined;
    return this.step(op, a, b);
  }

  /** Continues the current message with the outcome of a call it made (`R<json>` or `E<json>`). */
  resume(callId: string, outcome: string): Outcome {
    this.deadline = performance.now() + (this.spec.limits.cpuMsPerMessage - this.usedMs);
    return this.step("resolve", callId, outcome);
  }

  /** Ends the current message's accounting. */
  endMessage(): void {
    this.awaitingSettle = false;
    this.deadline = Number.POSITIVE_INFINITY;
    this.cpuMs += this.usedMs;
    this.usedMs = 0;
  }

  /** Bytes the service's heap uses now. */
  memoryBytes(): number {
    const dump = this.rt.dumpMemoryUsage();
    const m = /memory used\s+\d+\s+(\d+)/.exec(dump);
    return m ? Number(m[1]) : 0;
  }

  /** Frees the runtime and everything in it. Safe to call twice. */
  dispose(): void {
    if (this.disposed) return;
    this.disposed = true;
    for (const h of this.ops.values()) h.dispose();
    this.fast?.dispose();
    this.install?.dispose();
    this.run?.dispose();
    this.ctx.dispose();
    this.rt.dispose();
  }

  // Called by QuickJS every few thousand branches. Besides the CPU deadline it measures the heap
  // every MEMORY_CHECK_MS of execution: this engine build cannot size its allocations
  // (malloc_usable_size is unavailable in WebAssembly), so QuickJS's own limit only refuses single
  // oversized allocations, and the walk of the heap is what adds small ones up.
  private shouldInterrupt(): boolean {
    const now = performance.now();
    if (now > this.deadline) return true;
    if (now - this.lastMemoryCheck < MEMORY_CHECK_MS) return false;
    this.lastMemoryCheck = now;
    if (this.memoryBytes() > this.spec.limits.memoryBytes) {
      this.memoryExceeded = true;
      return true;
    }
    return false;
  }

  private beginMessage(): void {
    this.memoryExceeded = false;
    this.lastMemoryCheck = performance.now();
    this.usedMs = 0;
    this.deadline = performance.now() + this.spec.limits.cpuMsPerMessage;
  }

  private step(op: string, a: string, b: string): Outcome {
    const heapBefore = this.fast?.heapBytes() ?? 0;
    const outcome = this.stepInner(op, a, b);
    // A few large allocations can finish between two interrupt checks; when the tenant's linear
    // memory had to grow during this step, measure the heap before the outcome counts.
    if (outcome.t !== "failed" && (this.fast?.heapBytes() ?? 0) > heapBefore) {
      const used = this.memoryBytes();
      if (used > this.spec.limits.memoryBytes) {
        return {
          t: "failed",
          crash: {
            kind: "memory_limit",
            reason: "SOLO_ERR_LIMIT_MEMORY",
            message: `the service's heap grew to ${used} bytes, past its limit of ${this.spec.limits.memoryBytes}`,
          },
        };
      }
    }
    return outcome;
  }

  private stepInner(op: string, a: string, b: string): Outcome {
    const started = performance.now();
    try {
      const raw = this.callRun(op, a, b);
      if (typeof raw !== "string") return { t: "failed", crash: this.crashFrom(raw.error) };
      if (raw.startsWith("E")) return this.decode(raw);
      if (raw !== "P" && raw !== "S") {
        const failure = this.drain();
        if (failure) return { t: "failed", crash: failure };
        return this.decode(raw);
      }
      if (raw === "S" && op !== "resolve") {
        const failure = this.drain();
        return failure ? { t: "failed", crash: failure } : { t: "done" };
      }
      const failure = this.drain();
      if (failure) return { t: "failed", crash: failure };
      if (this.settled !== undefined) {
        const s = this.settled;
        this.settled = undefined;
        this.awaitingSettle = false;
        return this.decode(s);
      }
      return { t: "pending" };
    } finally {
      this.usedMs += performance.now() - started;
    }
  }

  private callRun(op: string, a: string, b: string): string | { error: GuestError } {
    const opH = this.ops.get(op);
    if (!opH || !this.run || !this.fast) throw new EngineFault(`the sandbox is not loaded (operation ${op})`);
    const res = this.guard(() => this.fast?.call(this.run as QuickJSHandle, opH, a, b) ?? "");
    if (typeof res === "string") return res;
    const error = this.dumpError(res.error);
    res.error.dispose();
    return { error };
  }

  // Runs queued promise jobs of this runtime until none are left, the message's budget is spent
  // (the interrupt handler stops long jobs; the check here stops storms of short ones), or one
  // fails with an uncatchable error.
  private drain(): Crash | undefined {
    while (this.rt.hasPendingJob()) {
      const res = this.guard(() => this.rt.executePendingJobs(64));
      if (res.error) {
        const error = this.dumpError(res.error);
        res.error.dispose();
        return this.crashFrom(error);
      }
      if (performance.now() > this.deadline) return cpuCrash(this.spec.limits.cpuMsPerMessage);
    }
    return undefined;
  }

  private hostCall(opH: QuickJSHandle, argH: QuickJSHandle): QuickJSHandle | undefined {
    const { ctx } = this;
    const op = ctx.getString(opH);
    const arg = ctx.typeof(argH) === "string" ? ctx.getString(argH) : "";
    if (op === SETTLE) {
      if (this.awaitingSettle && this.settled === undefined) this.settled = arg;
      return undefined;
    }
    try {
      return ctx.newString(this.onHost(op, arg));
    } catch (err) {
      return ctx.newString(`E${JSON.stringify(SoloError.from(err).toData())}`);
    }
  }

  private decode(raw: string): Outcome {
    switch (raw.charCodeAt(0)) {
      case 82: // R
        return { t: "reply", json: raw.slice(1) };
      case 83: // S
        return { t: "done" };
      case 77: // M
        return { t: "missing" };
      case 80: // P
        return { t: "pending" };
      case 69: // E
        return { t: "failed", crash: this.crashFrom(parseGuestError(raw.slice(1))) };
      default:
        return {
          t: "failed",
          crash: { kind: "engine_fault", reason: "SOLO_ERR_ENGINE_FAULT", message: "the sandbox returned an unreadable outcome" },
        };
    }
  }

  // Every entry into the WebAssembly goes through here: an exception that is not a QuickJS result
  // came from the engine itself and poisons the tenant's instance.
  private guard<T>(fn: () => T): T {
    try {
      return fn();
    } catch (err) {
      throw new EngineFault(err instanceof Error ? `${err.name}: ${err.message}` : String(err), { cause: err });
    }
  }

  private dumpError(handle: QuickJSHandle): GuestError {
    try {
      const d: unknown = this.ctx.dump(handle);
      if (d !== null && typeof d === "object") {
        const o = d as Record<string, unknown>;
        return { kind: "exception", name: str(o.name, "Error"), message: str(o.message, ""), stack: str(o.stack, ""), fromEngine: true };
      }
      return { kind: "exception", name: "thrown value", message: String(d), stack: "" };
    } catch {
      return { kind: "exception", name: "Error", message: "an error that could not be read", stack: "" };
    }
  }

  private internalFailure(handle: QuickJSHandle, what: string): SoloError {
    const e = this.dumpError(handle);
    handle.dispose();
    return new SoloError("SOLO_ERR_ENGINE_FAULT", `${what}: ${e.name}: ${e.message}`);
  }

  private moduleError(handle: QuickJSHandle): SoloError {
    const e = this.dumpError(handle);
    handle.dispose();
    const where = position(e.stack ?? "", this.spec.filename);
    const at = where ? ` at ${this.spec.filename}:${where.line}:${where.column}` : "";
    if (e.name === "SyntaxError") {
      return new SoloError("SOLO_ERR_DEPLOY_SYNTAX", `syntax error${at}: ${e.message}`, {
        ...where,
        hint: "fix the syntax at the given line and column, then deploy again",
      });
    }
    if (e.name === "ReferenceError" && /could not load module|module not found|cannot load module/i.test(e.message)) {
      return new SoloError("SOLO_ERR_DEPLOY_IMPORT", `the service imports a module${at}: ${e.message}`, {
        ...where,
        hint: "a Solo service is one self-contained module: remove import statements and use the solo host object",
      });
    }
    return deployFailure(this.crashFrom(e));
  }

  private crashFrom(e: GuestError): Crash {
    const where = position(e.stack ?? "", this.spec.filename);
    if (e.kind === "value" || e.kind === "result") {
      const reason = e.reason !== undefined && isGuestReason(e.reason) ? e.reason : "SOLO_ERR_HANDLER_RESULT_INVALID";
      return {
        kind: e.kind === "value" ? "invalid_value" : "invalid_result",
        reason,
        message: e.message,
        ...(e.path !== undefined ? { path: e.path } : {}),
      };
    }
    // Only an error that escaped the guest uncaught can be the engine's interrupt: a service that
    // throws its own InternalError("interrupted") reports it through the bootstrap instead.
    if (e.fromEngine && e.name === "InternalError" && e.message === "interrupted") {
      if (this.memoryExceeded) {
        return {
          kind: "memory_limit",
          reason: "SOLO_ERR_LIMIT_MEMORY",
          message: `the service's heap grew past its limit of ${this.spec.limits.memoryBytes} bytes and the message was stopped`,
          ...where,
        };
      }
      return cpuCrash(this.spec.limits.cpuMsPerMessage, where);
    }
    if (e.name === "InternalError" && e.message === "out of memory") {
      return {
        kind: "memory_limit",
        reason: "SOLO_ERR_LIMIT_MEMORY",
        message: `the service ran out of memory (limit ${this.spec.limits.memoryBytes} bytes)`,
        ...where,
      };
    }
    if (e.name === "RangeError" && /call stack size exceeded/i.test(e.message)) {
      return {
        kind: "stack_limit",
        reason: "SOLO_ERR_LIMIT_STACK",
        message: `the service exceeded its stack (limit ${this.spec.limits.stackBytes} bytes): ${e.message}`,
        ...where,
      };
    }
    const at = where ? ` at ${this.spec.filename}:${where.line}:${where.column}` : "";
    return { kind: "exception", reason: "SOLO_ERR_HANDLER_THREW", message: `${e.name}: ${e.message}${at}`, ...where };
  }
}

interface GuestError {
  kind: "exception" | "value" | "result";
  /** Read by the host from an error that escaped the guest (uncatchable), not described by it. */
  fromEngine?: boolean;
  name: string;
  message: string;
  stack?: string;
  reason?: string;
  path?: string;
}

const GUEST_REASONS = new Set<Reason>([
  "SOLO_ERR_VALUE_NOT_JSON",
  "SOLO_ERR_VALUE_TOO_LARGE",
  "SOLO_ERR_VALUE_TOO_DEEP",
  "SOLO_ERR_HANDLER_RESULT_INVALID",
  "SOLO_ERR_DEPLOY_EXPORT_INVALID",
]);

function isGuestReason(r: string): r is Reason {
  return GUEST_REASONS.has(r as Reason);
}

// The guest's description of an error is untrusted text: parse it defensively.
function parseGuestError(json: string): GuestError {
  try {
    const o: unknown = JSON.parse(json);
    if (o !== null && typeof o === "object") {
      const r = o as Record<string, unknown>;
      const kind = r.kind === "value" || r.kind === "result" ? r.kind : "exception";
      return {
        kind,
        name: str(r.name, "Error"),
        message: str(r.message, ""),
        stack: str(r.stack, ""),
        ...(typeof r.reason === "string" ? { reason: r.reason } : {}),
        ...(typeof r.path === "string" ? { path: r.path } : {}),
      };
    }
  } catch {
    // fall through to the generic description below
  }
  return { kind: "exception", name: "Error", message: "the service reported an unreadable error" };
}

function str(v: unknown, fallback: string): string {
  return typeof v === "string" ? v.slice(0, 4000) : fallback;
}

function cpuCrash(budget: number, where?: { line: number; column: number }): Crash {
  return {
    kind: "cpu_limit",
    reason: "SOLO_ERR_LIMIT_CPU",
    message: `the message used more than its CPU budget of ${budget} ms and was stopped`,
    ...where,
  };
}

/** Finds the first stack frame in the author's file and returns its line and column. */
export function position(stack: string, filename: string): { line: number; column: number } | undefined {
  const escaped = filename.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
  const m = new RegExp(`${escaped}:(\\d+):(\\d+)`).exec(stack);
  return m ? { line: Number(m[1]), column: Number(m[2]) } : undefined;
}

/** The error a deploy fails with when the module evaluates or init fails. */
export function deployFailure(crash: Crash): SoloError {
  if (crash.reason === "SOLO_ERR_DEPLOY_EXPORT_INVALID") {
    return new SoloError("SOLO_ERR_DEPLOY_EXPORT_INVALID", crash.message, {
      hint: "export default { init(args) { return state }, handleCall(request, state) { return { reply, state } } }",
    });
  }
  return new SoloError("SOLO_ERR_DEPLOY_INIT_FAILED", `the service failed while starting: ${crash.message}`, { crash });
}

/** The error a caller receives when the message it sent failed with `crash`. */
export function crashError(crash: Crash, service: string): ErrorData {
  return {
    code: REASONS[crash.reason],
    reason: crash.reason,
    message: `service ${service} failed handling the message: ${crash.message}`,
    details: { crash },
  };
}
