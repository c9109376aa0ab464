/**
 * `npm start`: runs a kernel on the embedded default data directory (or the PostgreSQL database
 * in `$SOLO_DATABASE_URL`) until Ctrl-C or SIGTERM; services deployed earlier start again.
 * The network gateway arrives in a later release; for now this prints what runs and where.
 */
import { openKernel } from "../index.ts";

const dataDir = process.env.SOLO_DATA_DIR ?? "./.solo";
const kernel = await openKernel({
  dataDir,
  onLog: (e) => process.stdout.write(`${e.at} ${e.level.padEnd(5)} ${e.tenant}/${e.service}: ${e.text}\n`),
});

let stopping = false;
async function stop(signal: string): Promise<void> {
  if (stopping) return;
  stopping = true;
  process.stdout.write(`\n${signal}: terminating services and stopping schedulers...\n`);
  try {
    await kernel.close();
    process.stdout.write("stopped.\n");
    process.exit(0);
  } catch (err) {
    process.stderr.write(`failed to stop cleanly: ${(err as Error).message}\n`);
    process.exit(1);
  }
}
process.on("SIGINT", () => void stop("SIGINT"));
process.on("SIGTERM", () => void stop("SIGTERM"));

// Printed only once the signal handlers are in place, so a signal sent on seeing it is handled.
process.stdout.write(
  [
    `Solo kernel running (pid ${process.pid})`,
    `  data directory  ${kernel.dataDir}`,
    `  store           ${kernel.store.kind} at ${kernel.store.location}`,
    `  schedulers      ${kernel.schedulers} worker threads running QuickJS-ng (WebAssembly)`,
    "  gateway         not yet: embed the kernel with openKernel() from this package (see README)",
    "Press Ctrl-C to stop.",
    "",
  ].join("\n"),
);
