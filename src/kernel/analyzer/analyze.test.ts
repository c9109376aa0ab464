import assert from "node:assert/strict";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { type Kernel, openKernel } from "../../index.ts";
import { stripTypes } from "../../sandbox/typescript.ts";
import { DEFAULT_MAX_LITERAL_BYTES, HANDLER_NAMES } from "./contract.ts";
import { analyze, type Finding, RULES, type RuleId } from "./index.ts";
import { MISSING_GLOBALS } from "./rules/unknown-global.ts";

/** A finding as one comparable line: rule, severity and position. */
function brief(f: Finding): string {
  return `${f.rule} ${f.severity} ${f.line}:${f.column}`;
}

/** The findings of one rule, briefly. */
function findings(rule: RuleId, source: string, options?: { maxLiteralBytes?: number }): string[] {
  return analyze(source, options)
    .findings.filter((f) => f.rule === rule)
    .map(brief);
}

/** The brief of a finding of `rule` at the n-th occurrence of `needle` in `source` (lines split on \n). */
function at(rule: RuleId, source: string, needle: string, nth = 0): string {
  let index = -1;
  for (let i = 0; i <= nth; i++) {
    index = source.indexOf(needle, index + 1);
    assert.ok(index >= 0, `${needle} occurs ${nth + 1} times in the source`);
  }
  const before = source.slice(0, index).split("\n");
  const severity = RULES.find((r) => r.id === rule)?.severity;
  return `${rule} ${severity} ${before.length}:${(before.at(-1) ?? "").length + 1}`;
}

/** A service whose handleCall runs `body`. */
function handler(body: string): string {
  return `export default {
  handleCall(request, state) {
    ${body}
    return { reply: null, state };
  },
};
`;
}

const SERVICE = "export default { handleCall(r, s) { return { reply: r, state: s } } };\n";

