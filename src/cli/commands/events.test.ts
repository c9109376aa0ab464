import assert from "node:assert/strict";
import { type ChildProcessWithoutNullStreams, spawn } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { soloFreeEnv, waitForOutput } from "../../../test/support/helpers.ts";

/**
 * `solo events` end to end, each run its own process against a `solo start` of this file's own
 * (which the follow tests stop and start again on the same data directory and port): paging and
 * its hint, a closed stdout, and `--follow` across kernel restarts.
 */

const SOLO = new URL("../solo.js", import.meta.url).pathname;
const NODE_ARGS = ["--disable-warning=ExperimentalWarning", SOLO];
const WAIT_MS = 30_000;
const CLOSED_PIPE = 141;

const inherited = soloFreeEnv();

let dir = "";
let dataDir = "";
let compileCache = "";
let port = 0;
let kernel: Running | undefined;

/** A process this file started, with what it printed so far and its end. */
interface Running {
  readonly child: ChildProcessWithoutNullStreams;
  out: string;
  err: string;
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
}

function env(extra: NodeJS.ProcessEnv = {}): NodeJS.ProcessEnv {
  return { ...inherited, SOLO_DATA_DIR: dataDir, SOLO_URL: `https://127.0.0.1:${port}`, NODE_COMPILE_CACHE: compileCache, ...extra };
}

function launch(args: readonly string[], e: NodeJS.ProcessEnv): Running {
  const child = spawn(process.execPath, [...NODE_ARGS, ...args], { env: e, stdio: ["pipe", "pipe", "pipe"] });
  child.stdin.end();
  const r: Running = {
    child,
    out: "",
    err: "",
    exited: new Promise((resolve) => child.on("exit", (code, signal) => resolve({ code, signal }))),
  };
  child.stdout.on("data", (d: Buffer) => (r.out += d.toString()));
  child.stderr.on("data", (d: Buffer) => (r.err += d.toString()));
  return r;
}

/** Runs `solo <args>` to its end, asserting the exit code. */
async function solo(args: readonly string[], code = 0, extra: NodeJS.ProcessEnv = {}): Promise<{ out: string; err: string }> {
  const r = launch(args, env(extra));
  const timer = setTimeout(() => r.child.kill("SIGKILL"), WAIT_MS);
  const end = await r.exited;
  clearTimeout(timer);
  assert.equal(end.code, code, `solo ${args.join(" ")}: exit ${end.code} (${end.signal})\nstdout: ${r.out}\nstderr: ${r.err}`);
  return { out: r.out, err: r.err };
}

interface EventLine {
  readonly id: number;
  readonly type: string;
  readonly tenant: string | null;
  readonly subject: string | null;
}

const lines = (text: string): EventLine[] =>
  text
    .split("\n")
    .filter((l) => l !== "")
    .map((l) => JSON.parse(l) as EventLine);

/** `solo start` on the data directory (the port found the first time, then the same one), once it is ready. */
async function startKernel(): Promise<Running> {
  const k = launch(["start"], { ...env(), SOLO_PORT: String(port), SOLO_WEB_PORT: "0" });
  await Promise.race([
    waitForOutput(
      "solo start to say 'Press Ctrl-C'",
      () => k.out,
      (o) => o.includes("Press Ctrl-C"),
      WAIT_MS,
    ),
    k.exited.then(({ code }) => assert.fail(`solo start exited (${code}) before it was ready:\n${k.out}${k.err}`)),
  ]);
  const m = /^ {2}gateway +https:\/\/127\.0\.0\.1:(\d+) /m.exec(k.out);
  assert.ok(m, `no gateway line in:\n${k.out}`);
  port = Number(m[1]);
  return k;
}

async function stopKernel(signal: NodeJS.Signals): Promise<void> {
  const k = kernel;
  kernel = undefined;
  if (!k || k.child.exitCode !== null || k.child.signalCode !== null) return;
  k.child.kill(signal);
  await k.exited;
}

function waitFor(what: string, text: () => string, test: (s: string) => boolean): Promise<void> {
  return waitForOutput(what, text, test, WAIT_MS);
}

