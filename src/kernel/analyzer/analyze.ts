/**
 * The static analyzer: reads a service's source before it is deployed and reports findings with a
 * rule, a severity, a message, the author's line and column, and a fix hint a model can act on.
 * `error` findings block a deploy; `warning` findings do not.
 *
 * It is an early warning, never the security boundary: code that slips past it (`globalThis["ev" +
 * "al"]`, names built at run time) still meets the sandbox, which has no eval, Function constructor,
 * process or network to reach (src/sandbox/bootstrap.ts).
 *
 * @example
 * const { findings, handlers } = analyze(stripTypes(code, "counter.ts"));
 * if (findings.some((f) => f.severity === "error")) refuse(findings);
 */

// acorn is a small, pure-JavaScript ECMAScript parser that follows the standard closely and gives exact
// positions; acorn-walk knows the children of every ESTree node type, so syntax a later acorn adds is
// walked without changes here. Neither needs native code or a compiler at install (DESIGN.md).
import type {
  AnyNode,
  BreakStatement,
  CallExpression,
  ContinueStatement,
  DoWhileStatement,
  Expression,
  ForStatement,
  Function as FunctionNode,
  Identifier,
  MemberExpression,
  NewExpression,
  ObjectExpression,
  Pattern,
  PrivateIdentifier,
  Program,
  Property,
  Statement,
  Super,
  WhileStatement,
} from "acorn";
import { parse } from "acorn";
import { base } from "acorn-walk";

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
 * UTF-16 code units in the source given to {@link analyze} (the author's positions when that source
 * came through `stripTypes`, which keeps every character in place).
 */
export interface Finding {
  rule: RuleId;
  severity: Severity;
  message: string;
  line: number;
  column: number;
  hint: string;
}

/** The handlers a service may define, in the order the kernel calls them in a service's life. */
export const HANDLER_NAMES = ["init", "handleCall", "handleCast", "handleInfo", "codeChange", "terminate"] as const;
/** One of {@link HANDLER_NAMES}. */
export type HandlerName = (typeof HANDLER_NAMES)[number];

/** What {@link analyze} returns: the findings in source order and the handlers the default export defines. */
export interface Analysis {
  /** Sorted by line, then column. */
  findings: Finding[];
  /** The handler keys of the default export's object literal, in {@link HANDLER_NAMES} order. */
  handlers: HandlerName[];
}

/** Options of {@link analyze}. */
export interface AnalyzeOptions {
  /** A literal whose source is larger than this many bytes of UTF-8 gets a `large-literal` warning. */
  maxLiteralBytes?: number;
}

/** The default of {@link AnalyzeOptions.maxLiteralBytes}: 64 KiB. */
export const DEFAULT_MAX_LITERAL_BYTES = 64 * 1024;

/**
 * Globals a service's sandbox does not have, each with what to use instead. A test checks every name
 * against a real sandbox. (`queueMicrotask` is not here: QuickJS-ng provides it.)
 */
