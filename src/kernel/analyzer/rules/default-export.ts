/**
 * The `default-export` rule: the default export is an object literal of handler functions with at least
 * one of handleCall, handleCast, handleInfo. Also how the default export resolves to that object, which
 * `unknown-handler` and the handlers of an analysis read.
 */

import type { AnyNode, ObjectExpression, Program, Property } from "acorn";
import { HANDLER_NAMES, type HandlerName } from "../contract.ts";
import { type Context, type RuleCheck, report, staticName } from "./helpers.ts";

const EXPORT_HINT =
  "End the module with `export default { init(args, ctx) { ... }, handleCall(request, state, ctx) { ... } }`: an object literal whose handlers are functions, with at least one of handleCall, handleCast, handleInfo.";

/** Reports a default export that is not an object of handlers the kernel can call. */
export const defaultExport: RuleCheck = {
  id: "default-export",
  check: (cx) => ({ finish: (program) => checkDefaultExport(program, cx) }),
};

/** The object literal the module exports as default (directly or through a top-level name), if it does. */
export function handlerObject(program: Program): ObjectExpression | undefined {
  const found = exportedObject(program);
  return "message" in found ? undefined : found;
}

/** The handlers the default export's object literal defines, in {@link HANDLER_NAMES} order. */
export function handlersOf(program: Program): HandlerName[] {
  const obj = handlerObject(program);
  if (obj === undefined) return [];
  const found = new Set(obj.properties.map((p) => (p.type === "Property" ? staticName(p.key, p.computed) : undefined)));
  return HANDLER_NAMES.filter((h) => found.has(h));
}

/** Whether a key names one of {@link HANDLER_NAMES}. */
export function isHandlerName(key: string): key is HandlerName {
  return (HANDLER_NAMES as readonly string[]).includes(key);
}

function checkDefaultExport(program: Program, cx: Context): void {
  const found = exportedObject(program);
  if ("message" in found) report(cx, "default-export", found.at, found.message, EXPORT_HINT);
  else checkHandlers(found, program, cx);
}

/** The default export's object literal, or where and why the default export is not one. */
function exportedObject(program: Program): ObjectExpression | { at: AnyNode | null; message: string } {
  const exported = defaultExportOf(program);
  if (exported === undefined) return { at: null, message: "the module has no default export, so the service has no handlers" };
  let target: AnyNode = exported;
  if (exported.type === "Identifier") {
    const bound = topLevelBinding(program, exported.name);
    if (bound === undefined || bound.type !== "ObjectExpression") {
      const what = bound === undefined ? "not bound to an object literal in this module" : `bound to ${describe(bound)}`;
      return { at: exported, message: `the default export \`${exported.name}\` is ${what}; it must be an object of handlers` };
    }
    target = bound;
  }
  if (target.type !== "ObjectExpression") {
    return { at: target, message: `the default export is ${describe(target)}; it must be an object literal of handlers` };
  }
  return target;
}

/** The expression or declaration the module exports as default, if it has one. */
function defaultExportOf(program: Program): AnyNode | undefined {
  for (const stmt of program.body) {
    if (stmt.type === "ExportDefaultDeclaration") return stmt.declaration;
    if (stmt.type === "ExportNamedDeclaration" && !stmt.source) {
      for (const s of stmt.specifiers) {
        const name = s.exported.type === "Identifier" ? s.exported.name : s.exported.value;
        if (name === "default") return s.local;
      }
    }
  }
  return undefined;
}

/** What a top-level name is bound to: a declaration's initializer, or the function or class declared. */
function topLevelBinding(program: Program, name: string): AnyNode | undefined {
  for (const raw of program.body) {
    const stmt = raw.type === "ExportNamedDeclaration" && raw.declaration ? raw.declaration : raw;
    if ((stmt.type === "FunctionDeclaration" || stmt.type === "ClassDeclaration") && stmt.id?.name === name) return stmt;
    if (stmt.type === "VariableDeclaration") {
      for (const d of stmt.declarations) if (d.id.type === "Identifier" && d.id.name === name) return d.init ?? undefined;
    }
  }
  return undefined;
}

function describe(node: AnyNode): string {
  switch (node.type) {
    case "FunctionDeclaration":
    case "FunctionExpression":
    case "ArrowFunctionExpression":
      return "a function";
    case "ClassDeclaration":
    case "ClassExpression":
      return "a class";
    case "ArrayExpression":
      return "an array";
    case "Literal":
      return node.value === null ? "null" : `a ${node.regex ? "regular expression" : typeof node.value}`;
    case "TemplateLiteral":
      return "a string";
    case "CallExpression":
      return "the result of a call";
    default:
      return "not an object literal";
  }
}

function checkHandlers(obj: ObjectExpression, program: Program, cx: Context): void {
  const found = new Set<HandlerName>();
  let opaque = false;
  for (const prop of obj.properties) {
    const key = prop.type === "Property" ? staticName(prop.key, prop.computed) : undefined;
    if (prop.type === "SpreadElement" || key === undefined) {
      opaque = true; // a spread or a computed key may bring any handler
      continue;
    }
    if (isHandlerName(key)) {
      found.add(key);
      checkHandlerValue(prop, key, program, cx);
    }
  }
  if (!opaque && !found.has("handleCall") && !found.has("handleCast") && !found.has("handleInfo")) {
    report(
      cx,
      "default-export",
      obj,
      "the default export has none of handleCall, handleCast or handleInfo, so the service could never receive a message",
      EXPORT_HINT,
    );
  }
}

function checkHandlerValue(prop: Property, key: HandlerName, program: Program, cx: Context): void {
  const problem = handlerValueProblem(prop, program);
  if (problem === undefined) return;
  report(
    cx,
    "default-export",
    prop.key,
    `handler \`${key}\` is ${problem}; it must be a function (a method, a function expression or an arrow)`,
    EXPORT_HINT,
  );
}

/** Why a handler's value is certainly not a function, if it is certain. */
function handlerValueProblem(prop: Property, program: Program): string | undefined {
  if (prop.kind !== "init") return `a ${prop.kind === "get" ? "getter" : "setter"}`;
  let value: AnyNode = prop.value;
  if (value.type === "Identifier") value = topLevelBinding(program, value.name) ?? value;
  switch (value.type) {
    case "FunctionExpression":
    case "FunctionDeclaration":
      return value.generator ? "a generator function (it would return an iterator, not a result)" : undefined;
    case "Literal":
    case "TemplateLiteral":
    case "ArrayExpression":
    case "ObjectExpression":
    case "ClassExpression":
    case "ClassDeclaration":
      return describe(value);
    default:
      // Anything else (an arrow, a call's result, a member, a name from elsewhere) may be a function; the kernel checks it at start.
      return undefined;
  }
}
