import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { until } from "../../test-support.ts";
import type { EventInput } from "../log/event-log.ts";
import { DENIAL_KEYS_PER_REQUESTER, type Denial, DenialLedger } from "./denials.ts";

const ATTACKER = { address: "10.0.0.9", certificate: "ab".repeat(32), name: "tenant-b-machine" };

function denial(over: Partial<Denial> = {}): Denial {
  return {
    tenant: null,
    subject: "counter",
    operation: "call",
    targetTenant: "acme",
    reason: "SOLO_ERR_TOKEN_MISSING",
    message: "no capability token was given",
    tokenId: null,
    via: { requester: ATTACKER, correlationId: "req-1" },
    credential: "none",
    ...over,
  };
}

function ledger(windowMs = 50): { ledger: DenialLedger; written: EventInput[] } {
  const written: EventInput[] = [];
  let t = Date.parse("2026-12-07T10:00:00Z");
  const l = new DenialLedger(
    async (e) => {
      written.push(e);
    },
    () => (t += 10),
    windowMs,
  );
  return { ledger: l, written };
}

const payload = (e: EventInput | undefined): Record<string, unknown> => (e?.payload ?? {}) as Record<string, unknown>;

describe("DenialLedger", () => {
  it("writes the first denial at once, with the requester and the request's correlation id", async () => {
    const { ledger: l, written } = ledger();
    await l.record(denial());
    assert.equal(written.length, 1);
    assert.deepEqual(written[0], {
      tenant: null,
      type: "capability_denied",
      subject: "counter",
      payload: {
        operation: "call",
        targetTenant: "acme",
        reason: "SOLO_ERR_TOKEN_MISSING",
        message: "no capability token was given",
        tokenId: null,
        requester: ATTACKER,
      },
      correlationId: "req-1",
    });
    await l.flush();
  });

  it("counts 3,000 repeats into one record written when the window ends", async () => {
    const { ledger: l, written } = ledger(100);
    for (let i = 0; i < 3000; i++) await l.record(denial({ via: { requester: ATTACKER, correlationId: `req-${i}` } }));
    assert.equal(written.length, 1);
    await until("the window ends", () => written.length === 2);
    const counted = payload(written[1]);
    assert.equal(counted.count, 2999);
    assert.equal(typeof counted.firstAt, "string");
    assert.ok(String(counted.lastAt) > String(counted.firstAt));
    assert.deepEqual(counted.requester, ATTACKER);
    assert.equal(written[1]?.correlationId, null, "a count of many requests belongs to none of them");
    assert.deepEqual([l.seen, l.written], [3000, 2]);
    // A window that counted nothing more closes; the next denial is written at once again.
    await until("the window closes", () => l.counting === 0);
    await l.record(denial());
    assert.equal(written.length, 3);
    assert.equal(payload(written[2]).count, undefined);
    await l.flush();
  });

  it("folds a requester that varies what it asks for into one window per reason", async () => {
    const { ledger: l, written } = ledger(10_000);
    for (let i = 0; i < 500; i++) await l.record(denial({ subject: `svc-${i}`, targetTenant: `t-${i % 50}` }));
    // One record per distinct denial up to the bound, then one for everything else.
    assert.equal(written.length, DENIAL_KEYS_PER_REQUESTER + 1);
    const folded = payload(written.at(-1));
    assert.deepEqual([folded.operation, written.at(-1)?.subject], ["*", null]);
    await l.flush();
    const last = payload(written.at(-1));
    assert.equal(last.count, 500 - DENIAL_KEYS_PER_REQUESTER - 1);
    assert.deepEqual(last.operations, { call: 500 - DENIAL_KEYS_PER_REQUESTER - 1 });
    // Another requester is told apart from the first.
    await l.record(denial({ via: { requester: { address: "10.0.0.10" } } }));
    assert.equal(payload(written.at(-1)).operation, "call");
    await l.flush();
  });

  it("tells apart different presented credentials, tokens, reasons and targets", async () => {
    const { ledger: l, written } = ledger(10_000);
    await l.record(denial());
    await l.record(denial({ credential: "other" }));
    await l.record(denial({ reason: "SOLO_ERR_TOKEN_MALFORMED", message: "malformed" }));
    await l.record(denial({ targetTenant: "globex" }));
    await l.record(denial({ tenant: "globex", tokenId: "tok_1", credential: "", reason: "SOLO_ERR_PERMISSION_DENIED", message: "x" }));
    assert.equal(written.length, 5);
    await l.flush();
    assert.equal(written.length, 5, "nothing was counted, so nothing more is written");
  });

  it("writes the next denial at once when recording one failed", async () => {
    let fail = true;
    const written: EventInput[] = [];
    const l = new DenialLedger(
      async (e) => {
        if (fail) throw new Error("disk full");
        written.push(e);
      },
      () => 0,
      10_000,
    );
    const errors: unknown[] = [];
    const original = console.error;
    console.error = (...args: unknown[]) => errors.push(args);
    try {
      await l.record(denial());
    } finally {
      console.error = original;
    }
    assert.equal(errors.length, 1);
    fail = false;
    await l.record(denial());
    assert.equal(written.length, 1);
    await l.flush();
  });
});
