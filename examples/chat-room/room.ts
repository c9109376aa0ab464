/**
 * chat-room / room: a chat room that fans each post out to its members' inboxes.
 *
 * Members are inbox services (see inbox.ts) of the same tenant. On `post` the room numbers the
 * message and casts it (`solo.cast`, fire-and-forget) to every member's inbox, so one slow or
 * crashed inbox never holds up the room or the others; the reply says which inboxes could not be
 * reached and why. Casts from one service to another arrive in the order they were sent, so each
 * inbox sees the room's messages in `seq` order.
 *
 * Powers: `call` must list every inbox the room may reach (grants name services exactly, so
 * adding a member outside the list means redeploying the room with a longer list); `join` checks
 * it by casting a welcome notice, so a member the room could never reach is refused at once with
 * the kernel's reason. `storage` keeps the members and the message counter across restarts; the
 * recent history (`historySize` messages) is in memory.
 *
 * A request the room refuses is answered with an error of its own, `{ error: { code, message,
 * details }, state }`: the field at fault, and for a member it cannot reach the kernel's reason.
 */

interface Config {
  /** The room's display name; defaults to the service name. */
  readonly title: string | null;
  readonly historySize: number;
  readonly maxMembers: number;
  readonly maxTextLength: number;
}

interface Message {
  readonly room: string;
  readonly seq: number;
  /** The member (inbox service) that posted. */
  readonly from: string;
  readonly text: string;
  /** Wall-clock milliseconds. */
  readonly at: number;
}

interface State {
  readonly config: Config;
  members: string[];
  seq: number;
  history: Message[];
}

/** A member the room could not cast to, and why (the kernel's reason). */
interface Undelivered {
  readonly member: string;
  readonly reason: string;
  readonly message: string;
}

type Code = "invalid_argument" | "not_found" | "permission_denied" | "failed_precondition" | "resource_exhausted" | "unavailable";

/** A refused request: answered as `{ error, state }`. */
interface Refusal {
  readonly error: Solo.ErrorAnswer & { readonly code: Code };
}

/** How `handle` answers a request: a reply, or a refusal. */
type Answer = { readonly reply: unknown } | Refusal;

type Request =
  | { op: "join"; member: string }
  | { op: "leave"; member: string }
  | { op: "post"; from: string; text: string }
  | { op: "history"; after: number; limit: number }
  | { op: "members" };

const SERVICE = /^[a-z](?:[a-z0-9_-]{0,61}[a-z0-9])?$/;
const DEFAULTS = { historySize: 100, maxMembers: 100, maxTextLength: 4000 };

function checkConfig(args: unknown): Config {
  if (args !== null && args !== undefined && (typeof args !== "object" || Array.isArray(args))) {
    throw new Error('chat room: args must be an object like { title: "General", historySize: 100 }');
  }
  const given = (args ?? {}) as Record<string, unknown>;
  for (const name of Object.keys(given)) {
    if (name !== "title" && !Object.hasOwn(DEFAULTS, name)) {
      throw new Error(`chat room: args.${name} is not a setting; the settings are title, ${Object.keys(DEFAULTS).join(", ")}`);
    }
  }
  if (given.title !== undefined && (typeof given.title !== "string" || given.title.length === 0 || given.title.length > 100)) {
    throw new Error("chat room: args.title must be a string of 1 to 100 characters");
  }
  const numbers: Record<string, number> = {};
  for (const [name, fallback] of Object.entries(DEFAULTS)) {
    const value = given[name] ?? fallback;
    if (typeof value !== "number" || !Number.isSafeInteger(value) || value < 1 || value > 10_000) {
      throw new Error(`chat room: args.${name} must be an integer from 1 to 10000, got ${JSON.stringify(value)}`);
    }
    numbers[name] = value;
  }
  return { title: (given.title as string | undefined) ?? null, ...(numbers as typeof DEFAULTS) };
}

/** `details` names the field the caller got wrong (and, for a member out of reach, the kernel's reason). */
function refuse(code: Code, message: string, details?: { field: string; reason?: string }): Refusal {
  return { error: { code, message, ...(details === undefined ? {} : { details }) } };
}

function invalid(field: string, message: string): Refusal {
  return refuse("invalid_argument", message, field === "" ? undefined : { field });
}