describe("analyze()", () => {
  describe("syntax", () => {
    it("reports a syntax error as a finding at acorn's position instead of throwing", () => {
      const source = "export default {\n  handleCall(r, s) {\n    return { reply: r state: s };\n  },\n};\n";
      const { findings: all, handlers } = analyze(source);
      assert.deepEqual(all.map(brief), [at("syntax", source, "state")]);
      assert.match(all[0]?.message ?? "", /^syntax error: Unexpected token$/);
      assert.deepEqual(handlers, []);
    });

    it("reports an unterminated template and a stray token with their positions", () => {
      // acorn places an unterminated template just inside its backtick.
      assert.deepEqual(findings("syntax", "const a = 1;\nconst b = `x"), ["syntax error 2:12"]);
      assert.deepEqual(findings("syntax", "export default {};\n}"), ["syntax error 2:1"]);
    });
  });

  describe("no-import", () => {
    it("refuses import declarations, dynamic import(), export-from and require()", () => {
      const source = [
        'import fs from "node:fs";',
        'export * from "./b.js";',
        'export { a } from "./a.js";',
        "export default {",
        "  async handleCall(request, state) {",
        '    const m = await import("./c.js");',
        '    const os = require("node:os");',
        "    return { reply: null, state };",
        "  },",
        "};",
      ].join("\n");
      assert.deepEqual(findings("no-import", source), [
        "no-import error 1:1",
        "no-import error 2:1",
        "no-import error 3:1",
        at("no-import", source, "import("),
        at("no-import", source, "require("),
      ]);
      assert.match(analyze(source).findings[0]?.message ?? "", /node:fs/);
    });

    it("leaves alone a local function named require and properties named import", () => {
      const source = `const require = (name) => name;\n${handler('require("x"); solo.import?.("y"); const s = "import x from \'y\'";')}`;
      assert.deepEqual(findings("no-import", source), []);
    });
  });

  describe("no-eval", () => {
    it("refuses eval, Function constructors, constructor chains and string timers", () => {
      const body = [
        'eval("1 + 1");',
        'new Function("return 1");',
        'Function("return 2");',
        'request.constructor.constructor("return 3");',
        'request["constructor"]["constructor"]("return 4");',
        "(async () => {}).constructor;",
        "Function.prototype.constructor;",
        'setTimeout("tick()", 10);',
        'globalThis.eval("5");',
        'Reflect.construct(Function, ["return 6"]);',
      ];
      const source = handler(body.join("\n    "));
      assert.deepEqual(findings("no-eval", source), [
        at("no-eval", source, "eval("),
        at("no-eval", source, "new Function"),
        at("no-eval", source, 'Function("return 2")'),
        at("no-eval", source, "request.constructor"),
        at("no-eval", source, 'request["constructor"]'),
        at("no-eval", source, "(async"),
        at("no-eval", source, "Function.prototype"),
        at("no-eval", source, "setTimeout"),
        at("no-eval", source, "globalThis.eval"),
        at("no-eval", source, "Reflect"),
      ]);
      // The string timer is one finding, not also an unknown-global warning for the same call.
      assert.deepEqual(findings("unknown-global", source), []);
    });

    it("sees an escaped identifier as the name it spells", () => {
      const source = handler('\\u0065val("1");');
      assert.deepEqual(findings("no-eval", source), [at("no-eval", source, "\\u0065val")]);
    });

    it("leaves alone constructors that are not a Function constructor, eval as a property and a shadowed Function", () => {
      const source = `const Function = (x) => x;\n${handler(
        'state.kind = request.constructor.name; request.eval?.(); Function("fine"); const ok = request instanceof Object; typeof eval;',
      )}`;
      assert.deepEqual(findings("no-eval", source), []);
    });

    it("cannot see names built at run time: the sandbox is the boundary for those", () => {
      // Statically undecidable: the property name exists only when the code runs. The sandbox has no
      // eval to find (see "the sandbox" below), which is why the analyzer is an early warning only.
      const source = handler('globalThis["ev" + "al"]("1"); (() => {})["const" + "ructor"]("return 1");');
      assert.deepEqual(findings("no-eval", source), []);
    });
  });

  describe("default-export", () => {
    it("refuses a module without a default export at 1:1", () => {
      assert.deepEqual(findings("default-export", "const x = 1;\n"), ["default-export error 1:1"]);
    });

    it("refuses a default export that is not an object literal", () => {
      assert.deepEqual(findings("default-export", "export default function () {}\n"), ["default-export error 1:16"]);
      assert.deepEqual(findings("default-export", "export default [1, 2];\n"), ["default-export error 1:16"]);
      assert.deepEqual(findings("default-export", "export default make();\n"), ["default-export error 1:16"]);
      const bound = "const h = 5;\nexport default h;\n";
      assert.deepEqual(findings("default-export", bound), [at("default-export", bound, "h;")]);
      assert.match(analyze(bound).findings[0]?.message ?? "", /bound to a number/);
    });

    it("refuses an object without handleCall, handleCast or handleInfo, at its brace", () => {
      const source = "export default {\n  init() { return 0; },\n};\n";
      assert.deepEqual(findings("default-export", source), ["default-export error 1:16"]);
      assert.deepEqual(analyze(source).handlers, ["init"]);
    });

    it("refuses handlers that are not functions, at their key", () => {
      const source = [
        "const LIMIT = 3;",
        "export default {",
        "  handleCall: 42,",
        "  get handleCast() { return () => {}; },",
        "  *handleInfo(m, s) { yield s; },",
        "  init: LIMIT,",
        "  terminate: class {},",
        "};",
      ].join("\n");
      assert.deepEqual(findings("default-export", source), [
        at("default-export", source, "handleCall"),
        at("default-export", source, "handleCast"),
        at("default-export", source, "handleInfo"),
        at("default-export", source, "init"),
        at("default-export", source, "terminate"),
      ]);
    });

    it("accepts methods, async methods, arrows, function expressions and names bound to functions", () => {
      const source = [
        "function handleInfo(m, s) { return { state: s }; }",
        "const terminate = () => {};",
        "const handlers = {",
        "  async init(args) { return args; },",
        "  handleCall: (r, s) => ({ reply: r, state: s }),",
        "  handleCast: function (m, s) { return { state: s }; },",
        "  handleInfo,",
        "  terminate,",
        "  codeChange(from, s) { return s; },",
        "  helper() {},",
        "};",
        "export { handlers as default };",
      ].join("\n");
      const { findings: all, handlers } = analyze(source);
      assert.deepEqual(all, []);
      assert.deepEqual(handlers, [...HANDLER_NAMES]);
    });

    it("accepts an identifier bound to an object literal and a spread it cannot see into", () => {
      assert.deepEqual(analyze(`const service = { handleCast(m, s) { return { state: s }; } };\nexport default service;\n`), {
        findings: [],
        handlers: ["handleCast"],
      });
      assert.deepEqual(findings("default-export", "const base = {};\nexport default { ...base, init() { return 0; } };\n"), []);
    });
  });

  describe("unknown-handler", () => {
    it("warns about keys that look like misspelled handlers, naming the handler", () => {
      const source = SERVICE.replace(
        "export default {",
        "export default {\n  handlecall() {},\n  handleCalls() {},\n  init2() {},\n  codechange() {},\n",
      );
      const all = analyze(source).findings.filter((f) => f.rule === "unknown-handler");
      assert.deepEqual(all.map(brief), [
        at("unknown-handler", source, "handlecall"),
        at("unknown-handler", source, "handleCalls"),
        at("unknown-handler", source, "init2"),
        at("unknown-handler", source, "codechange"),
      ]);
      assert.deepEqual(
        all.map((f) => /did you mean `(\w+)`/.exec(f.message)?.[1]),
        ["handleCall", "handleCall", "init", "codeChange"],
      );
    });

    it("leaves helpers with names unlike any handler alone", () => {
      const source = SERVICE.replace("export default {", "export default { helper() {}, emit() {}, exit() {}, format() {}, state: 0,");
      assert.deepEqual(findings("unknown-handler", source), []);
    });
  });

  describe("unbounded-loop", () => {
    it("warns about constant-true loops without a way out, at the loop", () => {
      const source = handler(
        [
          "while (true) { state.n++; }",
          "for (;;) { state.n++; }",
          "do { state.n++; } while (1);",
          "while (!0) { for (const x of request) { break; } }",
          "while (true) { switch (request) { case 1: break; } }",
          "while (true) { request.forEach(() => { return; }); }",
          "loop: while (true) { continue loop; }",
        ].join("\n    "),
      );
      assert.deepEqual(findings("unbounded-loop", source), [
        at("unbounded-loop", source, "while (true)", 0),
        at("unbounded-loop", source, "for (;;)"),
        at("unbounded-loop", source, "do {"),
        at("unbounded-loop", source, "while (!0)"),
        at("unbounded-loop", source, "while (true)", 1),
        at("unbounded-loop", source, "while (true)", 2),
        at("unbounded-loop", source, "while (true)", 3),
      ]);
    });

    it("accepts loops with a break, return, throw or yield at their own level, and loops that can end", () => {
      const source = `function* ids() { let i = 0; while (true) yield i++; }
const spin = (done) => { while (true) { if (done()) return 1; } };
${handler(
  [
    "while (true) { if (request) break; }",
    "for (;;) { throw new Error('stop'); }",
    "outer: for (;;) { for (;;) { break outer; } }",
    "outer2: for (;;) { while (true) { continue outer2; } break; }",
    "while (state.n < 10) { state.n++; }",
    "do { state.n++; } while (false);",
  ].join("\n    "),
)}`;
      assert.deepEqual(findings("unbounded-loop", source), []);
    });

    it("follows loops nested deeper than a recursive walk would go", () => {
      const depth = 300;
      const nested = (exit: string) => handler(`${"while (true) {".repeat(depth)}${exit}${"}".repeat(depth)}`);
      assert.equal(findings("unbounded-loop", nested("return { reply: 1, state };")).length, 0);
      assert.equal(findings("unbounded-loop", nested("break;")).length, depth - 1);
    });
  });

  describe("large-literal", () => {
    it("warns about a string, template, array or object literal over the limit, at its start", () => {
      const big = "x".repeat(200);
      const source = [
        `const s = "${big}";`,
        `const t = \`${big}\`;`,
        `const a = [${'"x", '.repeat(40)}];`,
        `const o = { ${"k: 1, ".repeat(40)} };`,
        SERVICE,
      ].join("\n");
      assert.deepEqual(findings("large-literal", source, { maxLiteralBytes: 100 }), [
        "large-literal warning 1:11",
        "large-literal warning 2:11",
        "large-literal warning 3:11",
        "large-literal warning 4:11",
      ]);
      assert.match(analyze(source, { maxLiteralBytes: 100 }).findings[0]?.message ?? "", /202 bytes, over the 100 bytes limit/);
    });

    it("reports only the outermost data literal, and counts bytes of UTF-8", () => {
      const nested = `const a = [["${"x".repeat(150)}"], "${"y".repeat(150)}"];\n${SERVICE}`;
      assert.deepEqual(findings("large-literal", nested, { maxLiteralBytes: 100 }), ["large-literal warning 1:11"]);
      // 60 code units but 122 bytes of UTF-8 with its quotes.
      assert.deepEqual(findings("large-literal", `const e = "${"é".repeat(60)}";\n${SERVICE}`, { maxLiteralBytes: 100 }), [
        "large-literal warning 1:11",
      ]);
    });

    it("does not count code as data: a large object of methods is fine, a large string inside one is not", () => {
      const inner = `"${"z".repeat(120)}"`;
      const source = `export default {\n  ${"helper() { return 1; },\n  ".repeat(20)}handleCall(r, s) { const text = ${inner}; return { reply: text, state: s }; },\n};\n`;
      assert.deepEqual(findings("large-literal", source, { maxLiteralBytes: 100 }), [at("large-literal", source, inner)]);
    });

    it("allows literals up to the limit, 64 KiB by default", () => {
      assert.equal(DEFAULT_MAX_LITERAL_BYTES, 65536);
      const fits = `const s = "${"x".repeat(DEFAULT_MAX_LITERAL_BYTES - 2)}";\n${SERVICE}`;
      assert.deepEqual(findings("large-literal", fits), []);
      assert.deepEqual(findings("large-literal", fits.replace('"x', '"xx')), ["large-literal warning 1:11"]);
    });
  });

  describe("top-level-effect", () => {
    it("warns about work at module top level, at the part that does it", () => {
      const source = [
        'console.log("loading");',
        "let started = Date.now();",
        'const saved = await solo.storage.get("k");',
        "for (const x of [1, 2]) {}",
        "globalThis.x = 1;",
        "class Setup { static { globalThis.y = 2; } }",
        "const LIMITS = { max: compute() };",
        SERVICE,
      ].join("\n");
      assert.deepEqual(findings("top-level-effect", source), [
        "top-level-effect warning 1:1",
        at("top-level-effect", source, "Date.now()"),
        at("top-level-effect", source, "await"),
        "top-level-effect warning 4:1",
        "top-level-effect warning 5:1",
        at("top-level-effect", source, "static {"),
        at("top-level-effect", source, "compute()"),
      ]);
    });

    it("accepts declarations of values, functions, classes and collections", () => {
      const source = [
        '"use strict";',
        "const M = new Map();",
        'const S = new Set(["a", "b"]);',
        "const LIMITS = Object.freeze({ max: 10, names: [`a`, -1, null] });",
        "const MINUTE = 60 * 1000;",
        "const RE = /a+/g;",
        'const KEY = Symbol("key");',
        "let later;",
        "const add = (a, b) => a + b;",
        "function helper() { return add(1, 2); }",
        "class Box { static empty = null; get size() { return 0; } }",
        // biome-ignore lint/suspicious/noTemplateCurlyInString: the service's own template literal
        "export const VERSION = `v${MINUTE}`;",
        ";",
        SERVICE,
      ].join("\n");
      assert.deepEqual(analyze(source).findings, []);
    });
  });

  describe("unknown-global", () => {
    it("warns about reads of globals the sandbox lacks, with the solo equivalent as the hint", () => {
      const source = handler(
        [
          "const env = process.env.MODE;",
          "const t = setTimeout(() => {}, 10);",
          "clearTimeout(t);",
          'const page = await fetch("https://example.com");',
          "const b = Buffer.from(env);",
          "console.log(queueMicrotask);",
        ].join("\n    "),
      ).replace("handleCall(", "async handleCall(");
      const all = analyze(source).findings.filter((f) => f.rule === "unknown-global");
      assert.deepEqual(all.map(brief), [
        at("unknown-global", source, "process"),
        at("unknown-global", source, "setTimeout"),
        at("unknown-global", source, "clearTimeout"),
        at("unknown-global", source, "fetch"),
        at("unknown-global", source, "Buffer"),
      ]);
      const hints = all.map((f) => f.hint);
      assert.match(hints[0] ?? "", /deploy args/);
      assert.match(hints[1] ?? "", /solo\.sendAfter/);
      assert.match(hints[2] ?? "", /solo\.cancelTimer/);
      assert.match(
        hints[3] ?? "",
        /use solo\.fetch\(url, \{ method, headers, body \}\): outbound HTTP\(S\) to the hosts the deployment was granted/,
      );
    });

    it("honours local declarations: variables, parameters, patterns, catch parameters, hoisted var and functions", () => {
      const source = [
        "const fetch = (url) => url;",
        "function f(process, { setTimeout }, [Buffer = performance]) { return process && setTimeout && Buffer; }",
        "function g() { try { return Intl; } catch (Intl) { return Intl; } }",
        "function h() { return navigator; var navigator = 1; }",
        "const k = function window() { return window; };",
        "function document(v) { return v; }",
        "const o = { fetch: 1, process: 2 };",
        "const p = o.process;",
        "const q = typeof localStorage;",
        handler('fetch("x"); for (const Headers of [1]) { Headers; }'),
      ].join("\n");
      // Only `performance` (a default value, read in f's scope) and g's first `Intl` (the catch
      // parameter does not cover the try block) are globals.
      assert.deepEqual(findings("unknown-global", source), [
        at("unknown-global", source, "performance"),
        at("unknown-global", source, "Intl"),
      ]);
    });

    it("does not let a block's declaration leak out of the block", () => {
      const source = handler("{ const fetch = 1; } fetch;");
      assert.deepEqual(findings("unknown-global", source), [at("unknown-global", source, "fetch", 1)]);
    });
  });

  describe("positions", () => {
    it("are the author's after stripTypes removes TypeScript types", () => {
      const ts = [
        "interface State { count: number; label?: string }",
        "type Req = { delay: number };",
        "export default {",
        "  handleCall(request: Req, state: State): { reply: number; state: State } {",
        "    const id: number = setTimeout((): void => {}, request.delay) as unknown as number;",
        '    const f = new Function("return 1") as () => number;',
        "    return { reply: id + f(), state };",
        "  },",
        "};",
      ].join("\n");
      const { findings: all } = analyze(stripTypes(ts, "service.ts"));
      assert.deepEqual(all.map(brief), [at("unknown-global", ts, "setTimeout"), at("no-eval", ts, "new Function")]);
      assert.deepEqual(all.map(brief), ["unknown-global warning 5:24", "no-eval error 6:15"]);
    });

    it("count lines as acorn does (\\n, \\r\\n, \\r, U+2028, U+2029) and columns in UTF-16 code units", () => {
      const source = `${SERVICE}fetch;\r\nprocess;\rBuffer;\u2028Intl;\u2029const 𝑓 = navigator;`;
      assert.deepEqual(findings("unknown-global", source), [
        "unknown-global warning 2:1",
        "unknown-global warning 3:1",
        "unknown-global warning 4:1",
        "unknown-global warning 5:1",
        "unknown-global warning 6:12",
      ]);
      assert.deepEqual(findings("syntax", `${SERVICE}\r\n\r\n  )`), ["syntax error 4:3"]);
    });

    it("orders findings by line, then column", () => {
      const source = `fetch; process;\n${handler("eval(request); fetch;")}`;
      const all = analyze(source).findings;
      const sorted = [...all].sort((a, b) => a.line - b.line || a.column - b.column);
      assert.deepEqual(all, sorted);
      assert.ok(all.length >= 4);
    });
  });

  describe("hostile input", () => {
    it("never throws", () => {
      const inputs = [
        "",
        "// only a comment\n/* and another */\n",
        "[".repeat(1 << 20),
        "{".repeat(1 << 16),
        "(".repeat(1 << 16),
        "`${".repeat(1 << 12),
        "\u0000\uffff\ud800",
        "const ĉu = 1; const 𝑓 = () => ĉu; export default { handleCall(r, s) { return { reply: 𝑓(), state: s }; } };",
        "export default { handleCall(r, s) { return { reply: \\u0065val(r), state: s }; } };",
        'export default { handleCall(r, s) { return { reply: globalThis["ev" + "al"](r), state: s }; } };',
        "export default { [Symbol.iterator]: 1, ...null, 'handle' + 'Call': 2 };",
        "export default 1; export default 2;",
      ];
      for (const input of inputs) {
        const result = analyze(input);
        assert.ok(Array.isArray(result.findings), input.slice(0, 20));
      }
    });

    it("answers the empty source and a source of comments with the missing default export only", () => {
      assert.deepEqual(analyze("").findings.map(brief), ["default-export error 1:1"]);
      assert.deepEqual(analyze("// hi\n/* there */\n").findings.map(brief), ["default-export error 1:1"]);
    });

    it("answers 1 MiB of nested brackets with a syntax finding at the depth it gave up", () => {
      const all = analyze("[".repeat(1 << 20)).findings;
      assert.equal(all.length, 1);
      assert.equal(all[0]?.rule, "syntax");
      assert.equal(all[0]?.line, 1);
      assert.ok((all[0]?.column ?? 0) > 1);
      assert.match(all[0]?.message ?? "", /stack/);
    });

    it("accepts unicode identifiers", () => {
      const source = "const ĉu = 1; const 𝑓 = () => ĉu; export default { handleCall(r, s) { return { reply: 𝑓(), state: s }; } };";
      assert.deepEqual(analyze(source), { findings: [], handlers: ["handleCall"] });
    });
  });

  describe("the documented examples", () => {
    it("the README's service passes without findings", () => {
      const readme = readFileSync(new URL("../../../README.md", import.meta.url), "utf8");
      const tour = /```ts\n([\s\S]*?)```/.exec(readme)?.[1] ?? "";
      const code = /code: `([\s\S]*?)`,\n/.exec(tour)?.[1] ?? "";
      assert.ok(code.includes("export default"), "the README tour deploys a service");
      const result = analyze(stripTypes(code, "counter.ts"));
      assert.deepEqual(result.findings, []);
      assert.deepEqual(result.handlers, ["init", "handleCall", "handleCast"]);
    });

    it("every service in docs/programming-model.md passes without errors", () => {
      const doc = readFileSync(new URL("../../../docs/programming-model.md", import.meta.url), "utf8");
      const services = [...doc.matchAll(/```ts\n([\s\S]*?)```/g)].map((m) => m[1] ?? "").filter((c) => c.includes("export default"));
      assert.ok(services.length >= 2, "the programming model shows services");
      for (const code of services) {
        const errors = analyze(stripTypes(code, "service.ts")).findings.filter((f) => f.severity === "error");
        assert.deepEqual(errors, [], code);
      }
      assert.deepEqual(analyze(services[0] ?? "").handlers, [...HANDLER_NAMES]);
    });
  });
});

