/**
 * chat-room / inbox: one member's inbox. Rooms (room.ts) cast messages into it; its owner reads
 * them with a call.
 *
 * Only services may deliver, and only the rooms listed in `rooms` when it is set: a cast from
 * outside the kernel (the gateway, `solo cast`) or from another service is dropped and counted
 * (`rejected`), so holding `call:inbox-*` does not let anyone forge a room's message. Messages
 * are kept in `solo.storage` (the last `capacity` of them, oldest dropped first) with the read
 * position, so an inbox survives restarts with its unread count intact.
 *
 * `read` with `wait: true` is a long poll: with nothing unread, `handleCall` returns
 * `{ noreply: true, state }` and keeps `ctx.replyTo`, and the next delivery (`handleCast`)
 * answers it with `solo.reply`. Its caller's timeout bounds the wait; if that passed,
 * `solo.reply` throws `SOLO_ERR_REPLY_TOO_LATE` and the message stays unread.
 */

interface Config {
  /** Services allowed to deliver; empty: any service (never the outside). */
  readonly rooms: readonly string[];
  /** Messages kept (1-1000). */
  readonly capacity: number;
}

/** A delivered message, as the owner reads it. */
type Item = {
  /** Position in this inbox (1, 2, ...). */
  readonly n: number;
  readonly type: "message" | "joined";
  readonly room: string;
  readonly seq: number;
  readonly from: string | null;
  readonly text: string | null;
  readonly at: number;
  /** The service that delivered it. */
  readonly via: string;
};

interface State {
  readonly config: Config;
  items: Item[];
  /** The last position handed out. */
  last: number;
  /** Positions up to this one have been read. */
  readUpTo: number;
  /** The read waiting for the next message (`wait: true`): its reply handle and limit; in memory only. */
  waiting: { to: string; limit: number } | null;
  counts: { received: number; rejected: number; dropped: number };
}

const SERVICE = /^[a-z](?:[a-z0-9_-]{0,61}[a-z0-9])?$/;
const KEY_DIGITS = 12;

function checkConfig(args: unknown): Config {
  if (args !== null && args !== undefined && (typeof args !== "object" || Array.isArray(args))) {
    throw new Error('inbox: args must be an object like { rooms: ["general"], capacity: 500 }');
  }
  const given = (args ?? {}) as Record<string, unknown>;
  for (const name of Object.keys(given)) {
    if (name !== "rooms" && name !== "capacity") throw new Error(`inbox: args.${name} is not a setting; the settings are rooms, capacity`);
  }
  const rooms = given.rooms ?? [];
  if (!Array.isArray(rooms) || !rooms.every((r) => typeof r === "string" && SERVICE.test(r))) {
    throw new Error("inbox: args.rooms must be a list of the room services allowed to deliver");
  }
  const capacity = given.capacity ?? 500;
  if (typeof capacity !== "number" || !Number.isSafeInteger(capacity) || capacity < 1 || capacity > 1000) {
    throw new Error(`inbox: args.capacity must be an integer from 1 to 1000, got ${JSON.stringify(capacity)}`);
  }
  return { rooms: rooms as string[], capacity };
}

function keyOf(n: number): string {
  return `msg:${String(n).padStart(KEY_DIGITS, "0")}`;
}

/** A room's cast, checked: a malformed one is refused like a forged one. */
function itemOf(message: unknown, n: number, via: string): Item | null {
  if (message === null || typeof message !== "object" || Array.isArray(message)) return null;
  const m = message as Record<string, unknown>;
  if (m.type !== "message" && m.type !== "joined") return null;
  if (typeof m.room !== "string" || typeof m.seq !== "number" || typeof m.at !== "number") return null;
  const text = typeof m.text === "string" ? m.text : null;
  const from = typeof m.from === "string" ? m.from : null;
  return { n, type: m.type, room: m.room, seq: m.seq, from, text, at: m.at, via };
}

function unread(state: State): number {
  return state.items.filter((i) => i.n > state.readUpTo).length;
}

/** The first `limit` unread messages, oldest first. */
function unreadItems(state: State, limit: number): Item[] {
  return state.items.filter((i) => i.n > state.readUpTo).slice(0, limit);
}

/** Marks the messages up to position `n` read, durably. */
async function markRead(state: State, n: number): Promise<void> {
  state.readUpTo = n;
  await solo.storage.put("meta", { last: state.last, readUpTo: state.readUpTo });
}

