/**
 * The sandbox's contract with the scheduler above it: what a service is (`SandboxSpec`), what one
 * step of a message produced (`Outcome`), what a service asks of its host (`HostRequest`), what
 * answers a request it awaits (`Result`), and the one codec of the text that carries them across
 * the QuickJS boundary. Everything on the host side encodes and decodes here; the bootstrap
 * (bootstrap.ts) is the guest half of the same codec.
 *
 * The boundary stays text, one string each way per step, because a string is the cheapest value to
 * move in and out of QuickJS (fast-call.ts). The formats, all made or read by the bootstrap:
 *
 * - the dispatcher's outcome: `R<json>` a call's reply, `S` done, `M` no such handler, `P` pending
 *   (its result arrives later through `host("settle", outcome)`), `E<guest error json>` failed;
 * - the installed module: `S<handler names, comma-separated>`, or `E<guest error json>`;
 * - a host request: an operation name and one argument, its fields separated by newlines;
 * - the host's immediate answer: `I<value>`, or `E<error data json>` (the guest throws it);
 * - a result the guest awaited (`resolve`): `R<json>`, or `E<error data json>`;
 * - a standard API's request (`std`, std-apis.ts): `<function>\n<argument>`, with its data, if any,
 *   as a third argument, an ArrayBuffer; its answer: `I=<json>` a value, `I!<json>` a web error
 *   `{ name, message }` the guest throws as a TypeError or DOMException, or an ArrayBuffer of bytes
 *   (`std` with `load\n` is the sandbox's own: it answers with the APIs' implementation).
 * @internal
 */
import type { Crash } from "../api/crash.ts";
import type { ServiceGrants } from "../api/grants.ts";
import type { ServiceLimits } from "../api/limits.ts";
import { type ErrorData, SoloError } from "../lib/errors/errors.ts";

/** The service's identity and limits, as the sandbox needs them. */
export interface SandboxSpec {
  readonly tenant: string;
  readonly service: string;
  readonly version: number;
  readonly filename: string;
  readonly limits: ServiceLimits;
  /** The powers granted (the scheduler enforces them); omitted: the defaults. */
  readonly grants?: ServiceGrants;
}

/** What one step of a message produced. */
export type Outcome =
  /** `json` is "" when the handler answered no value (`reply: undefined`). */
  | { readonly t: "reply"; readonly json: string }
  /** The handler answered the call with an error of its own (`{ error: { code, message, details? } }`): JSON, unchecked. */
  | { readonly t: "error-answer"; readonly json: string }
  /** The handler answered `noreply`: the call waits for `solo.reply(ctx.replyTo, ...)`. */
  | { readonly t: "deferred" }
  /** The handler returned `stop: true`: `answer` is its last answer, then the service ends normally. */
  | { readonly t: "stop"; readonly answer: Extract<Outcome, { readonly t: "reply" | "error-answer" | "done" }> }
  | { readonly t: "done" }
  | { readonly t: "missing" }
  | { readonly t: "pending" }
  | { readonly t: "failed"; readonly crash: Crash }
  /** The message was stopped because the service is being killed (`SandboxOptions.shouldStop`). */
  | { readonly t: "stopped" };

/** What answers a request: a JSON value, or an error. */
export type Result = { readonly ok: true; readonly json: string } | { readonly ok: false; readonly error: ErrorData };

/** A result carrying the JSON value `json`. */
export function replied(json: string): Result {
  return { ok: true, json };
}

/** A result carrying `error`. */
export function failed(error: ErrorData): Result {
  return { ok: false, error };
}

/** What a service may ask of the control plane, beyond its scheduler. */
export type IoKind = "kv" | "emit" | "secret" | "fetch";

/** A level of a service's log line. */
export type LogLevel = "debug" | "info" | "warn" | "error";