describe("solo events", () => {
  before(async () => {
    dir = mkdtempSync(join(tmpdir(), "solo-cli-events-"));
    dataDir = join(dir, ".solo");
    compileCache = join(dir, "compile-cache");
    kernel = await startKernel();
    await solo(["tenant", "create", "acme"]);
    for (const name of ["a", "b", "c"]) await solo(["secret", "put", "acme", name, "v"]);
  });

  after(async () => {
    await stopKernel("SIGKILL");
    rmSync(dir, { recursive: true, force: true });
  });

  describe("paging", () => {
    it("says on stderr how to get the next page when there are more, and its hint, run, continues where the page ended", async () => {
      const all = lines((await solo(["--json", "events", "--tenant", "acme", "--all"])).out);
      assert.ok(all.length >= 4, JSON.stringify(all));
      // Page after page by following the hints, until a page has none.
      const seen: number[] = [];
      let args = ["events", "--tenant", "acme", "--limit", "2"];
      for (let pages = 0; ; pages++) {
        assert.ok(pages <= all.length, `more pages than events: ${seen.join(" ")}`);
        const { out, err } = await solo(args);
        seen.push(...[...out.matchAll(/^ *(\d+) \S+ acme /gm)].map((m) => Number(m[1])));
        const hint = /^… more events: solo (.*)$/m.exec(err);
        if (!hint) {
          assert.equal(err, "");
          break;
        }
        assert.equal(out.split("\n").filter((l) => l !== "").length, 2, "a full page");
        args = (hint[1] as string).split(" ");
        assert.deepEqual(args.slice(0, 3), ["events", "--tenant", "acme"], "the hint keeps the filter");
        assert.deepEqual(args.slice(-2), ["--limit", "2"], "and the page size");
      }
      assert.deepEqual(
        seen,
        all.map((e) => e.id),
        "the pages together are the log, in order, each event once",
      );
    });

    it("with --json says whether there are more (more, cursor) and --all prints every page, one event a line", async () => {
      const full = JSON.parse((await solo(["--json", "events", "--limit", "2"])).out) as {
        events: EventLine[];
        more: boolean;
        cursor: string;
      };
      assert.equal(full.events.length, 2);
      assert.equal(full.more, true);
      assert.notEqual(full.cursor, "");
      const whole = JSON.parse((await solo(["--json", "events", "--limit", "1000"])).out) as { events: EventLine[]; more: boolean };
      assert.equal(whole.more, false);
      // Small pages, all of them: the same events as one big page (and nothing on stderr).
      const paged = await solo(["--json", "events", "--all", "--limit", "1"]);
      assert.equal(paged.err, "");
      const ids = lines(paged.out).map((e) => e.id);
      assert.deepEqual(
        ids.slice(0, whole.events.length),
        whole.events.map((e) => e.id),
      );
      assert.ok(ids.every((id, i) => i === 0 || id > (ids[i - 1] ?? 0)));
    });

    it("refuses a --limit out of 1-1000, a --limit that is no number, and --all with --follow, in the CLI's words (exit 2)", async () => {
      for (const [args, says] of [
        [["events", "--limit", "0"], /--limit must be from 1 to 1000, got 0/],
        [["events", "--limit", "1001"], /--limit must be from 1 to 1000, got 1001/],
        [["events", "--limit", "1e999"], /--limit must be a whole number, got "1e999"/],
        [["events", "--limit", "-5"], /--limit must be a whole number/],
        [["events", "--all", "--follow"], /--all and --follow do not go together/],
      ] as const) {
        const { out, err } = await solo(args, 2);
        assert.equal(out, "");
        assert.match(err, says);
        assert.doesNotMatch(err, /\n +at /, "no stack trace");
      }
      const j = JSON.parse((await solo(["--json", "events", "--all", "--follow"], 2)).out) as { error: { code: string; hint: string } };
      assert.equal(j.error.code, "usage");
      assert.match(j.error.hint, /solo events --follow --since 0/);
    });
  });

  describe("a closed stdout", () => {
    it("ends a command whose stdout closed before it printed, quietly, with exit 141", async () => {
      const r = launch(["events"], env());
      r.child.stdout.destroy();
      const { code, signal } = await r.exited;
      assert.equal(signal, null);
      assert.equal(code, CLOSED_PIPE, r.err);
      assert.equal(r.err, "", "no stack trace, no error");
    });

    it("ends events --follow quietly when its reader stops after the first line (as `| head -1` does)", async () => {
      const r = launch(["events", "--follow", "--since", "0"], env());
      await waitFor(
        "the follower's first line",
        () => r.out,
        (o) => o.includes("\n"),
      );
      r.child.stdout.destroy();
      // The next event it prints finds the pipe closed.
      let n = 0;
      const ended = r.exited.then(() => true);
      while (!(await Promise.race([ended, solo(["secret", "put", "acme", `pipe-${n++}`, "v"]).then(() => false)]))) {
        assert.ok(n < 20, `still running after ${n} events:\n${r.err}`);
      }
      const { code, signal } = await r.exited;
      assert.equal(signal, null);
      assert.equal(code, CLOSED_PIPE, r.err);
      assert.equal(r.err, "");
    });
  });

  describe("--follow", () => {
    it("survives the kernel's restarts (killed, then stopped): says so, reconnects, prints every event once; a revoked token ends it", async () => {
      const token = JSON.parse((await solo(["--json", "token", "grant", "--tenant", "acme", "--perm", "events:read"])).out) as {
        token: string;
        info: { id: string };
      };
      const admin = launch(["--json", "events", "--follow", "--since", "0"], env());
      const tenant = launch(["events", "--follow", "--tenant", "acme", "--since", "0"], env({ SOLO_TOKEN: token.token }));
      try {
        await solo(["secret", "put", "acme", "before", "v"]);
        await Promise.all([
          waitFor(
            "the admin follower to see secret 'before'",
            () => admin.out,
            (o) => o.includes('"subject":"before"'),
          ),
          waitFor(
            "the tenant follower to see secret 'before'",
            () => tenant.out,
            (o) => / acme secret_stored before /.test(o),
          ),
        ]);
        // Revoked while its stream is open: the stream may go on, but no reconnect may use it.
        await solo(["token", "revoke", token.info.id]);

        await stopKernel("SIGKILL");
        await waitFor(
          "the admin follower to say the stream broke",
          () => admin.err,
          (e) => e.includes("the event stream broke"),
        );
        kernel = await startKernel();
        const revoked = await tenant.exited;
        assert.equal(revoked.code, 3, `the revoked token's follower exits as an auth error:\n${tenant.err}`);
        assert.match(tenant.err, /^error: .*\(SOLO_ERR_TOKEN_REVOKED\)$/m);
        assert.equal(tenant.err.match(/^error:/gm)?.length, 1, "not retried");

        await solo(["secret", "put", "acme", "between", "v"]);
        await waitFor(
          "the admin follower to see secret 'between'",
          () => admin.out,
          (o) => o.includes('"subject":"between"'),
        );
        assert.match(admin.err, /reconnected to https:\/\/127\.0\.0\.1:\d+; following on after event \d+/);

        // A graceful stop (SIGTERM) this time.
        await stopKernel("SIGTERM");
        await waitFor(
          "the admin follower to say the stream broke again",
          () => admin.err,
          (e) => e.split("the event stream broke").length === 3,
        );
        kernel = await startKernel();
        await solo(["secret", "put", "acme", "after", "v"]);
        await waitFor(
          "the admin follower to see secret 'after'",
          () => admin.out,
          (o) => o.includes('"subject":"after"'),
        );

        admin.child.kill("SIGINT");
        const end = await admin.exited;
        assert.equal(end.signal, null, admin.err);
        assert.equal(end.code, 0, admin.err);
        for (const l of admin.err.split("\n").filter((x) => x !== "")) assert.match(l, /^solo events: /, admin.err);

        const followed = lines(admin.out);
        const last = followed.at(-1)?.id ?? 0;
        const log = lines((await solo(["--json", "events", "--all"])).out).filter((e) => e.id <= last);
        assert.deepEqual(
          followed.map((e) => e.id),
          log.map((e) => e.id),
          "every event of the log up to the last one printed, once each, in order",
        );
        assert.equal(followed.filter((e) => e.type === "kernel_started").length, 3);
      } finally {
        for (const r of [admin, tenant]) if (r.child.exitCode === null && r.child.signalCode === null) r.child.kill("SIGKILL");
      }
    });

    it("solo logs --follow survives a restart too: the kept lines it is sent again are not printed twice", async () => {
      const code = join(dir, "logger.js");
      writeFileSync(
        code,
        "export default { init() { return 0 }, handleCall(req, n) { solo.log(String(req)); return { reply: n + 1, state: n + 1 } } };",
      );
      await solo(["deploy", "acme/logger", code]);
      await solo(["call", "acme/logger", '"one"']);
      const follower = launch(["--json", "logs", "--follow", "acme/logger"], env());
      try {
        await waitFor(
          "the log follower to print 'one'",
          () => follower.out,
          (o) => o.includes('"text":"one"'),
        );
        await solo(["call", "acme/logger", '"two"']);
        await waitFor(
          "the log follower to print 'two'",
          () => follower.out,
          (o) => o.includes('"text":"two"'),
        );
        await stopKernel("SIGTERM");
        await waitFor(
          "the log follower to say the stream broke",
          () => follower.err,
          (e) => e.includes("the log stream broke"),
        );
        kernel = await startKernel();
        await solo(["call", "acme/logger", '"three"']);
        await waitFor(
          "the log follower to print 'three'",
          () => follower.out,
          (o) => o.includes('"text":"three"'),
        );
        assert.match(follower.err, /^solo logs: reconnected to https:\/\/127\.0\.0\.1:\d+; following on after the line at \S+$/m);
        follower.child.kill("SIGINT");
        const end = await follower.exited;
        assert.equal(end.code, 0, follower.err);
        const texts = follower.out
          .split("\n")
          .filter((l) => l !== "")
          .map((l) => (JSON.parse(l) as { text: string }).text);
        assert.deepEqual(texts, ["one", "two", "three"]);
      } finally {
        if (follower.child.exitCode === null && follower.child.signalCode === null) follower.child.kill("SIGKILL");
      }
    });
  });
});
