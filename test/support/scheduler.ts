/**
 * A scheduler in the test's own thread (no worker, no pool, no kernel), with the control plane's
 * side of its protocol: request ids, service ids, and what it reported.
 * @internal
 */
import { DEFAULT_GRANTS, type ServiceGrants } from "../../src/api/grants.ts";
import type { ServiceLimits } from "../../src/api/limits.ts";
import { SoloError } from "../../src/lib/errors/errors.ts";
import type { EngineImage } from "../../src/sandbox/engine.ts";
import { StepBoard } from "../../src/scheduler/board.ts";
import { createScheduler } from "../../src/scheduler/core/scheduler.ts";
import type { Scheduler } from "../../src/scheduler/index.ts";
import type { Deployed, FromScheduler, PendingTimer, Swapped, ToScheduler } from "../../src/scheduler/protocol.ts";

/** Bytes in a mebibyte. */
export const MiB = 1024 * 1024;
/** The kernel's default service limits. */
export const LIMITS: ServiceLimits = {
  memoryBytes: 32 * MiB,
  stackBytes: 256 * 1024,
  cpuMsPerMessage: 100,
  messageBytes: MiB,
  stateBytes: 8 * MiB,
  timers: 1000,
  storageBytes: 16 * MiB,
  storageKeys: 10_000,
  mailbox: 10_000,
};
/** The kernel's default tenant memory limit. */
export const TENANT_MEMORY = 64 * MiB;

/** What a scheduler reports that is not a reply. */
export type Report = Exclude<FromScheduler, { op: "ok" | "err" | "ready" }>;
type OfOp<Op extends Report["op"]> = Extract<Report, { op: Op }>;

/** A scheduler in this thread, with the control plane's side of its protocol. */
export class SchedulerHarness {
  readonly board = new StepBoard();
  readonly scheduler: Scheduler;
  /** Everything it sent that is not a reply, in order. */
  readonly reported: Report[] = [];
  private readonly waiting = new Map<number, { resolve: (value: string) => void; reject: (err: SoloError) => void }>();
  private readonly watchers: Array<{ match: (m: Report) => boolean; resolve: (m: Report) => void }> = [];
  private rid = 0;
  private sid = 0;
  private cid = 0;

  constructor(engine: EngineImage) {
    this.scheduler = createScheduler({ engine, board: this.board, index: 0 }, (batch) => this.take(batch));
  }

  /** Sends one operation that expects a reply; resolves with its JSON ("" for none). */
  request(make: (rid: number) => ToScheduler): Promise<string> {
    return this.requests([make])[0] as Promise<string>;
  }

  /** Sends operations that expect replies, in one batch (the scheduler runs nothing before it has taken them all). */
  requests(makes: ReadonlyArray<(rid: number) => ToScheduler>): Promise<string>[] {
    const ops: ToScheduler[] = [];
    const replies = makes.map((make) => {
      const rid = ++this.rid;
      ops.push(make(rid));
      return new Promise<string>((resolve, reject) => this.waiting.set(rid, { resolve, reject }));
    });
    this.scheduler.receive(ops);
    return replies;
  }

  async deploy(
    service: string,
    code: string,
    options: {
      tenant?: string;
      limits?: Partial<ServiceLimits>;
      grants?: Partial<ServiceGrants>;
      args?: unknown;
      state?: string;
      timers?: PendingTimer[];
    } = {},
  ): Promise<{ sid: number; handlers: readonly string[] }> {
    const sid = ++this.sid;
    const reply = await this.request((rid) => ({
      op: "deploy",
      rid,
      sid,
      tenant: options.tenant ?? "acme",
      service,
      version: 1,
      filename: `${service}.js`,
      code,
      args: options.args === undefined ? "" : JSON.stringify(options.args),
      limits: { ...LIMITS, ...options.limits },
      grants: { ...DEFAULT_GRANTS, ...options.grants },
      tenantMemoryBytes: TENANT_MEMORY,
      ...(options.state !== undefined ? { state: options.state, timers: options.timers ?? [] } : {}),
    }));
    return { sid, handlers: (JSON.parse(reply) as Deployed).handlers };
  }

  async call(sid: number, request: unknown, deadline = Date.now() + 10_000): Promise<unknown> {
    const [reply] = this.calls(sid, [request], deadline);
    return reply;
  }

  /** Calls in one batch: they wait in the mailbox together. */
  calls<const T extends readonly unknown[]>(
    sid: number,
    requests: T,
    deadline = Date.now() + 10_000,
  ): { [K in keyof T]: Promise<unknown> } {
    const replies = this.requests(requests.map((r) => (rid: number) => ({ op: "call", rid, sid, payload: JSON.stringify(r), deadline })));
    return replies.map(async (reply) => {
      const json = await reply;
      return json === "" ? undefined : JSON.parse(json);
    }) as { [K in keyof T]: Promise<unknown> };
  }

  /** Sends casts in one batch; returns their numbers. */
  cast(sid: number, ...messages: unknown[]): number[] {
    const ops = messages.map((m) => ({ op: "cast" as const, sid, cid: ++this.cid, payload: JSON.stringify(m) }));
    this.scheduler.receive(ops);
    return ops.map((o) => o.cid);
  }

  async swap(sid: number, code: string, version: number, fromVersion: number): Promise<Swapped> {
    const reply = await this.request((rid) => ({
      op: "swap",
      rid,
      sid,
      version,
      fromVersion,
      filename: "v.js",
      code,
      limits: LIMITS,
      grants: DEFAULT_GRANTS,
    }));
    return JSON.parse(reply) as Swapped;
  }

  kill(sid: number): Promise<string> {
    return this.request((rid) => ({ op: "kill", rid, sid }));
  }

  send(...ops: ToScheduler[]): void {
    this.scheduler.receive(ops);
  }

  /** The first report (already sent, or to come within 5 s) of this kind that matches. */
  next<Op extends Report["op"]>(op: Op, match: (m: OfOp<Op>) => boolean = () => true): Promise<OfOp<Op>> {
    const test = (m: Report): boolean => m.op === op && match(m as OfOp<Op>);
    const seen = this.reported.find(test);
    if (seen) return Promise.resolve(seen as OfOp<Op>);
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`no ${op} report came`)), 5000);
      this.watchers.push({
        match: test,
        resolve: (m) => {
          clearTimeout(timer);
          resolve(m as OfOp<Op>);
        },
      });
    });
  }

  /** Stops every service, as a closing kernel does. */
  async close(): Promise<void> {
    await this.request((rid) => ({ op: "shutdown", rid }));
  }

  private take(batch: readonly FromScheduler[]): void {
    for (const m of batch) {
      if (m.op === "ok" || m.op === "err") {
        const w = this.waiting.get(m.rid);
        this.waiting.delete(m.rid);
        if (m.op === "ok") w?.resolve(m.value);
        else w?.reject(SoloError.fromData(m.error));
        continue;
      }
      if (m.op === "ready") continue;
      this.reported.push(m);
      for (const w of [...this.watchers]) {
        if (!w.match(m)) continue;
        this.watchers.splice(this.watchers.indexOf(w), 1);
        w.resolve(m);
      }
    }
  }
}
