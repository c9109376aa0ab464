/**
 * `solo start`: a kernel and its gateway on this machine (serve.ts), with the edge's limits from
 * the flags.
 */
import { type ConnectionLimits, connectionLimits } from "../../gateway/connections.ts";
import type { WebOptions } from "../../gateway/web.ts";
import { parseAltName } from "../../tls/certs.ts";
import { type Cli, inFlags, int } from "../command.ts";
import { dataDirOf } from "../connection.ts";
import { exitCodeOf, printError } from "../errors.ts";
import { EXIT, UsageError } from "../output.ts";
import { serve } from "../serve.ts";
import { EDGE_FLAGS } from "./start-flags.ts";

/** `solo start`'s options as commander parsed them (the edge's flags among the rest). */
export type StartOptions = {
  host: string;
  port?: number;
  database?: string;
  hostname: string[];
  memoryBudget?: number;
  web: boolean;
  webPort?: number;
  webHost?: string;
  webCert?: string;
  webKey?: string;
  webOrigin: string[];
} & Record<string, unknown>;

/** `solo start`: runs until SIGINT or SIGTERM; a failure to start exits as unavailable unless its code says more. */
export async function start(cli: Cli, o: StartOptions): Promise<void> {
  try {
    await serve({
      dataDir: dataDirOf(cli.options.dataDir),
      ...(o.database ? { database: o.database } : {}),
      ...(o.memoryBudget !== undefined ? { memoryBudgetBytes: o.memoryBudget } : {}),
      host: o.host,
      port: portOf(o),
      hostnames: hostnamesOf(o),
      connections: edgeLimits(o),
      web: webOptions(o),
    });
  } catch (thrown) {
    const err = inFlags(thrown, (field) => (field === "memoryBudgetBytes" ? "--memory-budget" : undefined));
    printError(err, cli.json);
    process.exitCode = exitCodeOf(err) === EXIT.failed ? EXIT.unavailable : exitCodeOf(err);
  }
}

/** The `--hostname`s, checked before anything is opened (the certificate is made after the kernel's store). */
function hostnamesOf(o: StartOptions): string[] {
  for (const h of o.hostname) {
    if (!parseAltName(h)) {
      throw new UsageError(
        `--hostname ${JSON.stringify(h)} is neither a DNS name nor an IP address`,
        'for example: --hostname solo.example.net, --hostname "*.example.net" or --hostname 10.0.0.5',
      );
    }
  }
  return o.hostname;
}

/** The port to listen on: `--port`, else `SOLO_PORT`, else 7443; checked, whichever gave it. */
function portOf(o: StartOptions): number {
  const [name, port] =
    o.port !== undefined
      ? ["--port", o.port]
      : process.env.SOLO_PORT !== undefined
        ? ["SOLO_PORT", int("SOLO_PORT")(process.env.SOLO_PORT)]
        : ["--port", 7443];
  if (port > 65535) throw new UsageError(`${name} must be a port from 0 to 65535, got ${port}`, "0 picks a free one");
  return port;
}

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
    throw inFlags(err, (field) => (Object.hasOwn(EDGE_FLAGS, field) ? EDGE_FLAGS[field as keyof ConnectionLimits][0] : undefined));
  }
  return given;
}

/** The web listener as the flags ask for it (`--no-web`: none), checked, in the flags' words. */
export function webOptions(o: StartOptions): WebOptions | false {
  if (o.web === false) return false;
  const port = o.webPort ?? (process.env.SOLO_WEB_PORT !== undefined ? int("SOLO_WEB_PORT")(process.env.SOLO_WEB_PORT) : 7444);
  if (port > 65535) throw new UsageError(`--web-port must be a port from 0 to 65535, got ${port}`, "0 picks a free one");
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