/** Answers a deferred read; false if its caller gave up (its timeout passed), so nothing was read. */
function answer(to: string, reply: { items: Item[]; unread: number }): boolean {
  try {
    solo.reply(to, reply);
    return true;
  } catch (err) {
    if ((err as Partial<Solo.Error>).reason !== "SOLO_ERR_REPLY_TOO_LATE") throw err;
    return false;
  }
}

export default {
  async init(args: unknown): Promise<State> {
    const config = checkConfig(args);
    const items = (await solo.storage.list<Item>("msg:", { limit: 1000 })).map((e) => e.value);
    const meta = (await solo.storage.get<{ last: number; readUpTo: number }>("meta")) ?? { last: 0, readUpTo: 0 };
    return {
      config,
      items: items.slice(-config.capacity),
      last: Math.max(meta.last, items.at(-1)?.n ?? 0),
      readUpTo: meta.readUpTo,
      waiting: null,
      counts: { received: 0, rejected: 0, dropped: 0 },
    };
  },

  async handleCast(message: unknown, state: State, ctx: Solo.Context): Promise<Solo.Handled<State>> {
    const allowed = ctx.from !== null && (state.config.rooms.length === 0 || state.config.rooms.includes(ctx.from));
    const item = allowed && ctx.from !== null ? itemOf(message, state.last + 1, ctx.from) : null;
    if (item === null) {
      state.counts.rejected++;
      return { state };
    }
    state.last = item.n;
    state.items.push(item);
    state.counts.received++;
    const writes: Array<Promise<unknown>> = [solo.storage.put(keyOf(item.n), item as unknown as SoloJson)];
    while (state.items.length > state.config.capacity) {
      const old = state.items.shift();
      if (old === undefined) break;
      if (old.n > state.readUpTo) state.counts.dropped++;
      writes.push(solo.storage.delete(keyOf(old.n)));
    }
    writes.push(solo.storage.put("meta", { last: state.last, readUpTo: state.readUpTo }));
    await Promise.all(writes);
    // A read waiting for mail gets it, now that it is stored.
    if (state.waiting) {
      const { to, limit } = state.waiting;
      state.waiting = null;
      const items = unreadItems(state, limit);
      const upTo = items.at(-1)?.n;
      if (upTo !== undefined && answer(to, { items, unread: unread(state) - items.length })) await markRead(state, upTo);
    }
    return { state };
  },

  async handleCall(request: unknown, state: State, ctx: Solo.CallContext): Promise<Solo.CallResult<State, unknown>> {
    const r = (request ?? {}) as Record<string, unknown>;
    // A malformed request is refused with an error of the inbox's own, naming the field.
    const fail = (field: string, message: string): Solo.CallResult<State, never> => ({
      error: { code: "invalid_argument", message, ...(field === "" ? {} : { details: { field } }) },
      state,
    });
    if (typeof request !== "object" || request === null || Array.isArray(request)) {
      return fail("", 'the request must be an object like { op: "read" }');
    }
    const limit = r.limit ?? 100;
    if (typeof limit !== "number" || !Number.isSafeInteger(limit) || limit < 1 || limit > 1000) {
      return fail("limit", "limit must be an integer from 1 to 1000");
    }
    switch (r.op) {
      case "read": {
        // The unread messages, oldest first, which are then read.
        if (r.wait !== undefined && typeof r.wait !== "boolean") return fail("wait", "wait must be true or false");
        const items = unreadItems(state, limit);
        const upTo = items.at(-1)?.n;
        if (upTo === undefined && r.wait === true) {
          // Nothing unread: a long poll, answered by the next delivery (handleCast). One read waits
          // at a time; a newer one lets the older go, empty.
          if (state.waiting) answer(state.waiting.to, { items: [], unread: 0 });
          state.waiting = { to: ctx.replyTo, limit };
          return { noreply: true, state };
        }
        if (upTo !== undefined) await markRead(state, upTo);
        return { reply: { items, unread: unread(state) }, state };
      }
      case "list": {
        // Any kept messages after a position, read or not; changes nothing.
        const after = r.after ?? 0;
        if (typeof after !== "number" || !Number.isSafeInteger(after) || after < 0)
          return fail("after", "after must be an inbox position (0 for the start)");
        return { reply: { items: state.items.filter((i) => i.n > after).slice(0, limit), unread: unread(state) }, state };
      }
      case "stats":
        return {
          reply: { kept: state.items.length, unread: unread(state), last: state.last, waiting: Boolean(state.waiting), ...state.counts },
          state,
        };
      default:
        return fail("op", `unknown op ${JSON.stringify(r.op)}; the ops are read, list, stats`);
    }
  },
};
