import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { rejection, until } from "../../../test/support/helpers.ts";
import { allEvents, payloadOf, testKernels } from "../../../test/support/kernels.ts";
import type { LogEntry } from "../../api/services.ts";
import { BYTES_PER_SERVICE, BYTES_PER_TENANT, LINES_PER_SERVICE, LogLines } from "./lines.ts";

const entry = (service: string, text: string, tenant = "acme"): LogEntry => ({
  tenant,
  service,
  level: "info",
  text,
  at: "2026-12-07T00:00:00.000Z",
});

describe("LogLines", () => {
  it("keeps the newest lines of each service within its line and byte bounds", () => {
    const lines = new LogLines();
    for (let i = 0; i < LINES_PER_SERVICE + 50; i++) lines.add(entry("a", `line ${i}`));
    const kept = lines.read("acme", "a");
    assert.equal(kept.length, LINES_PER_SERVICE);
    assert.equal(kept[0]?.text, "line 50");
    assert.equal(kept.at(-1)?.text, `line ${LINES_PER_SERVICE + 49}`);
    const big = "x".repeat(8000);
    for (let i = 0; i < 20; i++) lines.add(entry("b", big + i));
    const b = lines.read("acme", "b");
    assert.ok(b.length * 8000 <= BYTES_PER_SERVICE, `${b.length} lines of 8000`);
    assert.equal(b.at(-1)?.text, `${big}19`);
  });

  it("bounds a tenant: a noisy service loses its own history, not a quiet neighbour's", () => {
    const lines = new LogLines();
    lines.add(entry("quiet", "the one line that explains everything"));
    // Lines arrive clipped to 8,192 characters; 400 services writing a few of them each.
    const big = "y".repeat(8192);
    for (let s = 0; s < 400; s++) for (let i = 0; i < 3; i++) lines.add(entry(`noisy-${s}`, big));
    assert.ok(lines.bytesOf("acme") <= BYTES_PER_TENANT, String(lines.bytesOf("acme")));
    assert.deepEqual(
      lines.read("acme", "quiet").map((l) => l.text),
      ["the one line that explains everything"],
    );
    // Another tenant is untouched, and a tenant's deletion forgets only its own lines.
    lines.add(entry("svc", "other tenant", "globex"));
    lines.forgetTenant("acme");
    assert.deepEqual(lines.read("acme", "quiet"), []);
    assert.equal(lines.bytesOf("acme"), 0);
    assert.equal(lines.read("globex", "svc").length, 1);
  });

  it("takes a tenant's excess from the service that wrote it, even when a neighbour holds more", () => {
    const lines = new LogLines();
    // 18 services holding 7 lines of 8,192 characters each: just under the tenant's bound, and
    // each of them larger than what the noisy one writes before the tenant goes over it.
    const big = "z".repeat(8192);
    for (let s = 0; s < 18; s++) for (let i = 0; i < 7; i++) lines.add(entry(`steady-${s}`, big));
    for (let i = 0; i < 100; i++) lines.add(entry("noisy", `${"n".repeat(1000)} ${i}`));
    assert.ok(lines.bytesOf("acme") <= BYTES_PER_TENANT, String(lines.bytesOf("acme")));
    for (let s = 0; s < 18; s++) assert.equal(lines.read("acme", `steady-${s}`).length, 7, `steady-${s} kept its lines`);
    const noisy = lines.read("acme", "noisy");
    assert.ok(noisy.length < 100);
    assert.match(noisy.at(-1)?.text ?? "", / 99$/);
  });

  it("ends the followers of a deleted tenant's services, and only those", async () => {
    const lines = new LogLines();
    const gone = lines.follow("acme", "svc");
    const kept = lines.follow("globex", "svc");
    lines.forgetTenant("acme");
    assert.equal((await gone.next()).done, true);
    lines.add(entry("svc", "still followed", "globex"));
    assert.equal((await kept.next()).value?.text, "still followed");
    await kept.return?.();
  });

  it("gives a crash the last lines, clipped to a few KiB, and says how many came before", () => {
    const lines = new LogLines();
    for (let i = 0; i < 100; i++) lines.add(entry("a", `step ${i} ${"z".repeat(1000)}`));
    const crash = lines.forCrash("acme", "a");
    assert.ok(crash.lines.length >= 1 && crash.lines.length <= 20);
    assert.ok(crash.lines.every((l) => l.text.length <= 503));
    assert.match(crash.lines.at(-1)?.text ?? "", /^step 99 /);
    assert.equal(crash.earlier + crash.lines.length, lines.read("acme", "a").length, "the rest of what is kept");
    assert.deepEqual(lines.forCrash("acme", "none"), { lines: [], earlier: 0 });
  });
});

