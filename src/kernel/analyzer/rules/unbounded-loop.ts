/**
 * The `unbounded-loop` rule: a loop whose condition is always true has no break, return, throw or yield
 * that leaves it. Such a loop runs into the message's CPU budget and crashes the service.
 */

import type {
  AnyNode,
  BreakStatement,
  ContinueStatement,
  DoWhileStatement,
  Expression,
  ForStatement,
  Statement,
  WhileStatement,
} from "acorn";
import { type Context, type Push, type RuleCheck, report, type Scope, visitors } from "./helpers.ts";

const LOOP_HINT =
  "Every message has a CPU budget (cpuMsPerMessage, 100 ms by default) and this loop would crash the service: give it an exit, or split long work across messages with solo.sendAfter.";

/** Reports loops that can never end. */
export const unboundedLoop: RuleCheck = {
  id: "unbounded-loop",
  check(cx) {
    /** The labels written in front of a statement (a label is visited before the statement it names). */
    const labels = new Map<AnyNode, string[]>();
    const loop = (node: WhileStatement | DoWhileStatement | ForStatement) => checkLoop(node, labels.get(node) ?? [], cx);
    return {
      nodes: {
        LabeledStatement: (node) => {
          labels.set(node.body, [...(labels.get(node) ?? []), node.label.name]);
        },
        WhileStatement: loop,
        DoWhileStatement: loop,
        ForStatement: loop,
      },
    };
  },
};

function checkLoop(loop: WhileStatement | DoWhileStatement | ForStatement, ownLabels: readonly string[], cx: Context): void {
  if (!alwaysTrue(loop.test) || leavesLoop(loop.body, ownLabels)) return;
  const what =
    loop.type === "ForStatement"
      ? "`for` loop without a condition"
      : `\`${loop.type === "WhileStatement" ? "while" : "do ... while"}\` loop`;
  report(cx, "unbounded-loop", loop, `this ${what} never ends: nothing in it breaks, returns or throws out of it`, LOOP_HINT);
}

function alwaysTrue(test: Expression | null | undefined): boolean {
  if (test === null || test === undefined) return true;
  if (test.type === "Literal") return test.regex !== undefined || Boolean(test.value);
  return (
    test.type === "UnaryExpression" &&
    test.operator === "!" &&
    test.argument.type === "Literal" &&
    !test.argument.regex &&
    !test.argument.value
  );
}

const BREAKABLE = new Set(["WhileStatement", "DoWhileStatement", "ForStatement", "ForInStatement", "ForOfStatement", "SwitchStatement"]);
const FUNCTIONS = new Set(["FunctionDeclaration", "FunctionExpression", "ArrowFunctionExpression"]);

/**
 * Whether the body of a loop has a way out at the loop's own level: a return, throw or yield (not inside
 * an inner function), an unlabeled break outside any inner loop or switch, or a labeled break or
 * continue to a label outside the loop (a continue to the loop's own label stays in it).
 */
function leavesLoop(body: Statement, ownLabels: readonly string[]): boolean {
  const nodes: AnyNode[] = [body];
  const types: string[] = [body.type];
  const innerFlags: boolean[] = [false];
  const labelsInside = new Set<string>();
  const jumps: (BreakStatement | ContinueStatement)[] = [];
  let inner = false;
  const push: Push = (node, _st, type) => {
    nodes.push(node);
    types.push(type ?? node.type);
    innerFlags.push(inner);
  };
  const noScope: Scope = { parent: null, isFunction: true, names: null };
  for (let node = nodes.pop(); node !== undefined; node = nodes.pop()) {
    const type = types.pop() as string;
    inner = innerFlags.pop() ?? false;
    if (type === node.type) {
      if (node.type === "ReturnStatement" || node.type === "ThrowStatement" || node.type === "YieldExpression") return true;
      if (node.type === "BreakStatement" && !node.label && !inner) return true;
      if ((node.type === "BreakStatement" || node.type === "ContinueStatement") && node.label) jumps.push(node);
      if (node.type === "LabeledStatement") labelsInside.add(node.label.name);
      if (FUNCTIONS.has(node.type)) continue;
      inner ||= BREAKABLE.has(node.type);
    }
    visitors[type]?.(node, noScope, push);
  }
  // Labels cannot be redeclared inside their own statement, so a label named inside the body is not one around it.
  return jumps.some((j) => {
    const label = j.label?.name ?? "";
    return !labelsInside.has(label) && (j.type === "BreakStatement" || !ownLabels.includes(label));
  });
}
