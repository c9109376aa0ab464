/**
 * The static analyzer: reads a service's source before it is deployed and reports findings with a
 * rule, a severity, a message, the author's line and column, and a fix hint a model can act on.
 * `error` findings block a deploy; `warning` findings do not.
 *
 * It is an early warning, never the security boundary: code that slips past it (`globalThis["ev" +
 * "al"]`, names built at run time) still meets the sandbox, which has no eval, Function constructor,
 * process or network to reach (src/sandbox/bootstrap.ts).
 *
 * This file is what the rest of Solo imports: analyze.ts is the driver, contract.ts the rules and
 * the finding's shape, rules/ one file per rule.
 *
 * @example
 * const { findings, handlers } = analyze(stripTypes(code, "counter.ts"));
 * if (findings.some((f) => f.severity === "error")) refuse(findings);
 */

export { analyze } from "./analyze.ts";
export type { Analysis, AnalyzeOptions, Finding, HandlerName, Rule, RuleId, Severity } from "./contract.ts";
export { RULES } from "./contract.ts";
