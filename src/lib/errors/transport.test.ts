import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { Code } from "@connectrpc/connect";
import { ERROR_CODES } from "./errors.ts";
import { codeOfGrpc, EXIT, TRANSPORT } from "./transport.ts";

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
