/**
 * `solo start`: a kernel and its gateway on this machine (serve.ts), with the edge's limits from
 * the flags.
 */
import { type Cli, int } from "../command.ts";
import { dataDirOf } from "../connection.ts";
import { EXIT, exitCodeOf, printError } from "../output.ts";
import { serve } from "../serve.ts";
import { edgeLimits, webOptions } from "./start-flags.ts";

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
      port: o.port ?? (process.env.SOLO_PORT !== undefined ? int("SOLO_PORT")(process.env.SOLO_PORT) : 7443),
      hostnames: o.hostname,
      connections: edgeLimits(o),
      web: webOptions(o),
    });
  } catch (err) {
    printError(err, cli.json);
    process.exitCode = exitCodeOf(err) === EXIT.failed ? EXIT.unavailable : exitCodeOf(err);
  }
}
