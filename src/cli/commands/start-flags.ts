/**
 * `solo start`'s flags for the edge's limits: the command table reads them for its help, and
 * `solo start` for the limits they give. Apart from start.ts so that the table can have them
 * without loading the kernel.
 */
import { type ConnectionLimits, connectionLimits } from "../../gateway/connections.ts";
import type { WebOptions } from "../../gateway/web.ts";
import { int } from "../command.ts";
import { UsageError } from "../output.ts";

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

/** The edge limits given as flags, checked, in the flags' words. */
export function edgeLimits(o: Record<string, unknown>): ConnectionLimits {
  const given: Record<string, number> = {};
  for (const [field, [flag]] of Object.entries(EDGE_FLAGS)) {
    // commander's name for --body-min-rate is bodyMinRate.
    const key = flag.slice(2).replace(/-([a-z])/g, (_, c: string) => c.toUpperCase());
    if (typeof o[key] === "number") given[field] = o[key];
  }
  try {
    connectionLimits(given);
  } catch (err) {
    const field = (err as { details?: { field?: string } }).details?.field as keyof ConnectionLimits | undefined;
    const flag = field ? EDGE_FLAGS[field]?.[0] : undefined;
    if (field && flag) throw new UsageError((err as Error).message.replace(field, flag));
    throw err;
  }
  return given;
}

/** The web listener as the flags ask for it (`--no-web`: none), checked, in the flags' words. */
export function webOptions(o: {
  host: string;
  web?: boolean;
  webPort?: number;
  webHost?: string;
  webCert?: string;
  webKey?: string;
  webOrigin?: string[];
}): WebOptions | false {
  if (o.web === false) return false;
  const port = o.webPort ?? (process.env.SOLO_WEB_PORT !== undefined ? int("SOLO_WEB_PORT")(process.env.SOLO_WEB_PORT) : 7444);
  if (port > 65535) throw new UsageError(`--web-port must be a port from 0 to 65535, got ${port}`);
  if ((o.webCert === undefined) !== (o.webKey === undefined)) {
    throw new UsageError(
      `${o.webCert === undefined ? "--web-key" : "--web-cert"} needs ${o.webCert === undefined ? "--web-cert" : "--web-key"} too`,
    );
  }
  for (const origin of o.webOrigin ?? []) {
    const url = URL.canParse(origin) ? new URL(origin) : undefined;
    if (url?.protocol !== "https:" || url.origin !== origin) {
      throw new UsageError(
        `--web-origin must be an https origin such as https://solo.example.com (no path), got ${JSON.stringify(origin)}`,
      );
    }
  }
  return {
    host: o.webHost ?? o.host,
    port,
    ...(o.webCert !== undefined && o.webKey !== undefined ? { certFile: o.webCert, keyFile: o.webKey } : {}),
    ...(o.webOrigin && o.webOrigin.length > 0 ? { origins: o.webOrigin } : {}),
  };
}
