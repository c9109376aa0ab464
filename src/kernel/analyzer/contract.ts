/**
 * What the analyzer promises its callers: the rules it applies with their severities, the shape of a
 * finding, the handlers a service may define, and the options of `analyze`. The rules and the finding
 * are public types, kept in src/api/analyzer.ts; this imports nothing else.
 */
import type { Finding } from "../../api/analyzer.ts";

export { type Finding, RULES, type Rule, type RuleId, type Severity } from "../../api/analyzer.ts";

/** The handlers a service may define, in the order the kernel calls them in a service's life. */
export const HANDLER_NAMES = ["init", "handleCall", "handleCast", "handleInfo", "codeChange", "terminate"] as const;
/** One of {@link HANDLER_NAMES}. */
export type HandlerName = (typeof HANDLER_NAMES)[number];

/** What `analyze` returns: the findings in source order and the handlers the default export defines. */
export interface Analysis {
  /** Sorted by line, then column. */
  findings: Finding[];
  /** The handler keys of the default export's object literal, in {@link HANDLER_NAMES} order. */
  handlers: HandlerName[];
}

/** Options of `analyze`. */
export interface AnalyzeOptions {
  /** A literal whose source is larger than this many bytes of UTF-8 gets a `large-literal` warning. */
  maxLiteralBytes?: number;
}

/** The default of {@link AnalyzeOptions.maxLiteralBytes}: 64 KiB. */
export const DEFAULT_MAX_LITERAL_BYTES = 64 * 1024;
