import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { Code } from "@connectrpc/connect";
import { ERROR_CODES, SoloError } from "./errors.ts";
import { codeOfGrpc, EXIT, renderHint, surfaceOf, TRANSPORT, WORDS, words } from "./transport.ts";

describe("the transport map", () => {
  it("gives every code the gRPC status Connect knows it by, and back", () => {
    for (const name of ERROR_CODES) {
      const pascal = name.replace(/(^|_)([a-z])/g, (_, __, c: string) => c.toUpperCase()) as keyof typeof Code;
      assert.equal(TRANSPORT[name].grpc, Code[pascal], name);
      assert.equal(codeOfGrpc(TRANSPORT[name].grpc), name);
    }
    assert.equal(codeOfGrpc(99), "unknown");
  });

  it("sends the CLI's documented exit codes: auth 3, not found 4, unavailable 5, invalid 6", () => {
    assert.deepEqual(
      [
        TRANSPORT.unauthenticated.exit,
        TRANSPORT.not_found.exit,
        TRANSPORT.unavailable.exit,
        TRANSPORT.invalid_argument.exit,
        TRANSPORT.internal.exit,
      ],
      [EXIT.auth, EXIT.notFound, EXIT.unavailable, EXIT.invalid, EXIT.failed],
    );
  });
});

describe("hints in the reader's words", () => {
  const missing = (): SoloError =>
    new SoloError("SOLO_ERR_TENANT_NOT_FOUND", "no tenant named acme", {
      tenant: "acme",
      hint: `${words("tenant.create", { name: "acme" })} makes one`,
    });

  it("says each term as the interface that shows it knows it, filling in the hint's own values", () => {
    const e = missing();
    assert.equal(e.hintFor("api"), "tenants.create(name) makes one");
    assert.equal(e.hintFor("rpc"), "TenantService.Create makes one");
    assert.equal(e.hintFor("cli"), "solo tenant create acme makes one");
    assert.equal(e.hintFor("mcp"), "the tenant_create tool makes one");
  });

  it("gives embedders their words in details.hint and JSON, with no markers", () => {
    const e = missing();
    assert.equal(e.details.hint, "tenants.create(name) makes one");
    assert.doesNotMatch(JSON.stringify(e), /\u27e6|\u27e7/);
  });

  it("keeps the terms across a thread (toData, fromData), so the last interface still words them", () => {
    const back = SoloError.fromData(JSON.parse(JSON.stringify(missing().toData())));
    assert.equal(back.hintFor("cli"), "solo tenant create acme makes one");
    assert.equal(back.details.hint, "tenants.create(name) makes one");
  });

  it("shows a value it lacks as a placeholder, and leaves plain hints and unknown terms as they are", () => {
    assert.equal(renderHint(words("services.list"), "cli"), "solo ls <tenant>");
    assert.equal(renderHint("retry shortly", "mcp"), "retry shortly");
    assert.equal(renderHint("\u27e6no.such\u27e7", "cli"), "\u27e6no.such\u27e7");
    assert.equal(new SoloError("SOLO_ERR_INTERNAL", "x", { hint: "plain" }).hintFor("cli"), "plain");
  });

  it("carries values that contain the marker's own characters intact", () => {
    assert.equal(renderHint(words("services.list", { tenant: "a|b=c\u27e7" }), "cli"), "solo ls a|b=c\u27e7");
  });

  it("has every term in every interface's words", () => {
    for (const [term, said] of Object.entries(WORDS)) {
      for (const surface of ["api", "rpc", "cli", "mcp"] as const) assert.ok(said[surface].length > 0, `${term} ${surface}`);
    }
  });

  it("takes the surface a request names, and the network API's for anything else", () => {
    assert.equal(surfaceOf("cli"), "cli");
    assert.equal(surfaceOf("mcp"), "mcp");
    assert.equal(surfaceOf("api"), "rpc");
    assert.equal(surfaceOf(null), "rpc");
  });
});
