import type { ErrorCode } from "./errors.ts";

/** The CLI's exit codes (docs/cli.md). */
export const EXIT = {
  ok: 0,
  /** Any other failure. */
  failed: 1,
  /** The command line is wrong: an unknown command or flag, a missing argument. */
  usage: 2,
  /** The token is missing, malformed, expired or revoked, or lacks the permission. */
  auth: 3,
  /** No such service, tenant, token, secret or version. */
  notFound: 4,
  /** The kernel cannot be reached, or the service is down (crashed, restarting, breaker open). */
  unavailable: 5,
  /** The kernel refused the request as invalid (a bad name, code the analyzer rejects, a limit). */
  invalid: 6,
} as const;

/** How an error of one code travels on each of Solo's interfaces. */
export interface Transport {
  /** The gRPC status number (Connect's `Code` has the same values). */
  readonly grpc: number;
  /** The HTTP status on plain-HTTP paths (`/mcp`, `/metrics`, a throttled request). */
  readonly http: number;
  /** The `solo` CLI's exit code. */
  readonly exit: (typeof EXIT)[keyof typeof EXIT];
}

/**
 * The one map from Solo's error codes to every interface: gateway (Connect, gRPC), plain HTTP
 * (MCP, metrics), and the CLI. Exhaustive over the codes, so a new code cannot travel unmapped.
 */
export const TRANSPORT: Readonly<Record<ErrorCode, Transport>> = {
  canceled: { grpc: 1, http: 499, exit: EXIT.failed },
  unknown: { grpc: 2, http: 500, exit: EXIT.failed },
  invalid_argument: { grpc: 3, http: 400, exit: EXIT.invalid },
  deadline_exceeded: { grpc: 4, http: 504, exit: EXIT.unavailable },
  not_found: { grpc: 5, http: 404, exit: EXIT.notFound },
  already_exists: { grpc: 6, http: 409, exit: EXIT.invalid },
  permission_denied: { grpc: 7, http: 403, exit: EXIT.auth },
  resource_exhausted: { grpc: 8, http: 429, exit: EXIT.failed },
  failed_precondition: { grpc: 9, http: 400, exit: EXIT.invalid },
  aborted: { grpc: 10, http: 409, exit: EXIT.failed },
  out_of_range: { grpc: 11, http: 400, exit: EXIT.invalid },
  unimplemented: { grpc: 12, http: 501, exit: EXIT.failed },
  internal: { grpc: 13, http: 500, exit: EXIT.failed },
  unavailable: { grpc: 14, http: 503, exit: EXIT.unavailable },
  data_loss: { grpc: 15, http: 500, exit: EXIT.failed },
  unauthenticated: { grpc: 16, http: 401, exit: EXIT.auth },
};

const BY_GRPC: ReadonlyMap<number, ErrorCode> = new Map(Object.entries(TRANSPORT).map(([name, t]) => [t.grpc, name as ErrorCode]));

/** Solo's name for a gRPC status number (`invalid_argument`, ...); `unknown` for one it lacks. */
export function codeOfGrpc(grpc: number): ErrorCode {
  return BY_GRPC.get(grpc) ?? "unknown";
}
