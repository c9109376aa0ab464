/**
 * A scheduler thread: one scheduler (core/scheduler.ts) fed the control plane's batches, its
 * batches posted back, its usage sampled on a timer.
 * @internal
 */
import { parentPort, workerData } from "node:worker_threads";
import { StepBoard } from "./board.ts";
import { createScheduler } from "./core/scheduler.ts";
import type { FromScheduler, SchedulerData, ToScheduler } from "./protocol.ts";

const data = workerData as SchedulerData;
const port = parentPort;
if (!port) throw new Error("the scheduler must run in a worker thread");
const board = new StepBoard(data.board);
board.publishThread();

const scheduler = createScheduler({ engine: data.engine, board, index: data.index }, (batch) => port.postMessage(batch));
port.on("message", (batch: readonly ToScheduler[]) => scheduler.receive(batch));
setInterval(() => scheduler.sampleUsage(), data.usageIntervalMs).unref();
port.postMessage([{ op: "ready" }] satisfies FromScheduler[]);
