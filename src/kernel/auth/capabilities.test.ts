import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { mkdtempSync, readdirSync, readFileSync, rmSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { DatabaseSync } from "node:sqlite";
import { after, before, describe, it } from "node:test";
import { ManualClock, rejection, until } from "../../../test/support/helpers.ts";
import { type GrantedToken, type Kernel, type KernelSession, openKernel, type SoloEvent, type TokenInfo } from "../../index.ts";
import { SQLITE_FILE } from "../../store/open.ts";

/** A counter whose count only `inc` calls and casts change; `tag` makes each copy's code distinct. */
const counter = (tag: string): string => `// ${tag}
export default {
  init() { return { count: 0 } },
  handleCall(req, state) {
    if (req === "get") return { reply: state.count, state };
    state.count += 1;
    return { reply: state.count, state };
  },
  handleCast(by, state) { state.count += by; return { state } },
  codeChange(from, state) { return state },
}`;

/** A well-formed token (`solo_` + 43 base64url characters) that no kernel ever granted. */
const NEVER_GRANTED = `solo_${"Q".repeat(21)}-${"z".repeat(21)}`;

async function openFresh(clock?: ManualClock, dir = mkdtempSync(join(tmpdir(), "solo-cap-"))): Promise<{ kernel: Kernel; dir: string }> {
  const kernel = await openKernel({ dataDir: dir, schedulers: 1, ...(clock ? { clock } : {}) });
  return { kernel, dir };
}

/** The id of the last event in the log (0 if none). */
async function headId(kernel: Kernel): Promise<number> {
  return (await kernel.events({ order: "desc", limit: 1 })).events[0]?.id ?? 0;
}

/** Events of one type recorded after `afterId`. */
async function eventsSince(kernel: Kernel, afterId: number, type: string): Promise<SoloEvent[]> {
  return (await kernel.events({ afterId, types: [type], limit: 1000 })).events;
}

/** Waits until every event appended so far (including fire-and-forget records) is durable. */
async function flush(kernel: Kernel): Promise<void> {
  // The log commits in order: once this awaited write is durable, everything queued before it is.
  await kernel.tenants.update("acme", {});
}

function assertHidden(text: string, secrets: readonly string[], what: string): void {
  for (const s of secrets) assert.ok(!text.includes(s), `${what} contains a token: ${text}`);
}

type Outcome =
  /** The operation needs nothing this token lacks: it succeeds, and `allowed` looks at what it returned. */
  { readonly allowed: (result: unknown) => void } | { readonly code: string; readonly reason: string; readonly audited: boolean };

const DENIED: Outcome = { code: "permission_denied", reason: "SOLO_ERR_PERMISSION_DENIED", audited: true };
const ATTENUATION: Outcome = { code: "permission_denied", reason: "SOLO_ERR_TOKEN_ATTENUATION", audited: true };
const OUT_OF_REACH: Outcome = { code: "not_found", reason: "SOLO_ERR_TOKEN_NOT_FOUND", audited: true };
const unauthenticated = (reason: string): Outcome => ({ code: "unauthenticated", reason, audited: true });

describe("capabilities", () => {
  describe("every session operation refuses every bad credential, audits it and changes nothing", () => {
    let kernel: Kernel;
    let dir: string;
    const clock = new ManualClock();
    // The tokens the matrix presents or acts on, granted in `before`.
    const fx = {} as {
      acmeAll: GrantedToken;
      globexAll: GrantedToken;
      child: GrantedToken;
      bystander: GrantedToken;
      revoked: GrantedToken;
      expired: GrantedToken;
    };
    const allTokens = (): string[] => Object.values(fx).map((t) => t.token);

    before(async () => {
      ({ kernel, dir } = await openFresh(clock));
      await kernel.tenants.create("acme");
      await kernel.tenants.create("globex");
      await kernel.deploy({ tenant: "acme", service: "counter", code: counter("v1") });
      // A second version, so that rollback has somewhere to go.
      await kernel.swap("acme", "counter", counter("v2"), { rollbackWindowMs: 0 });
      await kernel.call("acme", "counter", "inc");
      await kernel.call("acme", "counter", "inc");
      await kernel.deploy({ tenant: "globex", service: "ledger", code: counter("ledger") });
      await kernel.secrets.put("acme", "api-key", "s3cret-value");
      fx.acmeAll = await kernel.tokens.grant({ tenant: "acme", permissions: ["*"], label: "acme admin" });
      fx.globexAll = await kernel.tokens.grant({ tenant: "globex", permissions: ["*"], label: "globex admin" });
      // Related permissions, none of them the one any operation below needs.
      fx.child = await kernel
        .as(fx.acmeAll.token)
        .tokens.attenuate({ permissions: ["call:billing-*", "deploy:billing-*"], label: "child" });
      fx.bystander = await kernel.tokens.grant({ tenant: "acme", permissions: ["call:counter"], label: "bystander" });
      fx.revoked = await kernel.tokens.grant({ tenant: "acme", permissions: ["*"], label: "revoked" });
      await kernel.tokens.revoke(fx.revoked.id);
      fx.expired = await kernel.tokens.grant({ tenant: "acme", permissions: ["*"], ttlMs: 1000, label: "expired" });
      clock.advance(1000);
    });

    after(async () => {
      await flush(kernel);
      await kernel.close();
      rmSync(dir, { recursive: true, force: true });
    });

    /** Everything a denied operation could have changed. */
    async function snapshot(): Promise<unknown> {
      const services = (t: string) =>
        kernel.list(t).map((s) => ({ service: s.service, version: s.version, state: s.state, restarts: s.restarts }));
      return {
        acme: services("acme"),
        globex: services("globex"),
        count: await kernel.call("acme", "counter", "get"),
        tokens: (await kernel.tokens.list()).map((t) => ({ id: t.id, state: t.state, revokedAt: t.revokedAt })),
        tenants: await kernel.tenants.list(),
        secrets: await kernel.secrets.list("acme"),
        vault: await kernel.vault.status(),
      };
    }

    interface Op {
      readonly name: string;
      readonly run: (s: KernelSession) => Promise<unknown>;
      /** The permission a scoped token of acme lacks for it (as `details.required`), if it is not a cross-tenant refusal. */
      readonly need?: string;
      /** What globex's `*` token gets (default: SOLO_ERR_PERMISSION_DENIED, audited). */
      readonly otherTenant?: Outcome;
      /** What acme's attenuated child gets (default: SOLO_ERR_PERMISSION_DENIED, audited). */
      readonly child?: Outcome;
    }

    const OPS: readonly Op[] = [
      { name: "deploy", need: "deploy:intruder", run: (s) => s.deploy({ tenant: "acme", service: "intruder", code: counter("intruder") }) },
      { name: "call", need: "call:counter", run: (s) => s.call("acme", "counter", "inc") },
      { name: "cast", need: "call:counter", run: (s) => s.cast("acme", "counter", 5) },
      { name: "kill", need: "deploy:counter", run: (s) => s.kill("acme", "counter") },
      { name: "list", need: "services:read", run: (s) => s.list("acme") },
      { name: "status", need: "services:read", run: (s) => s.status("acme", "counter") },
      { name: "tenantUsage", need: "services:read", run: (s) => s.tenantUsage("acme") },
      { name: "restart", need: "deploy:counter", run: (s) => s.restart("acme", "counter") },
      { name: "swap", need: "deploy:counter", run: (s) => s.swap("acme", "counter", counter("v3")) },
      { name: "rollback", need: "deploy:counter", run: (s) => s.rollback("acme", "counter") },
      { name: "logs", need: "services:read", run: (s) => s.logs("acme", "counter") },
      { name: "versions", need: "services:read", run: (s) => s.versions("acme", "counter") },
      { name: "source", need: "services:read", run: (s) => s.source("acme", "counter") },
      { name: "events", need: "events:read", run: (s) => s.events({ tenant: "acme" }) },
      { name: "subscribe", need: "events:read", run: (s) => s.subscribe({ tenant: "acme" }).next() },
      {
        name: "verify",
        need: "events:read",
        run: (s) => s.verify(),
        // verify names no tenant: a tenant token with events:read may walk the chain.
        otherTenant: { allowed: (report) => assert.equal((report as { ok: boolean }).ok, true) },
      },
      { name: "tokens.grant", need: "tokens:grant", run: (s) => s.tokens.grant({ tenant: "acme", permissions: ["call:counter"] }) },
      {
        name: "tokens.list",
        run: (s) => s.tokens.list(),
        // Any valid token may list: it sees only what is within its reach.
        otherTenant: {
          allowed: (list) => {
            assert.ok((list as TokenInfo[]).length > 0);
            for (const t of list as TokenInfo[]) assert.equal(t.tenant, "globex");
          },
        },
        child: {
          allowed: (list) =>
            assert.deepEqual(
              (list as TokenInfo[]).map((t) => t.id),
              [fx.child.id],
            ),
        },
      },
      {
        name: "tokens.revoke",
        run: (s) => s.tokens.revoke(fx.bystander.id),
        // A token may revoke what it derived (or, with tokens:grant, its tenant's); anything else is out of reach.
        otherTenant: OUT_OF_REACH,
        child: OUT_OF_REACH,
      },
      {
        name: "tokens.attenuate",
        run: (s) => s.tokens.attenuate({ tenant: "acme", permissions: ["call:counter"] }),
        otherTenant: ATTENUATION,
        child: ATTENUATION,
      },
      {
        name: "whoami",
        run: (s) => s.whoami(),
        otherTenant: { allowed: (info) => assert.equal((info as TokenInfo).id, fx.globexAll.id) },
        child: { allowed: (info) => assert.equal((info as TokenInfo).id, fx.child.id) },
      },
      { name: "tenants.create", run: (s) => s.tenants.create("initech") },
      { name: "tenants.list", run: (s) => s.tenants.list() },
      { name: "tenants.get", need: "services:read", run: (s) => s.tenants.get("acme") },
      { name: "tenants.update", run: (s) => s.tenants.update("acme", { maxServices: 1 }) },
      { name: "tenants.delete", run: (s) => s.tenants.delete("acme") },
      { name: "secrets.put", need: "secrets:write", run: (s) => s.secrets.put("acme", "api-key", "overwritten") },
      { name: "secrets.delete", need: "secrets:write", run: (s) => s.secrets.delete("acme", "api-key") },
      { name: "secrets.list", need: "secrets:read", run: (s) => s.secrets.list("acme") },
      { name: "vault.status", run: (s) => s.vault.status() },
      { name: "vault.rotate", run: (s) => s.vault.rotate({ wait: true }) },
    ];

    interface Credential {
      readonly name: string;
      readonly token: () => unknown;
      /** The id the denial record names (null when the token was not recognised). */
      readonly tokenId: () => string | null;
      readonly outcome: (op: Op) => Outcome;
      /** Whether a denial names the permission the operation needs (`details.required`). */
      readonly namesRequired?: boolean;
    }

    const CREDENTIALS: readonly Credential[] = [
      { name: "no token", token: () => undefined, tokenId: () => null, outcome: () => unauthenticated("SOLO_ERR_TOKEN_MISSING") },
      {
        name: 'a malformed token ("nope")',
        token: () => "nope",
        tokenId: () => null,
        outcome: () => unauthenticated("SOLO_ERR_TOKEN_MALFORMED"),
      },
      {
        name: 'a malformed token ("solo_short")',
        token: () => "solo_short",
        tokenId: () => null,
        outcome: () => unauthenticated("SOLO_ERR_TOKEN_MALFORMED"),
      },
      { name: "a number for a token", token: () => 4242, tokenId: () => null, outcome: () => unauthenticated("SOLO_ERR_TOKEN_MALFORMED") },
      {
        name: "a real token with a trailing newline",
        token: () => `${fx.acmeAll.token}\n`,
        tokenId: () => null,
        outcome: () => unauthenticated("SOLO_ERR_TOKEN_MALFORMED"),
      },
      {
        name: "a well-formed token never granted",
        token: () => NEVER_GRANTED,
        tokenId: () => null,
        outcome: () => unauthenticated("SOLO_ERR_TOKEN_UNKNOWN"),
      },
      {
        name: "an expired token",
        token: () => fx.expired.token,
        tokenId: () => fx.expired.id,
        outcome: () => unauthenticated("SOLO_ERR_TOKEN_EXPIRED"),
      },
      {
        name: "a revoked token",
        token: () => fx.revoked.token,
        tokenId: () => fx.revoked.id,
        outcome: () => unauthenticated("SOLO_ERR_TOKEN_REVOKED"),
      },
      {
        name: "another tenant's * token",
        token: () => fx.globexAll.token,
        tokenId: () => fx.globexAll.id,
        outcome: (op) => op.otherTenant ?? DENIED,
      },
      {
        name: "an attenuated child lacking the permission",
        token: () => fx.child.token,
        tokenId: () => fx.child.id,
        outcome: (op) => op.child ?? DENIED,
        namesRequired: true,
      },
    ];

    const describeOutcome = (o: Outcome): string =>
      "allowed" in o ? "is allowed (needs no more)" : `${o.reason}${o.audited ? "" : " (not audited)"}`;

    for (const op of OPS) {
      describe(op.name, () => {
        for (const cred of CREDENTIALS) {
          const outcome = cred.outcome(op);
          it(`with ${cred.name}: ${describeOutcome(outcome)}`, async () => {
            const presented = cred.token();
            const required = cred.namesRequired && outcome === DENIED ? op.need : undefined;
            const secrets = [...allTokens(), ...(typeof presented === "string" && presented.length > 4 ? [presented] : [])];
            const was = await snapshot();
            const mark = await headId(kernel);
            const session = kernel.as(presented as string | undefined);

            if ("allowed" in outcome) {
              const result = await op.run(session);
              outcome.allowed(result);
              assertHidden(JSON.stringify(result), secrets, `${op.name}'s result`);
            } else {
              const err = await rejection(op.run(session));
              assert.equal(err.code, outcome.code, err.message);
              assert.equal(err.reason, outcome.reason, err.message);
              assertHidden(`${err.message} ${JSON.stringify(err.details)}`, secrets, "the error");
              assert.equal(err.details.required, required);
            }

            const denials = await eventsSince(kernel, mark, "capability_denied");
            if ("allowed" in outcome || !outcome.audited) {
              assert.deepEqual(denials, []);
            } else {
              assert.equal(denials.length, 1, JSON.stringify(denials));
              const e = denials[0] as SoloEvent;
              const payload = e.payload as Record<string, unknown>;
              assert.equal(payload.operation, op.name);
              assert.equal(payload.reason, outcome.reason);
              assert.equal(payload.tokenId, cred.tokenId());
              assert.equal(payload.required, required);
              assertHidden(JSON.stringify(e), secrets, "the capability_denied event");
            }
            assert.deepEqual(await snapshot(), was);
          });
        }
      });
    }
  });

  describe("positive paths", () => {
    let kernel: Kernel;
    let dir: string;

    before(async () => {
      ({ kernel, dir } = await openFresh());
      await kernel.tenants.create("acme");
      await kernel.tenants.create("globex");
      await kernel.deploy({ tenant: "acme", service: "counter", code: counter("v1") });
      await kernel.deploy({ tenant: "globex", service: "ledger", code: counter("ledger") });
      for (const service of ["billing-eu", "bill", "billing"]) await kernel.deploy({ tenant: "acme", service, code: counter(service) });
    });

    after(async () => {
      await flush(kernel);
      await kernel.close();
      rmSync(dir, { recursive: true, force: true });
    });

    const holding = async (tenant: string | null, permissions: string[]): Promise<{ s: KernelSession; t: GrantedToken }> => {
      const t = await kernel.tokens.grant({ tenant, permissions });
      return { s: kernel.as(t.token), t };
    };

    describe("a token with exactly the permission an operation needs can do it", () => {
      interface Exact {
        readonly name: string;
        readonly permission: string;
        readonly tenant: "acme" | null;
        readonly run: (s: KernelSession, t: GrantedToken) => Promise<void>;
      }
      const EXACT: readonly Exact[] = [
        {
          name: "deploy",
          permission: "deploy:fresh",
          tenant: "acme",
          run: async (s) => assert.equal((await s.deploy({ tenant: "acme", service: "fresh", code: counter("fresh") })).version, 1),
        },
        {
          name: "call",
          permission: "call:counter",
          tenant: "acme",
          run: async (s) => assert.equal(await s.call("acme", "counter", "inc"), 1),
        },
        {
          name: "cast",
          permission: "call:counter",
          tenant: "acme",
          run: async (s) => {
            await s.cast("acme", "counter", 10);
            await until("the cast is handled", async () => (await kernel.call("acme", "counter", "get")) === 11);
          },
        },
        {
          name: "list",
          permission: "services:read",
          tenant: "acme",
          run: async (s) => assert.ok((await s.list("acme")).some((i) => i.service === "fresh")),
        },
        {
          name: "status",
          permission: "services:read",
          tenant: "acme",
          run: async (s) => assert.equal((await s.status("acme", "counter")).state, "running"),
        },
        {
          name: "tenantUsage",
          permission: "services:read",
          tenant: "acme",
          run: async (s) => assert.equal((await s.tenantUsage("acme")).tenant, "acme"),
        },
        {
          name: "logs",
          permission: "services:read",
          tenant: "acme",
          run: async (s) => assert.ok(Array.isArray(await s.logs("acme", "counter"))),
        },
        {
          name: "versions",
          permission: "services:read",
          tenant: "acme",
          run: async (s) => assert.equal((await s.versions("acme", "counter")).at(-1)?.current, true),
        },
        {
          name: "source",
          permission: "services:read",
          tenant: "acme",
          run: async (s) => assert.match((await s.source("acme", "counter")).code, /handleCall/),
        },
        {
          name: "restart",
          permission: "deploy:counter",
          tenant: "acme",
          run: async (s) => assert.equal((await s.restart("acme", "counter")).service, "counter"),
        },
        {
          name: "swap",
          permission: "deploy:counter",
          tenant: "acme",
          run: async (s) => assert.equal((await s.swap("acme", "counter", counter("v2"))).version, 2),
        },
        {
          name: "rollback",
          permission: "deploy:counter",
          tenant: "acme",
          run: async (s) => {
            assert.equal((await s.rollback("acme", "counter")).version, 1);
            assert.equal(kernel.status("acme", "counter").version, 1);
          },
        },
        {
          name: "kill",
          permission: "deploy:fresh",
          tenant: "acme",
          run: async (s) => {
            await s.kill("acme", "fresh");
            assert.equal(kernel.status("acme", "fresh").state, "stopped");
          },
        },
        {
          name: "events",
          permission: "events:read",
          tenant: "acme",
          run: async (s) => assert.ok((await s.events()).events.some((e) => e.type === "service_deployed")),
        },
        {
          name: "subscribe",
          permission: "events:read",
          tenant: "acme",
          run: async (s) => {
            const sub = s.subscribe({ fromId: 1 });
            const first = await sub.next();
            await sub.return?.();
            assert.equal((first.value as SoloEvent).tenant, "acme");
          },
        },
        { name: "verify", permission: "events:read", tenant: "acme", run: async (s) => assert.equal((await s.verify()).ok, true) },
        {
          name: "tokens.grant",
          permission: "tokens:grant",
          tenant: "acme",
          run: async (s, t) => assert.equal((await s.tokens.grant({ tenant: "acme", permissions: ["tokens:grant"] })).parent, t.id),
        },
        {
          name: "tokens.revoke (a token of its tenant it did not derive)",
          permission: "tokens:grant",
          tenant: "acme",
          run: async (s) => {
            const other = await kernel.tokens.grant({ tenant: "acme", permissions: ["call:counter"] });
            assert.deepEqual((await s.tokens.revoke(other.id)).revoked, [other.id]);
          },
        },
        {
          name: "tokens.list",
          permission: "call:counter",
          tenant: "acme",
          run: async (s, t) =>
            assert.deepEqual(
              (await s.tokens.list()).map((i) => i.id),
              [t.id],
            ),
        },
        {
          name: "tokens.attenuate",
          permission: "call:counter",
          tenant: "acme",
          run: async (s, t) => {
            const c = await s.tokens.attenuate({ permissions: ["call:counter"] });
            assert.deepEqual([c.tenant, c.parent, c.permissions], ["acme", t.id, ["call:counter"]]);
          },
        },
        { name: "whoami", permission: "call:counter", tenant: "acme", run: async (s, t) => assert.equal((await s.whoami()).id, t.id) },
        {
          name: "tenants.create",
          permission: "tenants:write",
          tenant: null,
          run: async (s) => assert.equal((await s.tenants.create("initech")).name, "initech"),
        },
        {
          name: "tenants.list",
          permission: "tenants:read",
          tenant: null,
          run: async (s) =>
            assert.deepEqual(
              (await s.tenants.list()).map((t) => t.name),
              ["acme", "globex", "initech"],
            ),
        },
        {
          name: "tenants.get",
          permission: "tenants:read",
          tenant: null,
          run: async (s) => assert.equal((await s.tenants.get("globex")).name, "globex"),
        },
        {
          name: "tenants.get (a tenant token, its own tenant)",
          permission: "services:read",
          tenant: "acme",
          run: async (s) => assert.equal((await s.tenants.get("acme")).name, "acme"),
        },
        {
          name: "tenants.update",
          permission: "tenants:write",
          tenant: null,
          run: async (s) => assert.equal((await s.tenants.update("initech", { maxServices: 3 })).limits.maxServices, 3),
        },
        {
          name: "tenants.delete",
          permission: "tenants:write",
          tenant: null,
          run: async (s) => assert.equal((await s.tenants.delete("initech")).tenant, "initech"),
        },
        {
          name: "secrets.put",
          permission: "secrets:write",
          tenant: "acme",
          run: async (s) => assert.equal((await s.secrets.put("acme", "db-url", "x")).name, "db-url"),
        },
        {
          name: "secrets.list",
          permission: "secrets:read",
          tenant: "acme",
          run: async (s) =>
            assert.deepEqual(
              (await s.secrets.list("acme")).map((i) => i.name),
              ["db-url"],
            ),
        },
        {
          name: "secrets.delete",
          permission: "secrets:write",
          tenant: "acme",
          run: async (s) => assert.equal(await s.secrets.delete("acme", "db-url"), true),
        },
        {
          name: "vault.status",
          permission: "vault:rotate",
          tenant: null,
          run: async (s) => assert.equal((await s.vault.status()).rotating, false),
        },
        {
          name: "vault.rotate",
          permission: "vault:rotate",
          tenant: null,
          run: async (s) => {
            const was = (await kernel.vault.status()).activeKeyId;
            assert.ok((await s.vault.rotate({ wait: true })).activeKeyId > was);
          },
        },
      ];
      for (const x of EXACT) {
        it(`${x.name} with only ${x.permission}${x.tenant === null ? " (unscoped)" : ""}`, async () => {
          const { s, t } = await holding(x.tenant, [x.permission]);
          await x.run(s, t);
        });
      }
    });

    it("* in a tenant token covers the tenant's operations but not tenants:*, vault:rotate or another tenant", async () => {
      const { s } = await holding("acme", ["*"]);
      await s.deploy({ tenant: "acme", service: "starred", code: counter("starred") });
      assert.equal(await s.call("acme", "starred", "inc"), 1);
      await s.secrets.put("acme", "star", "x");
      assert.equal((await s.tokens.grant({ tenant: "acme", permissions: ["call:starred"] })).tenant, "acme");
      assert.ok((await s.events({ tenant: "acme" })).events.length > 0);
      const refused = [
        () => s.tenants.list(),
        () => s.tenants.create("starco"),
        () => s.tenants.get("globex"),
        () => s.vault.status(),
        () => s.call("globex", "ledger", "inc"),
      ];
      for (const attempt of refused) assert.equal((await rejection(attempt())).reason, "SOLO_ERR_PERMISSION_DENIED", String(attempt));
      const err = await rejection(kernel.tokens.grant({ tenant: "acme", permissions: ["tenants:read"] }));
      assert.deepEqual([err.reason, err.details.field], ["SOLO_ERR_PERMISSION_INVALID", "permissions[0]"]);
      assert.equal(await kernel.call("globex", "ledger", "get"), 0);
    });

    it("an unscoped * token crosses tenants", async () => {
      const { s } = await holding(null, ["*"]);
      assert.equal(await s.call("acme", "billing", "inc"), 1);
      assert.equal(await s.call("globex", "ledger", "inc"), 1);
      assert.ok((await s.list("globex")).some((i) => i.service === "ledger"));
      await s.secrets.put("globex", "k", "v");
      const tenants = new Set((await s.events({ limit: 1000 })).events.map((e) => e.tenant));
      assert.ok(tenants.has("acme") && tenants.has("globex"));
      assert.equal((await s.tenants.get("globex")).name, "globex");
    });

    it("call:billing-* matches billing-eu but not bill or billing", async () => {
      const { s } = await holding("acme", ["call:billing-*"]);
      assert.equal(await s.call("acme", "billing-eu", "inc"), 1);
      for (const service of ["bill", "billing"]) {
        const was = await kernel.call("acme", service, "get");
        const err = await rejection(s.call("acme", service, "inc"));
        assert.deepEqual([err.reason, err.details.required], ["SOLO_ERR_PERMISSION_DENIED", `call:${service}`]);
        assert.equal(await kernel.call("acme", service, "get"), was);
      }
    });

    it("a tenant token's events() returns only its tenant's events, and asking for another tenant is denied", async () => {
      assert.ok((await kernel.events({ tenant: "globex" })).events.length > 0);
      const { s, t } = await holding("acme", ["events:read"]);
      const mine = (await s.events({ limit: 1000 })).events;
      assert.ok(mine.some((e) => e.type === "tenant_created" && e.subject === "acme"));
      for (const e of mine) assert.equal(e.tenant, "acme", JSON.stringify(e));
      const mark = await headId(kernel);
      const err = await rejection(s.events({ tenant: "globex" }));
      assert.equal(err.reason, "SOLO_ERR_PERMISSION_DENIED");
      const [denial] = await eventsSince(kernel, mark, "capability_denied");
      assert.deepEqual(denial?.payload, {
        operation: "events",
        targetTenant: "globex",
        reason: "SOLO_ERR_PERMISSION_DENIED",
        message: err.message,
        tokenId: t.id,
      });
      assert.ok((await s.events({ tenant: "acme" })).events.length > 0);
    });

    it("a tenant token's subscribe() yields only its tenant's events", async () => {
      const { s } = await holding("acme", ["events:read"]);
      // From a fixed id, so the two secrets below are in the subscription's range whenever it starts.
      const sub = s.subscribe({ types: ["secret_stored"], fromId: (await headId(kernel)) + 1 });
      const first = sub.next();
      await kernel.secrets.put("globex", "from-globex", "x");
      await kernel.secrets.put("acme", "from-acme", "x");
      const got = (await first).value as SoloEvent;
      await sub.return?.();
      assert.deepEqual([got.tenant, got.subject], ["acme", "from-acme"]);
    });

    it("an unscoped token without tenants:write cannot create a tenant by deploying into it", async () => {
      const { s } = await holding(null, ["deploy:*"]);
      const err = await rejection(s.deploy({ tenant: "ghost", service: "x", code: counter("ghost") }));
      // Either answer keeps tenant creation behind tenants:write.
      assert.ok(["SOLO_ERR_TENANT_NOT_FOUND", "SOLO_ERR_PERMISSION_DENIED"].includes(err.reason), err.reason);
      assert.ok(!(await kernel.tenants.list()).some((t) => t.name === "ghost"));
    });

    it("a tenant token with tokens:grant that omits the tenant grants within its own tenant", async () => {
      const { s, t } = await holding("acme", ["tokens:grant", "call:*"]);
      const g = await s.tokens.grant({ permissions: ["call:counter"] });
      assert.deepEqual([g.tenant, g.parent], ["acme", t.id]);
    });
  });

  describe("attenuation", () => {
    let kernel: Kernel;
    let dir: string;
    const clock = new ManualClock();
    const as = (t: GrantedToken): KernelSession => kernel.as(t.token);

    before(async () => {
      ({ kernel, dir } = await openFresh(clock));
      await kernel.tenants.create("acme");
      await kernel.tenants.create("globex");
      for (const service of ["billing-eu", "billing-us", "counter"])
        await kernel.deploy({ tenant: "acme", service, code: counter(service) });
    });

    after(async () => {
      await flush(kernel);
      await kernel.close();
      rmSync(dir, { recursive: true, force: true });
    });

    /** Asserts the derivation is refused as an attenuation, audited once, with no token created. */
    async function refusedAttenuation(
      derive: () => Promise<unknown>,
      detail?: readonly ["permission" | "tenant" | "expiresAt", unknown],
    ): Promise<void> {
      const tokens = (await kernel.tokens.list()).length;
      const mark = await headId(kernel);
      const err = await rejection(derive());
      assert.deepEqual([err.code, err.reason], ["permission_denied", "SOLO_ERR_TOKEN_ATTENUATION"], err.message);
      if (detail) assert.equal(err.details[detail[0]], detail[1], err.message);
      const denials = await eventsSince(kernel, mark, "capability_denied");
      assert.deepEqual(
        denials.map((e) => [(e.payload as { operation: string }).operation, (e.payload as { reason: string }).reason]),
        [["tokens.attenuate", "SOLO_ERR_TOKEN_ATTENUATION"]],
      );
      assert.equal((await kernel.tokens.list()).length, tokens);
      assert.deepEqual(await eventsSince(kernel, mark, "capability_granted"), []);
    }

    it("a child holds a subset of its parent: its permissions, its tenant, and its expiry at the latest", async () => {
      const parent = await kernel.tokens.grant({ tenant: "acme", permissions: ["call:billing-*", "services:read"], ttlMs: 600_000 });
      const child = await as(parent).tokens.attenuate({ permissions: ["call:billing-eu"], label: "eu only" });
      assert.deepEqual(
        {
          tenant: child.tenant,
          parent: child.parent,
          creator: child.creator,
          permissions: child.permissions,
          expiresAt: child.expiresAt,
          label: child.label,
        },
        {
          tenant: "acme",
          parent: parent.id,
          creator: parent.id,
          permissions: ["call:billing-eu"],
          expiresAt: parent.expiresAt,
          label: "eu only",
        },
      );
      const shorter = await as(parent).tokens.attenuate({ permissions: ["services:read"], ttlMs: 60_000 });
      assert.equal(shorter.expiresAt, new Date(clock.now() + 60_000).toISOString());

      assert.equal(await as(child).call("acme", "billing-eu", "inc"), 1);
      for (const attempt of [() => as(child).call("acme", "billing-us", "inc"), () => as(child).list("acme")]) {
        assert.equal((await rejection(attempt())).reason, "SOLO_ERR_PERMISSION_DENIED", String(attempt));
      }
    });

    it("refuses a child that would hold more than its parent, audited, creating nothing", async () => {
      const parent = await kernel.tokens.grant({ tenant: "acme", permissions: ["call:billing-*", "services:read"], ttlMs: 600_000 });
      const p = as(parent);
      await refusedAttenuation(() => p.tokens.attenuate({ permissions: ["deploy:billing-eu"] }), ["permission", "deploy:billing-eu"]);
      await refusedAttenuation(() => p.tokens.attenuate({ permissions: ["call:*"] }), ["permission", "call:*"]);
      await refusedAttenuation(
        () => p.tokens.attenuate({ permissions: ["call:billing-eu", "events:read"] }),
        ["permission", "events:read"],
      );
      await refusedAttenuation(() => p.tokens.attenuate({ permissions: ["*"] }), ["permission", "*"]);
      await refusedAttenuation(
        () => p.tokens.attenuate({ permissions: ["call:billing-eu"], ttlMs: 600_001 }),
        ["expiresAt", parent.expiresAt],
      );
      clock.advance(1000);
      // What is left of the parent's life is the most a child may have. (The same denial as the
      // one before, moments later: counted into that one's record rather than written again.)
      const mark = await headId(kernel);
      const err = await rejection(p.tokens.attenuate({ permissions: ["call:billing-eu"], ttlMs: 599_001 }));
      assert.equal(err.reason, "SOLO_ERR_TOKEN_ATTENUATION");
      assert.deepEqual(await eventsSince(kernel, mark, "capability_denied"), []);
      assert.equal((await p.tokens.attenuate({ permissions: ["call:billing-eu"], ttlMs: 599_000 })).expiresAt, parent.expiresAt);
    });

    it("a child of a child is held to its own parent", async () => {
      const root = await kernel.tokens.grant({ tenant: "acme", permissions: ["call:*"] });
      const child = await as(root).tokens.attenuate({ permissions: ["call:billing-*"], ttlMs: 120_000 });
      const grandchild = await as(child).tokens.attenuate({ permissions: ["call:billing-eu"] });
      assert.deepEqual([grandchild.parent, grandchild.expiresAt, grandchild.tenant], [child.id, child.expiresAt, "acme"]);
      assert.equal(typeof (await as(grandchild).call("acme", "billing-eu", "get")), "number");
      // The root holds call:counter, but the grandchild's parent does not.
      await refusedAttenuation(() => as(child).tokens.attenuate({ permissions: ["call:counter"] }), ["permission", "call:counter"]);
      await refusedAttenuation(
        () => as(grandchild).tokens.attenuate({ permissions: ["call:billing-us"] }),
        ["permission", "call:billing-us"],
      );
      await refusedAttenuation(() => as(grandchild).tokens.attenuate({ permissions: ["call:billing-eu"], ttlMs: 120_001 }));
    });

    it("a scoped token derives neither an unscoped token nor another tenant's; an unscoped one may derive a scoped one", async () => {
      const scoped = await kernel.tokens.grant({ tenant: "acme", permissions: ["*"] });
      await refusedAttenuation(() => as(scoped).tokens.attenuate({ tenant: null, permissions: ["call:*"] }), ["tenant", null]);
      await refusedAttenuation(() => as(scoped).tokens.attenuate({ tenant: "globex", permissions: ["call:*"] }), ["tenant", "globex"]);
      for (const tenant of [null, "globex"]) {
        const err = await rejection(as(scoped).tokens.grant({ tenant, permissions: ["call:*"] }));
        assert.equal(err.reason, "SOLO_ERR_PERMISSION_DENIED", String(tenant));
      }
      const invalid = await rejection(as(scoped).tokens.attenuate({ permissions: ["tenants:read"] }));
      assert.deepEqual([invalid.reason, invalid.details.field], ["SOLO_ERR_PERMISSION_INVALID", "permissions[0]"]);

      const admin = await kernel.tokens.grant({ tenant: null, permissions: ["call:*"] });
      const narrowed = await as(admin).tokens.attenuate({ tenant: "acme", permissions: ["call:billing-eu"] });
      assert.equal(narrowed.tenant, "acme");
      assert.equal((await rejection(as(narrowed).call("globex", "billing-eu", "get"))).reason, "SOLO_ERR_PERMISSION_DENIED");
    });

    it("revoking a parent revokes every descendant at once, and the revoked list says so", async () => {
      const parent = await kernel.tokens.grant({ tenant: "acme", permissions: ["call:*"] });
      const child = await as(parent).tokens.attenuate({ permissions: ["call:*"] });
      const grandchild = await as(child).tokens.attenuate({ permissions: ["call:billing-eu"] });
      const sibling = await kernel.tokens.grant({ tenant: "acme", permissions: ["call:*"] });
      const mark = await headId(kernel);

      const { revoked } = await kernel.tokens.revoke(parent.id);
      assert.deepEqual(revoked, [parent.id, child.id, grandchild.id]);
      for (const t of [parent, child, grandchild]) {
        const err = await rejection(as(t).call("acme", "billing-eu", "get"));
        assert.deepEqual([err.code, err.reason, err.details.tokenId], ["unauthenticated", "SOLO_ERR_TOKEN_REVOKED", t.id]);
      }
      const listed = new Map((await kernel.tokens.list()).map((t) => [t.id, t]));
      const states = [parent, child, grandchild].map((t) => [listed.get(t.id)?.state, listed.get(t.id)?.revokedAt]);
      assert.deepEqual(states, Array(3).fill(["revoked", new Date(clock.now()).toISOString()]));
      assert.equal(listed.get(sibling.id)?.state, "active");
      assert.equal(typeof (await as(sibling).call("acme", "billing-eu", "get")), "number");

      const records = await eventsSince(kernel, mark, "capability_revoked");
      assert.deepEqual(
        records.map((e) => e.payload),
        [{ tokenId: parent.id, revoked: [parent.id, child.id, grandchild.id], by: "system" }],
      );
      // Revoked stays revoked: a second revocation has nothing left to revoke.
      assert.deepEqual((await kernel.tokens.revoke(parent.id)).revoked, []);
    });

    it("a token revokes what it derived, without tokens:grant, but not its parent or a sibling", async () => {
      const parent = await kernel.tokens.grant({ tenant: "acme", permissions: ["call:*"] });
      const child = await as(parent).tokens.attenuate({ permissions: ["call:*"] });
      const sibling = await as(parent).tokens.attenuate({ permissions: ["call:*"] });
      const grandchild = await as(child).tokens.attenuate({ permissions: ["call:billing-eu"] });
      for (const id of [parent.id, sibling.id]) {
        const err = await rejection(as(child).tokens.revoke(id));
        assert.deepEqual([err.code, err.reason], ["not_found", "SOLO_ERR_TOKEN_NOT_FOUND"]);
      }
      // A token, not its id, is refused without being echoed.
      const misuse = await rejection(as(child).tokens.revoke(grandchild.token));
      assert.equal(misuse.reason, "SOLO_ERR_REQUEST_INVALID");
      assertHidden(`${misuse.message} ${JSON.stringify(misuse.details)}`, [grandchild.token], "the error");

      assert.deepEqual((await as(child).tokens.revoke(grandchild.id)).revoked, [grandchild.id]);
      assert.deepEqual(
        (await as(child).tokens.list()).map((t) => [t.id, t.state]),
        [
          [child.id, "active"],
          [grandchild.id, "revoked"],
        ],
      );
      assert.deepEqual((await as(child).tokens.revoke(child.id)).revoked, [child.id]);
      assert.equal((await rejection(as(child).whoami())).reason, "SOLO_ERR_TOKEN_REVOKED");
      assert.equal((await as(sibling).whoami()).state, "active");
    });
  });

  describe("revocation and expiry are durable", () => {
    const clock = new ManualClock();
    let dir: string;
    let kernel: Kernel | undefined;

    after(async () => {
      await kernel?.close();
      rmSync(dir, { recursive: true, force: true });
    });

    it("a kernel reopened on the same data directory still refuses revoked and expired tokens and accepts valid ones", async () => {
      let k: Kernel;
      ({ kernel: k, dir } = await openFresh(clock));
      kernel = k;
      await k.tenants.create("acme");
      await k.deploy({ tenant: "acme", service: "counter", code: counter("v1") });
      const valid = await k.tokens.grant({ tenant: "acme", permissions: ["call:counter"] });
      const expiring = await k.tokens.grant({ tenant: "acme", permissions: ["call:counter"], ttlMs: 5000 });
      const parent = await k.tokens.grant({ tenant: "acme", permissions: ["call:*"] });
      const child = await k.as(parent.token).tokens.attenuate({ permissions: ["call:counter"] });
      const grandchild = await k.as(child.token).tokens.attenuate({ permissions: ["call:counter"] });
      await k.tokens.revoke(parent.id);
      await k.close();
      kernel = undefined;

      clock.advance(5000);
      k = (await openFresh(clock, dir)).kernel;
      kernel = k;
      assert.equal(await k.as(valid.token).call("acme", "counter", "inc"), 1);
      const refusals = [];
      for (const t of [expiring, parent, child, grandchild])
        refusals.push((await rejection(k.as(t.token).call("acme", "counter", "inc"))).reason);
      assert.deepEqual(refusals, ["SOLO_ERR_TOKEN_EXPIRED", "SOLO_ERR_TOKEN_REVOKED", "SOLO_ERR_TOKEN_REVOKED", "SOLO_ERR_TOKEN_REVOKED"]);
      const states = new Map((await k.tokens.list()).map((t) => [t.id, t.state]));
      assert.deepEqual(
        [valid, expiring, parent, child, grandchild].map((t) => states.get(t.id)),
        ["active", "expired", "revoked", "revoked", "revoked"],
      );
      assert.equal(await k.call("acme", "counter", "get"), 1);
    });
  });

  describe("tokens.grant refuses malformed and hostile specs precisely, creating nothing", () => {
    let kernel: Kernel;
    let dir: string;
    let admin: KernelSession;

    before(async () => {
      ({ kernel, dir } = await openFresh());
      await kernel.tenants.create("acme");
      admin = kernel.as((await kernel.tokens.grant({ tenant: null, permissions: ["*"], label: "admin" })).token);
    });

    after(async () => {
      await flush(kernel);
      await kernel.close();
      rmSync(dir, { recursive: true, force: true });
    });

    const TEN_YEARS = 10 * 365 * 24 * 3600 * 1000;
    const spec = (over: Record<string, unknown>): Record<string, unknown> => ({ tenant: "acme", permissions: ["call:counter"], ...over });
    interface Bad {
      readonly name: string;
      readonly spec: unknown;
      readonly reason: string;
      readonly field?: string;
      /** Only the embedder must name the tenant (a token's omitted tenant is its own, or unscoped). */
      readonly embedderOnly?: boolean;
    }
    const badPermission = (shown: string, permissions: unknown[], field = "permissions[0]"): Bad => ({
      name: `permissions ${shown}`,
      spec: spec({ permissions }),
      reason: "SOLO_ERR_PERMISSION_INVALID",
      field,
    });
    const CASES: readonly Bad[] = [
      ...[
        ["a string", "call:*"],
        ["null", null],
        ["an array", [spec({})]],
        ["a number", 7],
        ["undefined", undefined],
      ].map(([name, value]): Bad => ({ name: `a spec that is ${name}`, spec: value, reason: "SOLO_ERR_REQUEST_INVALID" })),
      { name: "an unknown field", spec: spec({ expiresAt: 0 }), reason: "SOLO_ERR_REQUEST_INVALID", field: "expiresAt" },
      { name: "no tenant", spec: { permissions: ["call:*"] }, reason: "SOLO_ERR_REQUEST_INVALID", field: "tenant", embedderOnly: true },
      { name: "an invalid tenant name", spec: spec({ tenant: "Acme" }), reason: "SOLO_ERR_NAME_INVALID", field: "tenant" },
      { name: "a tenant that does not exist", spec: spec({ tenant: "nobody" }), reason: "SOLO_ERR_TENANT_NOT_FOUND" },
      {
        name: "permissions that are not an array",
        spec: spec({ permissions: "call:*" }),
        reason: "SOLO_ERR_PERMISSION_INVALID",
        field: "permissions",
      },
      { name: "no permissions", spec: spec({ permissions: [] }), reason: "SOLO_ERR_PERMISSION_INVALID", field: "permissions" },
      {
        name: "65 permissions",
        spec: spec({ permissions: Array.from({ length: 65 }, (_, i) => `call:svc-${i}`) }),
        reason: "SOLO_ERR_PERMISSION_INVALID",
        field: "permissions",
      },
      ...["call:", "call:Billing", "deploy:a*b", "fetch:http://x", "call:billing ", "CALL:billing", "admin", "tenants:*"].map((p) =>
        badPermission(JSON.stringify(p), [p]),
      ),
      badPermission("of 10 KB", ["x".repeat(10 * 1024)]),
      badPermission("with a number", [42]),
      badPermission("with a bad one after a good one", ["call:ok", "call:"], "permissions[1]"),
      badPermission("with tenants:write on a tenant token", ["tenants:write"]),
      badPermission("with vault:rotate on a tenant token", ["call:ok", "vault:rotate"], "permissions[1]"),
      ...[0, -1000, 999, 1500.5, TEN_YEARS + 1, Number.MAX_SAFE_INTEGER, Number.NaN, Number.POSITIVE_INFINITY, "60000", null].map(
        (ttlMs): Bad => ({ name: `ttlMs ${String(ttlMs)}`, spec: spec({ ttlMs }), reason: "SOLO_ERR_REQUEST_INVALID", field: "ttlMs" }),
      ),
      ...[
        ["a NUL", "a\u0000b"],
        ["a newline", "line\nbreak"],
        ["a tab", "tab\there"],
        ["a DEL", "del\u007f"],
        ["201 characters", "x".repeat(201)],
        ["a number", 42],
      ].map(
        ([name, label]): Bad => ({
          name: `a label with ${name}`,
          spec: spec({ label }),
          reason: "SOLO_ERR_REQUEST_INVALID",
          field: "label",
        }),
      ),
    ];

    const GRANTERS: ReadonlyArray<readonly [string, (spec: unknown) => Promise<unknown>]> = [
      ["the embedder", (s) => kernel.tokens.grant(s as never)],
      ["an unscoped * token", (s) => admin.tokens.grant(s as never)],
    ];

    for (const [who, grant] of GRANTERS) {
      describe(`from ${who}`, () => {
        for (const bad of CASES) {
          if (bad.embedderOnly && who !== "the embedder") continue;
          it(`refuses ${bad.name} with ${bad.reason}`, async () => {
            const tokens = await kernel.tokens.list();
            const mark = await headId(kernel);
            const err = await rejection(grant(bad.spec));
            assert.equal(err.reason, bad.reason, err.message);
            assert.equal(err.code, bad.reason === "SOLO_ERR_TENANT_NOT_FOUND" ? "not_found" : "invalid_argument");
            if (bad.field !== undefined) assert.equal(err.details.field, bad.field);
            assert.ok(err.message.length < 600, `an error message of ${err.message.length} characters`);
            assert.deepEqual(await kernel.tokens.list(), tokens);
            // Nothing recorded either (a valid admin token's verification aside).
            const recorded = (await kernel.events({ afterId: mark })).events.filter((e) => e.type !== "capability_verified");
            assert.deepEqual(recorded, []);
          });
        }
      });
    }

    it("accepts the limits themselves: 64 permissions, ttlMs 1000 and ten years, a 200-character label", async () => {
      const permissions = Array.from({ length: 64 }, (_, i) => `call:svc-${i}`);
      const most = await kernel.tokens.grant({ tenant: "acme", permissions, ttlMs: 1000, label: "x".repeat(200) });
      assert.equal(most.permissions.length, 64);
      const long = await kernel.tokens.grant({ tenant: "acme", permissions: ["call:counter"], ttlMs: TEN_YEARS, label: "für Zoë ✓" });
      assert.equal(long.label, "für Zoë ✓");
    });
  });

  describe("capability_verified", () => {
    let kernel: Kernel;
    let dir: string;
    const clock = new ManualClock();

    before(async () => {
      ({ kernel, dir } = await openFresh(clock));
      await kernel.tenants.create("acme");
    });

    after(async () => {
      await flush(kernel);
      await kernel.close();
      rmSync(dir, { recursive: true, force: true });
    });

    it("is recorded at most once per token per minute, counting the verifications since the last record", async () => {
      const token = await kernel.tokens.grant({ tenant: "acme", permissions: ["services:read"] });
      const other = await kernel.tokens.grant({ tenant: "acme", permissions: ["services:read"] });
      const mark = await headId(kernel);
      const records = async (t: GrantedToken): Promise<SoloEvent[]> => {
        await flush(kernel);
        return (await eventsSince(kernel, mark, "capability_verified")).filter((e) => e.subject === t.id);
      };
      const s = kernel.as(token.token);

      for (let i = 0; i < 50; i++) await s.list("acme");
      await kernel.as(other.token).list("acme");
      // The first verification is recorded at once; the other 49 wait for the minute to pass.
      assert.deepEqual(
        (await records(token)).map((e) => e.payload),
        [{ tokenId: token.id, verifications: 1 }],
      );
      assert.deepEqual(
        (await records(other)).map((e) => e.payload),
        [{ tokenId: other.id, verifications: 1 }],
      );

      clock.advance(59_999);
      await s.list("acme");
      assert.equal((await records(token)).length, 1);

      clock.advance(1);
      await s.list("acme");
      const all = await records(token);
      // 49 + 1 held back within the minute, and this one.
      assert.deepEqual(
        all.map((e) => e.payload),
        [
          { tokenId: token.id, verifications: 1 },
          { tokenId: token.id, verifications: 51 },
        ],
      );
      for (const e of all) {
        assert.deepEqual([e.tenant, e.subject], ["acme", token.id]);
        assertHidden(JSON.stringify(e), [token.token, other.token], "capability_verified");
      }
    });
  });

  describe("verifications counted", () => {
    it("counts one verification per operation, whatever checks the operation makes", async () => {
      const { kernel, dir } = await openFresh(new ManualClock());
      try {
        await kernel.tenants.create("acme");
        const t = await kernel.tokens.grant({ tenant: "acme", permissions: ["events:read", "services:read", "tokens:grant"] });
        const s = kernel.as(t.token);
        const ops: Array<[string, () => Promise<unknown>]> = [
          ["events", () => s.events()],
          ["verify", () => s.verify()],
          ["tenants.get", () => s.tenants.get("acme")],
          ["tokens.grant without a tenant", () => s.tokens.grant({ permissions: ["events:read"] })],
          ["list", () => s.list("acme")],
        ];
        for (const [name, op] of ops) {
          const before = kernel.stats().verifications;
          await op();
          assert.equal(kernel.stats().verifications - before, 1, name);
        }
      } finally {
        await flush(kernel);
        await kernel.close();
        rmSync(dir, { recursive: true, force: true });
      }
    });
  });

  describe("token secrecy", () => {
    let dir: string;
    let kernel: Kernel | undefined;

    after(async () => {
      await kernel?.close();
      rmSync(dir, { recursive: true, force: true });
    });

    it("tokens.list, whoami and the event log never hold a token, and the store keeps only its SHA-256", async () => {
      let k: Kernel;
      ({ kernel: k, dir } = await openFresh());
      kernel = k;
      await k.tenants.create("acme");
      const root = await k.tokens.grant({ tenant: "acme", permissions: ["*"], label: "root" });
      const child = await k.as(root.token).tokens.attenuate({ permissions: ["call:*"] });
      const admin = await k.tokens.grant({ tenant: null, permissions: ["*"] });
      const granted = [root, child, admin];
      const secrets = granted.map((t) => t.token);
      for (const t of granted) assert.match(t.token, /^solo_[A-Za-z0-9_-]{43}$/);
      assert.equal(new Set(secrets).size, 3);

      // Exercise every path that records or shows a token: a denial, a revocation, a verification.
      await rejection(k.as(child.token).secrets.list("acme"));
      await k.as(root.token).tokens.revoke(child.id);
      const whoami = await k.as(root.token).whoami();
      assert.ok(!("token" in whoami));
      const shown = [
        await k.tokens.list(),
        await k.as(admin.token).tokens.list(),
        await k.as(root.token).tokens.list(),
        whoami,
        await k.as(admin.token).whoami(),
      ];
      for (const listing of shown) assertHidden(JSON.stringify(listing), secrets, "a token listing");
      await flush(k);
      const events = (await k.events({ limit: 1000 })).events;
      assert.ok(events.some((e) => e.type === "capability_denied") && events.some((e) => e.type === "capability_verified"));
      assertHidden(JSON.stringify(events), secrets, "the event log");
      await k.close();
      kernel = undefined;

      const db = new DatabaseSync(join(dir, SQLITE_FILE), { readOnly: true });
      try {
        const rows = db.prepare("SELECT id, hash FROM tokens ORDER BY id").all();
        const sha256 = (s: string): string => createHash("sha256").update(s).digest("hex");
        const expected = granted.map((t) => ({ id: t.id, hash: sha256(t.token) })).sort((a, b) => (a.id < b.id ? -1 : 1));
        assert.deepEqual(
          rows.map((r) => ({ id: r.id, hash: r.hash })),
          expected,
        );
        const tables = db.prepare("SELECT name FROM sqlite_master WHERE type = 'table'").all();
        for (const { name } of tables) {
          for (const row of db.prepare(`SELECT * FROM "${String(name)}"`).all())
            assertHidden(JSON.stringify(row), secrets, `table ${String(name)}`);
        }
      } finally {
        db.close();
      }
      // Nor is a token anywhere in the data directory's bytes.
      for (const entry of readdirSync(dir, { recursive: true })) {
        const path = join(dir, String(entry));
        if (!statSync(path).isFile()) continue;
        const bytes = readFileSync(path);
        for (const s of secrets) assert.ok(!bytes.includes(s), `${String(entry)} holds a token`);
      }
    });
  });
});