export const MISSING_GLOBALS: Readonly<Record<string, string>> = {
  process: "there is no process in a service: pass configuration as deploy args (init's first argument)",
  require: "a service is one self-contained module: put the code it needs in it and reach other services with solo.call / solo.cast",
  module: "a service is an ES module: export its handlers with `export default { ... }`",
  exports: "a service is an ES module: export its handlers with `export default { ... }`",
  global: "use globalThis",
  self: "use globalThis",
  window: "a service has no browser window: use globalThis for the global object",
  document: "a service has no DOM: it handles messages and returns JSON data",
  navigator: "a service has no browser environment: its identity is in ctx (tenant, service, version)",
  localStorage: "use solo.storage (get, put, delete, list), which is durable and private to the service",
  Buffer: "use strings or Uint8Array; messages and state are JSON, so carry binary data as strings (for example base64)",
  fetch:
    "use solo.fetch(url, { method, headers, body }): outbound HTTP(S) to the hosts the deployment was granted (grants: { fetch: { hosts: [...] } })",
  XMLHttpRequest: "not available yet: network access arrives as a gated power; ask another service with solo.call",
  WebSocket: "not available: a service talks to other services with solo.call / solo.cast",
  Request: "not available yet: network access arrives as a gated power",
  Response: "not available yet: network access arrives as a gated power",
  Headers: "not available yet: network access arrives as a gated power",
  AbortController: "not available: solo.call takes { timeoutMs } to bound a wait",
  URL: "not available: parse the string yourself, or pass its parts in the request",
  URLSearchParams: "not available: parse the string yourself, or pass the parameters as a JSON object",
  setTimeout: "use solo.sendAfter(ms, message): the message arrives at handleInfo",
  setInterval: "use solo.sendAfter(ms, message), and send the next one from handleInfo each time",
  setImmediate: "use solo.sendAfter(0, message) to continue in a later message",
  clearTimeout: "use solo.cancelTimer(id) with the id solo.sendAfter returned",
  clearInterval: "use solo.cancelTimer(id) with the id solo.sendAfter returned",
  performance: "there is no high-resolution clock in a service: use Date.now() (milliseconds)",
  SharedArrayBuffer: "there is no shared memory in a service: use ArrayBuffer",
  Atomics: "there is no shared memory in a service: a service handles one message at a time, so it needs no atomics",
  WebAssembly: "a service cannot compile code at run time: code arrives only through deploy",
  WeakRef: "garbage collection is not observable in a service: keep entries in a Map and delete them when done",
  FinalizationRegistry: "garbage collection is not observable in a service: clean up explicitly (terminate runs when the service stops)",
  crypto: "there is no crypto in a service yet; Math.random() is available but not suitable for secrets",
  structuredClone: "service data is JSON: copy it with JSON.parse(JSON.stringify(value))",
  TextEncoder: "not available: messages and state are strings and JSON; carry bytes as strings (for example base64)",
  TextDecoder: "not available: messages and state are strings and JSON; carry bytes as strings (for example base64)",
  atob: "not available: decode base64 with your own function, or send the data as a string",
  btoa: "not available: encode base64 with your own function, or send the data as a string",
  Intl: "not available: format numbers and dates with your own code (Date#toISOString works)",
  __dirname: "a service has no file system: its identity is in ctx (tenant, service, version)",
  __filename: "a service has no file system: its identity is in ctx (tenant, service, version)",
};

const IMPORT_HINT =
  "A service is one self-contained module: put the code it needs in this module, and reach everything outside it through the solo object (solo.call, solo.cast, solo.storage).";
const EVAL_HINT =
  "Code arrives only through deploy: write the logic as functions in this module, and read data with JSON.parse instead of evaluating it.";
const EXPORT_HINT =
  "End the module with `export default { init(args, ctx) { ... }, handleCall(request, state, ctx) { ... } }`: an object literal whose handlers are functions, with at least one of handleCall, handleCast, handleInfo.";
const LOOP_HINT =
  "Every message has a CPU budget (cpuMsPerMessage, 100 ms by default) and this loop would crash the service: give it an exit, or split long work across messages with solo.sendAfter.";
const LITERAL_HINT = "Keep large data out of the code: store it with solo.storage, or pass it as deploy args and keep it in the state.";
const EFFECT_HINT =
  "Do work in init(args, ctx), which runs under the message budget with the deploy's args (solo.storage and solo.emit work there, not at top level); keep the top level to declarations.";

const MISSING = new Map(Object.entries(MISSING_GLOBALS));
/** Globals whose local declarations the walk tracks, so a shadowing declaration is honoured. */
const WATCHED = new Set([...MISSING.keys(), "eval", "Function", "globalThis"]);
const STRING_TIMERS = new Set(["setTimeout", "setInterval", "setImmediate"]);
const SEVERITY = new Map<RuleId, Severity>(RULES.map((r) => [r.id, r.severity]));
const RULE_ORDER = new Map<RuleId, number>(RULES.map((r, i) => [r.id, i]));

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
  const w: Walk = {
    source,
    findings: [],
    refs: [],
    consumed: new Set(),
    labels: new Map(),
    literals: [],
    maxLiteralBytes: options.maxLiteralBytes ?? DEFAULT_MAX_LITERAL_BYTES,
    bytes: byteCounter(source),
  };
  walkProgram(parsed, w);
  resolveReferences(w);
  reportLiterals(w);
  checkTopLevel(parsed, w);
  const handlers = checkDefaultExport(parsed, w);
  const findings = w.findings.sort(
    (a, b) => a.line - b.line || a.column - b.column || (RULE_ORDER.get(a.rule) ?? 0) - (RULE_ORDER.get(b.rule) ?? 0),
  );
  return { findings, handlers };
}

