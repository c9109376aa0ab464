import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, it } from "node:test";
import { until } from "../../../test/support/helpers.ts";
import { type KernelSession, openKernel, type SoloEvent } from "../../index.ts";
import type { EventInput } from "../log/event-log.ts";
import { DENIAL_KEYS_PER_REQUESTER, DENIAL_OPENS_PER_WINDOW, type Denial, DenialLedger } from "./denials.ts";

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

  it("stays bounded in writes and memory when every denial comes from a new requester", async () => {
    const { ledger: l, written } = ledger(10_000);
    for (let i = 0; i < 5000; i++) {
      await l.record(
        denial({ via: { requester: { address: `10.${i >> 8}.${i & 255}.1`, certificate: String(i) } }, targetTenant: `t${i}` }),
      );
    }
    // The first DENIAL_OPENS_PER_WINDOW are written at once; the rest are counted in one window.
    assert.equal(written.length, DENIAL_OPENS_PER_WINDOW + 1);
    assert.ok(l.counting <= DENIAL_OPENS_PER_WINDOW + 1, String(l.counting));
    const folded = payload(written.at(-1));
    assert.deepEqual([folded.operation, folded.targetTenant, folded.tokenId], ["*", "*", "*"]);
    await l.flush();
    const counted = payload(written.at(-1));
    assert.equal(counted.count, 5000 - DENIAL_OPENS_PER_WINDOW - 1);
    // What was mixed is listed with counts, bounded: 16 values and the rest as "(others)".
    const targets = counted.targetTenants as Record<string, number>;
    assert.equal(Object.keys(targets).length, 17);
    assert.equal(
      Object.values(targets).reduce((a, b) => a + b, 0),
      counted.count,
    );
    assert.equal(Object.keys(counted.requesters as object).length, 17);
  });

  it("says what a requester's folded record mixed instead of naming one of them", async () => {
    const { ledger: l, written } = ledger(10_000);
    for (let i = 0; i < 40; i++)
      await l.record(denial({ targetTenant: `tenant${i}`, tokenId: `tok${i}`, credential: "", reason: "SOLO_ERR_PERMISSION_DENIED" }));
    await l.flush();
    const last = payload(written.at(-1));
    assert.deepEqual([last.targetTenant, last.tokenId, last.count], ["*", "*", 40 - DENIAL_KEYS_PER_REQUESTER - 1]);
    // The 23 counted: 16 by name, the other 7 together.
    const targets = last.targetTenants as Record<string, number>;
    assert.deepEqual(Object.keys(targets).sort(), [...Array.from({ length: 16 }, (_, i) => `tenant${i + 17}`), "(others)"].sort());
    assert.equal(targets["(others)"], 7);
    assert.deepEqual(last.requester, ATTACKER);
  });
});

describe("a session's denials", () => {
  it("carry the session's requester and request id, for every operation, and are filed against the requester", async () => {
    const dir = mkdtempSync(join(tmpdir(), "solo-via-"));
    const kernel = await openKernel({ dataDir: dir, schedulers: 1 });
    try {
      await kernel.tenants.create("acme");
      await kernel.tenants.create("globex");
      const { token } = await kernel.tokens.grant({ tenant: "globex", permissions: ["call:nothing"] });
      const code = "export default { handleCall(r, s) { return { reply: 1, state: s } } }";
      const ops: Array<[string, (s: KernelSession) => Promise<unknown>]> = [
        ["whoami", (s) => s.whoami()],
        ["deploy", (s) => s.deploy({ tenant: "acme", service: "x", code })],
        ["call", (s) => s.call("acme", "x")],
        ["cast", (s) => s.cast("acme", "x")],
        ["kill", (s) => s.kill("acme", "x")],
        ["list", (s) => s.list("acme")],
        ["status", (s) => s.status("acme", "x")],
        ["tenantUsage", (s) => s.tenantUsage("acme")],
        ["restart", (s) => s.restart("acme", "x")],
        ["swap", (s) => s.swap("acme", "x", code)],
        ["rollback", (s) => s.rollback("acme", "x")],
        ["logs", (s) => s.logs("acme", "x")],
        ["versions", (s) => s.versions("acme", "x")],
        ["source", (s) => s.source("acme", "x")],
        ["events", (s) => s.events({ tenant: "acme" })],
        ["subscribe", (s) => s.subscribe({ tenant: "acme" }).next()],
        ["verify", (s) => s.verify()],
        ["metricsScope", (s) => s.metricsScope()],
        ["tokens.grant", (s) => s.tokens.grant({ tenant: "acme", permissions: ["*"] })],
        ["tokens.attenuate", (s) => s.tokens.attenuate({ permissions: ["*"] })],
        ["tokens.list", (s) => s.tokens.list()],
        ["tokens.revoke", (s) => s.tokens.revoke("tok_AbCdEfGhIjKl")],
        ["tenants.create", (s) => s.tenants.create("mine")],
        ["tenants.list", (s) => s.tenants.list()],
        ["tenants.get", (s) => s.tenants.get("acme")],
        ["tenants.update", (s) => s.tenants.update("acme", {})],
        ["tenants.delete", (s) => s.tenants.delete("acme")],
        ["secrets.put", (s) => s.secrets.put("acme", "K", "v")],
        ["secrets.delete", (s) => s.secrets.delete("acme", "K")],
        ["secrets.list", (s) => s.secrets.list("acme")],
        ["vault.status", (s) => s.vault.status()],
        ["vault.rotate", (s) => s.vault.rotate()],
      ];
      let n = 0;
      for (const presented of [undefined, token]) {
        for (const [name, run] of ops) {
          // A requester of its own each time, so that none is folded with the others.
          const requester = { ...ATTACKER, certificate: `${n++}`.padStart(64, "0") };
          const via = { requester, correlationId: "req-via-1" };
          const mark = (await kernel.events({ order: "desc", limit: 1 })).events[0]?.id ?? 0;
          const refused = await run(kernel.as(presented, via)).then(
            () => false,
            () => true,
          );
          const denials = (await kernel.events({ afterId: mark, types: ["capability_denied"] })).events;
          // Without a token everything is refused; with globex's, what it may do (whoami,
          // tokens.list) is not, and a failure that is no denial (tokens.attenuate asking for more is one) records nothing.
          assert.ok(refused || presented !== undefined, `${name} is refused without a token`);
          if (!refused) {
            assert.deepEqual(denials, [], name);
            continue;
          }
          assert.equal(denials.length, 1, `${name}: ${JSON.stringify(denials)}`);
          const e = denials[0] as SoloEvent;
          assert.deepEqual((e.payload as { requester?: unknown }).requester, requester, name);
          assert.equal(e.correlationId, "req-via-1", name);
          assert.equal(e.tenant, presented === undefined ? null : "globex", `${name} is filed against the requester`);
        }
      }
    } finally {
      await kernel.close();
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
