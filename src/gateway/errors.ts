import { create, type JsonObject } from "@bufbuild/protobuf";
import { type Code, ConnectError } from "@connectrpc/connect";
import { ErrorDetailSchema } from "../gen/solo/v1/solo_pb.js";
import { type ErrorCode, SoloError } from "../lib/errors/errors.ts";
import { codeOfGrpc, type Surface, TRANSPORT } from "../lib/errors/transport.ts";

/** The HTTP status that carries an error of this code. */
export function httpStatus(code: ErrorCode): number {
  return TRANSPORT[code].http;
}

/**
 * The status and headers of a refusal answered as plain HTTP with a JSON body (`/mcp`, the web
 * listener's pages): the code's status (413 and 431 for bodies and headers too large), a Bearer
 * challenge with 401, and `retry-after` (whole seconds) where the error says when.
 */
export function httpRefusal(e: SoloError): { status: number; headers: Record<string, string> } {
  const status =
    e.reason === "SOLO_ERR_MCP_REQUEST_TOO_LARGE" ? 413 : e.reason === "SOLO_ERR_WEB_HEADERS_TOO_LARGE" ? 431 : httpStatus(e.code);
  const headers: Record<string, string> = { "content-type": "application/json" };
  if (status === 401) headers["www-authenticate"] = 'Bearer realm="solo"';
  const retry = (e.details as { retryAfterMs?: unknown }).retryAfterMs;
  if (typeof retry === "number") headers["retry-after"] = String(Math.max(1, Math.ceil(retry / 1000)));
  return { status, headers };
}

/** A Connect code by Solo's name for it (`invalid_argument`, ...). */
export function codeName(code: Code): ErrorCode {
  return codeOfGrpc(code);
}

/**
 * Any failure as the error a client sees: its Connect code, its message, and a
 * `solo.v1.ErrorDetail` with the reason, the field at fault, the hint (in the words of the
 * client's `surface`) and the other details. Errors that are not SoloErrors are reported as
 * internal without their text.
 */
export function toConnectError(err: unknown, surface: Surface = "rpc"): ConnectError {
  if (err instanceof ConnectError) return err;
  const e = err instanceof SoloError ? err : new SoloError("SOLO_ERR_INTERNAL", "the gateway failed unexpectedly; see the kernel's log");
  const { field, hint: _, ...rest } = e.details as Record<string, unknown>;
  const hint = e.hintFor(surface);
  const detail = create(ErrorDetailSchema, {
    reason: e.reason,
    field: typeof field === "string" ? field : "",
    hint: typeof hint === "string" ? hint : "",
    details: jsonObject(rest),
  });
  return new ConnectError(e.message, TRANSPORT[e.code].grpc as Code, undefined, [{ desc: ErrorDetailSchema, value: detail }], err);
}

// Details are JSON data already (they cross threads as JSON); anything else is dropped.
function jsonObject(value: Record<string, unknown>): JsonObject {
  try {
    return JSON.parse(JSON.stringify(value)) as JsonObject;
  } catch {
    return {};
  }
}
