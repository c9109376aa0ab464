import { create, type JsonObject } from "@bufbuild/protobuf";
import { Code, ConnectError } from "@connectrpc/connect";
import { type ErrorCode, SoloError } from "../errors.ts";
import { ErrorDetailSchema } from "../gen/solo/v1/solo_pb.js";

/** Solo's code names to Connect's codes: one table, the only place the two meet. */
const CODES: Readonly<Record<ErrorCode, Code>> = {
  canceled: Code.Canceled,
  unknown: Code.Unknown,
  invalid_argument: Code.InvalidArgument,
  deadline_exceeded: Code.DeadlineExceeded,
  not_found: Code.NotFound,
  already_exists: Code.AlreadyExists,
  permission_denied: Code.PermissionDenied,
  resource_exhausted: Code.ResourceExhausted,
  failed_precondition: Code.FailedPrecondition,
  aborted: Code.Aborted,
  out_of_range: Code.OutOfRange,
  unimplemented: Code.Unimplemented,
  internal: Code.Internal,
  unavailable: Code.Unavailable,
  data_loss: Code.DataLoss,
  unauthenticated: Code.Unauthenticated,
};

/** Solo's code names to HTTP statuses, for the gateway's plain-HTTP paths (`/mcp`); Connect's own mapping. */
const HTTP_STATUS: Readonly<Record<ErrorCode, number>> = {
  canceled: 499,
  unknown: 500,
  invalid_argument: 400,
  deadline_exceeded: 504,
  not_found: 404,
  already_exists: 409,
  permission_denied: 403,
  resource_exhausted: 429,
  failed_precondition: 400,
  aborted: 409,
  out_of_range: 400,
  unimplemented: 501,
  internal: 500,
  unavailable: 503,
  data_loss: 500,
  unauthenticated: 401,
};

/** The HTTP status that carries an error of this code. */
export function httpStatus(code: ErrorCode): number {
  return HTTP_STATUS[code];
}

const NAMES: ReadonlyMap<Code, ErrorCode> = new Map(Object.entries(CODES).map(([name, code]) => [code, name as ErrorCode]));

/** A Connect code by Solo's name for it (`invalid_argument`, ...). */
export function codeName(code: Code): ErrorCode {
  return NAMES.get(code) ?? "unknown";
}

/**
 * Any failure as the error a client sees: its Connect code, its message, and a
 * `solo.v1.ErrorDetail` with the reason, the field at fault, the hint and the other details.
 * Errors that are not SoloErrors are reported as internal without their text.
 */
export function toConnectError(err: unknown): ConnectError {
  if (err instanceof ConnectError) return err;
  const e = err instanceof SoloError ? err : new SoloError("SOLO_ERR_INTERNAL", "the gateway failed unexpectedly; see the kernel's log");
  const { field, hint, ...rest } = e.details as Record<string, unknown>;
  const detail = create(ErrorDetailSchema, {
    reason: e.reason,
    field: typeof field === "string" ? field : "",
    hint: typeof hint === "string" ? hint : "",
    details: jsonObject(rest),
  });
  return new ConnectError(e.message, CODES[e.code], undefined, [{ desc: ErrorDetailSchema, value: detail }], err);
}

// Details are JSON data already (they cross threads as JSON); anything else is dropped.
function jsonObject(value: Record<string, unknown>): JsonObject {
  try {
    return JSON.parse(JSON.stringify(value)) as JsonObject;
  } catch {
    return {};
  }
}
