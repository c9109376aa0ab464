// Solo's MCP tools as one table: each tool's name, description, input schema, the gateway RPC and
// permission it uses, and what it runs. server.ts lists and dispatches them in this order.
import { fromJson, type JsonValue, toJson } from "@bufbuild/protobuf";
import { ValueSchema } from "@bufbuild/protobuf/wkt";
import { type ZodRawShape, z } from "zod";
import type { Clients } from "../gateway/client.ts";
import { SoloError } from "../lib/errors/errors.ts";
import { plainJson } from "../lib/json.ts";
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
 * (Deploying with a fetch grant needs `fetch:<host>` as well.)
 */
export type ToolPermission = "deploy:<service>" | "call:<service>" | "services:read" | "events:read" | "secrets:read";

/** One MCP tool: what tools/list shows of it, and what tools/call runs. */
export interface Tool {
  readonly name: string;
  readonly description: string;
  /** Its arguments; the SDK checks them against this before `run` sees them. */
  readonly inputSchema: ZodRawShape;
  /** The gateway RPC it calls with the caller's token. */
  readonly rpc: Rpc;
  /** What the token must hold for it; null when any valid token may (attenuating what it holds). */
  readonly permission: ToolPermission | null;
  /** Its structured result; a failure is thrown (as a SoloError or the gateway's ConnectError). */
  readonly run: (solo: Clients, args: Record<string, unknown>) => Promise<Record<string, unknown>>;
}

// A table entry with `run` typed by its own schema.
function tool<S extends ZodRawShape>(
  t: Omit<Tool, "inputSchema" | "run"> & {
    readonly inputSchema: S;
    readonly run: (solo: Clients, args: z.infer<z.ZodObject<S>>) => Promise<Record<string, unknown>>;
  },
): Tool {
  // The SDK has parsed the arguments with inputSchema, so they are of its output type.
  return { ...t, run: (solo, args) => t.run(solo, args as z.infer<z.ZodObject<S>>) };
}

