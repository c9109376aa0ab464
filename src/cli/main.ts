/**
 * `solo`: the command line for a running Solo kernel (and `solo start` to run one). Human output
 * by default (tables; colours only on a terminal, never with NO_COLOR); `--json` for scripts.
 * Exit codes are in docs/cli.md. This file is the command table and its dispatch (solo.ts, the
 * entry point, loads it); the commands themselves are in commands/.
 */
import { Command, CommanderError, Option } from "commander";
import { type ConnectionLimits, DEFAULT_CONNECTION_LIMITS } from "../gateway/connection-limits.ts";
import { parseBytes } from "../lib/bytes.ts";
import { VERSION } from "../lib/version.ts";
import { type Cli, cliOf, type GlobalOptions, int, type LocalCommand, type RemoteCommand } from "./command.ts";
import { EDGE_FLAGS } from "./commands/start-flags.ts";
import { EXIT, EXIT_CLOSED_PIPE, UsageError } from "./output.ts";

const program = new Command("solo")
  .description("Run and drive a Solo kernel: deploy services, call them, watch the event log.")
  .option("--json", "print JSON for machines instead of tables")
  .addOption(new Option("--url <url>", "the gateway (default $SOLO_URL, else https://127.0.0.1:7443)"))
  .addOption(new Option("--token <token>", "the bearer token (default $SOLO_TOKEN, else the data directory's admin token)"))
  .addOption(new Option("--cert <file>", "client certificate (default $SOLO_CERT, else the data directory's admin certificate)"))
  .addOption(new Option("--key <file>", "client key (default $SOLO_KEY, else the data directory's admin key)"))
  .addOption(new Option("--ca <file>", "the gateway's CA (default $SOLO_CA, else the data directory's)"))
  .addOption(new Option("--data-dir <dir>", "where a local kernel keeps its data (default $SOLO_DATA_DIR, else ./.solo)"))
  .version(VERSION, "-V, --version", "print Solo's version")
  .showSuggestionAfterError()
  .exitOverride();

// A closed pipe (`solo events | head -1`) ends the command quietly, as the shell's own tools end:
// Node ignores SIGPIPE, so the write fails with EPIPE, which would otherwise be a stack trace.
for (const stream of [process.stdout, process.stderr]) {
  stream.on("error", (err: NodeJS.ErrnoException) => {
    if (err.code === "EPIPE") process.exit(EXIT_CLOSED_PIPE);
    throw err;
  });
}

const globals = (): GlobalOptions => program.opts<GlobalOptions>();
// Also true when parsing failed before the options were read.
const json = (): boolean => globals().json === true || process.argv.includes("--json");
const cli = (): Cli => cliOf(globals(), json());

// ---- dispatch -------------------------------------------------------------------------------
// Each command's module is loaded when it runs, not to parse the line: the table below is all
// `solo --help` or a usage error needs, and a command loads only what it uses (start and
// mcp --embedded a kernel, cert issue the CA, the rest the gateway client).

const modules = {
  start: () => import("./commands/start.ts"),
  deploy: () => import("./commands/deploy.ts"),
  call: () => import("./commands/call.ts"),
  services: () => import("./commands/services.ts"),
  events: () => import("./commands/events.ts"),
  tokens: () => import("./commands/tokens.ts"),
  secrets: () => import("./commands/secrets.ts"),
  tenants: () => import("./commands/tenants.ts"),
  cert: () => import("./commands/cert.ts"),
  mcp: () => import("./commands/mcp.ts"),
};

/** Runs a command against the kernel; errors are printed and set the exit code. */
function run<M extends Record<K, RemoteCommand>, K extends keyof M>(
  load: () => Promise<M>,
  name: K,
): (...args: unknown[]) => Promise<void> {
  return async (...args) => {
    const [{ connect }, { exitCodeOf, printError }, m] = await Promise.all([import("./connection.ts"), import("./errors.ts"), load()]);
    const c = cli();
    try {
      await m[name](c, connect(c.options), ...(args as never[]));
    } catch (err) {
      printError(err, c.json, c.codeFile);
      process.exitCode = exitCodeOf(err);
    }
  };
}

/** Runs a command on this machine; it reports its own errors. */
function local<M extends Record<K, LocalCommand>, K extends keyof M>(
  load: () => Promise<M>,
  name: K,
): (...args: unknown[]) => Promise<void> {
  return async (...args) => (await load())[name](cli(), ...(args as never[]));
}

const collect = (v: string, prev: string[] = []): string[] => [...prev, v];

// ---- start ----------------------------------------------------------------------------------