describe("RULES", () => {
  // One minimal bad example per rule; the Record makes a new rule without an example a type error.
  const EXAMPLES: Record<RuleId, string> = {
    syntax: "export default {",
    "no-import": `import x from "x";\n${SERVICE}`,
    "no-eval": handler('eval("1");'),
    "default-export": "export default 1;",
    "unknown-handler": SERVICE.replace("{ handleCall", "{ handlecast() {}, handleCall"),
    "unbounded-loop": handler("while (true) {}"),
    "large-literal": `const s = "${"x".repeat(DEFAULT_MAX_LITERAL_BYTES)}";\n${SERVICE}`,
    "top-level-effect": `console.log(1);\n${SERVICE}`,
    "unknown-global": handler("process;"),
  };

  it("have unique kebab-case ids, a severity and a description", () => {
    assert.equal(new Set(RULES.map((r) => r.id)).size, RULES.length);
    for (const r of RULES) {
      assert.match(r.id, /^[a-z]+(-[a-z]+)*$/);
      assert.ok(r.severity === "error" || r.severity === "warning");
      assert.ok(r.description.length > 10);
    }
  });

  it("each fire on an example, with the rule's severity, a message and a hint", () => {
    for (const rule of RULES) {
      const hits = analyze(EXAMPLES[rule.id]).findings.filter((f) => f.rule === rule.id);
      assert.equal(hits.length, 1, rule.id);
      assert.equal(hits[0]?.severity, rule.severity, rule.id);
      assert.ok((hits[0]?.message.length ?? 0) > 10 && (hits[0]?.hint.length ?? 0) > 10, rule.id);
    }
  });
});

