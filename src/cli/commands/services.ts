/**
 * A tenant's services and one service's life: `solo ls`, `status`, `kill`, `restart` and `logs`.
 */
import type { ServiceInfo } from "../../gen/solo/v1/solo_pb.js";
import { type Cli, ref } from "../command.ts";
import type { Clients } from "../connection.ts";
import { bold, colours, kib, table } from "../output.ts";
import { followAcrossRestarts, interrupted, noter } from "../reconnect.ts";

/** `solo ls <tenant>`: the services as a table, and the tenant's memory under it. */
export async function ls(cli: Cli, c: Clients, tenant: string, o: { tag?: string }): Promise<void> {
  const { services } = await c.kernel.list({ tenant, ...(o.tag ? { tag: o.tag } : {}) });
  // The tenant's memory as the host holds it, under the table. A token that may list but not
  // read the tenant's usage still gets the list: the line is left out, as the permission says.
  const usage = cli.json
    ? undefined
    : await c.kernel.usage({ tenant }).then(
        (r) => r.usage,
        () => undefined,
      );
  cli.out(services, () => {
    if (services.length === 0) return void process.stdout.write(`no services in ${tenant}\n`);
    table([
      ["SERVICE", "VERSION", "STATE", "RESTARTS", "MESSAGES", "MEMORY", "TAGS"],
      ...services.map((s) => [
        s.service,
        String(s.version),
        s.state,
        String(s.restarts),
        String(s.usage?.messages ?? 0),
        kib(Number(s.usage?.memoryBytes ?? 0)),
        s.tags.join(","),
      ]),
    ]);
    if (usage) {
      const limits = usage.limits as { memoryBytes?: number } | undefined;
      process.stdout.write(
        `\ntenant ${tenant}: holds ${kib(Number(usage.memoryBytes ?? 0))} of its ${kib(Number(limits?.memoryBytes ?? 0))} (services' heaps ${kib(Number(usage.heapBytes ?? 0))})\n`,
      );
    }
  });
}

/** `solo status <tenant/service>`. */
export async function status(cli: Cli, c: Clients, target: string): Promise<void> {
  const s = (await c.kernel.status({ ref: ref(target) })).service;
  cli.out(s, () => printStatus(s));
}

/** `solo kill <tenant/service>`: it is not started again. */
export async function kill(cli: Cli, c: Clients, target: string): Promise<void> {
  await c.kernel.kill({ ref: ref(target) });
  cli.out({ ok: true }, () => process.stdout.write(`killed ${target}\n`));
}

/** `solo restart <tenant/service>`: its version, afresh. */
export async function restart(cli: Cli, c: Clients, target: string): Promise<void> {
  const d = (await c.kernel.restart({ ref: ref(target) })).deployment;
  cli.out(d, () => process.stdout.write(`restarted ${target} version ${d?.version}\n`));
}

/** `solo logs <tenant/service>`: its recent log lines, or with `--follow` those and each new one. */
export async function logs(cli: Cli, c: Clients, target: string, o: { follow?: boolean } = {}): Promise<void> {
  const print = (e: LogLine): void =>
    void process.stdout.write(
      cli.json ? `${JSON.stringify({ level: e.level, text: e.text, at: e.at })}\n` : `${e.at} ${e.level.padEnd(5)} ${e.text}\n`,
    );
  if (o.follow) return followLogs(c, ref(target), print);
  const { entries } = await c.kernel.logs({ ref: ref(target) });
  cli.out(entries, () => {
    for (const e of entries) print(e);
  });
}

interface LogLine {
  readonly level: string;
  readonly text: string;
  /** ISO 8601, to the millisecond: lines compare in time as strings. */
  readonly at: string;
}

/**
 * The kept lines, then each new one as it comes, until Ctrl-C. When the stream breaks (the kernel
 * stopped or restarted) it says so on stderr, waits for the kernel to answer again and follows on:
 * the kept lines it sends again are skipped up to the last one printed. Lines carry no id, so a
 * line logged in the same millisecond as the last one printed, and identical to it, can be taken
 * for it; and when that line is no longer kept, those of its millisecond are skipped.
 */
async function followLogs(c: Clients, service: ReturnType<typeof ref>, print: (e: LogLine) => void): Promise<void> {
  const { signal, release } = interrupted();
  let last: LogLine | undefined;
  // Until a stream passes the last line printed, what it sends was printed already.
  let replaying = false;
  try {
    await followAcrossRestarts(
      c,
      signal,
      noter("logs"),
      "log",
      () => {
        replaying = last !== undefined;
        return c.kernel.followLogs({ ref: service }, { signal });
      },
      (e) => {
        if (replaying && last) {
          if (e.at < last.at) return;
          if (e.at === last.at) {
            if (e.level === last.level && e.text === last.text) replaying = false;
            return;
          }
          replaying = false;
        }
        print(e);
        last = { level: e.level, text: e.text, at: e.at };
      },
      () => (last ? `the line at ${last.at}` : "the start"),
    );
  } catch (err) {
    if (!signal.aborted) throw err;
  } finally {
    release();
  }
}

function printStatus(s: ServiceInfo | undefined): void {
  if (!s) return;
  const on = colours();
  const rows: Array<[string, string]> = [
    ["service", `${s.tenant}/${s.service}`],
    ["state", s.state],
    ["version", String(s.version)],
    ["deployed", s.deployedAt],
    ["restarts", String(s.restarts)],
    ["handlers", s.handlers.join(", ")],
    ["tags", s.tags.join(", ")],
    ["usage", JSON.stringify(s.usage)],
    ["limits", JSON.stringify(s.limits)],
    ["grants", JSON.stringify(s.grants)],
    ["breaker", JSON.stringify(s.breaker)],
  ];
  if (s.crash) rows.push(["crash", JSON.stringify(s.crash)]);
  for (const [k, v] of rows) process.stdout.write(`${bold(k.padEnd(9), on)} ${v}\n`);
}