/** A service's request to its host, through the `solo` object; decoded from the guest's text, never trusted further. */
export type HostRequest =
  /** `timeoutMs`: undefined for the default. */
  | { readonly op: "call"; readonly service: string; readonly timeoutMs: number | undefined; readonly body: string }
  | { readonly op: "cast"; readonly service: string; readonly body: string }
  | { readonly op: "timer"; readonly delayMs: number; readonly body: string }
  | { readonly op: "cancel"; readonly id: number }
  | { readonly op: "log"; readonly level: LogLevel; readonly text: string }
  /** `solo.reply(to, value)` (`body` the reply's JSON, "" for no value) or `solo.replyError(to, error)` (`body` the error's JSON). */
  | { readonly op: "reply"; readonly to: string; readonly error: boolean; readonly body: string }
  /** Answered by the control plane later; `arg` is the bootstrap's framing, which the control plane reads. */
  | { readonly op: IoKind; readonly arg: string }
  /** A standard web API's host work (std-host.ts): `arg` its framing, `bytes` its data (empty: none). */
  | { readonly op: "std"; readonly fn: StdFunction; readonly arg: string; readonly bytes: Uint8Array };

/**
 * Handles a service's requests: returns the immediate answer for the guest, or throws a SoloError.
 * Bytes (a standard API's answer only) reach the guest as an ArrayBuffer.
 */
export type HostHandler = (request: HostRequest) => string | Uint8Array;

/** A failure as the guest describes it: untrusted text, parsed defensively. @internal */
export interface GuestError {
  readonly kind: "exception" | "value" | "result";
  readonly name: string;
  readonly message: string;
  readonly stack?: string;
  readonly reason?: string;
  readonly path?: string;
}

/** The dispatcher's outcome as decoded: a step's outcome, or the guest's own account of its failure. @internal */
export type GuestOutcome =
  | Extract<Outcome, { readonly t: "reply" | "error-answer" | "deferred" | "stop" | "done" | "missing" | "pending" }>
  | { readonly t: "threw"; readonly error: GuestError }
  /** Not an outcome the bootstrap makes (the engine mangled it, or had no memory to make it). */
  | { readonly t: "unreadable" };

const R = 82;
const A = 65;
const N = 78;
const X = 88;
const S = 83;
const M = 77;
const P = 80;
const E = 69;
const DONE: GuestOutcome = Object.freeze({ t: "done" });
const MISSING: GuestOutcome = Object.freeze({ t: "missing" });
const PENDING: GuestOutcome = Object.freeze({ t: "pending" });
const DEFERRED: GuestOutcome = Object.freeze({ t: "deferred" });
const UNREADABLE: GuestOutcome = Object.freeze({ t: "unreadable" });

/** Decodes the dispatcher's outcome. @internal */
export function decodeOutcome(text: string): GuestOutcome {
  switch (text.charCodeAt(0)) {
    case R:
      return { t: "reply", json: text.slice(1) };
    case A:
      return { t: "error-answer", json: text.slice(1) };
    case N:
      return DEFERRED;
    case X: {
      const answer = decodeOutcome(text.slice(1));
      return answer.t === "reply" || answer.t === "error-answer" || answer.t === "done" ? { t: "stop", answer } : UNREADABLE;
    }
    case S:
      return DONE;
    case M:
      return MISSING;
    case P:
      return PENDING;
    case E:
      return { t: "threw", error: parseGuestError(text.slice(1)) };
    default:
      return UNREADABLE;
  }
}

/** Decodes what installing the module answered: its handlers' names, or why it failed. @internal */
export function decodeInstalled(text: string): { readonly handlers: string[] } | { readonly error: GuestError } {
  if (text.charCodeAt(0) === E) return { error: parseGuestError(text.slice(1)) };
  const names = text.slice(1);
  return { handlers: names === "" ? [] : names.split(",") };
}

/** Encodes a result the guest awaited, for its `resolve`. @internal */
export function encodeResult(result: Result): string {
  return result.ok ? `R${result.json}` : encodeError(result.error);
}

/** Encodes the host's immediate answer to a request. @internal */
export function encodeAnswer(value: string): string {
  return `I${value}`;
}

/** Encodes an error the guest throws (an immediate answer) or awaited (a result). @internal */
export function encodeError(error: ErrorData): string {
  return `E${JSON.stringify(error)}`;
}

