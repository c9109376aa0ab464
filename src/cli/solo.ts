#!/usr/bin/env -S node --disable-warning=ExperimentalWarning
/**
 * `solo`: the command line for a running Solo kernel (and `solo start` to run one). Human output
 * by default (tables; colours only on a terminal, never with NO_COLOR); `--json` for scripts.
 * Exit codes are in docs/cli.md.
 */
import { readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import type { JsonObject, JsonValue } from "@bufbuild/protobuf";
import { fromJson, toJson } from "@bufbuild/protobuf";
import { ValueSchema } from "@bufbuild/protobuf/wkt";
import { StdioServerTransport } from "@modelcontextprotocol/sdk/server/stdio.js";
import { Command, CommanderError, Option } from "commander";
import { type ConnectionLimits, connectionLimits, DEFAULT_CONNECTION_LIMITS } from "../gateway/connections.ts";
import { issueClientCert } from "../gateway/credentials.ts";
import type { Event, ServiceInfo, TokenInfo } from "../gen/solo/v1/solo_pb.js";
import { parseBytes } from "../lib/bytes.ts";
import { VERSION } from "../lib/version.ts";
import { serveEmbedded } from "../mcp/embedded.ts";
import { createMcpServer } from "../mcp/server.ts";
import { type Clients, type ConnectionOptions, connect, dataDirOf } from "./connection.ts";
import { bold, colours, dim, EXIT, exitCodeOf, green, jsonReplacer, printError, printFinding, table, UsageError } from "./output.ts";
import { serve } from "./serve.ts";

interface GlobalOptions extends ConnectionOptions {
  readonly json?: boolean;
}

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

const globals = (): GlobalOptions => program.opts<GlobalOptions>();
// Also true when parsing failed before the options were read.
const json = (): boolean => globals().json === true || process.argv.includes("--json");
// The file a deploy or swap read, so the analyzer's findings name it.
let codeFile = "code";

/** Runs a command against the kernel; errors are printed and set the exit code. */
function run<A extends unknown[]>(action: (c: Clients, ...args: A) => Promise<void>): (...args: A) => Promise<void> {
  return async (...args: A) => {
    try {
      await action(connect(globals()), ...args);
    } catch (err) {
      printError(err, json(), codeFile);
      process.exitCode = exitCodeOf(err);
    }
  };
}

function out(data: unknown, human: () => void): void {
  if (json()) process.stdout.write(`${JSON.stringify(data, jsonReplacer)}\n`);
  else human();
}

function ref(text: string): { tenant: string; service: string } {
  const m = /^([^/]+)\/([^/]+)$/.exec(text);
  if (!m) throw new UsageError(`expected tenant/service, got ${JSON.stringify(text)}`, "for example: acme/counter");
  return { tenant: m[1] as string, service: m[2] as string };
}

function parseJson(text: string, what: string): JsonValue {
  try {
    return JSON.parse(text) as JsonValue;
  } catch (err) {
    throw new UsageError(`${what} is not valid JSON: ${(err as Error).message}`);
  }
}

function jsonObject(text: string | undefined, what: string): JsonObject | undefined {
  if (text === undefined) return undefined;
  const v = parseJson(text, what);
  if (v === null || typeof v !== "object" || Array.isArray(v)) throw new UsageError(`${what} must be a JSON object`);
  return v;
}

function readCode(file: string): string {
  try {
    return readFileSync(file === "-" ? 0 : file, "utf8");
  } catch (err) {
    throw new UsageError(`cannot read ${file}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
  }
}

const collect = (v: string, prev: string[] = []): string[] => [...prev, v];

function int(name: string): (v: string) => number {
  return (v) => {
    const n = Number(v);
    if (!Number.isSafeInteger(n) || n < 0) throw new UsageError(`${name} must be a whole number, got ${JSON.stringify(v)}`);
    return n;
  };
}

// ---- start ----------------------------------------------------------------------------------

/** `solo start`'s flags for the edge's timeouts and caps, by the limit each sets. */
const EDGE_FLAGS: Readonly<Record<keyof ConnectionLimits, readonly [flag: string, what: string]>> = {
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
for (const [field, [flag, what]] of Object.entries(EDGE_FLAGS)) {
  start.option(`${flag} <n>`, `${what} (default ${DEFAULT_CONNECTION_LIMITS[field as keyof ConnectionLimits]})`, int(flag));
}
start.action(
  async (o: { host: string; port?: number; database?: string; hostname: string[]; memoryBudget?: number } & Record<string, unknown>) => {
    try {
      await serve({
        dataDir: dataDirOf(globals().dataDir),
        ...(o.database ? { database: o.database } : {}),
        ...(o.memoryBudget !== undefined ? { memoryBudgetBytes: o.memoryBudget } : {}),
        host: o.host,
        port: o.port ?? (process.env.SOLO_PORT !== undefined ? int("SOLO_PORT")(process.env.SOLO_PORT) : 7443),
        hostnames: o.hostname,
        connections: edgeLimits(o),
      });
    } catch (err) {
      printError(err, json());
      process.exitCode = exitCodeOf(err) === EXIT.failed ? EXIT.unavailable : exitCodeOf(err);
    }
  },
);

/** The edge limits given as flags, checked, in the flags' words. */
function edgeLimits(o: Record<string, unknown>): ConnectionLimits {
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
  .action(
    run(
      async (
        c,
        target: string,
        file: string,
        o: { args?: string; limits?: string; grants?: string; supervision?: string; tag: string[] },
      ) => {
        const r = ref(target);
        codeFile = file;
        const code = readCode(file);
        const limits = jsonObject(o.limits, "--limits");
        const grants = jsonObject(o.grants, "--grants");
        const supervision = jsonObject(o.supervision, "--supervision");
        const d = await c.kernel.deploy({
          ref: r,
          code,
          ...(o.args !== undefined ? { args: fromJson(ValueSchema, parseJson(o.args, "--args")) } : {}),
          ...(limits ? { limits } : {}),
          ...(grants ? { grants } : {}),
          ...(supervision ? { supervision } : {}),
          tags: o.tag,
        });
        const dep = d.deployment;
        out(dep, () => {
          process.stdout.write(`${green("deployed", colours())} ${target} version ${dep?.version}\n`);
          for (const f of dep?.findings ?? []) printFinding(f, file);
        });
      },
    ),
  );

program
  .command("call")
  .description("call a service and print its reply")
  .argument("<tenant/service>")
  .argument("[request]", "the request, as JSON")
  .option("--timeout <ms>", "how long to wait", int("--timeout"))
  .action(
    run(async (c, target: string, request: string | undefined, o: { timeout?: number }) => {
      const r = await c.kernel.call({
        ref: ref(target),
        ...(request !== undefined ? { request: fromJson(ValueSchema, parseJson(request, "the request")) } : {}),
        ...(o.timeout !== undefined ? { timeoutMs: o.timeout } : {}),
      });
      const reply = r.reply === undefined ? null : toJson(ValueSchema, r.reply);
      out({ reply }, () => process.stdout.write(`${JSON.stringify(reply, null, 2)}\n`));
    }),
  );

program
  .command("cast")
  .description("send a message to a service without waiting")
  .argument("<tenant/service>")
  .argument("[message]", "the message, as JSON")
  .action(
    run(async (c, target: string, message: string | undefined) => {
      await c.kernel.cast({
        ref: ref(target),
        ...(message !== undefined ? { message: fromJson(ValueSchema, parseJson(message, "the message")) } : {}),
      });
      out({ ok: true }, () => process.stdout.write("sent\n"));
    }),
  );

program
  .command("ls")
  .description("list a tenant's services")
  .argument("<tenant>")
  .option("--tag <tag>", "only services with this tag")
  .action(
    run(async (c, tenant: string, o: { tag?: string }) => {
      const { services } = await c.kernel.list({ tenant, ...(o.tag ? { tag: o.tag } : {}) });
      // The tenant's memory as the host holds it, under the table. A token that may list but not
      // read the tenant's usage still gets the list: the line is left out, as the permission says.
      const usage = json()
        ? undefined
        : await c.kernel.usage({ tenant }).then(
            (r) => r.usage,
            () => undefined,
          );
      out(services, () => {
        if (services.length === 0) return void process.stdout.write(`no services in ${tenant}\n`);
        table([
          ["SERVICE", "VERSION", "STATE", "RESTARTS", "MESSAGES", "MEMORY", "TAGS"],
          ...services.map((s) => [
            s.service,
            String(s.version),
            s.state,
            String(s.restarts),
            String(s.usage?.messages ?? 0),
            kib(Number(s.usage?.memoryBytes ?? 0)),
            s.tags.join(","),
          ]),
        ]);
        if (usage) {
          const limits = usage.limits as { memoryBytes?: number } | undefined;
          process.stdout.write(
            `\ntenant ${tenant}: holds ${kib(Number(usage.memoryBytes ?? 0))} of its ${kib(Number(limits?.memoryBytes ?? 0))} (services' heaps ${kib(Number(usage.heapBytes ?? 0))})\n`,
          );
        }
      });
    }),
  );

