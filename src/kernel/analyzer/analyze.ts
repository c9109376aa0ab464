/**
 * The analyzer's driver: parses a module, walks its tree once with the scopes it declares, hands each
 * node to the rules that look at it (rules/index.ts), lets every rule finish, and returns the findings
 * in source order with the handlers the default export defines.
 */

import type { AnyNode, Function as FunctionNode, Pattern, Program } from "acorn";
import { type Analysis, type AnalyzeOptions, DEFAULT_MAX_LITERAL_BYTES, RULES, type RuleId } from "./contract.ts";
import { type Check, type Context, handlersOf, type Push, parseModule, RULE_CHECKS, type Scope, visitors } from "./rules/index.ts";

const RULE_ORDER = new Map<RuleId, number>(RULES.map((r, i) => [r.id, i]));
/** Globals whose local declarations the walk tracks, so a shadowing declaration is honoured. */
const WATCHED = new Set(RULE_CHECKS.flatMap((r) => r.globals ?? []));

/**
 * Analyzes one service's JavaScript source (for TypeScript, the output of `stripTypes`, whose positions
 * are the author's). Never throws on any input: a syntax error is itself a `syntax` finding.
 *
 * @example
 * analyze("export default { handleCall(r, s) { return { reply: fetch(r), state: s } } }");
 * // { findings: [{ rule: "unknown-global", severity: "warning", line: 1, column: 53, ... }], handlers: ["handleCall"] }
 */
export function analyze(source: string, options: AnalyzeOptions = {}): Analysis {
  const parsed = parseModule(source);
  if (!("type" in parsed)) return { findings: [parsed], handlers: [] };
  const cx: Context = {
    source,
    findings: [],
    consumed: new Set(),
    maxLiteralBytes: options.maxLiteralBytes ?? DEFAULT_MAX_LITERAL_BYTES,
  };
  const checks = RULE_CHECKS.map((rule) => rule.check(cx));
  walkProgram(parsed, cx, hooksByType(checks));
  for (const check of checks) check.finish?.(parsed);
  // The sort is stable, so one rule's findings at one position keep the order the rule reported them in.
  const findings = cx.findings.sort(
    (a, b) => a.line - b.line || a.column - b.column || (RULE_ORDER.get(a.rule) ?? 0) - (RULE_ORDER.get(b.rule) ?? 0),
  );
  return { findings, handlers: handlersOf(parsed) };
}

type Hook = (node: AnyNode, scope: Scope) => void;

/** The rules' node hooks, by the node type they look at, in table order. */
function hooksByType(checks: readonly Check[]): Map<string, Hook[]> {
  const hooks = new Map<string, Hook[]>();
  for (const check of checks) {
    for (const [type, hook] of Object.entries(check.nodes ?? {})) {
      const list = hooks.get(type) ?? [];
      // Each hook is filed under the node type its key names, and the walk calls it only with nodes of that type.
      list.push(hook as Hook);
      hooks.set(type, list);
    }
  }
  return hooks;
}

// ---------------------------------------------------------------------------------------------------
// The walk: one pass over the tree with an explicit stack (deeply nested input cannot overflow ours),
// acorn-walk's visitors naming each node's children.

const BLOCK_SCOPES = new Set(["BlockStatement", "ForStatement", "ForInStatement", "ForOfStatement", "SwitchStatement", "StaticBlock"]);

function walkProgram(program: Program, cx: Context, hooks: Map<string, Hook[]>): void {
  const nodes: AnyNode[] = [program];
  const types: string[] = [program.type];
  const scopes: Scope[] = [{ parent: null, isFunction: true, names: null }];
  const push: Push = (node, st, type) => {
    nodes.push(node);
    types.push(type ?? node.type);
    scopes.push(st);
  };
  for (let node = nodes.pop(); node !== undefined; node = nodes.pop()) {
    const type = types.pop() as string;
    let scope = scopes.pop() as Scope;
    if (type === node.type) {
      for (const hook of hooks.get(type) ?? []) hook(node, scope);
      scope = enter(node, scope, cx);
    } else if (type === "Function") {
      scope = functionScope(node as FunctionNode, scope);
    } else if (type === "Class" && node.type === "ClassExpression" && node.id) {
      scope = { parent: scope, isFunction: false, names: null };
      declare(scope, node.id.name);
    }
    visitors[type]?.(node, scope, push);
  }
}

/** Records what a node declares and which identifiers under it are not reads; returns the scope its children live in. */
function enter(node: AnyNode, scope: Scope, cx: Context): Scope {
  switch (node.type) {
    case "ImportDeclaration":
      for (const s of node.specifiers) declare(scope, s.local.name);
      break;
    case "ExportAllDeclaration":
      // `export * as process from "x"` names an export; it reads nothing.
      if (node.exported) cx.consumed.add(node.exported);
      break;
    case "VariableDeclaration": {
      const target = node.kind === "var" ? functionOf(scope) : scope;
      for (const d of node.declarations) boundNames(d.id, (name) => declare(target, name));
      break;
    }
    case "FunctionDeclaration":
    case "ClassDeclaration":
      if (node.id) declare(scope, node.id.name);
      break;
    case "CatchClause": {
      const inner: Scope = { parent: scope, isFunction: false, names: null };
      if (node.param) boundNames(node.param, (name) => declare(inner, name));
      return inner;
    }
    case "UnaryExpression":
      // `typeof fetch` is how code asks whether a global exists; it is safe everywhere.
      if (node.operator === "typeof" && node.argument.type === "Identifier") cx.consumed.add(node.argument);
      break;
  }
  return BLOCK_SCOPES.has(node.type) ? { parent: scope, isFunction: false, names: null } : scope;
}

// ---------------------------------------------------------------------------------------------------
// Scopes

function declare(scope: Scope, name: string): void {
  if (!WATCHED.has(name)) return;
  scope.names ??= new Set();
  scope.names.add(name);
}

function functionOf(scope: Scope): Scope {
  let s = scope;
  while (!s.isFunction && s.parent !== null) s = s.parent;
  return s;
}

function functionScope(fn: FunctionNode, outer: Scope): Scope {
  const scope: Scope = { parent: outer, isFunction: true, names: null };
  // A function expression's own name is visible only inside it.
  if ((fn as AnyNode).type === "FunctionExpression" && fn.id) declare(scope, fn.id.name);
  for (const p of fn.params) boundNames(p, (name) => declare(scope, name));
  return scope;
}

/** Calls `each` with every name a binding pattern declares (without recursion: patterns nest freely). */
function boundNames(pattern: Pattern, each: (name: string) => void): void {
  const stack: Pattern[] = [pattern];
  for (let p = stack.pop(); p !== undefined; p = stack.pop()) {
    switch (p.type) {
      case "Identifier":
        each(p.name);
        break;
      case "ObjectPattern":
        for (const prop of p.properties) stack.push(prop.type === "RestElement" ? prop.argument : prop.value);
        break;
      case "ArrayPattern":
        for (const e of p.elements) if (e) stack.push(e);
        break;
      case "RestElement":
        stack.push(p.argument);
        break;
      case "AssignmentPattern":
        stack.push(p.left);
        break;
    }
  }
}