// ---------------------------------------------------------------------------------------------------
// Parsing

function parseModule(source: string): Program | Finding {
  try {
    // Positions come from offsets (see lineStarts), which keeps acorn from building a location per node.
    return parse(source, { ecmaVersion: "latest", sourceType: "module" });
  } catch (err) {
    // acorn reports every syntax error, and a stack too shallow for the input's nesting, as a SyntaxError
    // carrying the position; anything else is a defect here and must not pass for a finding.
    const loc = (err as { loc?: unknown }).loc as { line: number; column: number } | undefined;
    if (!(err instanceof SyntaxError) || loc === undefined) throw err;
    const message = err.message.replace(/ \(\d+:\d+\)$/, "");
    return {
      rule: "syntax",
      severity: "error",
      message: `syntax error: ${message}`,
      line: loc.line,
      column: loc.column + 1,
      hint: "Fix the syntax at this line and column. A service is one ES module of JavaScript, or TypeScript whose types can be stripped.",
    };
  }
}

// ---------------------------------------------------------------------------------------------------
// Findings and positions

interface Walk {
  source: string;
  /** Where each line starts, computed with the first finding. */
  lines?: number[];
  findings: Finding[];
  /** Reads of watched globals and calls that depend on them, resolved once every declaration is known. */
  refs: Reference[];
  /** Identifiers already judged by the expression around them (a call's callee, a typeof operand). */
  consumed: Set<AnyNode>;
  /** The labels written in front of a statement. */
  labels: Map<AnyNode, string[]>;
  /** Literals over the size limit, outermost first along any path. */
  literals: BigLiteral[];
  maxLiteralBytes: number;
  bytes: (start: number, end: number) => number;
}

/** Records a finding at a node's start, or at 1:1 for the module as a whole. */
function add(w: Walk, rule: RuleId, at: AnyNode | null, message: string, hint: string): void {
  const offset = at?.start ?? 0;
  w.lines ??= lineStarts(w.source);
  // The last line starting at or before the offset (binary search).
  let lo = 0;
  let hi = w.lines.length - 1;
  while (lo < hi) {
    const mid = (lo + hi + 1) >> 1;
    if ((w.lines[mid] ?? 0) <= offset) lo = mid;
    else hi = mid - 1;
  }
  const column = offset - (w.lines[lo] ?? 0) + 1;
  w.findings.push({ rule, severity: SEVERITY.get(rule) ?? "error", message, line: lo + 1, column, hint });
}

/** The offset each line starts at, with acorn's line terminators, so positions match its syntax errors. */
function lineStarts(source: string): number[] {
  const starts = [0];
  for (const m of source.matchAll(/\r\n?|[\n\u2028\u2029]/g)) starts.push(m.index + m[0].length);
  return starts;
}

/** Bytes of UTF-8 between two source offsets, in constant time after one pass over a non-ASCII source. */
function byteCounter(source: string): (start: number, end: number) => number {
  if (!/[\u0080-\uffff]/.test(source)) return (start, end) => end - start;
  let prefix: Uint32Array | undefined;
  return (start, end) => {
    if (prefix === undefined) {
      prefix = new Uint32Array(source.length + 1);
      let sum = 0;
      for (let i = 0; i < source.length; i++) {
        const c = source.charCodeAt(i);
        // Each half of a surrogate pair counts 2 of the pair's 4 bytes.
        sum += c < 0x80 ? 1 : c < 0x800 || (c >= 0xd800 && c < 0xe000) ? 2 : 3;
        prefix[i + 1] = sum;
      }
    }
    return (prefix[end] ?? 0) - (prefix[start] ?? 0);
  };
}