program
  .command("status")
  .description("one service's state, version, usage, limits, grants and last crash")
  .argument("<tenant/service>")
  .action(
    run(async (c, target: string) => {
      const s = (await c.kernel.status({ ref: ref(target) })).service;
      out(s, () => printStatus(s));
    }),
  );

for (const [name, what] of [
  ["kill", "stop a service (running terminate); it is not started again"],
  ["restart", "stop a service if it runs and start its version afresh"],
] as const) {
  program
    .command(name)
    .description(what)
    .argument("<tenant/service>")
    .action(
      run(async (c, target: string) => {
        if (name === "kill") {
          await c.kernel.kill({ ref: ref(target) });
          out({ ok: true }, () => process.stdout.write(`killed ${target}\n`));
        } else {
          const d = (await c.kernel.restart({ ref: ref(target) })).deployment;
          out(d, () => process.stdout.write(`restarted ${target} version ${d?.version}\n`));
        }
      }),
    );
}

program
  .command("swap")
  .description("hot-swap a running service's code, keeping its state")
  .argument("<tenant/service>")
  .argument("<file>")
  .option("--window <ms>", "roll back if the new version crashes within this time", int("--window"))
  .action(
    run(async (c, target: string, file: string, o: { window?: number }) => {
      codeFile = file;
      const d = (await c.kernel.swap({ ref: ref(target), code: readCode(file), ...(o.window ? { rollbackWindowMs: o.window } : {}) }))
        .deployment;
      out(d, () => {
        process.stdout.write(`${green("swapped", colours())} ${target} to version ${d?.version}\n`);
        for (const f of d?.findings ?? []) printFinding(f, file);
      });
    }),
  );

