// A flooding client in a child process, as one on another machine would be: the gateway pays for
// its calls, the benchmark's own client does not. The child (flood-child.ts) reads its settings
// from SOLO_BENCH_FLOOD, prints "flooding" once it has started, floods until its stdin closes, and
// prints how its calls ended as one JSON line.
import { spawn } from "node:child_process";
import { fileURLToPath } from "node:url";

/** Where and how hard to flood: the gateway, the client's certificate, a token (or none). */
export interface FloodSettings {
  readonly url: string;
  readonly ca: string;
  readonly cert: string;
  readonly key: string;
  readonly token?: string;
  /** The tenant whose "work" service the calls name. */
  readonly tenant: string;
  readonly inFlight: number;
}

/** How the flood's calls ended. */
export interface FloodCounts {
  ok: number;
  unauthenticated: number;
  resourceExhausted: number;
  other: number;
}

/** A running flood: `started` once it floods; `stop` ends it and gives the child's counts. */
export interface Flood {
  readonly started: Promise<void>;
  stop(): Promise<FloodCounts>;
}

/** Starts a flooding child with `settings`. */
export function startFlood(settings: FloodSettings): Flood {
  const child = spawn(process.execPath, [...process.execArgv, fileURLToPath(new URL("./flood-child.ts", import.meta.url))], {
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
      return JSON.parse(out.trim().split("\n").pop() ?? "{}") as FloodCounts;
    },
  };
}
