// A flooding client in a child process, as one on another machine would be: the gateway pays for
// its calls, the benchmark's own client does not. The child (admission-flood.ts, edge-flood.ts)
// reads its settings from SOLO_BENCH_FLOOD, prints "flooding" once it has started, floods until
// its stdin closes, and prints what happened as one JSON line.
import { spawn } from "node:child_process";
import { fileURLToPath } from "node:url";

/** A running flood: `started` once it floods; `stop` ends it and gives the child's counts. */
export interface Flood<Counts> {
  readonly started: Promise<void>;
  stop(): Promise<Counts>;
}

/** Starts `script` (beside this file) flooding with `settings`. */
export function startFlood<Counts>(script: string, settings: unknown): Flood<Counts> {
  const child = spawn(process.execPath, [...process.execArgv, fileURLToPath(new URL(`./${script}`, import.meta.url))], {
    env: { ...process.env, SOLO_BENCH_FLOOD: JSON.stringify(settings) },
    stdio: ["pipe", "pipe", "inherit"],
  });
  let out = "";
  let onStart: () => void = () => undefined;
  const started = new Promise<void>((res) => {
    onStart = res;
  });
  child.stdout.setEncoding("utf8");
  child.stdout.on("data", (d: string) => {
    out += d;
    if (out.includes("flooding")) onStart();
  });
  const exited = new Promise<void>((res) => child.on("exit", () => res()));
  return {
    started,
    stop: async () => {
      child.stdin.end();
      await exited;
      return JSON.parse(out.trim().split("\n").pop() ?? "{}") as Counts;
    },
  };
}
