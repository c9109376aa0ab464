// Solo's MCP tools as one table: each tool's name, title, description, input schema, annotations,
// the gateway RPC and permission it uses, what it runs, and the text a model reads of its result.
// server.ts lists and dispatches them in this order.
import { fromJson, type JsonObject, type JsonValue, toJson } from "@bufbuild/protobuf";
import { ValueSchema } from "@bufbuild/protobuf/wkt";
import { type ZodRawShape, z } from "zod";
import type { Clients } from "../gateway/client.ts";
import { SoloError } from "../lib/errors/errors.ts";
import { jsonReplacer, plainJson } from "../lib/json.ts";
import { NAME_PATTERN } from "../lib/names.ts";

/** What a name (a tenant's, a service's) must look like. */
export const NAME_RULE = "1-63 of a-z 0-9 - _, starting with a letter, ending with a letter or digit";
/** A tenant or service name. */
export const NAME = z.string().regex(NAME_PATTERN, NAME_RULE);
const MAX_CODE = 1024 * 1024;
const REF = { tenant: NAME.describe("the tenant"), service: NAME.describe("the service") };

type Service = Exclude<keyof Clients, "url">;
/** A gateway RPC as `service.method` of {@link Clients} (`kernel.deploy`, `tokens.attenuate`, ...). */
export type Rpc = { [S in Service]: `${S}.${Extract<keyof Clients[S], string>}` }[Service];

/**
 * The permission the kernel checks for a tool's RPC; `<service>` is the tool's `service` argument.
 * (Deploying with a fetch grant needs `fetch:<host>` as well.) `tenants:read` and `tenants:write`
 * are held only by unscoped (admin) tokens.
 */
export type ToolPermission =
  | "deploy:<service>"
  | "call:<service>"
  | "services:read"
  | "events:read"
  | "secrets:read"
  | "tenants:read"
  | "tenants:write";

/** MCP's tool annotations: hints a client shows or acts on (confirming a destructive call, say). */
export interface ToolAnnotations {
  readonly readOnlyHint: boolean;
  readonly destructiveHint: boolean;
  readonly idempotentHint: boolean;
  readonly openWorldHint: boolean;
}

/** One MCP tool: what tools/list shows of it, and what tools/call runs. */
export interface Tool {
  readonly name: string;
  readonly title: string;
  readonly description: string;
  /** Its arguments; the SDK checks them against {@link strictInput} of this before `run` sees them. */
  readonly inputSchema: ZodRawShape;
  readonly annotations: ToolAnnotations;
  /** The gateway RPC it calls with the caller's token. */
  readonly rpc: Rpc;
  /** What the token must hold for it; null when any valid token may (attenuating what it holds). */
  readonly permission: ToolPermission | null;
  /** What a tenant-scoped token may hold instead, for its own tenant (tenant_get: services:read). */
  readonly ownTenantPermission?: ToolPermission;
  /** Its structured result; a failure is thrown (as a SoloError or the gateway's ConnectError). */
  readonly run: (solo: Clients, args: Record<string, unknown>) => Promise<Record<string, unknown>>;
  /** The result as the text a model reads: a short line first, then every fact of the result. */
  readonly text: (data: Record<string, unknown>) => string;
}

// A table entry with `run` and `text` typed by its own schema and result.
function tool<S extends ZodRawShape, R extends Record<string, unknown>>(
  t: Omit<Tool, "inputSchema" | "run" | "text"> & {
    readonly inputSchema: S;
    readonly run: (solo: Clients, args: z.infer<z.ZodObject<S>>) => Promise<R>;
    readonly text: (data: R) => string;
  },
): Tool {
  // The SDK has parsed the arguments with inputSchema, so they are of its output type; `text` is
  // given what `run` returned.
  return { ...t, run: (solo, args) => t.run(solo, args as z.infer<z.ZodObject<S>>), text: (data) => t.text(data as R) };
}

/**
 * A tool's arguments as a strict object: an argument it does not take is refused, naming the key
 * and the arguments it does take (a misspelt `req` must not run a call with no request).
 */
export function strictInput(toolName: string, shape: ZodRawShape) {
  return strictObject(toolName, shape, "its arguments are");
}