const start = program
  .command("start")
  .description("run a kernel and its gateway on this machine (zero configuration)")
  .option("--host <host>", "address to listen on", "127.0.0.1")
  .option("--port <port>", "port to listen on (default $SOLO_PORT, else 7443; 0 picks a free one)", int("--port"))
  .option("--database <url>", "a postgres:// URL (default $SOLO_DATABASE_URL, else SQLite in the data directory)")
  .option("--hostname <name>", "another name for the server certificate (repeatable)", collect, [])
  .option(
    "--memory-budget <size>",
    "memory all tenants together may be given, e.g. 8GiB (default $SOLO_MEMORY_BUDGET, else half the host's memory)",
    (v: string) => {
      const n = parseBytes(v);
      if (!Number.isSafeInteger(n)) throw new UsageError(`--memory-budget must be a size such as 8GiB or 512MiB, got ${JSON.stringify(v)}`);
      return n;
    },
  );
start
  .option("--web-port <port>", "the web listener's port (default $SOLO_WEB_PORT, else 7444; 0 picks a free one)", int("--web-port"))
  .option("--web-host <host>", "address the web listener listens on (default: --host's)")
  .option("--no-web", "open no web listener (only the mutual-TLS port)")
  .option("--web-cert <file>", "a PEM certificate for the web listener instead of Solo's own (reloaded when it changes)")
  .option("--web-key <file>", "the PEM private key of --web-cert")
  .option("--web-origin <origin>", "another origin the web listener answers as, e.g. https://solo.example.com (repeatable)", collect, []);
for (const [field, [flag, what]] of Object.entries(EDGE_FLAGS)) {
  start.option(`${flag} <n>`, `${what} (default ${DEFAULT_CONNECTION_LIMITS[field as keyof ConnectionLimits]})`, int(flag));
}
start.action(local(modules.start, "start"));

// ---- services -------------------------------------------------------------------------------

program
  .command("deploy")
  .description("deploy a service from a JavaScript or TypeScript file ('-' reads stdin)")
  .argument("<tenant/service>")
  .argument("<file>")
  .option("--args <json>", "the argument of init")
  .option("--limits <json>", "limits, e.g. '{\"memoryBytes\":8388608}'")
  .option("--grants <json>", 'powers, e.g. \'{"call":["ledger"],"storage":true}\'')
  .option("--supervision <json>", "supervision policy")
  .option("--tag <tag>", "a tag (repeatable)", collect, [])
  .action(run(modules.deploy, "deploy"));

program
  .command("call")
  .description("call a service and print its reply")
  .argument("<tenant/service>")
  .argument("[request]", "the request, as JSON")
  .option("--timeout <ms>", "how long to wait", int("--timeout"))
  .action(run(modules.call, "call"));

program
  .command("cast")
  .description("send a message to a service without waiting")
  .argument("<tenant/service>")
  .argument("[message]", "the message, as JSON")
  .action(run(modules.call, "cast"));

program
  .command("ls")
  .description("list a tenant's services")
  .argument("<tenant>")
  .option("--tag <tag>", "only services with this tag")
  .action(run(modules.services, "ls"));

program
  .command("status")
  .description("one service's state, version, usage, limits, grants and last crash")
  .argument("<tenant/service>")
  .action(run(modules.services, "status"));

for (const [name, what] of [
  ["kill", "stop a service (running terminate); it is not started again"],
  ["restart", "stop a service if it runs and start its version afresh"],
] as const) {
  program.command(name).description(what).argument("<tenant/service>").action(run(modules.services, name));
}

program
  .command("swap")
  .description("hot-swap a running service's code, keeping its state")
  .argument("<tenant/service>")
  .argument("<file>")
  .option("--window <ms>", "roll back if the new version crashes within this time", int("--window"))
  .option("--grants <json>", "the new version's grants, as deploy takes them (default: the running version's)")
  .action(run(modules.deploy, "swap"));

program
  .command("rollback")
  .description("swap back to an earlier version (default: the previous one)")
  .argument("<tenant/service>")
  .argument("[version]", "the version", int("version"))
  .action(run(modules.deploy, "rollback"));

program
  .command("logs")
  .description("a service's recent log lines (kept across its crashes and restarts)")
  .argument("<tenant/service>")
  .option("--follow", "then print each new line as it is logged, until Ctrl-C")
  .action(run(modules.services, "logs"));

program
  .command("history")
  .description("every version of a service that ran, oldest first (* marks the current one)")
  .argument("<tenant/service>")
  .action(run(modules.deploy, "history"));

program
  .command("source")
  .description("a service's source, exactly as deployed (default: the current version)")
  .argument("<tenant/service>")
  .argument("[version]", "this version instead", int("version"))
  .action(run(modules.deploy, "source"));

// ---- events ---------------------------------------------------------------------------------

