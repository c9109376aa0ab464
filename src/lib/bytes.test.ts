import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { parseBytes } from "./bytes.ts";

describe("parseBytes()", () => {
  it("reads plain bytes and binary units, whatever their case and spacing", () => {
    assert.equal(parseBytes("1048576"), 1048576);
    assert.equal(parseBytes("512MiB"), 512 * 1024 * 1024);
    assert.equal(parseBytes("8 GiB"), 8 * 1024 ** 3);
    assert.equal(parseBytes("1.5g"), 1.5 * 1024 ** 3);
    assert.equal(parseBytes(" 64k "), 65536);
  });

  it("says NaN for what is not a size", () => {
    for (const bad of ["", "lots", "-1", "1e9", "5 parsecs", "0x10", "1.2.3MiB"]) assert.ok(Number.isNaN(parseBytes(bad)), bad);
  });
});