function checkRequest(request: unknown, config: Config): Request | Refusal {
  if (request === null || typeof request !== "object" || Array.isArray(request)) {
    return invalid("", 'the request must be an object like { op: "post", from: "inbox-ada", text: "hello" }');
  }
  const r = request as Record<string, unknown>;
  switch (r.op) {
    case "join":
    case "leave":
      if (typeof r.member !== "string" || !SERVICE.test(r.member)) return invalid("member", "member must be the name of an inbox service");
      return { op: r.op, member: r.member };
    case "post":
      if (typeof r.from !== "string" || !SERVICE.test(r.from)) return invalid("from", "from must be the posting member's inbox service");
      if (typeof r.text !== "string" || r.text.trim().length === 0 || r.text.length > config.maxTextLength) {
        return invalid("text", `text must be 1 to ${config.maxTextLength} characters, not only white space`);
      }
      return { op: "post", from: r.from, text: r.text };
    case "history": {
      const after = r.after ?? 0;
      const limit = r.limit ?? 50;
      if (typeof after !== "number" || !Number.isSafeInteger(after) || after < 0)
        return invalid("after", "after must be a message seq (0 for the start)");
      if (typeof limit !== "number" || !Number.isSafeInteger(limit) || limit < 1 || limit > 500)
        return invalid("limit", "limit must be an integer from 1 to 500");
      return { op: "history", after, limit };
    }
    case "members":
      return { op: "members" };
    default:
      return invalid("op", `unknown op ${JSON.stringify(r.op)}; the ops are join, leave, post, history, members`);
  }
}

/** Casts to one member; returns why it could not be sent, or null. */
function send(member: string, message: SoloJson): Undelivered | null {
  try {
    solo.cast(member, message);
    return null;
  } catch (err) {
    const e = err as Partial<Solo.Error>;
    return { member, reason: typeof e.reason === "string" ? e.reason : "CAST_FAILED", message: String(e.message ?? err).slice(0, 300) };
  }
}

const CODES: Record<string, Code> = {
  SOLO_ERR_GRANT_MISSING: "permission_denied",
  SOLO_ERR_SERVICE_NOT_FOUND: "not_found",
  SOLO_ERR_SERVICE_STOPPED: "failed_precondition",
};

async function handle(state: State, r: Request, ctx: Solo.Context): Promise<Answer> {
  const room = state.config.title ?? ctx.service;
  switch (r.op) {
    case "join": {
      if (state.members.includes(r.member)) return { reply: { joined: r.member, members: state.members.length, seq: state.seq } };
      if (state.members.length >= state.config.maxMembers) {
        return refuse("resource_exhausted", `the room has ${state.config.maxMembers} members, its limit`);
      }
      // The welcome notice doubles as the check that the room can reach this inbox at all.
      const refused = send(r.member, { type: "joined", room, member: r.member, seq: state.seq, at: Date.now() });
      if (refused !== null) {
        return refuse(CODES[refused.reason] ?? "unavailable", refused.message, { field: "member", reason: refused.reason });
      }
      state.members = [...state.members, r.member];
      await solo.storage.put("members", state.members);
      return { reply: { joined: r.member, members: state.members.length, seq: state.seq } };
    }
    case "leave": {
      const was = state.members.includes(r.member);
      if (was) {
        state.members = state.members.filter((m) => m !== r.member);
        await solo.storage.put("members", state.members);
      }
      return { reply: { left: was } };
    }
    case "post": {
      if (!state.members.includes(r.from)) {
        return refuse("failed_precondition", `${r.from} is not a member of ${room}; join first`, { field: "from" });
      }
      // A service posts as itself: it may not speak for another member.
      if (ctx.from !== null && ctx.from !== r.from) {
        return refuse("permission_denied", `${ctx.from} cannot post as ${r.from}`, { field: "from" });
      }
      const message: Message = { room, seq: state.seq + 1, from: r.from, text: r.text, at: Date.now() };
      // The counter is durable before anyone sees the message, so a seq is never reused.
      await solo.storage.put("seq", message.seq);
      state.seq = message.seq;
      state.history = [...state.history.slice(-(state.config.historySize - 1)), message];
      const undelivered: Undelivered[] = [];
      for (const member of state.members) {
        const refused = send(member, { type: "message", ...message });
        if (refused !== null) undelivered.push(refused);
      }
      return { reply: { seq: message.seq, delivered: state.members.length - undelivered.length, undelivered } };
    }
    case "history": {
      const messages = state.history.filter((m) => m.seq > r.after).slice(0, r.limit);
      return { reply: { messages, oldest: state.history[0]?.seq ?? null, latest: state.seq } };
    }
    case "members":
      return { reply: { room, members: state.members } };
  }
}

export default {
  async init(args: unknown): Promise<State> {
    const config = checkConfig(args);
    const members = (await solo.storage.get<string[]>("members")) ?? [];
    const seq = (await solo.storage.get<number>("seq")) ?? 0;
    return { config, members, seq, history: [] };
  },

  async handleCall(request: unknown, state: State, ctx: Solo.Context): Promise<Solo.CallResult<State, unknown>> {
    const r = checkRequest(request, state.config);
    if ("error" in r) return { error: r.error, state };
    return { ...(await handle(state, r, ctx)), state };
  },
};