program
  .command("events")
  .description("the event log (a tenant token sees its tenant's); --follow keeps printing new events")
  .option("--tenant <tenant>", "only this tenant's events")
  .option("--type <type>", "only this type (repeatable)", collect, [])
  .option("--subject <subject>", "only events about this service, token or secret")
  .option("--since <id>", "events after this id", int("--since"))
  .option("--limit <n>", "events a page (1-1000, default 100); when there are more, stderr says how to get them", int("--limit"))
  .option("--all", "every page, one after another (one JSON object a line with --json)")
  .option("--follow", "keep following the log as it grows (reconnecting if the kernel restarts), until Ctrl-C")
  .action(run(modules.events, "events"));

program.command("verify").description("walk the event log's hash chain").action(run(modules.events, "verify"));

program.command("health").description("whether the kernel is up (needs no token)").action(run(modules.events, "health"));

// ---- tokens, secrets, tenants, certificates ---------------------------------------------------

const token = program.command("token").description("capability tokens");
token
  .command("grant")
  .description("grant a token (shown once)")
  .option("--tenant <tenant>", "the tenant it reaches")
  .option("--unscoped", "an admin token reaching every tenant")
  .requiredOption("--perm <permission>", "a permission, e.g. call:counter (repeatable)", collect, [])
  .option("--ttl <ms>", "lifetime", int("--ttl"))
  .option("--label <text>", "who it is for")
  .action(run(modules.tokens, "grant"));
token
  .command("attenuate")
  .description("derive a token from yours with fewer permissions")
  .requiredOption("--perm <permission>", "a permission (repeatable)", collect, [])
  .option("--ttl <ms>", "lifetime", int("--ttl"))
  .option("--label <text>", "who it is for")
  .action(run(modules.tokens, "attenuate"));
token.command("ls").description("tokens you can see").option("--tenant <tenant>", "only this tenant's").action(run(modules.tokens, "list"));
token
  .command("revoke")
  .description("revoke a token and every token derived from it")
  .argument("<id>")
  .action(run(modules.tokens, "revoke"));
token.command("whoami").description("the token in use").action(run(modules.tokens, "whoami"));

const secret = program.command("secret").description("tenants' secrets (values go in, names come out)");
secret
  .command("put")
  .description("store a secret (the value from the argument, or stdin)")
  .argument("<tenant>")
  .argument("<name>")
  .argument("[value]")
  .action(run(modules.secrets, "put"));
secret.command("rm").description("delete a secret").argument("<tenant>").argument("<name>").action(run(modules.secrets, "remove"));
secret.command("ls").description("a tenant's secret names").argument("<tenant>").action(run(modules.secrets, "list"));

const tenant = program.command("tenant").description("tenants (admin)");
tenant
  .command("create")
  .argument("<name>")
  .option("--limits <json>", "e.g. '{\"maxServices\":50}'")
  .option("--reuse-name", "reuse the name of a deleted tenant")
  .action(run(modules.tenants, "create"));
tenant.command("ls").action(run(modules.tenants, "list"));
tenant.command("get").argument("<name>").action(run(modules.tenants, "get"));
tenant
  .command("update")
  .argument("<name>")
  .requiredOption("--limits <json>", "the limits to set (omitted ones go back to the defaults)")
  .action(run(modules.tenants, "update"));
tenant
  .command("rm")
  .description("delete a tenant: its services, tokens, secrets and storage (its events stay)")
  .argument("<name>")
  .action(run(modules.tenants, "remove"));

program
  .command("cert")
  .description("certificates for clients on other machines")
  .command("issue")
  .description("issue a client certificate signed by this data directory's CA")
  .argument("<name>", "the client's name (its certificate's CN)")
  .option("--out <dir>", "where to write <name>.crt, <name>.key and ca.crt", ".")
  .option("--days <n>", "validity", int("--days"))
  .action(local(modules.cert, "issue"));

program
  .command("mcp")
  .description("serve Solo's operations as MCP tools on stdin/stdout, through the gateway with this CLI's credentials")
  .option("--embedded", "run a kernel in this process on the data directory instead (no solo start, no port)")
  .option("--database <url>", "with --embedded: a postgres:// URL (default $SOLO_DATABASE_URL, else SQLite in the data directory)")
  .action(local(modules.mcp, "mcp"));

// ---- main ---------------------------------------------------------------------------------------

try {
  await program.parseAsync(process.argv);
} catch (err) {
  // The error printer loads the gateway client's error types: only when there is one to print.
  const printError = async (e: UsageError, asJson: boolean) => (await import("./errors.ts")).printError(e, asJson);
  if (err instanceof CommanderError) {
    // --help and --version exit 0; every other parse failure is a usage error (printed on stderr
    // by commander, and as JSON on stdout with --json).
    process.exitCode = err.exitCode === 0 ? EXIT.ok : EXIT.usage;
    if (err.exitCode !== 0 && json()) await printError(new UsageError(err.message.replace(/^error: /, "")), true);
  } else if (err instanceof UsageError) {
    await printError(err, json());
    process.exitCode = EXIT.usage;
  } else {
    throw err;
  }
}
