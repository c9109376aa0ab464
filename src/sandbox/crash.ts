// What a failed message or module is, as a Crash (or a deploy's error): decided from what the host
// saw (an allocation the engine refused, the budget's interrupt), never from what the error says.
// A service can throw anything it likes (an InternalError named "out of memory", say), but it
// cannot make the engine refuse an allocation or the host stop it for its budget.

import type { Crash } from "../api/crash.ts";
import { type ErrorData, REASONS, type Reason, SoloError } from "../lib/errors/errors.ts";
import type { GuestError, SandboxSpec } from "./contract.ts";

/** What the host saw while the failed message ran. */
export interface Seen {
  /** The service's own memory limit refused an allocation. */
  readonly serviceLimitRefused: boolean;
  /** The tenant's memory was full (the engine's or the host's allocation failed). */
  readonly tenantFullRefused: boolean;
  /** The host interrupted it for its CPU budget. */
  readonly interrupted: boolean;
  readonly spec: Pick<SandboxSpec, "tenant" | "filename" | "limits">;
  readonly tenantCapBytes: number;
}

/** A failed message's crash. */
export function classify(e: GuestError, seen: Seen): Crash {
  const { spec } = seen;
  const where = position(e.stack ?? "", spec.filename);
  const said = `${e.name}: ${e.message}`.slice(0, 500);
  if (seen.serviceLimitRefused) {
    return {
      kind: "memory_limit",
      reason: "SOLO_ERR_LIMIT_MEMORY",
      message: `the service reached its memory limit of ${spec.limits.memoryBytes} bytes: the engine refused an allocation (${said})`,
      ...where,
    };
  }
  if (seen.tenantFullRefused) {
    return {
      kind: "memory_limit",
      reason: "SOLO_ERR_LIMIT_MEMORY",
      message: `tenant ${spec.tenant}'s memory is full (its limit of ${seen.tenantCapBytes} bytes): the engine refused an allocation (${said})`,
      resource: "tenant_memory",
      ...where,
    };
  }
  if (seen.interrupted) return cpuCrash(spec.limits.cpuMsPerMessage, where);
  if (e.kind === "value" || e.kind === "result") {
    const reason = e.reason !== undefined && isGuestReason(e.reason) ? e.reason : "SOLO_ERR_HANDLER_RESULT_INVALID";
    return {
      kind: e.kind === "value" ? "invalid_value" : "invalid_result",
      reason,
      message: e.message,
      ...(e.path !== undefined ? { path: e.path } : {}),
    };
  }
  if (e.name === "RangeError" && /call stack size exceeded/i.test(e.message)) {
    return {
      kind: "stack_limit",
      reason: "SOLO_ERR_LIMIT_STACK",
      message: `the service exceeded its stack (limit ${spec.limits.stackBytes} bytes): ${e.message}`,
      ...where,
    };
  }
  const at = where ? ` at ${spec.filename}:${where.line}:${where.column}` : "";
  return { kind: "exception", reason: "SOLO_ERR_HANDLER_THREW", message: `${said}${at}`, ...where };
}

/** A module that failed to evaluate: a syntax error, an import, or (`crash`) what its evaluation threw. */
export function moduleFailure(e: GuestError, filename: string, crash: () => Crash): SoloError {
  const where = position(e.stack ?? "", filename);
  const at = where ? ` at ${filename}:${where.line}:${where.column}` : "";
  if (e.name === "SyntaxError") {
    return new SoloError("SOLO_ERR_DEPLOY_SYNTAX", `syntax error${at}: ${e.message}`, {
      ...where,
      hint: "fix the syntax at the given line and column, then deploy again",
    });
  }
  if (e.name === "ReferenceError" && /could not load module|module not found|cannot load module/i.test(e.message)) {
    return new SoloError("SOLO_ERR_DEPLOY_IMPORT", `the service imports a module${at}: ${e.message}`, {
      ...where,
      hint: "a Solo service is one self-contained module: remove import statements and use the solo host object",
    });
  }
  return deployFailure(crash());
}
const GUEST_REASONS = new Set<Reason>([
  "SOLO_ERR_VALUE_NOT_JSON",
  "SOLO_ERR_VALUE_TOO_LARGE",
  "SOLO_ERR_VALUE_TOO_DEEP",
  "SOLO_ERR_HANDLER_RESULT_INVALID",
  "SOLO_ERR_DEPLOY_EXPORT_INVALID",
]);

function isGuestReason(r: string): r is Reason {
  return GUEST_REASONS.has(r as Reason);
}

/** A message stopped for its CPU budget. */
export function cpuCrash(budget: number, where?: { line: number; column: number }): Crash {
  return {
    kind: "cpu_limit",
    reason: "SOLO_ERR_LIMIT_CPU",
    message: `the message used more than its CPU budget of ${budget} ms and was stopped`,
    ...where,
  };
}

/** Finds the first stack frame in the author's file and returns its line and column. */
export function position(stack: string, filename: string): { line: number; column: number } | undefined {
  const escaped = filename.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
  const m = new RegExp(`${escaped}:(\\d+):(\\d+)`).exec(stack);
  return m ? { line: Number(m[1]), column: Number(m[2]) } : undefined;
}

/** The error a deploy fails with when the module evaluates or init fails. */
export function deployFailure(crash: Crash): SoloError {
  if (crash.reason === "SOLO_ERR_DEPLOY_EXPORT_INVALID") {
    return new SoloError("SOLO_ERR_DEPLOY_EXPORT_INVALID", crash.message, {
      hint: "export default { init(args) { return state }, handleCall(request, state) { return { reply, state } } }",
    });
  }
  return new SoloError("SOLO_ERR_DEPLOY_INIT_FAILED", `the service failed while starting: ${crash.message}`, { crash });
}

// A crash's reason is typed by src/api/errors.ts, which restates this catalogue's reasons because
// src/api/ imports nothing: the two must stay the same set (crashError and deployFailure rely on it).
const _reasonsAgree: [Crash["reason"], Reason] extends [Reason, Crash["reason"]] ? true : never = true;

/** The error a caller receives when the message it sent failed with `crash`. */
export function crashError(crash: Crash, service: string): ErrorData {
  return {
    code: REASONS[crash.reason],
    reason: crash.reason,
    message: `service ${service} failed handling the message: ${crash.message}`,
    details: { crash },
  };
}
