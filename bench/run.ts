// Runs the benchmarks, each in its own child process so that one's memory cannot skew another's.
//
//   npm run bench                 every benchmark, in order
//   npm run bench -- calls spawn  only those named
import { spawn } from "node:child_process";
import { fileURLToPath } from "node:url";

const BENCHMARKS = [
  "spawn",
  "calls",
  "answers",
  "isolation",
  "kernel",
  "store-append",
  "store-query",
  "store-recovery",
  "log-lines",
  "auth",
  "secrets",
  "storage",
  "gateway",
  "admission",
  "mcp",
  "web",
  "limits",
  "edge",
  "cli-start",
] as const;
const INTERNALS: ReadonlySet<string> = new Set(["store-append", "store-query", "store-recovery", "log-lines"]);
// Each benchmark is meant to take about a minute; one that hangs is stopped after this long.
const CHILD_TIMEOUT_MS = 240_000;

const requested = process.argv.slice(2);
const unknown = requested.filter((name) => !(BENCHMARKS as readonly string[]).includes(name));
if (unknown.length > 0) {
  console.error(`unknown benchmark ${unknown.join(", ")}; known: ${BENCHMARKS.join(", ")}`);
  process.exit(2);
}
const selected = requested.length > 0 ? BENCHMARKS.filter((name) => requested.includes(name)) : [...BENCHMARKS];

function runChild(name: string): Promise<{ code: number | null; signal: string | null; ms: number }> {
  // Benchmarks through the public API or the gateway are in api/; micro-benchmarks in internals/.
  const file = fileURLToPath(new URL(`./${INTERNALS.has(name) ? "internals" : "api"}/${name}.ts`, import.meta.url));
  // The same flags as this process, plus --expose-gc so memory figures are taken after a full GC.
  const flags = process.execArgv.includes("--expose-gc") ? process.execArgv : [...process.execArgv, "--expose-gc"];
  const started = performance.now();
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [...flags, file], { stdio: "inherit" });
    const timer = setTimeout(() => {
      console.error(`bench ${name}: still running after ${CHILD_TIMEOUT_MS / 1000} s, stopping it`);
      child.kill("SIGKILL");
    }, CHILD_TIMEOUT_MS);
    child.on("error", (err) => {
      clearTimeout(timer);
      reject(err);
    });
    child.on("exit", (code, signal) => {
      clearTimeout(timer);
      resolve({ code, signal, ms: performance.now() - started });
    });
  });
}

console.log(`solo benchmarks: ${selected.join(", ")} (node ${process.version}, ${process.platform}/${process.arch})`);
const failed: string[] = [];
for (const name of selected) {
  console.log(`\n=== ${name} ===`);
  const { code, signal, ms } = await runChild(name);
  const how = signal ? `killed by ${signal}` : `exit code ${code}`;
  console.log(`=== ${name}: ${how}, ${(ms / 1000).toFixed(1)} s ===`);
  if (code !== 0) failed.push(name);
}
if (failed.length > 0) {
  console.error(`\nfailed: ${failed.join(", ")}`);
  process.exit(1);
}
