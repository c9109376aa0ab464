/**
 * The `no-eval` rule: no `eval`, Function constructor, `constructor.constructor` chain or string timer.
 * Code arrives only through deploy. It is an early warning: names built at run time slip past it and
 * still meet the sandbox, which has no way to compile code (src/sandbox/bootstrap.ts).
 */

import type { AnyNode, CallExpression, Expression, Identifier, MemberExpression, NewExpression, Super } from "acorn";
import { type Context, isDeclared, type Reference, type RuleCheck, report, type Scope, staticName } from "./helpers.ts";
import { MISSING_GLOBALS } from "./unknown-global.ts";

const EVAL_HINT =
  "Code arrives only through deploy: write the logic as functions in this module, and read data with JSON.parse instead of evaluating it.";

const STRING_TIMERS = ["setTimeout", "setInterval", "setImmediate"];

interface EvalReference extends Reference {
  readonly kind: "read" | "function-constructor" | "string-timer" | "global-code";
  /** The expression as the message names it. */
  readonly what: string;
}

/** Reports code compiled at run time, unless the global it goes through is the module's own. */
export const noEval: RuleCheck = {
  id: "no-eval",
  globals: ["eval", "Function", "globalThis", ...STRING_TIMERS],
  check(cx) {
    const refs: EvalReference[] = [];
    /** `.constructor` accesses already judged as part of the chain around them. */
    const chained = new Set<AnyNode>();
    const call = (node: CallExpression | NewExpression, scope: Scope) => checkCall(node, scope, cx, refs);
    return {
      nodes: {
        CallExpression: call,
        NewExpression: call,
        MemberExpression: (node, scope) => checkMember(node, scope, cx, refs, chained),
        Identifier: (node, scope) => {
          if (node.name === "eval" && !cx.consumed.has(node))
            refs.push({ kind: "read", name: node.name, scope, at: node, what: node.name });
        },
      },
      finish() {
        for (const r of refs) if (!isDeclared(r.scope, r.name)) reportReference(r, cx);
      },
    };
  },
};

function checkCall(node: CallExpression | NewExpression, scope: Scope, cx: Context, refs: EvalReference[]): void {
  const callee = node.callee;
  const first = node.arguments[0];
  const ref = (kind: EvalReference["kind"], id: Identifier, what = id.name) => {
    cx.consumed.add(id);
    refs.push({ kind, name: id.name, scope, at: node, what });
  };
  if (callee.type === "Identifier") {
    if (callee.name === "Function") ref("function-constructor", callee);
    else if (
      STRING_TIMERS.includes(callee.name) &&
      (first?.type === "TemplateLiteral" || (first?.type === "Literal" && typeof first.value === "string"))
    )
      ref("string-timer", callee);
    return;
  }
  if (callee.type !== "MemberExpression" || callee.object.type !== "Identifier") return;
  const owner = callee.object;
  const member = staticName(callee.property, callee.computed);
  // globalThis.eval is caught as a member access, called or not.
  if (owner.name === "globalThis" && member === "Function") ref("global-code", owner, "globalThis.Function");
  else if (
    owner.name === "Reflect" &&
    (member === "construct" || member === "apply") &&
    first?.type === "Identifier" &&
    first.name === "Function"
  )
    ref("function-constructor", first);
}

/**
 * Member accesses that reach code compilation: `globalThis.eval`, and a `.constructor` that is certainly
 * a Function constructor (`x.constructor.constructor`, `(function () {}).constructor`,
 * `Function.prototype.constructor`, `Object.getPrototypeOf(async function () {}).constructor`).
 */
function checkMember(node: MemberExpression, scope: Scope, cx: Context, refs: EvalReference[], chained: Set<AnyNode>): void {
  const name = staticName(node.property, node.computed);
  if (name === "eval" && node.object.type === "Identifier" && node.object.name === "globalThis") {
    refs.push({ kind: "global-code", name: "globalThis", scope, at: node, what: "globalThis.eval" });
    return;
  }
  if (name !== "constructor" || chained.has(node)) return;
  const inner = node.object;
  if (inner.type === "MemberExpression") chained.add(inner);
  if (reachesFunctionConstructor(inner)) {
    report(cx, "no-eval", node, "this `.constructor` is a Function constructor, which compiles code at run time", EVAL_HINT);
  }
}

function reportReference(r: EvalReference, cx: Context): void {
  switch (r.kind) {
    case "read":
      report(cx, "no-eval", r.at, "`eval` compiles code at run time and does not exist in a Solo service", EVAL_HINT);
      break;
    case "function-constructor":
      report(cx, "no-eval", r.at, "the `Function` constructor compiles code at run time, which a Solo service cannot do", EVAL_HINT);
      break;
    case "global-code":
      report(cx, "no-eval", r.at, `\`${r.what}\` compiles code at run time, which a Solo service cannot do`, EVAL_HINT);
      break;
    case "string-timer":
      report(
        cx,
        "no-eval",
        r.at,
        `\`${r.name}\` with a string compiles that string as code; ${r.name} does not exist in a Solo service either`,
        `${EVAL_HINT} For a delay, ${MISSING_GLOBALS[r.name] ?? "use solo.sendAfter(ms, message)"}.`,
      );
      break;
  }
}

function reachesFunctionConstructor(inner: Expression | Super): boolean {
  if (isFunctionLiteral(inner)) return true;
  if (inner.type === "MemberExpression") {
    const name = staticName(inner.property, inner.computed);
    return name === "constructor" || (name === "prototype" && inner.object.type === "Identifier" && inner.object.name === "Function");
  }
  if (inner.type !== "CallExpression" || inner.callee.type !== "MemberExpression") return false;
  const arg = inner.arguments[0];
  return staticName(inner.callee.property, inner.callee.computed) === "getPrototypeOf" && arg !== undefined && isFunctionLiteral(arg);
}

function isFunctionLiteral(node: AnyNode): boolean {
  return node.type === "FunctionExpression" || node.type === "ArrowFunctionExpression" || node.type === "ClassExpression";
}
