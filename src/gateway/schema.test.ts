import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { mkdtempSync, readdirSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, relative } from "node:path";
import { after, describe, it } from "node:test";
import { create, type MessageInitShape } from "@bufbuild/protobuf";
import { createValidator } from "@bufbuild/protovalidate";
import { FieldRulesSchema } from "@bufbuild/protovalidate/gen/buf/validate/validate_pb.js";
import { printReference, rulesInWords } from "../../scripts/api-reference.ts";
import { printSubset } from "../../scripts/protovalidate-subset.ts";
import { DeployRequestSchema, file_solo_v1_solo, GrantTokenRequestSchema, PutSecretRequestSchema } from "../gen/solo/v1/solo_pb.js";

const root = new URL("../../", import.meta.url).pathname;
const buf = join(root, "node_modules", ".bin", "buf");

function files(dir: string): Map<string, string> {
  const out = new Map<string, string>();
  const walk = (d: string): void => {
    for (const e of readdirSync(d, { withFileTypes: true })) {
      const p = join(d, e.name);
      if (e.isDirectory()) walk(p);
      else out.set(relative(dir, p), readFileSync(p, "utf8"));
    }
  };
  walk(dir);
  return out;
}

describe("the protobuf schema", () => {
  const dirs: string[] = [];
  after(() => {
    for (const d of dirs) rmSync(d, { recursive: true, force: true });
  });

  it("keeps proto/buf/validate/validate.proto as the script prints it from @bufbuild/protovalidate", () => {
    assert.equal(readFileSync(join(root, "proto/buf/validate/validate.proto"), "utf8"), printSubset(), "run npm run proto");
  });

  it("passes buf lint, and src/gen is what buf generate makes of it now (run npm run proto if not)", () => {
    execFileSync(buf, ["lint"], { cwd: root, stdio: "pipe" });
    const out = mkdtempSync(join(tmpdir(), "solo-gen-"));
    dirs.push(out);
    execFileSync(buf, ["generate", "-o", out], { cwd: root, stdio: "pipe" });
    const fresh = files(join(out, "src/gen"));
    const committed = files(join(root, "src/gen"));
    assert.deepEqual([...committed.keys()].sort(), [...fresh.keys()].sort());
    for (const [name, text] of fresh) assert.equal(committed.get(name), text, `src/gen/${name} is stale: run npm run proto`);
  });

  it("keeps docs/api-reference.md as scripts/api-reference.ts prints it from the schema now (run npm run proto if not)", () => {
    const fresh = printReference();
    assert.equal(readFileSync(join(root, "docs/api-reference.md"), "utf8"), fresh, "docs/api-reference.md is stale: run npm run proto");
  });

  it("documents every RPC and message of the schema, with its comments and its rules in words", () => {
    const doc = printReference();
    for (const s of file_solo_v1_solo.services) {
      assert.ok(doc.includes(`### ${s.name}\n`), s.name);
      for (const m of s.methods) assert.match(doc, new RegExp(`^\\| \`${m.name}\` \\| \\[${m.input.name}\\]`, "m"), `${s.name}.${m.name}`);
    }
    for (const m of file_solo_v1_solo.messages) assert.ok(doc.includes(`### ${m.name}\n`), m.name);
    assert.match(
      doc,
      /→ stream \[Event\]\(#event\) \| \*\*server streaming\.\*\* The stored past from `from_id`/,
      "FollowEvents streams, with its comment",
    );
    assert.match(doc, /^\| `code` \| 2 \| `string` \| The module, .* \| non-empty, ≤ 16 MiB \|$/m, "DeployRequest.code");
    assert.match(doc, /^\| `timeout_ms` \(JSON `timeoutMs`\) \| 3 \| `uint32` \| .* \| ≤ 600000 \|$/m, "CallRequest.timeout_ms");
  });

  it("puts protovalidate rules in words: lengths, sizes, ranges, patterns, items", () => {
    const words = (rules: MessageInitShape<typeof FieldRulesSchema>): string => rulesInWords(create(FieldRulesSchema, rules)).join(", ");
    assert.equal(
      words({ type: { case: "string", value: { minLen: 1n, maxLen: 63n, pattern: "^[a-z]+$" } } }),
      "1–63 chars, pattern `^[a-z]+$`",
    );
    assert.equal(words({ type: { case: "string", value: { maxBytes: 65536n } } }), "≤ 64 KiB");
    assert.equal(words({ type: { case: "bytes", value: { maxLen: 16777216n } } }), "≤ 16 MiB");
    assert.equal(words({ required: true }), "required");
    assert.equal(
      words({ type: { case: "int64", value: { greaterThan: { case: "gte", value: 0n }, lessThan: { case: "lte", value: 10n } } } }),
      "0–10",
    );
    assert.equal(
      words({ type: { case: "uint32", value: { greaterThan: { case: "gt", value: 5 }, lessThan: { case: "lt", value: 1 } } } }),
      "> 5 or < 1",
    );
    assert.equal(
      words({
        type: { case: "repeated", value: { minItems: 1n, maxItems: 64n, items: { type: { case: "string", value: { maxLen: 300n } } } } },
      }),
      "1–64 items, each: ≤ 300 chars",
    );
    assert.equal(
      words({ type: { case: "map", value: { maxPairs: 8n, keys: { type: { case: "string", value: { in: ["a", "b"] } } } } } }),
      "≤ 8 pairs, keys: one of `a`, `b`",
    );
    assert.equal(
      words({ cel: [{ id: "even", message: "must be even", expression: "this % 2 == 0" }] }),
      "CEL `this % 2 == 0` (must be even)",
    );
  });

  it("carries the constraints to the validator: protovalidate reads them from the generated descriptors", () => {
    const v = createValidator();
    const bad = v.validate(
      DeployRequestSchema,
      create(DeployRequestSchema, { ref: { tenant: "Acme", service: "ok" }, code: "", tags: ["Not A Tag"] }),
    );
    assert.equal(bad.kind, "invalid");
    const fields = bad.kind === "invalid" ? bad.violations.map((x) => x.toString()) : [];
    assert.ok(
      fields.some((f) => f.includes("ref.tenant")),
      fields.join("; "),
    );
    assert.ok(
      fields.some((f) => f.includes("code")),
      fields.join("; "),
    );
    assert.ok(
      fields.some((f) => f.includes("tags[0]")),
      fields.join("; "),
    );
    const missing = v.validate(DeployRequestSchema, create(DeployRequestSchema, { code: "x" }));
    assert.equal(missing.kind, "invalid", "ref is required");
    const good = v.validate(DeployRequestSchema, create(DeployRequestSchema, { ref: { tenant: "acme", service: "counter" }, code: "x" }));
    assert.equal(good.kind, "valid");
    const big = v.validate(PutSecretRequestSchema, create(PutSecretRequestSchema, { tenant: "acme", name: "K", value: "x".repeat(65537) }));
    assert.equal(big.kind, "invalid");
    const tooMany = v.validate(
      GrantTokenRequestSchema,
      create(GrantTokenRequestSchema, { tenant: "acme", permissions: Array.from({ length: 65 }, () => "call:*") }),
    );
    assert.equal(tooMany.kind, "invalid");
  });
});