// A strict object whose unknown keys are refused by name, with the keys it takes.
function strictObject<S extends ZodRawShape>(what: string, shape: S, takes = "it takes") {
  const accepted = Object.keys(shape);
  return z
    .object(shape, {
      errorMap: (issue, ctx) =>
        issue.code === "unrecognized_keys"
          ? {
              message: `${what} does not take ${issue.keys.map((k) => JSON.stringify(k)).join(", ")}: ${takes} ${accepted.length > 0 ? accepted.join(", ") : "none"}`,
            }
          : { message: ctx.defaultError },
    })
    .strict();
}

const READ: ToolAnnotations = { readOnlyHint: true, destructiveHint: false, idempotentHint: true, openWorldHint: false };
const json = (v: unknown): string => JSON.stringify(v, jsonReplacer);
const lines = (first: string, data: unknown): string => `${first}\n${json(data)}`;

const LIMITS = strictObject("limits", {
  memoryBytes: z.number().int().positive().optional().describe("the service's heap, bytes (default 32 MiB)"),
  stackBytes: z.number().int().positive().optional(),
  cpuMsPerMessage: z.number().int().positive().optional().describe("CPU time per message, ms (default 100)"),
  messageBytes: z.number().int().positive().optional(),
  stateBytes: z.number().int().positive().optional(),
  timers: z.number().int().min(0).optional(),
  storageBytes: z.number().int().min(0).optional(),
  storageKeys: z.number().int().min(0).optional(),
  mailbox: z.number().int().positive().optional(),
}).describe("overrides of the kernel's per-service limits (docs/programming-model.md); the kernel checks their ranges");

const SUPERVISION = strictObject("supervision", {
  restart: z
    .enum(["permanent", "transient", "temporary"])
    .optional()
    .describe("permanent: always restarted; transient: only after a crash; temporary: never"),
  maxRestarts: z.number().int().min(0).optional(),
  periodMs: z.number().int().positive().optional(),
  backoffMs: z.number().int().min(0).optional(),
  maxBackoffMs: z.number().int().min(0).optional(),
  breakerThreshold: z.number().int().min(0).optional(),
  breakerCooldownMs: z.number().int().min(0).optional(),
}).describe("how the supervisor restarts the service and when its circuit breaker opens (default: the kernel's)");

const TENANT_LIMITS = strictObject("limits", {
  maxServices: z.number().int().min(0).optional().describe("services (not killed) the tenant may have"),
  memoryBytes: z.number().int().positive().optional().describe("bytes all its services may hold together (16 MiB to 2 GiB)"),
});

const GRANTS = z
  .record(z.unknown())
  .describe('powers, e.g. { "call": ["ledger"], "storage": true, "secrets": ["API_KEY"], "fetch": { "hosts": ["api.example.com"] } }');

