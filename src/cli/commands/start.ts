/**
 * `solo start`: a kernel and its gateway on this machine (serve.ts), with the edge's limits from
 * the flags.
 */
import { type ConnectionLimits, connectionLimits } from "../../gateway/connections.ts";
import { type Cli, int } from "../command.ts";
import { dataDirOf } from "../connection.ts";
import { exitCodeOf, printError } from "../errors.ts";
import { EXIT, UsageError } from "../output.ts";
import { serve } from "../serve.ts";
import { EDGE_FLAGS } from "./start-flags.ts";

/** `solo start`'s options as commander parsed them (the edge's flags among the rest). */
export type StartOptions = { host: string; port?: number; database?: string; hostname: string[]; memoryBudget?: number } & Record<
  string,
  unknown
>;

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
    });
  } catch (err) {
    printError(err, cli.json);
    process.exitCode = exitCodeOf(err) === EXIT.failed ? EXIT.unavailable : exitCodeOf(err);
  }
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
    const field = (err as { details?: { field?: string } }).details?.field as keyof ConnectionLimits | undefined;
    const flag = field ? EDGE_FLAGS[field]?.[0] : undefined;
    if (field && flag) throw new UsageError((err as Error).message.replace(field, flag));
    throw err;
  }
  return given;
}
