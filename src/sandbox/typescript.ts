import { stripTypeScriptTypes } from "node:module";
import { SoloError } from "../lib/errors/errors.ts";

/**
 * Strips TypeScript types from a service's source, keeping every remaining character at its line
 * and column (types become white space), so positions QuickJS reports are the author's positions.
 * Plain JavaScript passes through unchanged.
 */
export function stripTypes(code: string, filename: string): string {
  try {
    return stripTypeScriptTypes(code, { mode: "strip" });
  } catch (err) {
    throw typeScriptError(err, filename, code);
  }
}

function typeScriptError(err: unknown, filename: string, code: string): SoloError {
  const e = err as { code?: unknown; message?: unknown; stack?: unknown };
  const message = typeof e.message === "string" ? e.message : String(err);
  const where = locate(typeof e.stack === "string" ? e.stack : "", message, code);
  const at = where ? ` at ${filename}:${where.line}:${where.column}` : "";
  if (e.code === "ERR_UNSUPPORTED_TYPESCRIPT_SYNTAX") {
    return new SoloError("SOLO_ERR_DEPLOY_TYPESCRIPT_UNSUPPORTED", `${message}${at}`, {
      ...where,
      hint: "Solo strips types without transforming code: replace enums with `as const` objects, and namespaces or parameter properties with plain code",
    });
  }
  return new SoloError("SOLO_ERR_DEPLOY_SYNTAX", `syntax error${at}: ${message}`, {
    ...where,
    hint: "fix the syntax at the given line and column, then deploy again",
  });
}

// Node decorates a type-stripping error's stack with the failing line and carets under the
// columns ("<file>:<line>\n<source lines>\n<spaces>^^^"). That decoration is the only place the
// position is given; a test pins the format so a Node change cannot silently lose it. An error at
// the end of the input ("got '<eof>'") has no caret: its position is the end of the code. Failing
// all else, the decorated line at column 1: every syntax error says where.
function locate(stack: string, message: string, code: string): { line: number; column: number } | undefined {
  const m = /^[^\n]*:(\d+)\n(?:[^\n]*\n)*?( *)\^+ *\n/.exec(stack);
  if (m) return { line: Number(m[1]), column: (m[2] ?? "").length + 1 };
  if (message.includes("<eof>")) {
    const lines = code.split("\n");
    return { line: lines.length, column: (lines.at(-1) ?? "").length + 1 };
  }
  const l = /^[^\n]*:(\d+)\n/.exec(stack);
  return l ? { line: Number(l[1]), column: 1 } : undefined;
}
