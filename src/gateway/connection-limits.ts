/**
 * The edge's limits and their defaults, apart from connections.ts (which enforces them) so that
 * the CLI's command table can show the defaults in `solo start --help` without loading the edge.
 */

/**
 * The edge's timeouts and caps: what one client may hold and for how long. Each has a default
 * and a `solo start` flag (docs/security.md lists them).
 */
export interface ConnectionLimits {
  /** A TLS handshake must finish within this (default 10 s; `--handshake-timeout`). */
  readonly handshakeTimeoutMs?: number;
  /** A new connection must send its first request's headers within this (default 10 s; `--headers-timeout`). */
  readonly headersTimeoutMs?: number;
  /** A connection with no open request for this long is sent GOAWAY and closed (default 60 s; `--idle-timeout`). */
  readonly idleTimeoutMs?: number;
  /**
   * A request body must arrive at this rate or faster, measured over every `bodyWindowMs`
   * (default 1024 bytes/s; `--body-min-rate`); a slower one is reset.
   */
  readonly bodyMinBytesPerSecond?: number;
  /** The window the body rate is measured over (default 10 s). */
  readonly bodyWindowMs?: number;
  /**
   * A request other than a stream (everything but FollowEvents and MCP's GET) is reset after this
   * long (default 11 minutes: the longest call timeout, 10 minutes, and one more; `--request-timeout`).
   */
  readonly requestTimeoutMs?: number;
  /** Connections open at once from one client address (default 128; `--max-connections-per-address`). */
  readonly maxConnectionsPerAddress?: number;
  /** Requests open at once on one connection (HTTP/2's SETTINGS_MAX_CONCURRENT_STREAMS; default 100; `--max-streams-per-connection`). */
  readonly maxStreamsPerConnection?: number;
  /**
   * Denials one requester (address and certificate) may have at once before it is throttled
   * (default 20; `--denial-burst`), and how many a second after that (default 5; `--denials-per-second`).
   */
  readonly denialBurst?: number;
  readonly denialsPerSecond?: number;
  /**
   * Request body bytes held at once for requests not yet answered, from one client (its
   * certificate, wherever it connects from; default 64 MiB; `--max-body-bytes-per-client`) and in
   * all (default 512 MiB; `--max-body-bytes`): a request whose bytes would go over is reset, and
   * its connection sent GOAWAY.
   */
  readonly maxBodyBytesPerClient?: number;
  readonly maxBodyBytes?: number;
}

/** The defaults of {@link ConnectionLimits}. */
export const DEFAULT_CONNECTION_LIMITS: Required<ConnectionLimits> = Object.freeze({
  handshakeTimeoutMs: 10_000,
  headersTimeoutMs: 10_000,
  idleTimeoutMs: 60_000,
  bodyMinBytesPerSecond: 1024,
  bodyWindowMs: 10_000,
  requestTimeoutMs: 660_000,
  maxConnectionsPerAddress: 128,
  maxStreamsPerConnection: 100,
  denialBurst: 20,
  denialsPerSecond: 5,
  maxBodyBytesPerClient: 64 * 1024 * 1024,
  maxBodyBytes: 512 * 1024 * 1024,
});
