/**
 * A kernel process for the crash tests (`crash.test.ts`), meant to be killed with SIGKILL at any
 * moment. Not part of the public API.
 *
 * Writer mode (`crash-child.ts <dataDir> [<postgresUrl>]`) opens a kernel, deploys the writer
 * services (or finds them recovered), and drives writes forever, {@link IN_FLIGHT} at a time: call
 * `n` goes to writer `n % WRITERS.length`, which does `await solo.storage.put("k<n>", { n })`, then
 * `await solo.emit("wrote", { n })`, and replies with the event id. Alongside, it kills and
 * redeploys the {@link CHURN} service in a loop, so deployments are being written when the kill
 * lands too. Every line it prints on stdout is printed only after what it reports is durable:
 *
 * - `ready <first n>`: the kernel is open and recovered; writes start at this n (one past the
 *   highest n the log records).
 * - `ack <n> <service> <eventId>`: call n has replied; key `k<n>` and event `eventId` are durable.
 * - `deployed <version>` / `killed <version>`: the churn service's deploy or kill has resolved.
 *
 * Probe mode (`crash-child.ts --probe <dataDir> [<postgresUrl>]`) opens a kernel once and prints
 * `opened` (then closes it) or `refused <error as JSON>`, for the tests of two kernels on one store.
 * @internal
 */
import { SoloError } from "../lib/errors/errors.ts";
import { type Kernel, openKernel } from "./index.ts";

/** The tenant every crash-test service lives in. @internal */
export const CRASH_TENANT = "crash";
/** The writer services; several, because one service handles one message at a time. @internal */
export const WRITERS = ["w0", "w1", "w2", "w3", "w4", "w5", "w6", "w7"] as const;
/** The service killed and redeployed in a loop. @internal */
export const CHURN = "churn";
/** Calls kept in flight. @internal */
export const IN_FLIGHT = 32;

/**
 * The writers' code. `write` stores then emits and replies with the event id; `list` pages
 * through the storage (for the test's checks).
 * @internal
 */
export const WRITER_CODE = `export default {
  async handleCall(req, state) {
    if (req.op === "write") {
      await solo.storage.put("k" + req.n, { n: req.n });
      const id = await solo.emit("wrote", { n: req.n });
      return { reply: id, state };
    }
    if (req.op === "list") return { reply: await solo.storage.list("", { after: req.after, limit: 1000 }), state };
    throw new Error("unknown op " + req.op);
  },
}`;

const CHURN_CODE = `export default {
  handleCall(req, state) { return { reply: "churn", state } },
}`;

const CALL_TIMEOUT_MS = 120_000;

function line(text: string): void {
  // stdout is a pipe here, and pipe writes are synchronous on POSIX: the line has left the
  // process when this returns, so a kill right after cannot drop it.
  process.stdout.write(`${text}\n`);
}

function fail(what: string, err: unknown): never {
  const e = SoloError.from(err);
  process.stderr.write(`crash-child: ${what} failed: ${e.reason}: ${e.message}\n`);
  process.exit(1);
}

async function open(dataDir: string, database: string | undefined): Promise<Kernel> {
  return openKernel({ dataDir, schedulers: 1, ...(database === undefined ? {} : { database }) });
}

// One past the highest n any durable `wrote` event carries. A key put whose event never became
// durable may be written again with the same n; its value is the same.
async function firstN(kernel: Kernel): Promise<number> {
  const page = await kernel.events({
    tenant: CRASH_TENANT,
    types: WRITERS.map((w) => `svc.${w}.wrote`),
    order: "desc",
    limit: 1,
  });
  const last = page.events[0];
  return last ? (last.payload as { n: number }).n + 1 : 1;
}

async function setUp(kernel: Kernel): Promise<void> {
  // The first round makes the tenant (list refuses one that does not exist); later rounds find it.
  if (!(await kernel.tenants.list()).some((t) => t.name === CRASH_TENANT)) await kernel.tenants.create(CRASH_TENANT);
  const present = new Map(kernel.list(CRASH_TENANT).map((s) => [s.service, s.state]));
  for (const service of WRITERS) {
    const state = present.get(service);
    if (state === undefined) await kernel.deploy({ tenant: CRASH_TENANT, service, code: WRITER_CODE });
    else if (state !== "running") throw new Error(`writer ${service} came back ${state}`);
  }
}

async function writer(kernel: Kernel, next: () => number): Promise<never> {
  for (;;) {
    const n = next();
    const service = WRITERS[n % WRITERS.length] as string;
    const id = await kernel.call(CRASH_TENANT, service, { op: "write", n }, { timeoutMs: CALL_TIMEOUT_MS });
    line(`ack ${n} ${service} ${String(id)}`);
  }
}

async function churn(kernel: Kernel): Promise<never> {
  for (;;) {
    const info = kernel.list(CRASH_TENANT).find((s) => s.service === CHURN);
    if (info?.state === "running") {
      await kernel.kill(CRASH_TENANT, CHURN);
      line(`killed ${info.version}`);
    } else {
      const { version } = await kernel.deploy({ tenant: CRASH_TENANT, service: CHURN, code: CHURN_CODE });
      line(`deployed ${version}`);
    }
  }
}

async function writerMode(dataDir: string, database: string | undefined): Promise<void> {
  const kernel = await open(dataDir, database).catch((err: unknown) => fail("opening the kernel", err));
  let n = 0;
  try {
    await setUp(kernel);
    n = await firstN(kernel);
  } catch (err) {
    fail("setting up the writers", err);
  }
  line(`ready ${n}`);
  const next = (): number => n++;
  for (let i = 0; i < IN_FLIGHT; i++) writer(kernel, next).catch((err: unknown) => fail("a write", err));
  churn(kernel).catch((err: unknown) => fail("the churn loop", err));
}

async function probeMode(dataDir: string, database: string | undefined): Promise<void> {
  let kernel: Kernel;
  try {
    kernel = await open(dataDir, database);
  } catch (err) {
    const e = SoloError.from(err);
    line(`refused ${JSON.stringify({ code: e.code, reason: e.reason, details: e.details })}`);
    return;
  }
  line("opened");
  await kernel.close();
}

if (import.meta.main) {
  const args = process.argv.slice(2);
  const probe = args[0] === "--probe";
  const [dataDir, database] = probe ? args.slice(1) : args;
  if (dataDir === undefined) {
    process.stderr.write("usage: crash-child.ts [--probe] <dataDir> [<postgresUrl>]\n");
    process.exit(2);
  }
  await (probe ? probeMode(dataDir, database) : writerMode(dataDir, database));
}
