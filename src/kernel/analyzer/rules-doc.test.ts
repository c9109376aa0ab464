import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { describe, it } from "node:test";
import { RULES } from "./index.ts";

describe("the analyzer's rules", () => {
  it("are each documented in docs/programming-model.md with their severity, and nothing else is", () => {
    const doc = readFileSync(new URL("../../../docs/programming-model.md", import.meta.url), "utf8");
    const section = doc.slice(doc.indexOf("## The analyzer"), doc.indexOf("## Hot swap"));
    const rows = [...section.matchAll(/^\|\s*`([a-z-]+)`\s*\|\s*(error|warning)\s*\|/gm)].map((m) => [m[1], m[2]]);
    assert.deepEqual(rows.sort(), RULES.map((r) => [r.id, r.severity]).sort());
  });
});