function formatBytes(n: number): string {
  return n < 1024 ? `${n} bytes` : `${(n / 1024).toFixed(1).replace(/\.0$/, "")} KiB`;
}

/** The name a member access or property key spells out in the source, if it is fixed there. */
function staticName(key: Expression | PrivateIdentifier, computed: boolean): string | undefined {
  if (!computed) {
    if (key.type === "Identifier") return key.name;
    if (key.type === "Literal" && (typeof key.value === "string" || typeof key.value === "number")) return String(key.value);
    return undefined;
  }
  if (key.type === "Literal" && typeof key.value === "string") return key.value;
  if (key.type === "TemplateLiteral" && key.expressions.length === 0) return key.quasis[0]?.value.cooked ?? undefined;
  return undefined;
}

// ---------------------------------------------------------------------------------------------------
// The walk: one pass over the tree with an explicit stack (deeply nested input cannot overflow ours),
// acorn-walk's visitors naming each node's children.

interface Scope {
  readonly parent: Scope | null;
  readonly isFunction: boolean;
  /** The watched names declared here; null while there are none. */
  names: Set<string> | null;
}

interface BigLiteral {
  readonly node: AnyNode;
  readonly bytes: number;
  readonly parent: BigLiteral | null;
  /** Holds a function or class: code rather than data, so its size is not a data literal's. */
  code: boolean;
}

type Push = (node: AnyNode, st: Scope, type?: string) => void;
// acorn-walk's typings leave out the callback's third argument (the type to visit a node as), which its
// own visitors pass and the walk needs.
const visitors = base as unknown as Record<string, ((node: AnyNode, st: Scope, c: Push) => void) | undefined>;

const BLOCK_SCOPES = new Set(["BlockStatement", "ForStatement", "ForInStatement", "ForOfStatement", "SwitchStatement", "StaticBlock"]);

function walkProgram(program: Program, w: Walk): void {
  const nodes: AnyNode[] = [program];
  const types: string[] = [program.type];
  const scopes: Scope[] = [{ parent: null, isFunction: true, names: null }];
  const enclosing: (BigLiteral | null)[] = [null];
  let big: BigLiteral | null = null;
  const push: Push = (node, st, type) => {
    nodes.push(node);
    types.push(type ?? node.type);
    scopes.push(st);
    enclosing.push(big);
  };
  for (let node = nodes.pop(); node !== undefined; node = nodes.pop()) {
    const type = types.pop() as string;
    let scope = scopes.pop() as Scope;
    big = enclosing.pop() ?? null;
    if (type === node.type) {
      big = measureLiteral(node, big, w);
      scope = visit(node, scope, big, w);
    } else if (type === "Function") {
      scope = functionScope(node as FunctionNode, scope);
    } else if (type === "Class" && node.type === "ClassExpression" && node.id) {
      scope = { parent: scope, isFunction: false, names: null };
      declare(scope, node.id.name);
    }
    visitors[type]?.(node, scope, push);
  }
}

