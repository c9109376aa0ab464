import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { mkdtempSync, readdirSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, relative } from "node:path";
import { after, describe, it } from "node:test";
import { create } from "@bufbuild/protobuf";
import { createValidator } from "@bufbuild/protovalidate";
import { printSubset } from "../../scripts/protovalidate-subset.ts";
import { DeployRequestSchema, GrantTokenRequestSchema, PutSecretRequestSchema } from "../gen/solo/v1/solo_pb.js";

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