const kernels = testKernels("lines");

describe("a service's log", () => {
  it("survives its crash and restart, and the lines before the crash come with service_crashed", async () => {
    const k = await kernels.start(kernels.freshDir());
    await k.deploy({
      tenant: "acme",
      service: "fragile",
      code: `export default {
        init() { console.log("starting"); return 0 },
        handleCall(req, n) { console.log("handling", req); if (req === "boom") { console.error("about to fail"); throw new Error("boom") } return { reply: n + 1, state: n + 1 } },
      }`,
      supervision: { backoffMs: 10 },
    });
    await k.call("acme", "fragile", "one");
    await rejection(k.call("acme", "fragile", "boom"));
    await until("restarted", () => k.status("acme", "fragile").state === "running" && k.status("acme", "fragile").restarts === 1);
    await until("the restart's init line", () => k.logs("acme", "fragile").filter((l) => l.text === "starting").length === 2);
    assert.deepEqual(
      k.logs("acme", "fragile").map((l) => l.text),
      ["starting", "handling one", "handling boom", "about to fail", "starting"],
    );
    const [crashed] = await allEvents(k, { tenant: "acme", types: ["service_crashed"] });
    const { logs } = payloadOf<{ logs: { lines: Array<{ level: string; text: string }>; earlier: number } }>(crashed);
    assert.deepEqual(
      logs.lines.map((l) => [l.level, l.text]),
      [
        ["info", "starting"],
        ["info", "handling one"],
        ["info", "handling boom"],
        ["error", "about to fail"],
      ],
    );
    assert.equal(logs.earlier, 0);
  });
});

describe("a service's log across a kernel restart", () => {
  it("is in the store: a reopened kernel has the lines it kept, and new ones follow them; a kill drops them", async () => {
    const dir = kernels.freshDir();
    const k = await kernels.start(dir);
    const code = `export default { init() { console.log("booted"); return 0 }, handleCall(r, n) { console.warn("asked " + r); return { reply: n, state: n } } }`;
    await k.deploy({ tenant: "acme", service: "keeper", code });
    await k.deploy({ tenant: "acme", service: "gone", code });
    await k.call("acme", "keeper", "once");
    await until("the line", () => k.logs("acme", "keeper").length === 2);
    await k.close();

    const again = await kernels.start(dir);
    // What was kept before, then the recovered instance's own init line.
    await until("the recovery's line", () => again.logs("acme", "keeper").length === 3);
    assert.deepEqual(
      again.logs("acme", "keeper").map((l) => [l.level, l.text]),
      [
        ["info", "booted"],
        ["warn", "asked once"],
        ["info", "booted"],
      ],
    );
    await again.kill("acme", "gone");
    await again.close();

    const third = await kernels.start(dir);
    await until("the third init line", () => third.logs("acme", "keeper").length === 4);
    assert.equal(third.list("acme").length, 1, "the killed one is gone, and so is its log");
  });
});

describe("a service's log in the store", () => {
  it("holds no more than memory does: a service writing long lines keeps its byte bound across a restart", async () => {
    const dir = kernels.freshDir();
    const k = await kernels.start(dir);
    await k.deploy({
      tenant: "acme",
      service: "wordy",
      code: `export default { init() { return 0 }, handleCall(r, n) { for (let i = 0; i < 40; i++) console.log(i + " " + "w".repeat(8000)); return { reply: n, state: n } } }`,
      grants: { log: { perSecond: 1000 } },
    });
    await k.call("acme", "wordy", 1);
    await until("the lines", () => k.logs("acme", "wordy").at(-1)?.text.startsWith("39 ") === true);
    const kept = k.logs("acme", "wordy").length;
    assert.ok(kept * 8000 <= BYTES_PER_SERVICE && kept >= 1, String(kept));
    await k.close();
    const again = await kernels.start(dir);
    const back = again.logs("acme", "wordy");
    assert.ok(back.length <= kept, `${back.length} lines came back, ${kept} were kept`);
    assert.ok(
      back.some((l) => l.text.startsWith("39 ")),
      "the newest is among them",
    );
  });
});

