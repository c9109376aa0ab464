/**
 * What the analyzer's rules share: the shape of a rule's check and the context of one analysis, how a
 * finding gets its position, the scopes the walk builds, the name a key or member spells out, and
 * acorn-walk's visitors.
 */

import type { AnyNode, Expression, PrivateIdentifier, Program } from "acorn";
import { base } from "acorn-walk";
import { type Finding, RULES, type RuleId, type Severity } from "../contract.ts";

/** One analysis of one module, shared by the walk and every rule's check. */
export interface Context {
  readonly source: string;
  /** Where each line starts, computed with the first finding. */
  lines?: number[];
  readonly findings: Finding[];
  /**
   * Identifiers already judged by the expression around them (a call's callee, a typeof operand, an
   * export's name): they are not reads of a global. The walk visits a node before its children.
   */
  readonly consumed: Set<AnyNode>;
  readonly maxLiteralBytes: number;
}

type NodeOf<T extends AnyNode["type"]> = Extract<AnyNode, { type: T }>;

/** What a rule does with one module: it looks at nodes during the walk, then reports what is left. */
export interface Check {
  /** Called with each node of a type, parents before children, with the scope the node is in. */
  readonly nodes?: { readonly [T in AnyNode["type"]]?: (node: NodeOf<T>, scope: Scope) => void };
  /** Called once the walk is done (every declaration is known by then). */
  finish?(program: Program): void;
}

/** One entry of the rules table: a rule of RULES and the check it makes of each module. */
export interface RuleCheck {
  readonly id: RuleId;
  /** Globals whose local declarations the rule needs to know: a module that declares `fetch` reads its own. */
  readonly globals?: readonly string[];
  /** A new check for one analysis: its state lives in the closure. */
  check(cx: Context): Check;
}

const SEVERITY = new Map<RuleId, Severity>(RULES.map((r) => [r.id, r.severity]));

/** Records a finding at a node's start, or at 1:1 for the module as a whole. */
export function report(cx: Context, rule: RuleId, at: AnyNode | null, message: string, hint: string): void {
  const offset = at?.start ?? 0;
  cx.lines ??= lineStarts(cx.source);
  // The last line starting at or before the offset (binary search).
  let lo = 0;
  let hi = cx.lines.length - 1;
  while (lo < hi) {
    const mid = (lo + hi + 1) >> 1;
    if ((cx.lines[mid] ?? 0) <= offset) lo = mid;
    else hi = mid - 1;
  }
  const column = offset - (cx.lines[lo] ?? 0) + 1;
  cx.findings.push({ rule, severity: SEVERITY.get(rule) ?? "error", message, line: lo + 1, column, hint });
}

/** The offset each line starts at, with acorn's line terminators, so positions match its syntax errors. */
function lineStarts(source: string): number[] {
  const starts = [0];
  for (const m of source.matchAll(/\r\n?|[\n\u2028\u2029]/g)) starts.push(m.index + m[0].length);
  return starts;
}

/** A scope of the module, as the walk builds it. */
export interface Scope {
  readonly parent: Scope | null;
  readonly isFunction: boolean;
  /** The watched names declared here; null while there are none. */
  names: Set<string> | null;
}

/** A use of a watched global, judged after the walk, when every declaration in its scopes is known. */
export interface Reference {
  /** The global the reference depends on: if the module declares it, the reference is the module's own. */
  readonly name: string;
  readonly scope: Scope;
  readonly at: AnyNode;
}

/** Whether a name is declared in a scope or one around it. */
export function isDeclared(scope: Scope | null, name: string): boolean {
  for (let s = scope; s !== null; s = s.parent) if (s.names?.has(name)) return true;
  return false;
}

/** The name a member access or property key spells out in the source, if it is fixed there. */
export function staticName(key: Expression | PrivateIdentifier, computed: boolean): string | undefined {
  if (!computed) {
    if (key.type === "Identifier") return key.name;
    if (key.type === "Literal" && (typeof key.value === "string" || typeof key.value === "number")) return String(key.value);
    return undefined;
  }
  if (key.type === "Literal" && typeof key.value === "string") return key.value;
  if (key.type === "TemplateLiteral" && key.expressions.length === 0) return key.quasis[0]?.value.cooked ?? undefined;
  return undefined;
}

/** How acorn-walk's visitors hand on a child: the node, the state, and the type to visit it as. */
export type Push = (node: AnyNode, st: Scope, type?: string) => void;
/**
 * acorn-walk's visitors: for each node type (and aggregate type such as "Function"), how to reach its
 * children. (Why acorn and acorn-walk: syntax.ts.)
 */
// acorn-walk's typings leave out the callback's third argument (the type to visit a node as), which its
// own visitors pass and the walk needs.
export const visitors = base as unknown as Record<string, ((node: AnyNode, st: Scope, c: Push) => void) | undefined>;
