/**
 * A scheduler as one object, made of its parts: the run loop and the records it runs (run-loop.ts,
 * service.ts), the services' powers (host-powers.ts), their lifecycle (lifecycle.ts), hot swaps
 * (swap.ts) and usage (usage.ts). It runs wherever it is made: in a scheduler thread (thread.ts)
 * or, for tests, in the calling thread.
 * @internal
 */
import { SoloError } from "../../lib/errors/errors.ts";
import type { Scheduler, SchedulerOptions } from "../index.ts";
import type { FromScheduler, ToScheduler } from "../protocol.ts";
import { HostPowers } from "./host-powers.ts";
import { Lifecycle } from "./lifecycle.ts";
import { Outbox } from "./outbox.ts";
import { RunLoop } from "./run-loop.ts";
import { notRunning } from "./service.ts";
import { HotSwap } from "./swap.ts";
import { Usage } from "./usage.ts";

/** A scheduler in the calling thread; what it sends goes to `post`, in batches. @internal */
export function createScheduler(options: SchedulerOptions, post: (batch: FromScheduler[]) => void): Scheduler {
  return new SchedulerCore(options, post);
}

class SchedulerCore implements Scheduler {
  private readonly loop: RunLoop;
  private readonly lifecycle: Lifecycle;
  private readonly usage: Usage;

  constructor(options: SchedulerOptions, post: (batch: FromScheduler[]) => void) {
    this.loop = new RunLoop(options.board, new Outbox(options.board, post), options.index);
    const powers = new HostPowers(this.loop);
    const swap = new HotSwap(this.loop, powers);
    this.loop.onSwap = (s, m, spec) => swap.run(s, m, spec);
    this.lifecycle = new Lifecycle({ loop: this.loop, powers, engine: options.engine });
    this.usage = new Usage({ loop: this.loop, powers, engine: options.engine });
  }

  receive(batch: readonly ToScheduler[]): void {
    for (const op of batch) this.dispatch(op);
    if (!this.loop.draining) this.loop.drain();
  }

  sampleUsage(): void {
    this.usage.sample();
  }

  private dispatch(op: ToScheduler): void {
    const { loop } = this;
    const { outbox } = loop;
    switch (op.op) {
      case "deploy":
        this.lifecycle.deploy(op).then(
          () => outbox.flush(),
          (err: unknown) => {
            outbox.send({ op: "err", rid: op.rid, error: SoloError.from(err).toData() });
            outbox.flush();
          },
        );
        return;
      case "call": {
        const s = loop.services.get(op.sid);
        if (!s?.live) {
          outbox.send({ op: "err", rid: op.rid, error: notRunning(s) });
          return;
        }
        if (s.full(op.payload)) {
          outbox.send({ op: "err", rid: op.rid, error: s.mailboxFull(op.payload).toData() });
          return;
        }
        s.enqueue({ kind: "call", payload: op.payload, rid: op.rid, fromName: "", deadline: op.deadline, chain: [] });
        loop.schedule(s);
        return;
      }
      case "cast": {
        const s = loop.services.get(op.sid);
        if (s?.live) {
          if (s.full(op.payload)) {
            s.drop();
            outbox.castTaken(op.cid);
          } else {
            s.enqueue({ kind: "cast", payload: op.payload, fromName: "", deadline: 0, chain: [], cid: op.cid });
            loop.schedule(s);
          }
        } else {
          if (s) s.unhandled++;
          outbox.castTaken(op.cid);
        }
        return;
      }
      case "io": {
        const s = loop.services.get(op.sid);
        const out = s?.outCalls.get(op.cid);
        if (!s || !out || !s.current) return; // the message timed out, or the service stopped
        clearTimeout(out.timer);
        s.outCalls.delete(op.cid);
        s.resumes.push([op.cid, op.outcome]);
        loop.schedule(s);
        return;
      }
      case "swap": {
        const s = loop.services.get(op.sid);
        if (s?.status !== "running") {
          outbox.send({ op: "err", rid: op.rid, error: notRunning(s) });
          return;
        }
        // In mailbox order: what was sent before the swap is handled by the old version.
        s.mailbox.push({ kind: "swap", swap: op, payload: "", rid: op.rid, fromName: "", deadline: 0, chain: [] });
        loop.schedule(s);
        return;
      }
      case "kill": {
        const s = loop.services.get(op.sid);
        if (s) this.lifecycle.kill(op.rid, s, op.reason ?? "killed");
        else outbox.send({ op: "ok", rid: op.rid, value: "" });
        return;
      }
      case "hold": {
        const t = loop.tenants.get(op.tenant);
        if (t) loop.hold(t, op.ms);
        return;
      }
      case "tenantMemory": {
        const t = loop.tenants.get(op.tenant);
        if (t) {
          t.capBytes = op.memoryBytes;
          t.reclaimAfter = 0;
          this.usage.considerReclaim(t);
        }
        return;
      }
      case "shutdown":
        for (const s of loop.services.values()) this.lifecycle.kill(-1, s, "shutdown");
        outbox.withdrawOk(-1);
        outbox.send({ op: "ok", rid: op.rid, value: "" });
        return;
    }
  }
}