program
  .command("rollback")
  .description("swap back to an earlier version (default: the previous one)")
  .argument("<tenant/service>")
  .argument("[version]", "the version", int("version"))
  .action(
    run(async (c, target: string, version: number | undefined) => {
      const d = (await c.kernel.rollback({ ref: ref(target), ...(version ? { version } : {}) })).deployment;
      out(d, () => process.stdout.write(`rolled ${target} back to version ${d?.version}\n`));
    }),
  );

program
  .command("logs")
  .description("a service's recent log lines")
  .argument("<tenant/service>")
  .action(
    run(async (c, target: string) => {
      const { entries } = await c.kernel.logs({ ref: ref(target) });
      out(entries, () => {
        for (const e of entries) process.stdout.write(`${e.at} ${e.level.padEnd(5)} ${e.text}\n`);
      });
    }),
  );

program
  .command("history")
  .description("every version of a service that ran, oldest first (* marks the current one)")
  .argument("<tenant/service>")
  .action(
    run(async (c, target: string) => {
      const { versions } = await c.kernel.history({ ref: ref(target) });
      out(versions, () =>
        table([
          ["", "VERSION", "DEPLOYED", "BYTES", "SHA-256"],
          ...versions.map((v) => [v.current ? "*" : "", String(v.version), v.deployedAt, String(v.codeBytes), v.sha256.slice(0, 16)]),
        ]),
      );
    }),
  );

program
  .command("source")
  .description("a service's source, exactly as deployed (default: the current version)")
  .argument("<tenant/service>")
  .argument("[version]", "this version instead", int("version"))
  .action(
    run(async (c, target: string, version: number | undefined) => {
      const s = await c.kernel.source({ ref: ref(target), ...(version ? { version } : {}) });
      out(s, () => process.stdout.write(s.code.endsWith("\n") ? s.code : `${s.code}\n`));
    }),
  );

// ---- events ---------------------------------------------------------------------------------

