import { Code, ConnectError } from "@connectrpc/connect";
import { ErrorDetailSchema } from "../../gen/solo/v1/solo_pb.js";
import { SoloError } from "./errors.ts";
import { codeOfGrpc, renderHint, type Surface, words } from "./transport.ts";

/** An error as data: what the CLI prints (or emits with --json) and MCP tools answer. */
export interface ErrorData {
  readonly code: string;
  readonly reason: string;
  readonly message: string;
  readonly field?: string;
  readonly hint?: string;
  readonly details?: unknown;
}

/**
 * Any failure as {@link ErrorData}: a SoloError raised in this process (its hint in the words of
 * `surface`), or a ConnectError from the gateway with its `solo.v1.ErrorDetail` (whose hint the
 * gateway worded for the surface its client named); anything else is `internal` with its message.
 */
export function errorData(err: unknown, surface: Surface = "api"): ErrorData {
  if (err instanceof SoloError) {
    const { field, hint: _, ...details } = err.details as Record<string, unknown>;
    const hint = err.hintFor(surface);
    return {
      code: err.code,
      reason: err.reason,
      message: err.message,
      ...(typeof field === "string" ? { field } : {}),
      ...(typeof hint === "string" ? { hint } : {}),
      ...(Object.keys(details).length > 0 ? { details } : {}),
    };
  }
  if (err instanceof ConnectError) {
    const d = err.findDetails(ErrorDetailSchema)[0];
    const unreachable = err.code === Code.Unavailable && !d;
    return {
      code: codeOfGrpc(err.code),
      reason: d?.reason ?? (unreachable ? "unreachable" : ""),
      message: err.rawMessage,
      ...(d?.field ? { field: d.field } : {}),
      ...(d?.hint ? { hint: d.hint } : unreachable ? { hint: renderHint(UNREACHABLE, surface) } : {}),
      ...(d?.details && Object.keys(d.details).length > 0 ? { details: d.details } : {}),
    };
  }
  return { code: "internal", reason: "", message: err instanceof Error ? err.message : String(err) };
}

// What to do when the gateway cannot be reached, in the words of who asks.
const UNREACHABLE = `is the kernel running? start it with: ${words("kernel.start")}`;

/** A service's own error answer to a call, when `e` is one (SOLO_ERR_APPLICATION_ERROR). */
export function applicationAnswer(e: ErrorData): { service: string; code: string; message: string; details?: unknown } | undefined {
  if (e.reason !== "SOLO_ERR_APPLICATION_ERROR") return undefined;
  const d = e.details as { service?: unknown; answer?: { code?: unknown; message?: unknown; details?: unknown } } | undefined;
  const a = d?.answer;
  if (typeof a?.code !== "string" || typeof a.message !== "string") return undefined;
  return {
    service: typeof d?.service === "string" ? d.service : "the service",
    code: a.code,
    message: a.message,
    ...(a.details !== undefined ? { details: a.details } : {}),
  };
}
