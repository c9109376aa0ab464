/**
 * The `no-import` rule: no import declaration, dynamic `import()`, `export ... from` or `require()`. A
 * service is one self-contained module and reaches everything outside it through the solo object.
 */

import type { CallExpression } from "acorn";
import { isDeclared, type Reference, type RuleCheck, report } from "./helpers.ts";

const IMPORT_HINT =
  "A service is one self-contained module: put the code it needs in this module, and reach everything outside it through the solo object (solo.call, solo.cast, solo.storage).";

/** Reports every way of loading another module. */
export const noImport: RuleCheck = {
  id: "no-import",
  globals: ["require"],
  check(cx) {
    // A call of `require` is the module's own when the module declares the name, known only after the walk.
    const requires: Reference[] = [];
    return {
      nodes: {
        ImportDeclaration: (node) =>
          report(cx, "no-import", node, `\`import ... from ${node.source.raw}\`: a service cannot load other modules`, IMPORT_HINT),
        ImportExpression: (node) => report(cx, "no-import", node, "dynamic `import()`: a service cannot load other modules", IMPORT_HINT),
        ExportNamedDeclaration: (node) => {
          if (node.source)
            report(cx, "no-import", node, `\`export ... from ${node.source.raw}\`: a service cannot load other modules`, IMPORT_HINT);
        },
        ExportAllDeclaration: (node) =>
          report(cx, "no-import", node, `\`export * from ${node.source.raw}\`: a service cannot load other modules`, IMPORT_HINT),
        CallExpression: (node: CallExpression, scope) => {
          if (node.callee.type !== "Identifier" || node.callee.name !== "require") return;
          cx.consumed.add(node.callee);
          requires.push({ name: "require", scope, at: node });
        },
      },
      finish() {
        for (const r of requires) {
          if (!isDeclared(r.scope, r.name))
            report(cx, "no-import", r.at, "`require(...)`: a service cannot load other modules", IMPORT_HINT);
        }
      },
    };
  },
};
