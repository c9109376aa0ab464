/**
 * The rules table: every rule the analyzer applies to a parsed module, in the order of RULES. `syntax`
 * is not in it: acorn reports it while parsing (syntax.ts), and a module that does not parse gets no
 * other finding. A test checks the table against RULES.
 */

import { defaultExport } from "./default-export.ts";
import type { RuleCheck } from "./helpers.ts";
import { largeLiteral } from "./large-literal.ts";
import { noEval } from "./no-eval.ts";
import { noImport } from "./no-import.ts";
import { topLevelEffect } from "./top-level-effect.ts";
import { unboundedLoop } from "./unbounded-loop.ts";
import { unknownGlobal } from "./unknown-global.ts";
import { unknownHandler } from "./unknown-handler.ts";

/** The checks the analyzer makes of every module that parses. */
export const RULE_CHECKS: readonly RuleCheck[] = [
  noImport,
  noEval,
  defaultExport,
  unknownHandler,
  unboundedLoop,
  largeLiteral,
  topLevelEffect,
  unknownGlobal,
];

export { handlersOf } from "./default-export.ts";
export type { Check, Context, Push, RuleCheck, Scope } from "./helpers.ts";
export { visitors } from "./helpers.ts";
export { parseModule } from "./syntax.ts";
export { MISSING_GLOBALS } from "./unknown-global.ts";