program
  .command("events")
  .description("the event log (a tenant token sees its tenant's); --follow keeps printing new events")
  .option("--tenant <tenant>", "only this tenant's events")
  .option("--type <type>", "only this type (repeatable)", collect, [])
  .option("--subject <subject>", "only events about this service, token or secret")
  .option("--since <id>", "events after this id", int("--since"))
  .option("--limit <n>", "at most this many (1-1000)", int("--limit"))
  .option("--follow", "keep following the log as it grows")
  .action(
    run(async (c, o: { tenant?: string; type: string[]; subject?: string; since?: number; limit?: number; follow?: boolean }) => {
      const filter = { ...(o.tenant ? { tenant: o.tenant } : {}), types: o.type, ...(o.subject ? { subject: o.subject } : {}) };
      if (o.follow) {
        const abort = new AbortController();
        process.once("SIGINT", () => abort.abort());
        try {
          for await (const e of c.kernel.followEvents(
            { filter, fromId: BigInt((o.since ?? 0) + (o.since !== undefined ? 1 : 0)) },
            { signal: abort.signal },
          )) {
            printEvent(e);
          }
        } catch (err) {
          if (!abort.signal.aborted) throw err;
        }
        return;
      }
      const page = await c.kernel.queryEvents({
        filter,
        ...(o.since !== undefined ? { afterId: BigInt(o.since) } : {}),
        ...(o.limit ? { limit: o.limit } : {}),
      });
      if (json()) {
        out({ events: page.events.map(eventData), cursor: page.cursor }, () => undefined);
        return;
      }
      for (const e of page.events) printEvent(e);
    }),
  );

program
  .command("verify")
  .description("walk the event log's hash chain")
  .action(
    run(async (c) => {
      const r = await c.kernel.verify({});
      out(r, () =>
        process.stdout.write(
          r.ok
            ? `${green("ok", colours())}: ${r.events} events, head ${r.headHash}\n`
            : `BROKEN at event ${r.at} (${r.problem}): ${r.message}; verified up to ${r.verifiedUpTo}\n`,
        ),
      );
      if (!r.ok) process.exitCode = EXIT.failed;
    }),
  );

program
  .command("health")
  .description("whether the kernel is up (needs no token)")
  .action(
    run(async (c) => {
      const h = await c.kernel.health({});
      out(h, () => process.stdout.write(`${h.status}: ${h.store}, ${h.schedulers} schedulers, up ${Number(h.uptimeMs) / 1000} s\n`));
    }),
  );

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
  .action(
    run(async (c, o: { tenant?: string; unscoped?: boolean; perm: string[]; ttl?: number; label?: string }) => {
      if (!o.unscoped && !o.tenant) throw new UsageError("give --tenant, or --unscoped for an admin token");
      const g = await c.tokens.grant({
        tenant: o.tenant ?? "",
        unscoped: o.unscoped === true,
        permissions: o.perm,
        ...(o.ttl ? { ttlMs: BigInt(o.ttl) } : {}),
        ...(o.label ? { label: o.label } : {}),
      });
      // Only the token on stdout, so `TOKEN=$(solo token grant ...)` captures it; the note is for people.
      out({ token: g.token, info: g.info }, () => {
        process.stdout.write(`${g.token}\n`);
        process.stderr.write(`${dim(`id ${g.info?.id}; shown once: keep it safe`, colours(process.stderr))}\n`);
      });
    }),
  );
token
  .command("attenuate")
  .description("derive a token from yours with fewer permissions")
  .requiredOption("--perm <permission>", "a permission (repeatable)", collect, [])
  .option("--ttl <ms>", "lifetime", int("--ttl"))
  .option("--label <text>", "who it is for")
  .action(
    run(async (c, o: { perm: string[]; ttl?: number; label?: string }) => {
      const g = await c.tokens.attenuate({
        permissions: o.perm,
        ...(o.ttl ? { ttlMs: BigInt(o.ttl) } : {}),
        ...(o.label ? { label: o.label } : {}),
      });
      out({ token: g.token, info: g.info }, () => process.stdout.write(`${g.token}\n`));
    }),
  );
token
  .command("ls")
  .description("tokens you can see")
  .option("--tenant <tenant>", "only this tenant's")
  .action(
    run(async (c, o: { tenant?: string }) => {
      const { tokens } = await c.tokens.list({ tenant: o.tenant ?? "" });
      out(tokens, () => tokenTable(tokens));
    }),
  );
token
  .command("revoke")
  .description("revoke a token and every token derived from it")
  .argument("<id>")
  .action(
    run(async (c, id: string) => {
      const r = await c.tokens.revoke({ id });
      out(r, () => process.stdout.write(`revoked ${r.revoked.join(", ")}\n`));
    }),
  );
token
  .command("whoami")
  .description("the token in use")
  .action(
    run(async (c) => {
      const { info } = await c.tokens.whoAmI({});
      out(info, () => tokenTable(info ? [info] : []));
    }),
  );

