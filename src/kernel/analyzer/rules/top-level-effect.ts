/**
 * The `top-level-effect` rule: the module's top level only declares. Work there (calls, loops,
 * assignments, await) runs when the module loads, outside any handler and its budget.
 */

import type { AnyNode, CallExpression, NewExpression, Program, Statement } from "acorn";
import { type Context, type RuleCheck, report, staticName } from "./helpers.ts";

const EFFECT_HINT =
  "Do work in init(args, ctx), which runs under the message budget with the deploy's args (solo.storage and solo.emit work there, not at top level); keep the top level to declarations.";

/** Reports the first piece of work in each top-level statement. */
export const topLevelEffect: RuleCheck = {
  id: "top-level-effect",
  check: (cx) => ({ finish: (program) => checkTopLevel(program, cx) }),
};

const STATEMENT_WORDS: Readonly<Record<string, string>> = {
  IfStatement: "an `if` statement",
  ForStatement: "a loop",
  ForInStatement: "a loop",
  ForOfStatement: "a loop",
  WhileStatement: "a loop",
  DoWhileStatement: "a loop",
  TryStatement: "a `try` statement",
  SwitchStatement: "a `switch` statement",
  ThrowStatement: "a `throw`",
  BlockStatement: "a block",
  LabeledStatement: "a labeled statement",
  WithStatement: "a `with` statement",
};

const EXPRESSION_WORDS: Readonly<Record<string, string>> = {
  CallExpression: "a call",
  NewExpression: "a `new` expression",
  AssignmentExpression: "an assignment",
  UpdateExpression: "an update (`++`/`--`)",
  AwaitExpression: "an `await`",
  TaggedTemplateExpression: "a tagged template (a call)",
  UnaryExpression: "a `delete`",
  YieldExpression: "a `yield`",
  ImportExpression: "a dynamic import",
  StaticBlock: "a class `static` block",
};

function checkTopLevel(program: Program, cx: Context): void {
  for (const stmt of program.body) {
    switch (stmt.type) {
      case "ImportDeclaration":
      case "ExportAllDeclaration":
      case "ExportDefaultDeclaration": // judged by default-export
      case "FunctionDeclaration":
      case "EmptyStatement":
      case "DebuggerStatement":
        break;
      case "ExportNamedDeclaration":
        if (stmt.declaration) effectOfDeclaration(stmt.declaration, cx);
        break;
      case "VariableDeclaration":
      case "ClassDeclaration":
        effectOfDeclaration(stmt, cx);
        break;
      case "ExpressionStatement":
        if (stmt.directive === undefined) reportEffect(firstEffect(stmt.expression), cx);
        break;
      default:
        report(
          cx,
          "top-level-effect",
          stmt,
          `${STATEMENT_WORDS[stmt.type] ?? "this statement"} at top level runs when the module loads, outside any handler`,
          EFFECT_HINT,
        );
    }
  }
}

function effectOfDeclaration(decl: Statement, cx: Context): void {
  if (decl.type === "ClassDeclaration") reportEffect(firstEffect(decl), cx);
  if (decl.type !== "VariableDeclaration") return;
  for (const d of decl.declarations) if (d.init) reportEffect(firstEffect(d.init), cx);
}

function reportEffect(node: AnyNode | undefined, cx: Context): void {
  if (node === undefined) return;
  const what = EXPRESSION_WORDS[node.type] ?? "this expression";
  report(cx, "top-level-effect", node, `${what} at top level runs when the module loads, outside any handler`, EFFECT_HINT);
}

/**
 * The first part of a top-level initializer that does work when the module loads, or undefined when it
 * only builds values: literals, functions, classes without static code, object and array literals of
 * those, operators on them, reads of names, `new Map()`-like collections, `Object.freeze(...)`.
 */
function firstEffect(expr: AnyNode): AnyNode | undefined {
  const stack: AnyNode[] = [expr];
  for (let e = stack.pop(); e !== undefined; e = stack.pop()) {
    switch (e.type) {
      case "Literal":
      case "Identifier":
      case "ThisExpression":
      case "FunctionExpression":
      case "ArrowFunctionExpression":
      case "TemplateElement":
        break;
      case "TemplateLiteral":
      case "SequenceExpression":
        stack.push(...e.expressions);
        break;
      case "ArrayExpression":
        for (const el of e.elements) if (el) stack.push(el);
        break;
      case "ObjectExpression":
        for (const p of e.properties)
          stack.push(...(p.type === "SpreadElement" ? [p.argument] : p.computed ? [p.key, p.value] : [p.value]));
        break;
      case "SpreadElement":
      case "ChainExpression":
      case "ParenthesizedExpression":
        stack.push("argument" in e ? e.argument : e.expression);
        break;
      case "UnaryExpression":
        if (e.operator === "delete") return e;
        stack.push(e.argument);
        break;
      case "BinaryExpression":
      case "LogicalExpression":
        stack.push(e.left, e.right);
        break;
      case "ConditionalExpression":
        stack.push(e.test, e.consequent, e.alternate);
        break;
      case "MemberExpression":
        stack.push(e.object);
        if (e.computed) stack.push(e.property);
        break;
      case "ClassExpression":
      case "ClassDeclaration":
        if (e.superClass) stack.push(e.superClass);
        for (const m of e.body.body) {
          if (m.type === "StaticBlock") return m;
          if (m.computed) stack.push(m.key);
          if (m.type === "PropertyDefinition" && m.static && m.value) stack.push(m.value);
        }
        break;
      case "NewExpression":
      case "CallExpression":
        if (!isPureConstruction(e)) return e;
        stack.push(...e.arguments);
        break;
      default:
        return e;
    }
  }
  return undefined;
}

const COLLECTIONS = new Set(["Map", "Set", "WeakMap", "WeakSet"]);

function isPureConstruction(e: CallExpression | NewExpression): boolean {
  const c = e.callee;
  if (e.type === "NewExpression") return c.type === "Identifier" && COLLECTIONS.has(c.name);
  if (c.type === "Identifier") return c.name === "Symbol";
  if (c.type !== "MemberExpression" || c.object.type !== "Identifier") return false;
  const member = staticName(c.property, c.computed);
  return (c.object.name === "Object" && member === "freeze") || (c.object.name === "Symbol" && member === "for");
}
