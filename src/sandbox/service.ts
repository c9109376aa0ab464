import type { QuickJSContext, QuickJSHandle, QuickJSRuntime, QuickJSWASMModule } from "quickjs-emscripten-core";
import type { Crash } from "../api/crash.ts";
import { DEFAULT_GRANTS, grantsData } from "../api/grants.ts";
import { SoloError } from "../lib/errors/errors.ts";
import { BOOTSTRAP_FILENAME, BOOTSTRAP_SOURCE } from "./bootstrap.ts";
import {
  clipped,
  decodeHostRequest,
  decodeInstalled,
  decodeOutcome,
  encodeAnswer,
  encodeError,
  encodeResult,
  type GuestError,
  type GuestOutcome,
  type HostHandler,
  type Outcome,
  type Result,
  type SandboxSpec,
} from "./contract.ts";
import { type CpuClock, threadClock } from "./cpu-clock.ts";
import { classify, cpuCrash, deployFailure, moduleFailure } from "./crash.ts";
import { ensureRoomForRuntime, HostMemoryFull, RuntimeMemory, type TenantEngine } from "./engine.ts";
import { FastCall } from "./fast-call.ts";
import { MAX_DEPTH } from "./json.ts";
import { STD_APIS_FILENAME, STD_APIS_IMPL, STD_APIS_LOAD } from "./std-apis.ts";

/** How a sandbox is run, beyond its spec. @internal */
export interface SandboxOptions {
  /** The clock a message's budget counts (default: the thread's CPU time; benchmarks compare others). */
  readonly cpuClock?: CpuClock;
  /** Polled with the budget: true when the service is being killed, so its message stops at once. */
  readonly shouldStop?: () => boolean;
}

/**
 * An error the engine itself raised outside the guest (a native stack overflow through the
 * WebAssembly, an out-of-bounds access). The tenant's whole WebAssembly instance is then suspect.
 * @internal
 */
export class EngineFault extends Error {
  override readonly name = "EngineFault";
}

const SETTLE = "settle";
/** The standard web APIs' host requests (std-apis.ts): the only ones that carry bytes, either way. */
const STD = "std";
/** How a failure the guest could not describe is read when the engine refused it memory. */
const OUT_OF_MEMORY: GuestError = { kind: "exception", name: "InternalError", message: "out of memory", stack: "" };
const BOOTSTRAP_BUDGET_MS = 5000;

/**
 * One service's QuickJS runtime and context inside its tenant's WebAssembly instance, with the
 * engine-enforced limits (memory, stack, CPU per message) and the dispatcher of the bootstrap.
 * @internal
 */
export class ServiceSandbox {
  readonly spec: SandboxSpec;
  private readonly engine: QuickJSWASMModule;
  private readonly tenantEngine: TenantEngine;
  private readonly rt: QuickJSRuntime;
  private readonly memory: RuntimeMemory;
  private readonly ctx: QuickJSContext;
  private install: QuickJSHandle | undefined;
  private run: QuickJSHandle | undefined;
  private readonly ops = new Map<string, QuickJSHandle>();
  private fast: FastCall | undefined;
  private readonly onHost: HostHandler;
  /** CPU milliseconds the current message may still use, and what it has used. */
  private budgetMs = Number.POSITIVE_INFINITY;
  private usedMs = 0;
  /** The part of usedMs that is the wall time of steps charged to the clock (see stepEnd). */
  private chargedMs = 0;
  private readonly countCpu = (ms: number): void => {
    this.cpuMs += ms;
  };
  /** When the current step began: wall clock (cheap) and the thread's CPU time. */
  private stepWall = 0;
  private stepCpu = 0;
  /** Set when the host itself stopped the message for its CPU budget: the evidence of a breach. */
  private interrupted = false;
  /** The engine's refusal counters when the current message began: more since is a memory breach. */
  private refusedBefore = 0;
  private exhaustedBefore = 0;
  /** The instance's count of refused host allocations when the current message began. */
  private hostRefusedBefore = 0;
  private settled: string | undefined;
  private awaitingSettle = false;
  private disposed = false;
  /** CPU milliseconds used by all messages so far. */
  cpuMs = 0;
  /**
   * How far past its budget the last message that failed for it ran before QuickJS could stop
   * it (inside a built-in): the time it held its thread from everyone else.
   */
  overrunMs = 0;

  /** The clock a message's budget counts: the thread's CPU time (benchmarks may compare others). */
  private readonly clock: CpuClock;