/** Every tool, in the order tools/list shows them. */
export const TOOLS: readonly Tool[] = [
  tool({
    name: "tenant_create",
    title: "Create a tenant",
    description:
      "Create a tenant: the namespace services, secrets and tokens live in. A fresh data directory has none; create one before the first deploy. Optional limits override the kernel's tenant limits (maxServices, memoryBytes).",
    inputSchema: {
      tenant: NAME.describe("the new tenant's name"),
      limits: TENANT_LIMITS.optional(),
      reuseName: z.boolean().optional().describe("create a name whose tenant was deleted, as a new incarnation"),
    },
    annotations: { readOnlyHint: false, destructiveHint: false, idempotentHint: false, openWorldHint: false },
    rpc: "tenants.create",
    permission: "tenants:write",
    run: async (solo, { tenant, limits, reuseName }) => {
      const t = await solo.tenants.create({
        name: tenant,
        ...(limits !== undefined ? { limits: limits as JsonObject } : {}),
        ...(reuseName ? { reuseName } : {}),
      });
      return { tenant: plainJson(t.tenant) };
    },
    text: (d) => lines(`created tenant ${String(d.tenant.name)}`, d),
  }),

  tool({
    name: "tenant_list",
    title: "List tenants",
    description: "Every tenant with its limits and overrides. Empty on a fresh data directory: create one with tenant_create.",
    inputSchema: {},
    annotations: READ,
    rpc: "tenants.list",
    permission: "tenants:read",
    run: async (solo) => ({ tenants: (await solo.tenants.list({})).tenants.map(plainJson) }),
    text: (d) =>
      lines(
        d.tenants.length === 0
          ? "no tenants: create one with tenant_create"
          : `${d.tenants.length} tenant(s): ${d.tenants.map((t) => t.name).join(", ")}`,
        d,
      ),
  }),

  tool({
    name: "tenant_get",
    title: "Read a tenant",
    description: "A tenant's limits in force, its overrides, incarnation and creation time.",
    inputSchema: { tenant: NAME.describe("the tenant") },
    annotations: READ,
    rpc: "tenants.get",
    permission: "tenants:read",
    ownTenantPermission: "services:read",
    run: async (solo, { tenant }) => ({ tenant: plainJson((await solo.tenants.get({ name: tenant })).tenant) }),
    text: (d) => lines(`tenant ${String(d.tenant.name)}: limits ${json(d.tenant.limits)}`, d),
  }),

  tool({
    name: "tenant_update",
    title: "Set a tenant's limits",
    description:
      "Replace a tenant's limit overrides (maxServices, memoryBytes); limits left out fall back to the kernel's defaults, and {} removes every override.",
    inputSchema: { tenant: NAME.describe("the tenant"), limits: TENANT_LIMITS },
    annotations: { readOnlyHint: false, destructiveHint: true, idempotentHint: true, openWorldHint: false },
    rpc: "tenants.update",
    permission: "tenants:write",
    run: async (solo, { tenant, limits }) => ({
      tenant: plainJson((await solo.tenants.update({ name: tenant, limits: limits as JsonObject })).tenant),
    }),
    text: (d) => lines(`tenant ${String(d.tenant.name)} now has limits ${json(d.tenant.limits)}`, d),
  }),

  tool({
    name: "deploy",
    title: "Deploy a service",
    description:
      "Deploy a service: one JavaScript or TypeScript module whose default export has init(args) returning the state and handleCall(request, state) returning { reply, state } (also handleCast, handleInfo). The tenant must exist (tenant_create). The analyzer checks the code first; if it refuses, the result is an error listing each finding as line, column, rule, message and hint: fix them all and deploy again. A running service of that name must be killed first, or use swap.",
    inputSchema: {
      ...REF,
      code: z.string().min(1).max(MAX_CODE).describe("the module's source"),
      args: z.unknown().optional().describe("the argument of init (any JSON value)"),
      grants: GRANTS.optional(),
      limits: LIMITS.optional(),
      supervision: SUPERVISION.optional(),
      tags: z.array(z.string().max(64)).max(32).optional().describe("labels, each 1-64 of a-z 0-9 _ . : - (list finds services by tag)"),
      metadata: z
        .record(z.union([z.string(), z.number(), z.boolean(), z.null()]))
        .optional()
        .describe("a flat object of strings, numbers, booleans and nulls, up to 4 KiB"),
      file: z.string().max(128).optional().describe("the file's name as you wrote it (billing.ts): errors and crashes name it"),
    },
    annotations: { readOnlyHint: false, destructiveHint: false, idempotentHint: false, openWorldHint: false },
    rpc: "kernel.deploy",
    permission: "deploy:<service>",
    run: async (solo, { tenant, service, code, args, grants, limits, supervision, tags, metadata, file }) => {
      const d = await solo.kernel.deploy({
        ref: { tenant, service },
        code,
        ...(args !== undefined ? { args: value(args, "args") } : {}),
        ...(grants !== undefined ? { grants: shallow(grants, "grants") as JsonObject } : {}),
        ...(limits !== undefined ? { limits: limits as JsonObject } : {}),
        ...(supervision !== undefined ? { supervision: supervision as JsonObject } : {}),
        ...(tags !== undefined ? { tags } : {}),
        ...(metadata !== undefined ? { metadata: metadata as JsonObject } : {}),
        ...(file ? { file } : {}),
      });
      return { tenant, service, version: d.deployment?.version ?? 0, findings: findings(d.deployment?.findings ?? []) };
    },
    text: (d) => deployedText(`deployed ${d.tenant}/${d.service} version ${d.version}`, d),
  }),

  tool({
    name: "swap",
    title: "Hot-swap a service's code",
    description:
      "Hot-swap a running service's code, keeping its state (through codeChange(fromVersion, state) if the new code has one). If the new version crashes within the rollback window the old one comes back. The analyzer's findings come back as deploy's do.",
    inputSchema: {
      ...REF,
      code: z.string().min(1).max(MAX_CODE).describe("the new module's source"),
      grants: GRANTS.optional().describe("the new version's powers, as deploy takes them (default: the running version's)"),
      file: z.string().max(128).optional().describe("the new code's file name (default: the running version's)"),
      rollbackWindowMs: z
        .number()
        .int()
        .min(1)
        .max(3_600_000)
        .optional()
        .describe("how long a crash of the new version rolls it back (default: the kernel's)"),
    },
    annotations: { readOnlyHint: false, destructiveHint: true, idempotentHint: false, openWorldHint: false },
    rpc: "kernel.swap",
    permission: "deploy:<service>",
    run: async (solo, { tenant, service, code, grants, file, rollbackWindowMs }) => {
      const d = await solo.kernel.swap({
        ref: { tenant, service },
        code,
        ...(grants !== undefined ? { grants: shallow(grants, "grants") as JsonObject } : {}),
        ...(file ? { file } : {}),
        ...(rollbackWindowMs ? { rollbackWindowMs } : {}),
      });
      return { tenant, service, version: d.deployment?.version ?? 0, findings: findings(d.deployment?.findings ?? []) };
    },
    text: (d) => deployedText(`swapped ${d.tenant}/${d.service} to version ${d.version}, its state kept`, d),
  }),

  tool({
    name: "rollback",
    title: "Roll a service back",
    description: "Swap a service back to an earlier version (default: the one before the running one), keeping its state.",
    inputSchema: { ...REF, version: z.number().int().positive().optional().describe("a version from history") },
    annotations: { readOnlyHint: false, destructiveHint: true, idempotentHint: false, openWorldHint: false },
    rpc: "kernel.rollback",
    permission: "deploy:<service>",
    run: async (solo, { tenant, service, version }) => ({
      tenant,
      service,
      version: (await solo.kernel.rollback({ ref: { tenant, service }, ...(version ? { version } : {}) })).deployment?.version ?? 0,
    }),
    text: (d) => lines(`rolled ${d.tenant}/${d.service} back: version ${d.version} runs now`, d),
  }),

  tool({
    name: "history",
    title: "A service's versions",
    description:
      "Every version of a service that ran, oldest first: version, deployedAt, codeBytes, sha256, grants, and which one is current. Read a version's code with source.",
    inputSchema: REF,
    annotations: READ,
    rpc: "kernel.history",
    permission: "services:read",
    run: async (solo, { tenant, service }) => ({
      tenant,
      service,
      versions: (await solo.kernel.history({ ref: { tenant, service } })).versions.map(plainJson),
    }),
    text: (d) => {
      const current = d.versions.find((v) => v.current)?.version;
      return lines(`${d.versions.length} version(s) of ${d.tenant}/${d.service}; current: ${current ?? "none"}`, d);
    },
  }),

  tool({
    name: "source",
    title: "Read a service's source",
    description: "A service's source exactly as deployed (default: the version running now); use it before a swap to edit what runs.",
    inputSchema: { ...REF, version: z.number().int().positive().optional().describe("a version from history") },
    annotations: READ,
    rpc: "kernel.source",
    permission: "services:read",
    run: async (solo, { tenant, service, version }) => {
      const s = await solo.kernel.source({ ref: { tenant, service }, ...(version ? { version } : {}) });
      return { tenant, service, version: s.version, deployedAt: s.deployedAt, sha256: s.sha256, code: s.code };
    },
    // The code as it is, not escaped in JSON.
    text: (d) => `${d.tenant}/${d.service} version ${d.version}, deployed ${d.deployedAt}, sha256 ${d.sha256}:\n${d.code}`,
  }),

  tool({
    name: "call",
    title: "Call a service",
    description: "Send a request to a service's handleCall and return its reply.",
    inputSchema: {
      ...REF,
      request: z.unknown().optional().describe("any JSON value"),
      timeoutMs: z.number().int().min(1).max(600_000).optional().describe("how long to wait for the reply (default 5000)"),
    },
    // What a service does is its own: with a fetch grant it reaches allow-listed hosts.
    annotations: { readOnlyHint: false, destructiveHint: false, idempotentHint: false, openWorldHint: true },
    rpc: "kernel.call",
    permission: "call:<service>",
    run: async (solo, { tenant, service, request, timeoutMs }) => {
      const r = await solo.kernel.call({
        ref: { tenant, service },
        ...(request !== undefined ? { request: value(request, "request") } : {}),
        ...(timeoutMs ? { timeoutMs } : {}),
      });
      return { reply: r.reply === undefined ? null : toJson(ValueSchema, r.reply) };
    },
    text: (d) => `reply: ${json(d.reply)}`,
  }),

  tool({
    name: "cast",
    title: "Cast to a service",
    description: "Send a message to a service's handleCast without waiting.",
    inputSchema: { ...REF, message: z.unknown().optional().describe("any JSON value") },
    annotations: { readOnlyHint: false, destructiveHint: false, idempotentHint: false, openWorldHint: true },
    rpc: "kernel.cast",
    permission: "call:<service>",
    run: async (solo, { tenant, service, message }) => {
      await solo.kernel.cast({
        ref: { tenant, service },
        ...(message !== undefined ? { message: value(message, "message") } : {}),
      });
      return { tenant, service, sent: true };
    },
    text: (d) => `sent to ${d.tenant}/${d.service}'s handleCast (no answer is awaited)`,
  }),

  tool({
    name: "list",
    title: "List a tenant's services",
    description:
      "A tenant's services with their state, version, restarts and usage (a tenant that does not exist is an error; one with no services lists none).",
    inputSchema: {
      tenant: NAME.describe("the tenant"),
      tag: z.string().max(64).optional().describe("only services with this tag"),
    },
    annotations: READ,
    rpc: "kernel.list",
    permission: "services:read",
    run: async (solo, { tenant, tag }) => ({
      tenant,
      services: (await solo.kernel.list({ tenant, ...(tag ? { tag } : {}) })).services.map(plainJson),
    }),
    text: (d) =>
      lines(
        d.services.length === 0
          ? `tenant ${d.tenant} has no services`
          : `${d.services.length} service(s) of ${d.tenant}: ${d.services.map((s) => `${s.service} (${s.state}, version ${s.version})`).join(", ")}`,
        d,
      ),
  }),

  tool({
    name: "status",
    title: "A service's status",
    description: "One service's state, version, usage, limits, grants, breaker and last crash.",
    inputSchema: REF,
    annotations: READ,
    rpc: "kernel.status",
    permission: "services:read",
    run: async (solo, { tenant, service }) => ({ service: plainJson((await solo.kernel.status({ ref: { tenant, service } })).service) }),
    text: (d) => {
      const s = d.service;
      return lines(`${s.tenant}/${s.service}: ${s.state}, version ${s.version}, restarts ${s.restarts ?? 0}`, d);
    },
  }),

  tool({
    name: "logs",
    title: "Read a service's log",
    description:
      "A service's recent log lines (solo.log/warn/error and console.*; up to 200 kept across crashes and restarts), oldest first. Pass the `next` of a previous result as `after` to read only newer lines, and waitMs to wait (at most 30 s) for one when there is none yet.",
    inputSchema: {
      ...REF,
      after: z.string().max(100).optional().describe("the `next` cursor of a previous logs result: only lines after it"),
      waitMs: z.number().int().min(0).max(30_000).optional().describe("when no line is there yet, wait this long for one"),
      limit: z.number().int().min(1).max(200).optional().describe("most lines to return (default 200); `more` says if there are more"),
    },
    annotations: READ,
    rpc: "kernel.logs",
    permission: "services:read",
    run: async (solo, { tenant, service, after, waitMs, limit }) => readLogs(solo, { tenant, service }, after, waitMs ?? 0, limit ?? 200),
    text: (d) =>
      [
        `${d.lines.length} line(s) of ${d.tenant}/${d.service}${d.more ? " (more follow: read on with after)" : ""}; next: ${d.next}`,
        ...d.lines.map((l) => `${l.at} ${l.level} ${l.text}`),
      ].join("\n"),
  }),

  tool({
    name: "usage",
    title: "A tenant's usage",
    description: "A tenant's totals: services, running ones, memory, mailboxes, dropped messages, and its limits.",
    inputSchema: { tenant: NAME.describe("the tenant") },
    annotations: READ,
    rpc: "kernel.usage",
    permission: "services:read",
    run: async (solo, { tenant }) => ({ tenant, usage: plainJson((await solo.kernel.usage({ tenant })).usage) }),
    text: (d) => lines(`usage of tenant ${d.tenant}`, d),
  }),

  tool({
    name: "kill",
    title: "Kill a service",
    description: "Stop a service for good (it runs terminate if idle); deploy it again to start a new version.",
    inputSchema: REF,
    annotations: { readOnlyHint: false, destructiveHint: true, idempotentHint: true, openWorldHint: false },
    rpc: "kernel.kill",
    permission: "deploy:<service>",
    run: async (solo, { tenant, service }) => {
      await solo.kernel.kill({ ref: { tenant, service } });
      return { tenant, service, killed: true };
    },
    text: (d) => `killed ${d.tenant}/${d.service}`,
  }),

  tool({
    name: "restart",
    title: "Restart a service",
    description: "Stop a service if it runs and start its current version afresh, losing its state in memory (revives a failed service).",
    inputSchema: REF,
    annotations: { readOnlyHint: false, destructiveHint: true, idempotentHint: false, openWorldHint: false },
    rpc: "kernel.restart",
    permission: "deploy:<service>",
    run: async (solo, { tenant, service }) => ({
      tenant,
      service,
      version: (await solo.kernel.restart({ ref: { tenant, service } })).deployment?.version ?? 0,
    }),
    text: (d) => `restarted ${d.tenant}/${d.service}: version ${d.version} runs afresh`,
  }),

  tool({
    name: "events",
    title: "Read the event log",
    description:
      "Events from the tamper-evident log, oldest first: by tenant, type (e.g. service_crashed, svc.<service>.<name>), subject, and after an id. Pass the result's nextSinceId as sinceId to read on.",
    inputSchema: {
      tenant: NAME.optional().describe("only this tenant's events"),
      types: z.array(z.string().max(200)).max(64).optional().describe("only these types"),
      subject: z.string().max(256).optional().describe("only events about this subject (a service's name, say)"),
      sinceId: z.number().int().min(0).optional().describe("only events after this id"),
      limit: z.number().int().min(1).max(1000).optional().describe("most events to return (default 100)"),
    },
    annotations: READ,
    rpc: "kernel.queryEvents",
    permission: "events:read",
    run: async (solo, { tenant, types, subject, sinceId, limit }) => {
      const page = await solo.kernel.queryEvents({
        filter: { ...(tenant ? { tenant } : {}), types: types ?? [], ...(subject ? { subject } : {}) },
        ...(sinceId ? { afterId: BigInt(sinceId) } : {}),
        limit: limit ?? 100,
      });
      const events = page.events.map((e) => ({
        id: Number(e.id),
        type: e.type,
        tenant: e.tenant || null,
        subject: e.subject || null,
        payload: e.payload ? toJson(ValueSchema, e.payload) : null,
        at: new Date(Number(e.timestamp / 1000n)).toISOString(),
      }));
      return { events, nextSinceId: events.at(-1)?.id ?? sinceId ?? 0 };
    },
    text: (d) =>
      [
        `${d.events.length} event(s); nextSinceId: ${d.nextSinceId}`,
        ...d.events.map((e) => `#${e.id} ${e.at} ${e.type} ${e.tenant ?? "-"}/${e.subject ?? "-"} ${json(e.payload)}`),
      ].join("\n"),
  }),

  tool({
    name: "verify",
    title: "Verify the event log",
    description: "Walk the event log's hash chain and report whether it is whole, and up to which event id it is intact.",
    inputSchema: {},
    annotations: READ,
    rpc: "kernel.verify",
    permission: "events:read",
    run: async (solo) => plainJson(await solo.kernel.verify({})),
    text: (d) =>
      lines(
        d.ok
          ? `the event log is whole: events 1 to ${d.verifiedUpTo} verified`
          : `the event log is BROKEN at event ${d.at} (${d.problem}): ${d.message}; events 1 to ${d.verifiedUpTo} are intact`,
        d,
      ),
  }),

  tool({
    name: "secret_names",
    title: "List a tenant's secret names",
    description: "The names of a tenant's secrets (values are never shown; grant a service secrets to let it read them).",
    inputSchema: { tenant: NAME.describe("the tenant") },
    annotations: READ,
    rpc: "secrets.list",
    permission: "secrets:read",
    run: async (solo, { tenant }) => ({
      tenant,
      secrets: (await solo.secrets.list({ tenant })).secrets.map((s) => ({ name: s.name, updatedAt: s.updatedAt })),
    }),
    text: (d) => lines(`${d.secrets.length} secret(s) in ${d.tenant}: ${d.secrets.map((s) => s.name).join(", ") || "none"}`, d),
  }),

  tool({
    name: "whoami",
    title: "The token in use",
    description: "The token this session acts with: its id, its tenant (none: an unscoped admin token), its permissions and expiry.",
    inputSchema: {},
    annotations: READ,
    rpc: "tokens.whoAmI",
    permission: null,
    run: async (solo) => {
      const i = (await solo.tokens.whoAmI({})).info;
      return { id: i?.id ?? "", tenant: i?.tenant || null, permissions: i?.permissions ?? [], expiresAt: i?.expiresAt || null };
    },
    text: (d) =>
      lines(`token ${d.id}, ${d.tenant ? `scoped to tenant ${d.tenant}` : "unscoped (every tenant)"}: ${d.permissions.join(" ")}`, d),
  }),

  tool({
    name: "attenuate_token",
    title: "Derive a narrower token",
    description:
      "Derive a token from the one in use, holding only the given permissions (a subset of yours, e.g. call:counter, events:read) and expiring no later; give it to another agent or tool.",
    inputSchema: {
      permissions: z.array(z.string().min(1).max(300)).min(1).max(64).describe("what the new token may do"),
      ttlMs: z.number().int().min(1000).optional().describe("how long it lives"),
      label: z.string().max(200).optional().describe("free text kept with it"),
    },
    annotations: { readOnlyHint: false, destructiveHint: false, idempotentHint: false, openWorldHint: false },
    rpc: "tokens.attenuate",
    permission: null,
    run: async (solo, { permissions, ttlMs, label }) => {
      const g = await solo.tokens.attenuate({ permissions, ...(ttlMs ? { ttlMs: BigInt(ttlMs) } : {}), ...(label ? { label } : {}) });
      return { token: g.token, id: g.info?.id ?? "", permissions: g.info?.permissions ?? [], expiresAt: g.info?.expiresAt || null };
    },
    text: (d) => lines(`derived token ${d.id} holding ${d.permissions.join(" ")}`, d),
  }),
];