describe("the sandbox behind the analyzer", () => {
  let kernel: Kernel;
  let dir: string;

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), "solo-analyzer-"));
    kernel = await openKernel({ dataDir: dir, schedulers: 1 });
  });

  after(async () => {
    await kernel.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it("lacks every global the analyzer calls missing", async () => {
    const names = Object.keys(MISSING_GLOBALS);
    const code = `export default {
  handleCall(names, state) {
    return { reply: names.filter((n) => typeof globalThis[n] !== "undefined"), state };
  },
};`;
    assert.deepEqual(analyze(code).findings, []);
    await kernel.deploy({ tenant: "acme", service: "globals", code });
    assert.deepEqual(await kernel.call("acme", "globals", names), []);
  });

  it("contains code that slips past the analyzer: no eval, and no Function constructor through a built name", async () => {
    const code = `export default {
  handleCall(request, state) {
    const e = globalThis["ev" + "al"];
    let compiled;
    try {
      compiled = (() => {})["const" + "ructor"]("return 1")();
    } catch (err) {
      compiled = err.name + ": " + err.message;
    }
    return { reply: { eval: typeof e, compiled }, state };
  },
};`;
    assert.deepEqual(analyze(code).findings, []);
    await kernel.deploy({ tenant: "acme", service: "slips", code });
    const reply = (await kernel.call("acme", "slips", null)) as { eval: string; compiled: string };
    assert.equal(reply.eval, "undefined");
    assert.match(reply.compiled, /^EvalError: compiling code at run time is not available/);
  });
});
