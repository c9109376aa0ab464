/**
 * The `syntax` rule: the source parses as a JavaScript ES module. acorn reports it while parsing, so it
 * is the one rule outside the rules table: a module that does not parse gets this finding and no other.
 */

// acorn is a small, pure-JavaScript ECMAScript parser that follows the standard closely and gives exact
// positions; acorn-walk knows the children of every ESTree node type, so syntax a later acorn adds is
// walked without changes here. Neither needs native code or a compiler at install (DESIGN.md).
import { type Program, parse } from "acorn";
import type { Finding } from "../contract.ts";

/** The module's tree, or the `syntax` finding where acorn gave up. */
export function parseModule(source: string): Program | Finding {
  try {
    // Positions come from offsets (see lineStarts in helpers.ts), which keeps acorn from building a location per node.
    return parse(source, { ecmaVersion: "latest", sourceType: "module" });
  } catch (err) {
    // acorn reports every syntax error, and a stack too shallow for the input's nesting, as a SyntaxError
    // carrying the position; anything else is a defect here and must not pass for a finding.
    const loc = (err as { loc?: unknown }).loc as { line: number; column: number } | undefined;
    if (!(err instanceof SyntaxError) || loc === undefined) throw err;
    const message = err.message.replace(/ \(\d+:\d+\)$/, "");
    return {
      rule: "syntax",
      severity: "error",
      message: `syntax error: ${message}`,
      line: loc.line,
      column: loc.column + 1,
      hint: "Fix the syntax at this line and column. A service is one ES module of JavaScript, or TypeScript whose types can be stripped.",
    };
  }
}