const secret = program.command("secret").description("tenants' secrets (values go in, names come out)");
secret
  .command("put")
  .description("store a secret (the value from the argument, or stdin)")
  .argument("<tenant>")
  .argument("<name>")
  .argument("[value]")
  .action(
    run(async (c, tenant: string, name: string, value: string | undefined) => {
      const s = (await c.secrets.put({ tenant, name, value: value ?? readFileSync(0, "utf8") })).secret;
      out(s, () => process.stdout.write(`stored ${tenant}/${name}\n`));
    }),
  );
secret
  .command("rm")
  .description("delete a secret")
  .argument("<tenant>")
  .argument("<name>")
  .action(
    run(async (c, tenant: string, name: string) => {
      const r = await c.secrets.delete({ tenant, name });
      out(r, () => process.stdout.write(r.deleted ? `deleted ${tenant}/${name}\n` : `no secret ${tenant}/${name}\n`));
    }),
  );
secret
  .command("ls")
  .description("a tenant's secret names")
  .argument("<tenant>")
  .action(
    run(async (c, tenant: string) => {
      const { secrets } = await c.secrets.list({ tenant });
      out(secrets, () => table([["NAME", "UPDATED", "KEY"], ...secrets.map((s) => [s.name, s.updatedAt, String(s.keyId)])]));
    }),
  );

const tenant = program.command("tenant").description("tenants (admin)");
tenant
  .command("create")
  .argument("<name>")
  .option("--limits <json>", "e.g. '{\"maxServices\":50}'")
  .option("--reuse-name", "reuse the name of a deleted tenant")
  .action(
    run(async (c, name: string, o: { limits?: string; reuseName?: boolean }) => {
      const limits = jsonObject(o.limits, "--limits");
      const t = (await c.tenants.create({ name, ...(limits ? { limits } : {}), reuseName: o.reuseName === true })).tenant;
      out(t, () => process.stdout.write(`created tenant ${name}${t && t.incarnation > 1 ? ` (incarnation ${t.incarnation})` : ""}\n`));
    }),
  );
tenant.command("ls").action(
  run(async (c) => {
    const { tenants } = await c.tenants.list({});
    out(tenants, () =>
      table([
        ["TENANT", "MAX SERVICES", "MEMORY", "CREATED"],
        ...tenants.map((t) => [t.name, String(t.limits?.maxServices ?? ""), kib(Number(t.limits?.memoryBytes ?? 0)), t.createdAt]),
      ]),
    );
  }),
);
tenant
  .command("get")
  .argument("<name>")
  .action(
    run(async (c, name: string) => {
      const t = (await c.tenants.get({ name })).tenant;
      out(t, () => process.stdout.write(`${JSON.stringify(t, jsonReplacer, 2)}\n`));
    }),
  );
tenant
  .command("update")
  .argument("<name>")
  .requiredOption("--limits <json>", "the limits to set (omitted ones go back to the defaults)")
  .action(
    run(async (c, name: string, o: { limits: string }) => {
      const t = (await c.tenants.update({ name, limits: jsonObject(o.limits, "--limits") ?? {} })).tenant;
      out(t, () => process.stdout.write(`updated tenant ${name}\n`));
    }),
  );
tenant
  .command("rm")
  .description("delete a tenant: its services, tokens, secrets and storage (its events stay)")
  .argument("<name>")
  .action(
    run(async (c, name: string) => {
      const d = await c.tenants.delete({ name });
      out(d, () =>
        process.stdout.write(
          `deleted tenant ${name}: ${d.services} services, ${d.tokensRevoked} tokens revoked, ${d.secretsDeleted} secrets\n`,
        ),
      );
    }),
  );

program
  .command("cert")
  .description("certificates for clients on other machines")
  .command("issue")
  .description("issue a client certificate signed by this data directory's CA")
  .argument("<name>", "the client's name (its certificate's CN)")
  .option("--out <dir>", "where to write <name>.crt, <name>.key and ca.crt", ".")
  .option("--days <n>", "validity", int("--days"))
  .action(async (name: string, o: { out: string; days?: number }) => {
    try {
      const dataDir = dataDirOf(globals().dataDir);
      const c = await issueClientCert(dataDir, { commonName: name, ...(o.days ? { days: o.days } : {}) });
      const files = { cert: join(o.out, `${name}.crt`), key: join(o.out, `${name}.key`), ca: join(o.out, "ca.crt") };
      writeFileSync(files.cert, c.certPem, { mode: 0o644 });
      writeFileSync(files.key, c.keyPem, { mode: 0o600 });
      writeFileSync(files.ca, c.caPem, { mode: 0o644 });
      out(files, () =>
        process.stdout.write(
          `wrote ${files.cert}, ${files.key} (0600) and ${files.ca}\nuse: solo --url https://<this host>:7443 --cert ${files.cert} --key ${files.key} --ca ${files.ca} --token <token> ...\n`,
        ),
      );
    } catch (err) {
      printError(err, json());
      process.exitCode = exitCodeOf(err);
    }
  });

