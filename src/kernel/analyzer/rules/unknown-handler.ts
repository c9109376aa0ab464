/**
 * The `unknown-handler` rule: a key of the default export that looks like a misspelled handler name
 * (`handlecall`, `handleCal`) would never be called by the kernel.
 */

import type { Program } from "acorn";
import { HANDLER_NAMES, type HandlerName } from "../contract.ts";
import { handlerObject, isHandlerName } from "./default-export.ts";
import { type Context, type RuleCheck, report, staticName } from "./helpers.ts";

/** Reports the default export's keys that are near a handler's name without being one. */
export const unknownHandler: RuleCheck = {
  id: "unknown-handler",
  check: (cx) => ({ finish: (program) => checkKeys(program, cx) }),
};

function checkKeys(program: Program, cx: Context): void {
  for (const prop of handlerObject(program)?.properties ?? []) {
    const key = prop.type === "Property" ? staticName(prop.key, prop.computed) : undefined;
    if (prop.type === "SpreadElement" || key === undefined || isHandlerName(key)) continue;
    const near = nearestHandler(key);
    if (near !== undefined) {
      report(
        cx,
        "unknown-handler",
        prop.key,
        `\`${key}\` is not a handler the kernel calls; did you mean \`${near}\`?`,
        `Rename it to \`${near}\`, or to a name that does not look like a handler if it is a helper.`,
      );
    }
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
