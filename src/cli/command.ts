/**
 * What a command module in `commands/` gets from `main.ts` (the command table): the global
 * flags, `--json`, the handler types the command table dispatches to, and the readers of arguments commands share.
 */
import { readFileSync } from "node:fs";
import type { JsonObject, JsonValue } from "@bufbuild/protobuf";
import { SoloError } from "../lib/errors/errors.ts";
// Types only: main.ts loads the gateway client when a command connects, not to read its table.
import type { Clients, ConnectionOptions } from "./connection.ts";
import { jsonReplacer, UsageError } from "./output.ts";

/** The flags before the command: `--json` and how to reach the kernel. */
export interface GlobalOptions extends ConnectionOptions {
  readonly json?: boolean;
}

/** One run of a command: its global flags, and where its output and errors go. */
export interface Cli {
  readonly options: GlobalOptions;
  /** `--json`: one JSON document per result on stdout, errors included. */
  readonly json: boolean;
  /** The file a deploy or swap read, so the analyzer's findings in an error name it. */
  codeFile: string;
  /** Prints `data` as JSON with `--json`, else runs `human`. */
  out(data: unknown, human: () => void): void;
}

/** A run of a command with the global flags given. */
export function cliOf(options: GlobalOptions, json: boolean): Cli {
  return {
    options,
    json,
    codeFile: "code",
    out(data, human) {
      if (json) process.stdout.write(`${JSON.stringify(data, jsonReplacer)}\n`);
      else human();
    },
  };
}

/**
 * A command against a kernel, through the gateway: `main.ts` connects first, and prints its
 * errors and sets the exit code. The rest are commander's arguments, then the options.
 */
export type RemoteCommand = (cli: Cli, c: Clients, ...args: never[]) => Promise<void>;

/** A command that runs on this machine (`start`, `cert issue`, `mcp`): it reports its own errors. */
export type LocalCommand = (cli: Cli, ...args: never[]) => Promise<void>;

/** `tenant/service` as a service reference. */
export function ref(text: string): { tenant: string; service: string } {
  const m = /^([^/]+)\/([^/]+)$/.exec(text);
  if (!m) throw new UsageError(`expected tenant/service, got ${JSON.stringify(text)}`, "for example: acme/counter");
  return { tenant: m[1] as string, service: m[2] as string };
}

/** An argument or flag given as JSON; `what` names it in the usage error. */
export function parseJson(text: string, what: string): JsonValue {
  try {
    return JSON.parse(text) as JsonValue;
  } catch (err) {
    throw new UsageError(`${what} is not valid JSON: ${(err as Error).message}`);
  }
}

/** A flag given as a JSON object, if given. */
export function jsonObject(text: string | undefined, what: string): JsonObject | undefined {
  if (text === undefined) return undefined;
  const v = parseJson(text, what);
  if (v === null || typeof v !== "object" || Array.isArray(v)) throw new UsageError(`${what} must be a JSON object`);
  return v;
}

/** A service's code from a file, or stdin for `-`. */
export function readCode(file: string): string {
  try {
    return readFileSync(file === "-" ? 0 : file, "utf8");
  } catch (err) {
    throw new UsageError(`cannot read ${file}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
  }
}

/** A reader of a whole number (a flag's value, or `SOLO_PORT`); `name` names it in the usage error. */
export function int(name: string): (v: string) => number {
  return (v) => {
    const n = Number(v);
    if (!Number.isSafeInteger(n) || n < 0) throw new UsageError(`${name} must be a whole number, got ${JSON.stringify(v)}`);
    return n;
  };
}

/**
 * An options error of code this process ran for a command (openKernel, the gateway's
 * credentials and edge limits) in the command line's words: a usage error naming the flag or
 * argument (`flagOf` gives it for a field) where the error named the option's field. Any other
 * error comes back as it was.
 */
export function inFlags(err: unknown, flagOf: (field: string) => string | undefined): unknown {
  if (!(err instanceof SoloError) || err.reason !== "SOLO_ERR_KERNEL_OPTIONS_INVALID") return err;
  const field = err.details.field;
  const flag = typeof field === "string" ? flagOf(field) : undefined;
  const at = flag && typeof field === "string" ? err.message.indexOf(field) : -1;
  if (!flag || at < 0) return err;
  // "openKernel: memoryBudgetBytes must be ..." becomes "--memory-budget must be ...".
  return new UsageError(`${flag}${err.message.slice(at + (field as string).length)}`, err.details.hint);
}
