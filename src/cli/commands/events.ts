/**
 * The event log and the kernel's state: `solo events` (a page, or `--follow`), `verify` and
 * `health`.
 */
import { toJson } from "@bufbuild/protobuf";
import { ValueSchema } from "@bufbuild/protobuf/wkt";
import type { Event } from "../../gen/solo/v1/solo_pb.js";
import type { Cli } from "../command.ts";
import type { Clients } from "../connection.ts";
import { bold, colours, dim, EXIT, green } from "../output.ts";

/** `solo events`' options as commander parsed them. */
export interface EventsOptions {
  tenant?: string;
  type: string[];
  subject?: string;
  since?: number;
  limit?: number;
  follow?: boolean;
}

/** `solo events`: one page of the log, or with `--follow` every event as it comes until Ctrl-C. */
export async function events(cli: Cli, c: Clients, o: EventsOptions): Promise<void> {
  const filter = { ...(o.tenant ? { tenant: o.tenant } : {}), types: o.type, ...(o.subject ? { subject: o.subject } : {}) };
  if (o.follow) {
    const abort = new AbortController();
    process.once("SIGINT", () => abort.abort());
    try {
      for await (const e of c.kernel.followEvents(
        { filter, fromId: BigInt((o.since ?? 0) + (o.since !== undefined ? 1 : 0)) },
        { signal: abort.signal },
      )) {
        printEvent(cli, e);
      }
    } catch (err) {
      if (!abort.signal.aborted) throw err;
    }
    return;
  }
  const page = await c.kernel.queryEvents({
    filter,
    ...(o.since !== undefined ? { afterId: BigInt(o.since) } : {}),
    ...(o.limit ? { limit: o.limit } : {}),
  });
  if (cli.json) {
    cli.out({ events: page.events.map(eventData), cursor: page.cursor }, () => undefined);
    return;
  }
  for (const e of page.events) printEvent(cli, e);
}

/** `solo verify`: walks the hash chain; a broken chain exits 1. */
export async function verify(cli: Cli, c: Clients): Promise<void> {
  const r = await c.kernel.verify({});
  cli.out(r, () =>
    process.stdout.write(
      r.ok
        ? `${green("ok", colours())}: ${r.events} events, head ${r.headHash}\n`
        : `BROKEN at event ${r.at} (${r.problem}): ${r.message}; verified up to ${r.verifiedUpTo}\n`,
    ),
  );
  if (!r.ok) process.exitCode = EXIT.failed;
}

/** `solo health`: whether the kernel is up (needs no token). */
export async function health(cli: Cli, c: Clients): Promise<void> {
  const h = await c.kernel.health({});
  cli.out(h, () => process.stdout.write(`${h.status}: ${h.store}, ${h.schedulers} schedulers, up ${Number(h.uptimeMs) / 1000} s\n`));
}

function eventData(e: Event): Record<string, unknown> {
  return {
    id: Number(e.id),
    timestamp: Number(e.timestamp),
    tenant: e.tenant || null,
    type: e.type,
    subject: e.subject || null,
    payload: e.payload ? toJson(ValueSchema, e.payload) : null,
    causationId: e.causationId ? Number(e.causationId) : null,
    hash: e.hash,
  };
}

function printEvent(cli: Cli, e: Event): void {
  if (cli.json) {
    process.stdout.write(`${JSON.stringify(eventData(e))}\n`);
    return;
  }
  const on = colours();
  const at = new Date(Number(e.timestamp / 1000n)).toISOString();
  const payload = e.payload ? JSON.stringify(toJson(ValueSchema, e.payload)) : "";
  process.stdout.write(
    `${dim(String(e.id).padStart(6), on)} ${dim(at, on)} ${e.tenant || "-"} ${bold(e.type, on)} ${e.subject} ${payload.slice(0, 200)}\n`,
  );
}