/** What a token is, as whoAmI tells it: its tenant ("" for unscoped) and permissions. */
export interface TokenView {
  readonly tenant: string;
  readonly permissions: readonly string[];
}

/**
 * Whether a token may use a tool at all (for some service): tools/list shows only these. The
 * kernel still checks each call against the service named.
 */
export function usableBy(t: Tool, token: TokenView): boolean {
  const scoped = token.tenant !== "";
  const holds = (p: ToolPermission): boolean => {
    const unscopedOnly = p === "tenants:read" || p === "tenants:write";
    if (unscopedOnly && scoped) return false;
    if (token.permissions.includes("*")) return true;
    if (p === "deploy:<service>" || p === "call:<service>")
      return token.permissions.some((h) => h.startsWith(p.slice(0, p.indexOf(":") + 1)));
    return token.permissions.includes(p);
  };
  if (t.permission === null) return true;
  return holds(t.permission) || (scoped && t.ownTenantPermission !== undefined && holds(t.ownTenantPermission));
}

const MAX_DEPTH = 64;

// A tool's JSON argument as a protobuf Value; nesting deeper than any real message is refused
// precisely here (converting it would exhaust the stack).
function value(v: unknown, field: string) {
  return fromJson(ValueSchema, shallow(v, field) as JsonValue);
}