program
  .command("mcp")
  .description("serve Solo's operations as MCP tools on stdin/stdout, through the gateway with this CLI's credentials")
  .option("--embedded", "run a kernel in this process on the data directory instead (no solo start, no port)")
  .option("--database <url>", "with --embedded: a postgres:// URL (default $SOLO_DATABASE_URL, else SQLite in the data directory)")
  .action(async (o: { embedded?: boolean; database?: string }) => {
    try {
      if (o.embedded) {
        const token = globals().token ?? process.env.SOLO_TOKEN;
        await serveEmbedded({
          dataDir: dataDirOf(globals().dataDir),
          ...(o.database ? { database: o.database } : {}),
          ...(token ? { token } : {}),
        });
        return;
      }
      const server = createMcpServer(connect(globals()), VERSION);
      await server.connect(new StdioServerTransport());
    } catch (err) {
      // stdout belongs to the protocol: report on stderr only.
      printError(err, false);
      process.exitCode = exitCodeOf(err);
    }
  });

// ---- human output -----------------------------------------------------------------------------

function kib(bytes: number): string {
  return bytes >= 1024 * 1024 ? `${(bytes / 1024 / 1024).toFixed(1)} MiB` : `${(bytes / 1024).toFixed(0)} KiB`;
}

function printStatus(s: ServiceInfo | undefined): void {
  if (!s) return;
  const on = colours();
  const rows: Array<[string, string]> = [
    ["service", `${s.tenant}/${s.service}`],
    ["state", s.state],
    ["version", String(s.version)],
    ["deployed", s.deployedAt],
    ["restarts", String(s.restarts)],
    ["handlers", s.handlers.join(", ")],
    ["tags", s.tags.join(", ")],
    ["usage", JSON.stringify(s.usage)],
    ["limits", JSON.stringify(s.limits)],
    ["grants", JSON.stringify(s.grants)],
    ["breaker", JSON.stringify(s.breaker)],
  ];
  if (s.crash) rows.push(["crash", JSON.stringify(s.crash)]);
  for (const [k, v] of rows) process.stdout.write(`${bold(k.padEnd(9), on)} ${v}\n`);
}

function tokenTable(tokens: readonly TokenInfo[]): void {
  table([
    ["ID", "TENANT", "STATE", "EXPIRES", "PERMISSIONS", "LABEL"],
    ...tokens.map((t) => [t.id, t.tenant || "*", t.state, t.expiresAt || "never", t.permissions.join(" "), t.label]),
  ]);
}

function eventData(e: Event): Record<string, unknown> {
  return {
    id: Number(e.id),
    timestamp: Number(e.timestamp),
    tenant: e.tenant || null,
    type: e.type,
    subject: e.subject || null,
    payload: e.payload ? toJson(ValueSchema, e.payload) : null,
    causationId: e.causationId ? Number(e.causationId) : null,
    hash: e.hash,
  };
}

function printEvent(e: Event): void {
  if (json()) {
    process.stdout.write(`${JSON.stringify(eventData(e))}\n`);
    return;
  }
  const on = colours();
  const at = new Date(Number(e.timestamp / 1000n)).toISOString();
  const payload = e.payload ? JSON.stringify(toJson(ValueSchema, e.payload)) : "";
  process.stdout.write(
    `${dim(String(e.id).padStart(6), on)} ${dim(at, on)} ${e.tenant || "-"} ${bold(e.type, on)} ${e.subject} ${payload.slice(0, 200)}\n`,
  );
}

// ---- main ---------------------------------------------------------------------------------------

try {
  await program.parseAsync(process.argv);
} catch (err) {
  if (err instanceof CommanderError) {
    // --help and --version exit 0; every other parse failure is a usage error (printed on stderr
    // by commander, and as JSON on stdout with --json).
    process.exitCode = err.exitCode === 0 ? EXIT.ok : EXIT.usage;
    if (err.exitCode !== 0 && json()) printError(new UsageError(err.message.replace(/^error: /, "")), true);
  } else if (err instanceof UsageError) {
    printError(err, json());
    process.exitCode = EXIT.usage;
  } else {
    throw err;
  }
}