/** Every tool, in the order tools/list shows them. */
export const TOOLS: readonly Tool[] = [
  tool({
    name: "deploy",
    description:
      "Deploy a service: one JavaScript or TypeScript module whose default export has init(args) returning the state and handleCall(request, state) returning { reply, state } (also handleCast, handleInfo). The analyzer checks the code first; if it refuses, the result is an error whose findings give rule, line, column, message and hint for each problem. A running service of that name must be killed first, or use swap.",
    inputSchema: {
      ...REF,
      code: z.string().min(1).max(MAX_CODE).describe("the module's source"),
      args: z.unknown().optional().describe("the argument of init (any JSON value)"),
      grants: z.record(z.unknown()).optional().describe('powers, e.g. { "call": ["ledger"], "storage": true, "secrets": ["API_KEY"] }'),
      file: z.string().max(128).optional().describe("the file's name as you wrote it (billing.ts): errors and crashes name it"),
    },
    rpc: "kernel.deploy",
    permission: "deploy:<service>",
    run: async (solo, { tenant, service, code, args, grants, file }) => {
      const d = await solo.kernel.deploy({
        ref: { tenant, service },
        code,
        ...(args !== undefined ? { args: value(args, "args") } : {}),
        ...(grants !== undefined ? { grants: shallow(grants, "grants") as { [k: string]: JsonValue } } : {}),
        ...(file ? { file } : {}),
      });
      return { version: d.deployment?.version ?? 0, findings: findings(d.deployment?.findings ?? []) };
    },
  }),

  tool({
    name: "swap",
    description:
      "Hot-swap a running service's code, keeping its state (through codeChange(fromVersion, state) if the new code has one). If the new version crashes within the rollback window the old one comes back.",
    inputSchema: {
      ...REF,
      code: z.string().min(1).max(MAX_CODE),
      grants: z.record(z.unknown()).optional().describe("the new version's powers, as deploy takes them (default: the running version's)"),
      file: z.string().max(128).optional().describe("the new code's file name (default: the running version's)"),
    },
    rpc: "kernel.swap",
    permission: "deploy:<service>",
    run: async (solo, { tenant, service, code, grants, file }) => {
      const d = await solo.kernel.swap({
        ref: { tenant, service },
        code,
        ...(grants !== undefined ? { grants: shallow(grants, "grants") as { [k: string]: JsonValue } } : {}),
        ...(file ? { file } : {}),
      });
      return { version: d.deployment?.version ?? 0, findings: findings(d.deployment?.findings ?? []) };
    },
  }),

  tool({
    name: "rollback",
    description: "Swap a service back to an earlier version (default: the one before the running one).",
    inputSchema: { ...REF, version: z.number().int().positive().optional() },
    rpc: "kernel.rollback",
    permission: "deploy:<service>",
    run: async (solo, { tenant, service, version }) => ({
      version: (await solo.kernel.rollback({ ref: { tenant, service }, ...(version ? { version } : {}) })).deployment?.version ?? 0,
    }),
  }),

  tool({
    name: "history",
    description:
      "Every version of a service that ran, oldest first: version, deployedAt, codeBytes, sha256, grants, and which one is current. Read a version's code with source.",
    inputSchema: REF,
    rpc: "kernel.history",
    permission: "services:read",
    run: async (solo, { tenant, service }) => ({
      versions: (await solo.kernel.history({ ref: { tenant, service } })).versions.map(plainJson),
    }),
  }),

  tool({
    name: "source",
    description: "A service's source exactly as deployed (default: the version running now); use it before a swap to edit what runs.",
    inputSchema: { ...REF, version: z.number().int().positive().optional().describe("a version from history") },
    rpc: "kernel.source",
    permission: "services:read",
    run: async (solo, { tenant, service, version }) => {
      const s = await solo.kernel.source({ ref: { tenant, service }, ...(version ? { version } : {}) });
      return { version: s.version, deployedAt: s.deployedAt, sha256: s.sha256, code: s.code };
    },
  }),

  tool({
    name: "call",
    description: "Send a request to a service's handleCall and return its reply.",
    inputSchema: {
      ...REF,
      request: z.unknown().optional().describe("any JSON value"),
      timeoutMs: z.number().int().min(1).max(600_000).optional(),
    },
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
  }),

  tool({
    name: "cast",
    description: "Send a message to a service's handleCast without waiting.",
    inputSchema: { ...REF, message: z.unknown().optional() },
    rpc: "kernel.cast",
    permission: "call:<service>",
    run: async (solo, { tenant, service, message }) => {
      await solo.kernel.cast({
        ref: { tenant, service },
        ...(message !== undefined ? { message: value(message, "message") } : {}),
      });
      return { sent: true };
    },
  }),

  tool({
    name: "list",
    description: "A tenant's services with their state, version, restarts and usage.",
    inputSchema: { tenant: NAME },
    rpc: "kernel.list",
    permission: "services:read",
    run: async (solo, { tenant }) => ({ services: (await solo.kernel.list({ tenant })).services.map(plainJson) }),
  }),

  tool({
    name: "status",
    description: "One service's state, version, usage, limits, grants, breaker and last crash.",
    inputSchema: REF,
    rpc: "kernel.status",
    permission: "services:read",
    run: async (solo, { tenant, service }) => ({ service: plainJson((await solo.kernel.status({ ref: { tenant, service } })).service) }),
  }),

  tool({
    name: "kill",
    description: "Stop a service for good (it runs terminate if idle); deploy it again to start a new version.",
    inputSchema: REF,
    rpc: "kernel.kill",
    permission: "deploy:<service>",
    run: async (solo, { tenant, service }) => {
      await solo.kernel.kill({ ref: { tenant, service } });
      return { killed: true };
    },
  }),

  tool({
    name: "restart",
    description: "Stop a service if it runs and start its current version afresh (revives a failed service).",
    inputSchema: REF,
    rpc: "kernel.restart",
    permission: "deploy:<service>",
    run: async (solo, { tenant, service }) => ({
      version: (await solo.kernel.restart({ ref: { tenant, service } })).deployment?.version ?? 0,
    }),
  }),

  tool({
    name: "events",
    description:
      "Events from the tamper-evident log, oldest first: by tenant, type (e.g. service_crashed, svc.<service>.<name>), subject, and after an id. Use the last id you saw as sinceId to read on.",
    inputSchema: {
      tenant: NAME.optional(),
      types: z.array(z.string().max(200)).max(64).optional(),
      subject: z.string().max(256).optional(),
      sinceId: z.number().int().min(0).optional(),
      limit: z.number().int().min(1).max(1000).optional(),
    },
    rpc: "kernel.queryEvents",
    permission: "events:read",
    run: async (solo, { tenant, types, subject, sinceId, limit }) => {
      const page = await solo.kernel.queryEvents({
        filter: { ...(tenant ? { tenant } : {}), types: types ?? [], ...(subject ? { subject } : {}) },
        ...(sinceId ? { afterId: BigInt(sinceId) } : {}),
        limit: limit ?? 100,
      });
      return {
        events: page.events.map((e) => ({
          id: Number(e.id),
          type: e.type,
          tenant: e.tenant || null,
          subject: e.subject || null,
          payload: e.payload ? toJson(ValueSchema, e.payload) : null,
          at: new Date(Number(e.timestamp / 1000n)).toISOString(),
        })),
      };
    },
  }),

  tool({
    name: "verify",
    description: "Walk the event log's hash chain and report whether it is whole.",
    inputSchema: {},
    rpc: "kernel.verify",
    permission: "events:read",
    run: async (solo) => plainJson(await solo.kernel.verify({})),
  }),

  tool({
    name: "secret_names",
    description: "The names of a tenant's secrets (values are never shown; grant a service secrets to let it read them).",
    inputSchema: { tenant: NAME },
    rpc: "secrets.list",
    permission: "secrets:read",
    run: async (solo, { tenant }) => ({
      secrets: (await solo.secrets.list({ tenant })).secrets.map((s) => ({ name: s.name, updatedAt: s.updatedAt })),
    }),
  }),

  tool({
    name: "attenuate_token",
    description:
      "Derive a token from the one in use, holding only the given permissions (a subset of yours, e.g. call:counter, events:read) and expiring no later; give it to another agent or tool.",
    inputSchema: {
      permissions: z.array(z.string().min(1).max(300)).min(1).max(64),
      ttlMs: z.number().int().min(1000).optional(),
      label: z.string().max(200).optional(),
    },
    rpc: "tokens.attenuate",
    permission: null,
    run: async (solo, { permissions, ttlMs, label }) => {
      const g = await solo.tokens.attenuate({ permissions, ...(ttlMs ? { ttlMs: BigInt(ttlMs) } : {}), ...(label ? { label } : {}) });
      return { token: g.token, id: g.info?.id ?? "", permissions: g.info?.permissions ?? [], expiresAt: g.info?.expiresAt || null };
    },
  }),
];

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

function findings(fs: ReadonlyArray<{ rule: string; severity: string; message: string; line: number; column: number; hint: string }>) {
  return fs.map((f) => ({ rule: f.rule, severity: f.severity, message: f.message, line: f.line, column: f.column, hint: f.hint }));
}