describe("following a service's log", () => {
  const CHATTY = `export default {
    init() { console.log("up"); return 0 },
    handleCall(req, n) { for (let i = 0; i < (req.n ?? 1); i++) console.log(req.say + " " + i); return { reply: n + 1, state: n + 1 } },
  }`;

  it("yields the kept lines, then each new one, across a crash and restart, until aborted", async () => {
    const k = await kernels.start(kernels.freshDir());
    await k.deploy({ tenant: "acme", service: "chatty", code: CHATTY, supervision: { backoffMs: 10 } });
    await until("init's line", () => k.logs("acme", "chatty").length === 1);
    const abort = new AbortController();
    const seen: string[] = [];
    const done = (async () => {
      for await (const line of k.followLogs("acme", "chatty", { signal: abort.signal })) seen.push(line.text);
    })();
    await k.call("acme", "chatty", { say: "hello" });
    await until("hello", () => seen.includes("hello 0"));
    await k.restart("acme", "chatty");
    await until("the restart's init line", () => seen.filter((t) => t === "up").length === 2);
    abort.abort();
    await done;
    assert.deepEqual(seen, ["up", "hello 0", "up"]);
  });

  it("tells a follower that falls behind how many lines it missed, and ends when the kernel closes", async () => {
    const k = await kernels.start(kernels.freshDir());
    await k.deploy({ tenant: "acme", service: "chatty", code: CHATTY, grants: { log: { perSecond: 10_000 } } });
    const it = k.followLogs("acme", "chatty");
    assert.equal((await it.next()).value?.text, "up");
    // 1,500 lines while nobody reads: the oldest 500 past the follower's queue are dropped and counted.
    await k.call("acme", "chatty", { say: "burst", n: 1500 });
    await until("the lines arrived", () => k.logs("acme", "chatty").at(-1)?.text === "burst 1499");
    const first = (await it.next()).value;
    assert.equal(first?.level, "warn");
    assert.match(first?.text ?? "", /^500 log lines not delivered: this follower fell more than 1000 lines behind$/);
    assert.equal((await it.next()).value?.text, "burst 500");
    const rest = (async () => {
      let n = 0;
      for await (const _ of it) n++;
      return n;
    })();
    await k.close();
    assert.equal(await rest, 999, "the queued lines, then the end");
  });

  it("is checked like logs(): a token needs services:read on the tenant, and the service must exist", async () => {
    const k = await kernels.start(kernels.freshDir());
    await k.deploy({ tenant: "acme", service: "chatty", code: CHATTY });
    const { token } = await k.tokens.grant({ tenant: "acme", permissions: ["call:*"] });
    const denied = await rejection(k.as(token).followLogs("acme", "chatty").next());
    assert.equal(denied.reason, "SOLO_ERR_PERMISSION_DENIED");
    // As with subscribe(), the embedder's call checks at once; a token's session, at the first next().
    assert.throws(
      () => k.followLogs("acme", "ghost"),
      (e: { reason?: string }) => e.reason === "SOLO_ERR_SERVICE_NOT_FOUND",
    );
    const admin = (await k.tokens.grant({ tenant: null, permissions: ["*"] })).token;
    assert.equal((await rejection(k.as(admin).followLogs("acme", "ghost").next())).reason, "SOLO_ERR_SERVICE_NOT_FOUND");
    const reader = (await k.tokens.grant({ tenant: "acme", permissions: ["services:read"] })).token;
    const it = k.as(reader).followLogs("acme", "chatty");
    assert.equal((await it.next()).value?.text, "up");
    await it.return?.();
  });
});
