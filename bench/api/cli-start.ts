// The CLI's warm start: wall time of a whole `solo` command as a child process, against `node -e 0`
// with the same Node binary, in the same run. The kernel is a `solo start` of its own (another
// process, on a temporary data directory). Subjects: `solo --version` (the command table alone),
// `solo health` and `solo ls bench` (a round trip over mutual TLS) run through the package's bin
// (src/cli/solo.js, by its shebang, with this Node first on PATH); `solo health` through the
// TypeScript entry (`node src/cli/solo.ts`), without the compile cache, and through `npx solo`.
// "Warm": every subject runs once unmeasured first (the compile cache, its own here, is filled;
// the files are in the page cache), then the rounds alternate over the subjects, the starting
// subject rotating, so drift hits them alike.
import { execFile, spawn } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { availableParallelism, loadavg, tmpdir } from "node:os";
import { delimiter, dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";
import { soloFreeEnv } from "../../test/support/helpers.ts";
import { fmtMs, fmtRatio, median, printTable, verdict } from "../stats.ts";

const ROUNDS = 15;
const TENANT = "bench";
// The goal: a warm command through the bin takes at most a third of what `npx solo` took before.
const TARGET_OF_NPX = 1 / 3;

const ROOT = fileURLToPath(new URL("../..", import.meta.url));
const BIN = fileURLToPath(new URL("../../src/cli/solo.js", import.meta.url));
const TS_ENTRY = fileURLToPath(new URL("../../src/cli/solo.ts", import.meta.url));
const execFileP = promisify(execFile);

const work = mkdtempSync(join(tmpdir(), "solo-bench-cli-"));
const dataDir = join(work, ".solo");
// This Node first on PATH (the bin's shebang runs the first `node`), and nothing that picks other credentials.
const baseEnv: NodeJS.ProcessEnv = {
  ...soloFreeEnv(),
  PATH: `${dirname(process.execPath)}${delimiter}${process.env.PATH ?? ""}`,
  SOLO_DATA_DIR: dataDir,
  // The compile cache where solo.js puts it by default (<os temp dir>/node-compile-cache), in a
  // temporary directory of its own: NODE_COMPILE_CACHE would turn the cache on before any entry
  // point runs, and so hide what the TypeScript entry costs.
  TMPDIR: work,
};
delete baseEnv.NODE_COMPILE_CACHE;
delete baseEnv.NODE_DISABLE_COMPILE_CACHE;

// ---- the kernel -------------------------------------------------------------------------------

const kernel = spawn(process.execPath, ["--disable-warning=ExperimentalWarning", BIN, "start"], {
  env: { ...baseEnv, SOLO_PORT: "0", SOLO_WEB_PORT: "0" },
  stdio: ["ignore", "pipe", "pipe"],
});
let kernelOut = "";
kernel.stdout.on("data", (d: Buffer) => (kernelOut += d.toString()));
kernel.stderr.on("data", (d: Buffer) => (kernelOut += d.toString()));
const url = await new Promise<string>((resolve, reject) => {
  const timer = setTimeout(() => reject(new Error(`solo start was not ready within 60 s:\n${kernelOut}`)), 60_000);
  kernel.on("exit", (code) => reject(new Error(`solo start exited (${code}):\n${kernelOut}`)));
  kernel.stdout.on("data", () => {
    const m = /^ {2}gateway +(https:\/\/127\.0\.0\.1:\d+) /m.exec(kernelOut);
    if (m && kernelOut.includes("Press Ctrl-C")) {
      clearTimeout(timer);
      resolve(m[1] as string);
    }
  });
});
const env = { ...baseEnv, SOLO_URL: url };

// ---- the subjects -------------------------------------------------------------------------------

interface Subject {
  readonly name: string;
  readonly file: string;
  readonly args: readonly string[];
  readonly env?: NodeJS.ProcessEnv;
  readonly ms: number[];
}

const subject = (name: string, file: string, args: readonly string[], extra?: NodeJS.ProcessEnv): Subject => ({
  name,
  file,
  args,
  ...(extra ? { env: { ...env, ...extra } } : {}),
  ms: [],
});
const node = subject("node -e 0", process.execPath, ["-e", "0"]);
const version = subject("solo --version (bin)", BIN, ["--version"]);
const health = subject("solo health (bin)", BIN, ["health"]);
const ls = subject(`solo ls ${TENANT} (bin)`, BIN, ["ls", TENANT]);
const tsEntry = subject("node src/cli/solo.ts health", process.execPath, ["--disable-warning=ExperimentalWarning", TS_ENTRY, "health"]);
const noCache = subject("solo health (bin, NODE_DISABLE_COMPILE_CACHE=1)", BIN, ["health"], { NODE_DISABLE_COMPILE_CACHE: "1" });
const npx = subject("npx solo health", "npx", ["solo", "health"]);
const subjects = [node, version, health, ls, tsEntry, noCache, npx];

/** Runs a subject to its end; its wall time. A failure stops the bench (a figure of a failed run would mislead). */
async function timed(s: Subject): Promise<number> {
  const started = performance.now();
  await execFileP(s.file, s.args, { cwd: ROOT, env: s.env ?? env, encoding: "utf8" });
  return performance.now() - started;
}

try {
  await execFileP(BIN, ["tenant", "create", TENANT], { cwd: ROOT, env, encoding: "utf8" });
  for (const s of subjects) await timed(s);
  for (let r = 0; r < ROUNDS; r++) {
    for (let i = 0; i < subjects.length; i++) {
      const s = subjects[(r + i) % subjects.length] as Subject;
      s.ms.push(await timed(s));
    }
  }
} finally {
  kernel.kill("SIGTERM");
  await new Promise((resolve) => kernel.once("exit", resolve));
  rmSync(work, { recursive: true, force: true });
}

// ---- the report -------------------------------------------------------------------------------

const base = median(node.ms);
const rows: string[][] = [["warm start (child process, wall time)", "runs", "median", "min..max", "vs node -e 0", "own (- node -e 0)"]];
for (const s of subjects) {
  const m = median(s.ms);
  rows.push([
    s.name,
    String(s.ms.length),
    fmtMs(m),
    `${fmtMs(Math.min(...s.ms))}..${fmtMs(Math.max(...s.ms))}`,
    fmtRatio(m / base),
    s === node ? "" : fmtMs(m - base),
  ]);
}
printTable(rows);
const ofNpx = median(health.ms) / median(npx.ms);
console.log("");
console.log(
  `solo health through the bin takes ${fmtRatio(ofNpx)} of npx solo health's time (target at most ${fmtRatio(TARGET_OF_NPX)}): ${verdict(ofNpx <= TARGET_OF_NPX)}`,
);
console.log(
  `compile cache: health ${fmtMs(median(health.ms))} with it, ${fmtMs(median(noCache.ms))} without; TypeScript entry: ${fmtMs(median(tsEntry.ms))}`,
);
console.log(
  `${process.execPath} (node ${process.version}); ${availableParallelism()} cores, load ${loadavg()
    .map((l) => l.toFixed(2))
    .join(" ")}; one unmeasured run of each first, then ${ROUNDS} rounds alternating`,
);