/** Applies the rules that look at one node; returns the scope its children live in. */
function visit(node: AnyNode, scope: Scope, big: BigLiteral | null, w: Walk): Scope {
  switch (node.type) {
    case "ImportDeclaration":
      for (const s of node.specifiers) declare(scope, s.local.name);
      add(w, "no-import", node, `\`import ... from ${node.source.raw}\`: a service cannot load other modules`, IMPORT_HINT);
      break;
    case "ImportExpression":
      add(w, "no-import", node, "dynamic `import()`: a service cannot load other modules", IMPORT_HINT);
      break;
    case "ExportNamedDeclaration":
      if (node.source)
        add(w, "no-import", node, `\`export ... from ${node.source.raw}\`: a service cannot load other modules`, IMPORT_HINT);
      break;
    case "ExportAllDeclaration":
      if (node.exported) w.consumed.add(node.exported);
      add(w, "no-import", node, `\`export * from ${node.source.raw}\`: a service cannot load other modules`, IMPORT_HINT);
      break;
    case "VariableDeclaration": {
      const target = node.kind === "var" ? functionOf(scope) : scope;
      for (const d of node.declarations) boundNames(d.id, (name) => declare(target, name));
      break;
    }
    case "FunctionDeclaration":
    case "ClassDeclaration":
      if (node.id) declare(scope, node.id.name);
      markCode(big);
      break;
    case "FunctionExpression":
    case "ArrowFunctionExpression":
    case "ClassExpression":
      markCode(big);
      break;
    case "CatchClause": {
      const inner: Scope = { parent: scope, isFunction: false, names: null };
      if (node.param) boundNames(node.param, (name) => declare(inner, name));
      return inner;
    }
    case "CallExpression":
    case "NewExpression":
      checkCall(node, scope, w);
      break;
    case "MemberExpression":
      checkMember(node, scope, w);
      break;
    case "UnaryExpression":
      // `typeof fetch` is how code asks whether a global exists; it is safe everywhere.
      if (node.operator === "typeof" && node.argument.type === "Identifier") w.consumed.add(node.argument);
      break;
    case "Identifier":
      if ((node.name === "eval" || MISSING.has(node.name)) && !w.consumed.has(node))
        w.refs.push({ kind: "read", name: node.name, scope, at: node });
      break;
    case "LabeledStatement":
      w.labels.set(node.body, [...(w.labels.get(node) ?? []), node.label.name]);
      break;
    case "WhileStatement":
    case "DoWhileStatement":
    case "ForStatement":
      checkLoop(node, w);
      break;
  }
  return BLOCK_SCOPES.has(node.type) ? { parent: scope, isFunction: false, names: null } : scope;
}

// ---------------------------------------------------------------------------------------------------
// Scopes and references

type ReferenceKind = "read" | "function-constructor" | "require" | "string-timer" | "global-code";

interface Reference {
  kind: ReferenceKind;
  /** The global the reference depends on: if the module declares it, the reference is the module's own. */
  name: string;
  scope: Scope;
  at: AnyNode;
  /** The expression as the message names it. */
  what?: string;
}

function declare(scope: Scope, name: string): void {
  if (!WATCHED.has(name)) return;
  scope.names ??= new Set();
  scope.names.add(name);
}

