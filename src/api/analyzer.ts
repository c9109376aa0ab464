// Public types: the analyzer's rules and what it finds in a service's code (the analyzer itself is
// the kernel's, src/kernel/analyzer/).

/** Every rule the analyzer applies, with the severity of its findings and what it checks. */
export const RULES = [
  { id: "syntax", severity: "error", description: "The source parses as a JavaScript ES module." },
  {
    id: "no-import",
    severity: "error",
    description: "No import declaration, dynamic import(), export ... from, or require(): a service is one self-contained module.",
  },
  {
    id: "no-eval",
    severity: "error",
    description: "No eval, Function constructor, constructor.constructor chain or string timer: code arrives only through deploy.",
  },
  {
    id: "default-export",
    severity: "error",
    description: "The default export is an object literal of handler functions with at least one of handleCall, handleCast, handleInfo.",
  },
  { id: "unknown-handler", severity: "warning", description: "A key of the default export looks like a misspelled handler name." },
  {
    id: "unbounded-loop",
    severity: "warning",
    description: "A loop whose condition is always true has no break, return, throw or yield that leaves it.",
  },
  {
    id: "large-literal",
    severity: "warning",
    description: "A string, template, array or object literal is larger than maxLiteralBytes (64 KiB by default).",
  },
  {
    id: "top-level-effect",
    severity: "warning",
    description: "The module's top level does work (calls, loops, assignments, await) instead of only declaring.",
  },
  {
    id: "unknown-global",
    severity: "warning",
    description: "The code reads a global the sandbox does not have (process, fetch, setTimeout, ...).",
  },
] as const;

/** One rule of {@link RULES}. */
export type Rule = (typeof RULES)[number];

/** The id of a rule, kebab-case. */
export type RuleId = Rule["id"];

/** `error` blocks a deploy; `warning` is reported and does not. */
export type Severity = "error" | "warning";

/**
 * One thing the analyzer found. `line` and `column` are both 1-based, as editors show them, and count
 * UTF-16 code units in the source given to `analyze` (the author's positions when that source came
 * through `stripTypes`, which keeps every character in place).
 */
export interface Finding {
  rule: RuleId;
  severity: Severity;
  message: string;
  line: number;
  column: number;
  hint: string;
}
