/**
 * What a scheduler sends the control plane, batched: one post per batch, flushed at the end of a
 * slice of work and early when it grows, so the control plane can send the next requests while
 * the scheduler is still busy (the pipeline never empties). Each batch also says which casts were
 * consumed and which calls started, as the board does meanwhile for a thread that dies first.
 * @internal
 */
import type { StepBoard } from "../board.ts";
import type { FromScheduler } from "../protocol.ts";
import type { Message } from "./service.ts";
import { soon } from "./soon.ts";

// Replies leave in small batches even in the middle of a long drain.
const EARLY_FLUSH = 16;
// Consumed casts and started calls are reported well before the board's ring (far larger) wraps.
const TAKEN_FLUSH = 1024;

/** The scheduler's batches to the control plane. @internal */
export class Outbox {
  private batch: FromScheduler[] = [];
  /** Casts from the control plane consumed since the last batch (kept on the board too). */
  private taken: number[] = [];
  /** Calls from the control plane whose message started since the last batch (kept on the board too). */
  private startedCalls: number[] = [];
  private readonly board: StepBoard;
  private readonly post: (batch: FromScheduler[]) => void;
  /** Flushes on the next turn (for what happens outside a slice of work: a timer, a denial). */
  readonly flushSoon: () => void;

  constructor(board: StepBoard, post: (batch: FromScheduler[]) => void) {
    this.board = board;
    this.post = post;
    this.flushSoon = soon(() => this.flush());
  }

  send(msg: FromScheduler): void {
    this.batch.push(msg);
    if (this.batch.length >= EARLY_FLUSH) this.flush();
  }

  flush(): void {
    if (this.taken.length > 0 || this.startedCalls.length > 0) {
      this.batch.push({ op: "taken", cids: this.taken, rids: this.startedCalls });
      this.taken = [];
      this.startedCalls = [];
    }
    if (this.batch.length === 0) return;
    const batch = this.batch;
    this.batch = [];
    this.post(batch);
  }

  // A message taken from a mailbox: a cast is consumed, and a call from the control plane started,
  // so that if this thread is replaced, the control plane knows what not to deliver again (a cast)
  // and what may have had effects already (a call: its outcome is unknown).
  consumed(m: Message): void {
    if (m.cid !== undefined) this.castTaken(m.cid);
    else if (m.rid !== undefined && m.kind === "call") {
      this.board.started(m.rid);
      this.startedCalls.push(m.rid);
    } else return;
    if (this.taken.length + this.startedCalls.length >= TAKEN_FLUSH) this.flush();
  }

  /** A cast from the control plane is consumed: started, dropped or refused, it is not sent again. */
  castTaken(cid: number): void {
    this.board.consumed(cid);
    this.taken.push(cid);
  }

  /** Takes back the `ok`s for request `rid` not sent yet (a shutdown's own kills answer nobody). */
  withdrawOk(rid: number): void {
    this.batch = this.batch.filter((m) => !(m.op === "ok" && m.rid === rid));
  }
}
