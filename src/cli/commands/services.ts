/**
 * A tenant's services and one service's life: `solo ls`, `status`, `kill`, `restart` and `logs`.
 */
import type { ServiceInfo } from "../../gen/solo/v1/solo_pb.js";
import { type Cli, ref } from "../command.ts";
import type { Clients } from "../connection.ts";
import { bold, colours, kib, table } from "../output.ts";

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

/** `solo logs <tenant/service>`: its recent log lines. */
export async function logs(cli: Cli, c: Clients, target: string, o: { follow?: boolean } = {}): Promise<void> {
  if (o.follow) {
    // The kept lines, then each new one as it comes, until Ctrl-C (or the kernel goes away).
    const abort = new AbortController();
    process.once("SIGINT", () => abort.abort());
    try {
      for await (const e of c.kernel.followLogs({ ref: ref(target) }, { signal: abort.signal })) {
        process.stdout.write(
          cli.json ? `${JSON.stringify({ level: e.level, text: e.text, at: e.at })}\n` : `${e.at} ${e.level.padEnd(5)} ${e.text}\n`,
        );
      }
    } catch (err) {
      if (!abort.signal.aborted) throw err;
    }
    return;
  }
  const { entries } = await c.kernel.logs({ ref: ref(target) });
  cli.out(entries, () => {
    for (const e of entries) process.stdout.write(`${e.at} ${e.level.padEnd(5)} ${e.text}\n`);
  });
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
