/**
 * The CLI's output: tables and colours for people, JSON for scripts, and the usage error. Light
 * on purpose: the command table loads it for `--help` and `--version`, so it imports no gateway
 * client (errors.ts prints errors from the gateway).
 */
import { EXIT } from "../lib/errors/transport.ts";
import { jsonReplacer, plainJson } from "../lib/json.ts";

/** The CLI's exit codes (docs/cli.md; each error code's is in the one transport map), and the JSON helpers the commands print with. */
export { EXIT, jsonReplacer, plainJson };

/** The exit code when stdout or stderr is a pipe whose reader closed it: 128 + SIGPIPE, as a shell reports a tool that SIGPIPE ended. */
export const EXIT_CLOSED_PIPE = 141;

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