  private readonly shouldStop: () => boolean;
  /** Set when the host stopped the message because the service is being killed. */
  private stopping = false;
  /** Set while the standard APIs' implementation compiles the first time: the kernel's work, not the message's. */
  private compilingStd = false;
  /** The standard APIs' implementation was asked for already (a second compile, after a failure, is the message's). */
  private stdAsked = false;

  constructor(engine: TenantEngine, spec: SandboxSpec, onHost: HostHandler, options: SandboxOptions = {}) {
    this.clock = options.cpuClock ?? threadClock;
    this.shouldStop = options.shouldStop ?? (() => false);
    this.spec = spec;
    this.onHost = onHost;
    this.tenantEngine = engine;
    this.engine = engine.quickjs;
    const full = (cause: unknown): SoloError =>
      new SoloError(
        "SOLO_ERR_LIMIT_MEMORY",
        `tenant ${spec.tenant}'s memory is full: there is no room for another service`,
        { limit: engine.capBytes, hint: "kill services the tenant no longer needs, or raise the tenant's memoryBytes" },
        { cause },
      );
    try {
      ensureRoomForRuntime(engine);
    } catch (err) {
      if (err instanceof HostMemoryFull) throw full(err);
      throw new EngineFault(`the engine failed making a runtime: ${String(err)}`, { cause: err });
    }
    let rt: QuickJSRuntime;
    let ctx: QuickJSContext;
    let memory: RuntimeMemory;
    try {
      rt = this.engine.newRuntime();
    } catch (err) {
      throw new EngineFault(`the engine failed making a runtime: ${String(err)}`, { cause: err });
    }
    // The limit is checked by the patched allocator at every allocation (engine.ts), not by
    // QuickJS's own check, so that every refusal is counted where the host can see it.
    try {
      memory = new RuntimeMemory(this.engine, rt, spec.limits.memoryBytes);
    } catch (err) {
      rt.dispose();
      throw full(err);
    }
    try {
      rt.setMaxStackSize(spec.limits.stackBytes);
      rt.setInterruptHandler(() => this.shouldInterrupt());
      ctx = rt.newContext();
    } catch (err) {
      // QuickJS gave up half way (it aborts the whole instance when memory runs out there).
      throw new EngineFault(`the engine failed making a context: ${String(err)}`, { cause: err });
    }
    this.rt = rt;
    this.memory = memory;
    this.ctx = ctx;
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
    this.budgetMs = BOOTSTRAP_BUDGET_MS;
    this.stepStart();
    try {
      const boot = this.guard(() => ctx.evalCode(BOOTSTRAP_SOURCE, BOOTSTRAP_FILENAME));
      if (boot.error) throw this.internalFailure(boot.error, "the bootstrap failed to evaluate");
      const host = ctx.newFunction("host", (opH, argH, bytesH) => this.hostCall(opH, argH, bytesH));
      const meta = ctx.newString(
        JSON.stringify({
          tenant: this.spec.tenant,
          service: this.spec.service,
          version: this.spec.version,
          maxDepth: MAX_DEPTH,
          messageBytes: this.spec.limits.messageBytes,
          stateBytes: this.spec.limits.stateBytes,
          grants: grantsData(this.spec.grants ?? DEFAULT_GRANTS),
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

      this.stepEnd(false);
      this.beginMessage();
      this.stepStart();
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
      if (settledNs.type === "pending") {
        ns.dispose();
        throw deployFailure({
          kind: "unsettled",
          reason: "SOLO_ERR_HANDLER_UNSETTLED",
          message:
            "the module's top-level await never settles: it awaits something no job is left to settle (solo calls and timers cannot be used at module top level; do that work in init)",
        });
      }
      if (this.stepOverBudget()) {
        ns.dispose();
        throw deployFailure(cpuCrash(this.spec.limits.cpuMsPerMessage));
      }
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
      // Reading the handlers runs the module's code too (a getter, a proxy): within the budget.
      if (this.stepOverBudget()) throw deployFailure(cpuCrash(this.spec.limits.cpuMsPerMessage));
      const installedAs = decodeInstalled(answer);
      if ("error" in installedAs) throw deployFailure(this.crashFrom(installedAs.error));
      return installedAs.handlers;
    } catch (err) {
      if (!(err instanceof HostMemoryFull)) throw err;
      throw deployFailure(this.crashFrom(OUT_OF_MEMORY));
    } finally {
      this.stepEnd(false);
      this.endMessage();
    }
  }

  /** Starts a new message (`init`, `call`, `cast`, `info`, `terminate`) with a fresh CPU budget. */
  begin(op: "init" | "call" | "cast" | "info" | "terminate" | "export" | "adopt", a: string, b = "", budgetMs?: number): Outcome {
    this.beginMessage();
    // Moving a state out and in is the kernel's doing, not a message: the caller sets its budget.
    if (budgetMs !== undefined) this.budgetMs = budgetMs;
    this.awaitingSettle = true;
    this.settled = undefined;
    return this.step(op, a, b);
  }

  /** Continues the current message with the result of a call it made (or of a request the control plane answered). */
  resume(callId: string, result: Result): Outcome {
    return this.step("resolve", callId, encodeResult(result));
  }

  /** Ends the current message's accounting. */
  endMessage(): void {
    this.awaitingSettle = false;
    this.budgetMs = Number.POSITIVE_INFINITY;
    // What was charged to the clock reaches cpuMs when the clock is next read.
    this.cpuMs += this.usedMs - this.chargedMs;
    this.usedMs = 0;
    this.chargedMs = 0;
  }

  /** Bytes the service's runtime holds now, as the engine's allocator counts them. */
  memoryBytes(): number {
    return this.memory.bytes();
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
    this.memory.dispose();
    // A stopped service's record outlives its runtime (its name, limits and usage are still
    // asked for), but nothing of the engine may stay reachable from it: a tenant's dropped
    // WebAssembly instance, and its linear memory, can only be collected once nothing refers to it.
    this.ops.clear();
    Object.assign(this, {
      engine: undefined,
      tenantEngine: undefined,
      rt: undefined,
      ctx: undefined,
      memory: undefined,
      fast: undefined,
      install: undefined,
      run: undefined,
    });
  }

  // Called by QuickJS every few thousand branches. The wall clock is read first because it is
  // cheap and never behind the thread's CPU time: only once the step has taken longer than its
  // budget in wall time is the CPU time read, so a loaded machine, where a message waits for a
  // core, never stops an honest one.
  private shouldInterrupt(): boolean {
    if (this.shouldStop()) {
      this.stopping = true;
      return true;
    }
    if (!this.compilingStd && this.overBudget()) {
      this.interrupted = true;
      return true;
    }
    return false;
  }

  // The module's evaluation (and the handlers' reading) ran past the budget without an interrupt.
  private stepOverBudget(): boolean {
    this.interrupted = this.clock.read() - this.stepCpu > this.budgetMs;
    return this.interrupted;
  }

  private overBudget(): boolean {
    const left = this.budgetMs - this.usedMs;
    return performance.now() - this.stepWall > left && this.clock.read() - this.stepCpu > left;
  }

  private beginMessage(): void {
    this.interrupted = false;
    this.overrunMs = 0;
    this.usedMs = 0;
    this.chargedMs = 0;
    this.budgetMs = this.spec.limits.cpuMsPerMessage;
    this.refusedBefore = this.memory.refused();
    this.exhaustedBefore = this.memory.exhausted();
    this.hostRefusedBefore = this.tenantEngine.hostRefusals();
  }

  private stepStart(): void {
    this.stepWall = performance.now();
    this.stepCpu = this.clock.recent();
  }

  // A message's last step that cannot have put it over its budget (its wall time fits in what is
  // left, and CPU time never runs ahead of wall time) is charged to the clock, which counts its CPU
  // time at its next reading, instead of reading the clock now: most messages are one short step.
  // Every other step is read at once, so that a decision on the budget is made on CPU time.
  private stepEnd(last: boolean): void {
    const wallMs = performance.now() - this.stepWall;
    if (last && this.clock.charge && this.usedMs + wallMs <= this.budgetMs) {
      this.usedMs += wallMs;
      this.chargedMs += wallMs;
      this.clock.charge(wallMs, this.countCpu);
      return;
    }
    this.usedMs += this.clock.read() - this.stepCpu;
  }

  // A step that QuickJS could not interrupt in time (it polls only between bytecode branches, not
  // inside a built-in) still counts: when it ends over the budget, the message fails as if it had
  // been stopped at the budget. The watchdog outside the thread bounds how long that can take.
  private step(op: string, a: string, b: string): Outcome {
    let outcome: Outcome;
    this.stopping = false;
    try {
      outcome = this.stepInner(op, a, b);
      if (this.stopping) return { t: "stopped" };
    } catch (err) {
      if (!(err instanceof HostMemoryFull)) throw err;
      return { t: "failed", crash: this.crashFrom(OUT_OF_MEMORY) };
    }
    if (outcome.t !== "failed" && this.usedMs > this.budgetMs) {
      this.interrupted = true;
      this.overrunMs = this.usedMs - this.budgetMs;
      return { t: "failed", crash: cpuCrash(this.spec.limits.cpuMsPerMessage) };
    }
    return outcome;
  }

  private stepInner(op: string, a: string, b: string): Outcome {
    this.stepStart();
    let outcome: Outcome | undefined;
    try {
      outcome = this.stepBody(op, a, b);
      return outcome;
    } finally {
      this.stepEnd(outcome !== undefined && outcome.t !== "pending");
    }
  }

  private stepBody(op: string, a: string, b: string): Outcome {
    const raw = this.callRun(op, a, b);
    if (typeof raw !== "string") return { t: "failed", crash: this.crashFrom(raw.error) };
    const o = decodeOutcome(raw);
    if (o.t === "threw") return this.outcome(o);
    // A reply (or no handler) is final once the jobs it left have run; so is a message done,
    // unless it is the resolution of a call, which may settle the message it resumes.
    if ((o.t !== "pending" && o.t !== "done") || (o.t === "done" && op !== "resolve")) {
      const failure = this.drain();
      return failure ? { t: "failed", crash: failure } : this.outcome(o);
    }
    const failure = this.drain();
    if (failure) return { t: "failed", crash: failure };
    if (this.settled !== undefined) {
      const s = this.settled;
      this.settled = undefined;
      this.awaitingSettle = false;
      return this.outcome(decodeOutcome(s));
    }
    return { t: "pending" };
  }

  private callRun(op: string, a: string, b: string): string | { error: GuestError } {
    const opH = this.ops.get(op);
    if (!opH || !this.run || !this.fast) throw new EngineFault(`the sandbox is not loaded (operation ${op})`);
    const res = this.guard(() => this.fast?.call(this.run as QuickJSHandle, opH, a, b) ?? "");
    if (typeof res === "string") return res;
    // The outcome was made but could not be read out: the engine refused the memory for it.
    if (res === null) return { error: OUT_OF_MEMORY };
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
      if (this.overBudget()) {
        this.interrupted = true;
        return this.crashFrom({ kind: "exception", name: "InternalError", message: "interrupted", stack: "" });
      }
    }
    return undefined;
  }

  private hostCall(opH: QuickJSHandle, argH: QuickJSHandle, bytesH?: QuickJSHandle): QuickJSHandle | undefined {
    const { ctx } = this;
    const op = ctx.getString(opH);
    const arg = ctx.typeof(argH) === "string" ? ctx.getString(argH) : "";
    if (op === SETTLE) {
      if (this.awaitingSettle && this.settled === undefined) this.settled = arg;
      return undefined;
    }
    if (op === STD && arg === STD_APIS_LOAD) return this.loadStdApis();
    let answer: string | Uint8Array;
    try {
      if (op === STD) this.stdAllowed();
      const bytes = op === STD && bytesH !== undefined && ctx.typeof(bytesH) === "object" ? this.readBytes(bytesH) : undefined;
      const out = this.onHost(decodeHostRequest(op, arg, bytes));
      answer = typeof out === "string" ? encodeAnswer(out) : out;
    } catch (err) {
      answer = encodeError(SoloError.from(err).toData());
    }
    try {
      if (typeof answer !== "string") return ctx.newArrayBuffer(ownBuffer(answer));
      return ctx.newString(answer);
    } catch (err) {
      // No room for the answer in a full tenant: the guest gets no string (its call then fails),
      // and the host counts the refusal as the evidence of a memory breach.
      if (!(err instanceof HostMemoryFull)) throw err;
      return undefined;
    }
  }

  // The standard web APIs' implementation (std-apis.ts), compiled in this runtime the first time the
  // service reads one of their globals: most services never do, and so never hold its ~130 KiB. It is
  // the kernel's own code, so its first compile is taken out of the message's budget; should that
  // fail (no memory left), trying again is the service's doing and counts.
  private loadStdApis(): QuickJSHandle | undefined {
    const cpu = this.clock.read();
    const wall = performance.now();
    const exempt = !this.stdAsked;
    this.stdAsked = true;
    this.compilingStd = exempt;
    try {
      const res = this.guard(() => this.ctx.evalCode(STD_APIS_IMPL, STD_APIS_FILENAME));
      if (!res.error) return res.value;
      const e = this.dumpError(res.error);
      res.error.dispose();
      return this.ctx.newString(
        encodeError(new SoloError("SOLO_ERR_INTERNAL", `the standard APIs failed to load: ${e.name}: ${e.message}`).toData()),
      );
    } catch (err) {
      if (!(err instanceof HostMemoryFull)) throw err;
      return undefined;
    } finally {
      this.compilingStd = false;
      if (exempt) {
        this.stepCpu += this.clock.read() - cpu;
        this.stepWall += performance.now() - wall;
      }
    }
  }

  // A standard API's host work (a digest, an HMAC of a large input) runs on this thread, so its CPU
  // time is the message's; but QuickJS polls the budget only between bytecode branches, and a loop
  // of such calls may branch little. Once the budget is spent, no more of that work is done.
  private stdAllowed(): void {
    if (!this.overBudget()) return;
    this.interrupted = true;
    const crash = cpuCrash(this.spec.limits.cpuMsPerMessage);
    throw new SoloError(crash.reason, crash.message, { field: "limits.cpuMsPerMessage" });
  }

  // The bytes of an ArrayBuffer the guest handed the host (a standard API's data), copied out of
  // the engine's memory before anything else can move it.
  private readBytes(h: QuickJSHandle): Uint8Array {
    let view: ReturnType<QuickJSContext["getArrayBuffer"]>;
    try {
      view = this.ctx.getArrayBuffer(h);
    } catch (cause) {
      throw new SoloError(
        "SOLO_ERR_LIMIT_MEMORY",
        `tenant ${this.spec.tenant}'s memory is full: no room to read a standard API's input`,
        { hint: "use smaller inputs, or raise the tenant's memoryBytes" },
        { cause },
      );
    }
    try {
      return view.value.slice();
    } finally {
      view.dispose();
    }
  }

  private outcome(o: GuestOutcome): Outcome {
    switch (o.t) {
      case "threw":
        return { t: "failed", crash: this.crashFrom(o.error) };
      case "unreadable":
        // With no memory left, the bootstrap's outcome can come out mangled: the engine's own
        // refusals say so. Without any, the engine itself misbehaved.
        if (this.serviceLimitRefused() || this.tenantFullRefused()) {
          return { t: "failed", crash: this.crashFrom(OUT_OF_MEMORY) };
        }
        return {
          t: "failed",
          crash: { kind: "engine_fault", reason: "SOLO_ERR_ENGINE_FAULT", message: "the sandbox returned an unreadable outcome" },
        };
      default:
        return o;
    }
  }

  // Every entry into the WebAssembly goes through here: an exception that is not a QuickJS result
  // came from the engine itself and poisons the tenant's instance.
  private guard<T>(fn: () => T): T {
    try {
      return fn();
    } catch (err) {
      if (err instanceof HostMemoryFull) throw err;
      throw new EngineFault(err instanceof Error ? `${err.name}: ${err.message}` : String(err), { cause: err });
    }
  }

  private dumpError(handle: QuickJSHandle): GuestError {
    try {
      const d: unknown = this.ctx.dump(handle);
      if (d !== null && typeof d === "object") {
        const o = d as Record<string, unknown>;
        return { kind: "exception", name: clipped(o.name, "Error"), message: clipped(o.message, ""), stack: clipped(o.stack, "") };
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
    return moduleFailure(e, this.spec.filename, () => this.crashFrom(e));
  }

  /** The runtime's own limit refused an allocation since the message began. */
  private serviceLimitRefused(): boolean {
    return this.memory.refused() !== this.refusedBefore;
  }

  /** The tenant's full memory failed an allocation (the engine's or the host's) since the message began. */
  private tenantFullRefused(): boolean {
    return this.memory.exhausted() !== this.exhaustedBefore || this.tenantEngine.hostRefusals() !== this.hostRefusedBefore;
  }

  // What a failed message is, from what the host saw since the message began (see classify).
  private crashFrom(e: GuestError): Crash {
    return classify(e, {
      serviceLimitRefused: this.serviceLimitRefused(),
      tenantFullRefused: this.tenantFullRefused(),
      interrupted: this.interrupted,
      spec: this.spec,
      tenantCapBytes: this.tenantEngine.capBytes,
    });
  }
}

/** `bytes` as an ArrayBuffer of exactly its length (a Buffer may be a view into a shared pool). */
function ownBuffer(bytes: Uint8Array): ArrayBuffer {
  const { buffer, byteOffset, byteLength } = bytes;
  if (buffer instanceof ArrayBuffer && byteOffset === 0 && byteLength === buffer.byteLength) return buffer;
  // Copied by the Uint8Array constructor: a Buffer's own slice() would share the pool.
  return new Uint8Array(bytes).buffer;
}