function isDeclared(scope: Scope | null, name: string): boolean {
  for (let s = scope; s !== null; s = s.parent) if (s.names?.has(name)) return true;
  return false;
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

function checkCall(node: CallExpression | NewExpression, scope: Scope, w: Walk): void {
  const callee = node.callee;
  const first = node.arguments[0];
  const ref = (kind: ReferenceKind, id: Identifier, what = id.name) => {
    w.consumed.add(id);
    w.refs.push({ kind, name: id.name, scope, at: node, what });
  };
  if (callee.type === "Identifier") {
    if (callee.name === "Function") ref("function-constructor", callee);
    else if (callee.name === "require" && node.type === "CallExpression") ref("require", callee);
    else if (
      STRING_TIMERS.has(callee.name) &&
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
function checkMember(node: MemberExpression, scope: Scope, w: Walk): void {
  const name = staticName(node.property, node.computed);
  if (name === "eval" && node.object.type === "Identifier" && node.object.name === "globalThis") {
    w.refs.push({ kind: "global-code", name: "globalThis", scope, at: node, what: "globalThis.eval" });
    return;
  }
  if (name !== "constructor" || w.consumed.has(node)) return;
  const inner = node.object;
  if (inner.type === "MemberExpression") w.consumed.add(inner);
  if (reachesFunctionConstructor(inner)) {
    add(w, "no-eval", node, "this `.constructor` is a Function constructor, which compiles code at run time", EVAL_HINT);
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

function resolveReferences(w: Walk): void {
  for (const r of w.refs) {
    if (isDeclared(r.scope, r.name)) continue;
    switch (r.kind) {
      case "read":
        if (r.name === "eval") add(w, "no-eval", r.at, "`eval` compiles code at run time and does not exist in a Solo service", EVAL_HINT);
        else {
          const hint = MISSING.get(r.name);
          if (hint !== undefined) add(w, "unknown-global", r.at, `\`${r.name}\` does not exist in a Solo service`, hint);
        }
        break;
      case "function-constructor":
        add(w, "no-eval", r.at, "the `Function` constructor compiles code at run time, which a Solo service cannot do", EVAL_HINT);
        break;
      case "global-code":
        add(w, "no-eval", r.at, `\`${r.what}\` compiles code at run time, which a Solo service cannot do`, EVAL_HINT);
        break;
      case "string-timer":
        add(
          w,
          "no-eval",
          r.at,
          `\`${r.name}\` with a string compiles that string as code; ${r.name} does not exist in a Solo service either`,
          `${EVAL_HINT} For a delay, ${MISSING.get(r.name) ?? "use solo.sendAfter(ms, message)"}.`,
        );
        break;
      case "require":
        add(w, "no-import", r.at, "`require(...)`: a service cannot load other modules", IMPORT_HINT);
        break;
    }
  }
}

// ---------------------------------------------------------------------------------------------------
// Large literals

const LITERAL_KINDS: Readonly<Record<string, string>> = {
  Literal: "string",
  TemplateLiteral: "template",
  ArrayExpression: "array",
  ObjectExpression: "object",
};

/** Notes a literal over the limit; returns the innermost such literal around the node's children. */
function measureLiteral(node: AnyNode, big: BigLiteral | null, w: Walk): BigLiteral | null {
  if (LITERAL_KINDS[node.type] === undefined || (node.type === "Literal" && typeof node.value !== "string")) return big;
  // A UTF-16 code unit is at most 3 bytes of UTF-8, so most literals need no count.
  if ((node.end - node.start) * 3 <= w.maxLiteralBytes) return big;
  const bytes = w.bytes(node.start, node.end);
  if (bytes <= w.maxLiteralBytes) return big;
  const literal: BigLiteral = { node, bytes, parent: big, code: false };
  w.literals.push(literal);
  return literal;
}

/** A function or class inside a literal makes it, and every literal around it, code rather than data. */
function markCode(big: BigLiteral | null): void {
  // Marking stops at the first literal already marked: its outer ones were marked with it.
  for (let b = big; b !== null && !b.code; b = b.parent) b.code = true;
}

function reportLiterals(w: Walk): void {
  for (const l of w.literals) {
    // Only the outermost data literal is reported: one finding for one block of data.
    if (l.code || (l.parent !== null && !l.parent.code)) continue;
    const kind = LITERAL_KINDS[l.node.type] ?? "literal";
    add(
      w,
      "large-literal",
      l.node,
      `this ${kind} literal is ${formatBytes(l.bytes)}, over the ${formatBytes(w.maxLiteralBytes)} limit for data in code`,
      LITERAL_HINT,
    );
  }
}

// ---------------------------------------------------------------------------------------------------
// Unbounded loops

function checkLoop(loop: WhileStatement | DoWhileStatement | ForStatement, w: Walk): void {
  if (!alwaysTrue(loop.test) || leavesLoop(loop.body, w.labels.get(loop) ?? [])) return;
  const what =
    loop.type === "ForStatement"
      ? "`for` loop without a condition"
      : `\`${loop.type === "WhileStatement" ? "while" : "do ... while"}\` loop`;
  add(w, "unbounded-loop", loop, `this ${what} never ends: nothing in it breaks, returns or throws out of it`, LOOP_HINT);
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

// ---------------------------------------------------------------------------------------------------
// Top-level effects

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

function checkTopLevel(program: Program, w: Walk): void {
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
        if (stmt.declaration) effectOfDeclaration(stmt.declaration, w);
        break;
      case "VariableDeclaration":
      case "ClassDeclaration":
        effectOfDeclaration(stmt, w);
        break;
      case "ExpressionStatement":
        if (stmt.directive === undefined) reportEffect(firstEffect(stmt.expression), w);
        break;
      default:
        add(
          w,
          "top-level-effect",
          stmt,
          `${STATEMENT_WORDS[stmt.type] ?? "this statement"} at top level runs when the module loads, outside any handler`,
          EFFECT_HINT,
        );
    }
  }
}

function effectOfDeclaration(decl: Statement, w: Walk): void {
  if (decl.type === "ClassDeclaration") reportEffect(firstEffect(decl), w);
  if (decl.type !== "VariableDeclaration") return;
  for (const d of decl.declarations) if (d.init) reportEffect(firstEffect(d.init), w);
}

function reportEffect(node: AnyNode | undefined, w: Walk): void {
  if (node === undefined) return;
  const what = EXPRESSION_WORDS[node.type] ?? "this expression";
  add(w, "top-level-effect", node, `${what} at top level runs when the module loads, outside any handler`, EFFECT_HINT);
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

// ---------------------------------------------------------------------------------------------------
// The default export

function checkDefaultExport(program: Program, w: Walk): HandlerName[] {
  const exported = defaultExport(program);
  if (exported === undefined) {
    add(w, "default-export", null, "the module has no default export, so the service has no handlers", EXPORT_HINT);
    return [];
  }
  let target: AnyNode = exported;
  if (exported.type === "Identifier") {
    const bound = topLevelBinding(program, exported.name);
    if (bound === undefined || bound.type !== "ObjectExpression") {
      const what = bound === undefined ? "not bound to an object literal in this module" : `bound to ${describe(bound)}`;
      add(
        w,
        "default-export",
        exported,
        `the default export \`${exported.name}\` is ${what}; it must be an object of handlers`,
        EXPORT_HINT,
      );
      return [];
    }
    target = bound;
  }
  if (target.type !== "ObjectExpression") {
    add(w, "default-export", target, `the default export is ${describe(target)}; it must be an object literal of handlers`, EXPORT_HINT);
    return [];
  }
  return checkHandlers(target, program, w);
}

/** The expression or declaration the module exports as default, if it has one. */
function defaultExport(program: Program): AnyNode | undefined {
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

function checkHandlers(obj: ObjectExpression, program: Program, w: Walk): HandlerName[] {
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
      checkHandlerValue(prop, key, program, w);
      continue;
    }
    const near = nearestHandler(key);
    if (near !== undefined) {
      add(
        w,
        "unknown-handler",
        prop.key,
        `\`${key}\` is not a handler the kernel calls; did you mean \`${near}\`?`,
        `Rename it to \`${near}\`, or to a name that does not look like a handler if it is a helper.`,
      );
    }
  }
  if (!opaque && !found.has("handleCall") && !found.has("handleCast") && !found.has("handleInfo")) {
    add(
      w,
      "default-export",
      obj,
      "the default export has none of handleCall, handleCast or handleInfo, so the service could never receive a message",
      EXPORT_HINT,
    );
  }
  return HANDLER_NAMES.filter((h) => found.has(h));
}

function isHandlerName(key: string): key is HandlerName {
  return (HANDLER_NAMES as readonly string[]).includes(key);
}

function checkHandlerValue(prop: Property, key: HandlerName, program: Program, w: Walk): void {
  const problem = handlerValueProblem(prop, program);
  if (problem === undefined) return;
  add(
    w,
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

/** The handler a key is probably a misspelling of: the same ignoring case, or at most 2 edits (1 for `init`). */
function nearestHandler(key: string): HandlerName | undefined {
  let best: HandlerName | undefined;
  let bestDistance = Number.POSITIVE_INFINITY;
  for (const h of HANDLER_NAMES) {
    if (key.toLowerCase() === h.toLowerCase()) return h;
    const limit = h.length <= 4 ? 1 : 2;
    const d = editDistance(key, h, limit);
    if (d <= limit && d < bestDistance) {
      best = h;
      bestDistance = d;
    }
  }
  return best;
}

/** Levenshtein distance, or limit + 1 as soon as it is certain to exceed limit. */
function editDistance(a: string, b: string, limit: number): number {
  if (Math.abs(a.length - b.length) > limit) return limit + 1;
  let prev = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    const row = [i];
    let rowMin = i;
    for (let j = 1; j <= b.length; j++) {
      const cost = a[i - 1] === b[j - 1] ? 0 : 1;
      const v = Math.min((prev[j] ?? 0) + 1, (row[j - 1] ?? 0) + 1, (prev[j - 1] ?? 0) + cost);
      row.push(v);
      rowMin = Math.min(rowMin, v);
    }
    if (rowMin > limit) return limit + 1;
    prev = row;
  }
  return prev[b.length] ?? limit + 1;
}
