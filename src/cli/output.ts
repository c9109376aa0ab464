/**
 * The CLI's output: tables and colours for people, JSON for scripts, errors in either form, and
 * the exit code an error gives.
 */
import { ConnectError } from "@connectrpc/connect";
import type { ErrorData } from "../lib/errors/data.ts";
import * as lib from "../lib/errors/data.ts";
import { SoloError } from "../lib/errors/errors.ts";
import { codeOfGrpc, EXIT, TRANSPORT } from "../lib/errors/transport.ts";
import { jsonReplacer, plainJson } from "../lib/json.ts";

/** The CLI's exit codes (docs/cli.md; each error code's is in the one transport map), and the JSON helpers the commands print with. */
export { EXIT, jsonReplacer, plainJson };

/** A mistake on the command line, reported with exit code 2. */
export class UsageError extends Error {
  override readonly name = "UsageError";
  readonly hint: string | undefined;
  constructor(message: string, hint?: string) {
    super(message);
    this.hint = hint;
  }
}

/** Whether human output may use colours: a terminal, and NO_COLOR unset. */
export function colours(stream: NodeJS.WriteStream = process.stdout): boolean {
  return stream.isTTY === true && !("NO_COLOR" in process.env && process.env.NO_COLOR !== "");
}

const paint = (code: number) => (text: string, on: boolean) => (on ? `\u001b[${code}m${text}\u001b[0m` : text);
export const bold = paint(1);
export const dim = paint(2);
export const red = paint(31);
export const green = paint(32);
export const yellow = paint(33);

/** A size for people: KiB below a MiB, else MiB to one decimal. */
export function kib(bytes: number): string {
  return bytes >= 1024 * 1024 ? `${(bytes / 1024 / 1024).toFixed(1)} MiB` : `${(bytes / 1024).toFixed(0)} KiB`;
}

/** Prints rows as aligned columns, the first row a header. */
export function table(rows: readonly (readonly string[])[], out: NodeJS.WriteStream = process.stdout): void {
  if (rows.length === 0) return;
  const widths: number[] = [];
  for (const r of rows) {
    r.forEach((c, i) => {
      widths[i] = Math.max(widths[i] ?? 0, [...c].length);
    });
  }
  const on = colours(out);
  rows.forEach((r, n) => {
    const line = r.map((c, i) => (i === r.length - 1 ? c : c + " ".repeat((widths[i] ?? 0) - [...c].length))).join("  ");
    out.write(`${n === 0 ? bold(line, on) : line}\n`);
  });
}

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

/** One analyzer finding as `file:line:col rule message`, with its hint below. */
export function printFinding(
  f: { rule: string; line: number; column: number; message: string; hint?: string; severity?: string },
  file: string,
  out: NodeJS.WriteStream = process.stdout,
): void {
  const on = colours(out);
  const label = f.severity === "warning" ? yellow(f.rule, on) : red(f.rule, on);
  out.write(`${file}:${f.line}:${f.column} ${label} ${f.message}\n`);
  if (f.hint) out.write(`  ${dim("hint:", on)} ${f.hint}\n`);
}