/**
 * Decodes a host request the bootstrap framed (`bytes`: a standard API's data). Throws a SoloError
 * for an operation it does not know. @internal
 */
export function decodeHostRequest(op: string, arg: string, bytes?: Uint8Array): HostRequest {
  switch (op) {
    case "call": {
      const [service, rest] = splitOnce(arg);
      const [timeoutText, body] = splitOnce(rest);
      const timeoutMs = Number(timeoutText);
      return { op, service, timeoutMs: timeoutMs > 0 ? timeoutMs : undefined, body };
    }
    case "cast": {
      const [service, body] = splitOnce(arg);
      return { op, service, body };
    }
    case "timer": {
      const [msText, body] = splitOnce(arg);
      return { op, delayMs: Math.max(0, Number(msText) || 0), body };
    }
    case "cancel":
      return { op, id: Number(arg) };
    case "log": {
      const [level, text] = splitOnce(arg);
      return { op, level: level === "warn" || level === "error" || level === "debug" ? level : "info", text };
    }
    case "reply":
    case "replyError": {
      const [to, body] = splitOnce(arg);
      return { op: "reply", to, error: op === "replyError", body };
    }
    case "kv":
    case "emit":
    case "secret":
    case "fetch":
      return { op, arg };
    case "std": {
      const [fn, rest] = splitOnce(arg);
      if (!STD_SET.has(fn)) throw new SoloError("SOLO_ERR_INTERNAL", `unknown standard API function ${JSON.stringify(fn.slice(0, 40))}`);
      return { op, fn: fn as StdFunction, arg: rest, bytes: bytes ?? EMPTY };
    }
    default:
      throw new SoloError("SOLO_ERR_INTERNAL", `unknown host operation ${JSON.stringify(op.slice(0, 40))}`);
  }
}

function splitOnce(arg: string): [string, string] {
  const i = arg.indexOf("\n");
  return i < 0 ? [arg, ""] : [arg.slice(0, i), arg.slice(i + 1)];
}

/** Parses the guest's description of an error: untrusted text. @internal */
export function parseGuestError(json: string): GuestError {
  try {
    const o: unknown = JSON.parse(json);
    if (o !== null && typeof o === "object") {
      const r = o as Record<string, unknown>;
      const kind = r.kind === "value" || r.kind === "result" ? r.kind : "exception";
      return {
        kind,
        name: clipped(r.name, "Error"),
        message: clipped(r.message, ""),
        stack: clipped(r.stack, ""),
        ...(typeof r.reason === "string" ? { reason: r.reason } : {}),
        ...(typeof r.path === "string" ? { path: r.path } : {}),
      };
    }
  } catch {
    // fall through to the generic description below
  }
  return { kind: "exception", name: "Error", message: "the service reported an unreadable error" };
}

/** `v` if it is a string (at most 4000 characters of it), else `fallback`. @internal */
export function clipped(v: unknown, fallback: string): string {
  return typeof v === "string" ? v.slice(0, 4000) : fallback;
}

// ---- The standard web APIs' host requests (std-apis.ts, std-host.ts). ----

/** The host functions of the standard web APIs (std-apis.ts, std-host.ts): a closed set. */
export const STD_FUNCTIONS = [
  "url",
  "urlSet",
  "qsParse",
  "qsString",
  "encode",
  "decode",
  "atob",
  "btoa",
  "random",
  "uuid",
  "digest",
  "sign",
  "verify",
] as const;

/** One of {@link STD_FUNCTIONS}. */
export type StdFunction = (typeof STD_FUNCTIONS)[number];

const STD_SET: ReadonlySet<string> = new Set(STD_FUNCTIONS);
/** A standard API's request without data. */
const EMPTY = new Uint8Array(0);

/** Encodes a standard API's value for the guest (`I` is added by encodeAnswer). @internal */
export function encodeStdValue(value: unknown): string {
  return `=${JSON.stringify(value)}`;
}

/** Encodes a web error (`TypeError`, or a DOMException's name) a standard API throws in the guest. @internal */
export function encodeStdError(name: string, message: string): string {
  return `!${JSON.stringify({ name, message })}`;
}
