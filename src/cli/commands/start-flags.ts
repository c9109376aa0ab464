/**
 * `solo start`'s flags for the edge's limits: the command table reads them for its help, and
 * `solo start` (edgeLimits) for the limits they give. Apart from start.ts so that the table can
 * have them without loading the kernel.
 */
import type { ConnectionLimits } from "../../gateway/connection-limits.ts";

/** `solo start`'s flags for the edge's timeouts and caps, by the limit each sets. */
export const EDGE_FLAGS: Readonly<Record<keyof ConnectionLimits, readonly [flag: string, what: string]>> = {
  handshakeTimeoutMs: ["--handshake-timeout", "ms a TLS handshake may take"],
  headersTimeoutMs: ["--headers-timeout", "ms a new connection may take to send its first request"],
  idleTimeoutMs: ["--idle-timeout", "ms a connection may stay open with no request (then GOAWAY)"],
  bodyMinBytesPerSecond: ["--body-min-rate", "bytes/s a request body must arrive at, at least"],
  bodyWindowMs: ["--body-rate-window", "ms the body rate is measured over"],
  requestTimeoutMs: ["--request-timeout", "ms a request other than a stream may last"],
  maxConnectionsPerAddress: ["--max-connections-per-address", "connections one client address may hold open"],
  maxStreamsPerConnection: ["--max-streams-per-connection", "requests one connection may hold open at once"],
  denialBurst: ["--denial-burst", "denials one client may have at once before it is throttled"],
  denialsPerSecond: ["--denials-per-second", "denials a second a throttled client may have"],
  maxBodyBytesPerClient: ["--max-body-bytes-per-client", "request body bytes one client address may have held at once"],
  maxBodyBytes: ["--max-body-bytes", "request body bytes held at once in all"],
};
