import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { describe, it } from "node:test";
import { EVENT_TYPES } from "../../api/events.ts";
import { customEventType, isEventType } from "./event-types.ts";

describe("event types", () => {
  it("documents every kernel event type in docs/events.md, and nothing else", () => {
    const doc = readFileSync(new URL("../../../docs/events.md", import.meta.url), "utf8");
    const rows = [...doc.matchAll(/^\|\s*`([a-z_]+)`\s*\|/gm)].map((m) => m[1]);
    // Event types all contain "_"; the field table's names do not.
    const documented = new Set(rows.filter((t): t is string => t?.includes("_") === true));
    assert.deepEqual([...documented].sort(), [...EVENT_TYPES].sort());
  });

  it("accepts kernel types and svc.<service>.<name>, and nothing else", () => {
    for (const t of EVENT_TYPES) assert.equal(isEventType(t), true, t);
    assert.equal(isEventType(customEventType("counter", "order.created")), true);
    for (const bad of [
      "",
      "service_exploded",
      "svc.",
      "svc.counter",
      "svc.counter.",
      "svc.Counter.x",
      "svc.counter.X",
      "svc.counter.a b",
      "svc..x",
      `svc.counter.${"a".repeat(65)}`,
      "svc.counter.x.",
      "svc.-x.y",
    ]) {
      assert.equal(isEventType(bad), false, JSON.stringify(bad));
    }
  });
});
