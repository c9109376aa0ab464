/**
 * The `large-literal` rule: a string, template, array or object literal larger than maxLiteralBytes (64
 * KiB by default) is data that belongs in solo.storage or the deploy's args, not in the code. A literal
 * holding a function or class is code rather than data, and is not judged by its size.
 */

import type { AnyNode } from "acorn";
import { type Context, type RuleCheck, report } from "./helpers.ts";

const LITERAL_HINT = "Keep large data out of the code: store it with solo.storage, or pass it as deploy args and keep it in the state.";

const LITERAL_KINDS: Readonly<Record<string, string>> = {
  Literal: "string",
  TemplateLiteral: "template",
  ArrayExpression: "array",
  ObjectExpression: "object",
};

interface BigLiteral {
  readonly node: AnyNode;
  readonly bytes: number;
  readonly parent: BigLiteral | null;
  /** Holds a function or class: code rather than data, so its size is not a data literal's. */
  code: boolean;
}

/** Reports the outermost literals of data over the size limit. */
export const largeLiteral: RuleCheck = {
  id: "large-literal",
  check(cx) {
    const bytes = byteCounter(cx.source);
    /** Literals over the size limit, outermost first along any path. */
    const literals: BigLiteral[] = [];
    // The literals over the limit around the node being visited, innermost last. The walk visits a node's
    // whole subtree before anything after it, so a literal that does not contain the node is done with.
    const open: BigLiteral[] = [];
    const around = (node: AnyNode): BigLiteral | null => {
      for (let top = open.at(-1); top !== undefined && !contains(top.node, node); top = open.at(-1)) open.pop();
      return open.at(-1) ?? null;
    };
    const measure = (node: AnyNode) => {
      const literal = measureLiteral(node, bytes, cx.maxLiteralBytes);
      if (literal === undefined) return;
      const big: BigLiteral = { node, bytes: literal, parent: around(node), code: false };
      literals.push(big);
      open.push(big);
    };
    const code = (node: AnyNode) => markCode(around(node));
    return {
      nodes: {
        Literal: measure,
        TemplateLiteral: measure,
        ArrayExpression: measure,
        ObjectExpression: measure,
        FunctionDeclaration: code,
        FunctionExpression: code,
        ArrowFunctionExpression: code,
        ClassDeclaration: code,
        ClassExpression: code,
      },
      finish: () => reportLiterals(literals, cx),
    };
  },
};

function contains(outer: AnyNode, node: AnyNode): boolean {
  return outer.start <= node.start && node.end <= outer.end;
}

/** The size of a literal in bytes of UTF-8 when it is over the limit, else undefined. */
function measureLiteral(node: AnyNode, bytes: (start: number, end: number) => number, limit: number): number | undefined {
  if (node.type === "Literal" && typeof node.value !== "string") return undefined;
  // A UTF-16 code unit is at most 3 bytes of UTF-8, so most literals need no count.
  if ((node.end - node.start) * 3 <= limit) return undefined;
  const n = bytes(node.start, node.end);
  return n <= limit ? undefined : n;
}

/** A function or class inside a literal makes it, and every literal around it, code rather than data. */
function markCode(big: BigLiteral | null): void {
  // Marking stops at the first literal already marked: its outer ones were marked with it.
  for (let b = big; b !== null && !b.code; b = b.parent) b.code = true;
}

function reportLiterals(literals: readonly BigLiteral[], cx: Context): void {
  for (const l of literals) {
    // Only the outermost data literal is reported: one finding for one block of data.
    if (l.code || (l.parent !== null && !l.parent.code)) continue;
    const kind = LITERAL_KINDS[l.node.type] ?? "literal";
    report(
      cx,
      "large-literal",
      l.node,
      `this ${kind} literal is ${formatBytes(l.bytes)}, over the ${formatBytes(cx.maxLiteralBytes)} limit for data in code`,
      LITERAL_HINT,
    );
  }
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