// A tool's JSON argument, refused if it nests deeper than MAX_DEPTH levels.
function shallow(v: unknown, field: string): unknown {
  const stack: Array<[unknown, number]> = [[v, 1]];
  for (let top = stack.pop(); top; top = stack.pop()) {
    const [x, depth] = top;
    if (x === null || typeof x !== "object") continue;
    if (depth > MAX_DEPTH) {
      throw new SoloError("SOLO_ERR_REQUEST_INVALID", `${field} is nested deeper than ${MAX_DEPTH} levels`, {
        field,
        hint: "flatten the value",
      });
    }
    for (const child of Object.values(x)) stack.push([child, depth + 1]);
  }
  return v;
}

interface Finding {
  rule: string;
  severity: string;
  message: string;
  line: number;
  column: number;
  hint: string;
}

function findings(fs: ReadonlyArray<Finding>): Finding[] {
  return fs.map((f) => ({ rule: f.rule, severity: f.severity, message: f.message, line: f.line, column: f.column, hint: f.hint }));
}

/** One finding as the line a model reads (deploy's warnings and a refused deploy's errors alike). */
export function findingLine(f: { rule: string; line: number; column: number; message: string; severity?: string; hint?: string }): string {
  const severity = f.severity && f.severity !== "error" ? ` (${f.severity})` : "";
  return `line ${f.line}, column ${f.column}: ${f.rule}${severity}: ${f.message}${f.hint ? ` (hint: ${f.hint})` : ""}`;
}

