/**
 * The event log and the kernel's state: `solo events` (a page, every page with `--all`, or
 * `--follow`, which reconnects when the kernel restarts), `verify` and `health`.
 */
import { type MessageInitShape, toJson } from "@bufbuild/protobuf";
import { ValueSchema } from "@bufbuild/protobuf/wkt";
import type { Event, EventFilterSchema } from "../../gen/solo/v1/solo_pb.js";
import type { Cli } from "../command.ts";
import type { Clients } from "../connection.ts";
import { bold, colours, dim, EXIT, green, UsageError } from "../output.ts";
import { followAcrossRestarts, interrupted, noter } from "../reconnect.ts";

type EventFilterInit = MessageInitShape<typeof EventFilterSchema>;

/** `solo events`' options as commander parsed them. */
export interface EventsOptions {
  tenant?: string;
  type: string[];
  subject?: string;
  since?: number;
  limit?: number;
  all?: boolean;
  follow?: boolean;
}

/** A page's bounds, as `--limit` says and QueryEventsRequest allows. */
const LIMIT = { min: 1, max: 1000 } as const;

/**
 * `solo events`: one page of the log (saying on stderr how to get the next when there is one),
 * every page with `--all`, or with `--follow` every event as it comes until Ctrl-C.
 */
export async function events(cli: Cli, c: Clients, o: EventsOptions): Promise<void> {
  if (o.limit !== undefined && (o.limit < LIMIT.min || o.limit > LIMIT.max)) {
    throw new UsageError(
      `--limit must be from ${LIMIT.min} to ${LIMIT.max}, got ${o.limit}`,
      "a page holds 1 to 1000 events; --all reads them all, page after page",
    );
  }
  if (o.all && o.follow) {
    throw new UsageError(
      "--all and --follow do not go together",
      "solo events --follow --since 0 prints the whole log, then each new event",
    );
  }
  const filter: EventFilterInit = {
    ...(o.tenant ? { tenant: o.tenant } : {}),
    types: o.type,
    ...(o.subject ? { subject: o.subject } : {}),
  };
  if (o.follow) return follow(cli, c, filter, o.since);
  const page = (cursor: string) =>
    c.kernel.queryEvents({
      filter,
      ...(cursor ? { cursor } : o.since !== undefined ? { afterId: BigInt(o.since) } : {}),
      ...(o.limit ? { limit: o.limit } : {}),
    });
  if (o.all) {
    // One event a line, as --follow prints them: the whole log need not fit in one document.
    let cursor = "";
    do {
      const p = await page(cursor);
      for (const e of p.events) printEvent(cli, e);
      cursor = p.cursor;
    } while (cursor);
    return;
  }
  const p = await page("");
  // The kernel gives a cursor only when later events pass the filter.
  const more = p.cursor !== "";
  if (cli.json) {
    cli.out({ events: p.events.map(eventData), cursor: p.cursor, more }, () => undefined);
    return;
  }
  for (const e of p.events) printEvent(cli, e);
  const last = p.events.at(-1);
  if (more && last) process.stderr.write(`${dim(`… more events: ${nextPage(o, Number(last.id))}`, colours(process.stderr))}\n`);
}

/** The command line that prints the page after `lastId`: the same filters and limit, `--since` moved on. */
function nextPage(o: EventsOptions, lastId: number): string {
  const words = ["solo", "events"];
  if (o.tenant) words.push("--tenant", o.tenant);
  for (const t of o.type) words.push("--type", t);
  if (o.subject) words.push("--subject", o.subject);
  words.push("--since", String(lastId));
  if (o.limit) words.push("--limit", String(o.limit));
  return words.map(shellWord).join(" ");
}

/** A word as a POSIX shell reads it back: as it is when that is safe, else single-quoted. */
function shellWord(w: string): string {
  return /^[\w@%+=:,./-]+$/.test(w) ? w : `'${w.replaceAll("'", "'\\''")}'`;
}

// ---- --follow -------------------------------------------------------------------------------

/**
 * Follows the log until Ctrl-C. When the stream breaks (the kernel stopped or restarted, the
 * network dropped) it says so on stderr, waits for the kernel to answer `health` again (backing
 * off) and follows on from the last event it printed: none twice, none missed. Errors a retry
 * cannot mend (a revoked token, a bad filter) end it as any command's error does.
 */
async function follow(cli: Cli, c: Clients, filter: EventFilterInit, since: number | undefined): Promise<void> {
  const { signal, release } = interrupted();
  try {
    // Where "from now" is, as an id: so that a reconnect misses nothing even if nothing came yet.
    let last = since ?? (await newestId(c, filter, signal));
    await followAcrossRestarts(
      c,
      signal,
      noter("events"),
      "event",
      () => c.kernel.followEvents({ filter, fromId: BigInt(last + 1) }, { signal }),
      (e) => {
        printEvent(cli, e);
        last = Number(e.id);
      },
      () => `event ${last}`,
    );
  } catch (err) {
    if (!signal.aborted) throw err;
  } finally {
    release();
  }
}

/** The id of the newest event the filter passes (0 if none): where following "from now" starts. */
async function newestId(c: Clients, filter: EventFilterInit, signal: AbortSignal): Promise<number> {
  const page = await c.kernel.queryEvents({ filter, descending: true, limit: 1 }, { signal });
  return Number(page.events[0]?.id ?? 0n);
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
