/**
 * The CLI's errors: an error as data (for `--json`), printed for people, and the exit code it
 * gives. Apart from output.ts because it loads the Connect runtime and the generated protobuf
 * code, which `--help`, `--version` and a usage error do not need.
 */
import { ConnectError } from "@connectrpc/connect";
import type { ErrorData } from "../lib/errors/data.ts";
import * as lib from "../lib/errors/data.ts";
import { SoloError } from "../lib/errors/errors.ts";
import { codeOfGrpc, EXIT, TRANSPORT } from "../lib/errors/transport.ts";
import { colours, dim, printFinding, red, UsageError, yellow } from "./output.ts";

/** The exit code for an error (the code's, from the one transport map). */
export function exitCodeOf(err: unknown): number {
  if (err instanceof UsageError) return EXIT.usage;
  // A SoloError raised in this process (solo start opening its store, solo cert issue) exits as
  // the same error would over the wire.
  if (err instanceof SoloError) return TRANSPORT[err.code].exit;
  if (err instanceof ConnectError) return TRANSPORT[codeOfGrpc(err.code)].exit;
  return EXIT.failed;
}

/** An error as data: for `--json`, and what the human form prints. */
export function errorData(err: unknown): ErrorData {
  if (err instanceof UsageError) return { code: "usage", reason: "usage", message: err.message, ...(err.hint ? { hint: err.hint } : {}) };
  return lib.errorData(err, "cli");
}

/** Prints an error for people (stderr), or as JSON (stdout) with --json; findings name `file`. */
export function printError(err: unknown, json: boolean, file = "code"): void {
  const e = errorData(err);
  if (json) {
    process.stdout.write(`${JSON.stringify({ error: e })}\n`);
    return;
  }
  const on = colours(process.stderr);
  // The service's own answer, not a failure of Solo's: said as the service said it.
  const answer = lib.applicationAnswer(e);
  if (answer) {
    process.stderr.write(`${yellow(`${answer.service} answered with an error`, on)}: ${answer.code}: ${answer.message}\n`);
    if (answer.details !== undefined) process.stderr.write(`${dim("details", on)}: ${JSON.stringify(answer.details)}\n`);
    return;
  }
  const findings = (
    e.details as { findings?: Array<{ rule: string; line: number; column: number; message: string; hint?: string }> } | undefined
  )?.findings;
  process.stderr.write(`${red("error", on)}: ${e.message}${e.reason ? dim(` (${e.reason})`, on) : ""}\n`);
  for (const f of findings ?? []) printFinding(f, file, process.stderr);
  if (e.hint) process.stderr.write(`${dim("hint", on)}: ${e.hint}\n`);
}