function deployedText(first: string, d: { findings: Finding[] }): string {
  return [first, ...d.findings.map(findingLine), json(d)].join("\n");
}

// ---- logs -------------------------------------------------------------------------------------

interface Line {
  level: string;
  text: string;
  at: string;
}

/**
 * A position in a service's log: after the `n`-th line logged at instant `at` (lines of the same
 * millisecond are told apart by their order). Written `<at>#<n>`; `start` is before every line.
 */
interface Cursor {
  readonly at: string;
  readonly n: number;
}
const START: Cursor = { at: "", n: 0 };
const CURSOR = /^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(?:\.\d+)?Z)#(\d{1,6})$/;

function parseCursor(after: string | undefined): Cursor {
  if (after === undefined || after === "start") return START;
  const m = CURSOR.exec(after);
  if (!m || Number.isNaN(Date.parse(m[1] as string))) {
    throw new SoloError("SOLO_ERR_REQUEST_INVALID", `logs: after ${JSON.stringify(after.slice(0, 100))} is not a cursor`, {
      field: "after",
      hint: "pass the `next` of a previous logs result as it was given (or leave after out to read from the oldest line)",
    });
  }
  return { at: m[1] as string, n: Number(m[2]) };
}

const formatCursor = (c: Cursor): string => (c.at === "" ? "start" : `${c.at}#${c.n}`);

// Walks lines in their order, keeping those after the cursor and moving the cursor past each.
class LogReader {
  private seenAt = "";
  private seenN = 0;
  readonly kept: Line[] = [];
  private readonly from: Cursor;
  constructor(from: Cursor) {
    this.from = from;
  }

  /** Takes the next line in the log's order; whether it is after the cursor. */
  take(l: Line): boolean {
    this.seenN = l.at === this.seenAt ? this.seenN + 1 : 1;
    this.seenAt = l.at;
    const after = l.at > this.from.at || (l.at === this.from.at && this.seenN > this.from.n);
    if (after) this.kept.push({ level: l.level, text: l.text, at: l.at });
    return after;
  }

  /** The cursor past the `count`-th kept line (or where it started, with none). */
  cursorAfter(count: number): Cursor {
    const last = this.kept[count - 1];
    if (!last) return this.from;
    let n = 0;
    // Lines of the same instant before it: the ones skipped by the cursor, and the kept ones.
    if (last.at === this.from.at) n = this.from.n;
    for (const l of this.kept.slice(0, count)) if (l.at === last.at) n++;
    return { at: last.at, n };
  }
}

async function readLogs(solo: Clients, ref: { tenant: string; service: string }, after: string | undefined, waitMs: number, limit: number) {
  const from = parseCursor(after);
  let reader = new LogReader(from);
  for (const e of (await solo.kernel.logs({ ref })).entries) reader.take(e);
  if (reader.kept.length === 0 && waitMs > 0) {
    // The kept lines come first, then new ones as they are logged: read until one passes the
    // cursor, or the wait ends.
    reader = new LogReader(from);
    const stop = new AbortController();
    const timer = setTimeout(() => stop.abort(), waitMs);
    try {
      for await (const e of solo.kernel.followLogs({ ref }, { signal: stop.signal })) if (reader.take(e)) break;
    } catch (err) {
      if (!stop.signal.aborted) throw err;
    } finally {
      clearTimeout(timer);
      stop.abort();
    }
  }
  const count = Math.min(limit, reader.kept.length);
  return {
    tenant: ref.tenant,
    service: ref.service,
    lines: reader.kept.slice(0, count),
    more: reader.kept.length > count,
    next: formatCursor(reader.cursorAfter(count)),
  };
}
