import { create, fromJson, type JsonValue, toJson } from "@bufbuild/protobuf";
import { pathToString } from "@bufbuild/protobuf/reflect";
import { type Value, ValueSchema } from "@bufbuild/protobuf/wkt";
import { createValidator } from "@bufbuild/protovalidate";
import { ConnectError, type ConnectRouter, type ContextValues, type HandlerContext, type Interceptor } from "@connectrpc/connect";
import {
  type Deployment as DeploymentMsg,
  DeploymentSchema,
  type Event,
  EventSchema,
  KernelService,
  SecretService,
  type ServiceInfo as ServiceInfoMsg,
  ServiceInfoSchema,
  TenantService,
  type TokenInfo as TokenInfoMsg,
  TokenInfoSchema,
  TokenService,
} from "../gen/solo/v1/solo_pb.js";
import type { Deployment, Kernel, KernelSession, Requester, ServiceInfo, SoloEvent, TenantInfo, TokenInfo } from "../kernel/index.ts";
import { SoloError } from "../lib/errors/errors.ts";
import { SURFACE_HEADER, surfaceOf } from "../lib/errors/transport.ts";
import { BODY_ERROR } from "./body-check.ts";
import { toConnectError } from "./errors.ts";
import { REQUEST_ID, REQUESTER, SESSION, viaOf } from "./requester.ts";
import type { Shedder } from "./shedder.ts";
import { type DenialThrottle, isDenial, TICKET, throttledError } from "./throttle.ts";

/**
 * The four services of `proto/solo/v1/solo.proto`, each call acting through the session of the
 * caller's bearer token (`kernel.as(token)`): the kernel checks the token and its permissions,
 * records denials, and does the work. The gateway only translates.
 */
export function routes(kernel: Kernel, started: number): (router: ConnectRouter) => void {
  // The edge made the call's session (every router of the gateway's runs it before its handlers).
  const as = (ctx: HandlerContext): KernelSession => {
    const session = ctx.values.get(SESSION);
    if (!session) throw new SoloError("SOLO_ERR_INTERNAL", "this call reached its handler without passing the gateway's edge");
    return session;
  };
  return (router) => {
    router.service(KernelService, {
      async deploy(req, ctx) {
        const d = await as(ctx).deploy({
          tenant: req.ref?.tenant ?? "",
          service: req.ref?.service ?? "",
          code: req.code,
          ...(req.args !== undefined ? { args: json(req.args, "args") } : {}),
          ...(req.limits !== undefined ? { limits: req.limits } : {}),
          ...(req.supervision !== undefined ? { supervision: req.supervision } : {}),
          ...(req.tags.length > 0 ? { tags: req.tags } : {}),
          ...(req.metadata !== undefined ? { metadata: req.metadata as Record<string, string | number | boolean | null> } : {}),
          ...(req.grants !== undefined ? { grants: req.grants } : {}),
          ...(req.file !== "" ? { file: req.file } : {}),
        });
        return { deployment: deployment(d) };
      },
      async call(req, ctx) {
        const reply = await as(ctx).call(
          req.ref?.tenant ?? "",
          req.ref?.service ?? "",
          req.request === undefined ? undefined : json(req.request, "request"),
          {
            ...(req.timeoutMs > 0 ? { timeoutMs: req.timeoutMs } : {}),
            signal: ctx.signal,
          },
        );
        return reply === undefined ? {} : { reply: value(reply) };
      },
      async cast(req, ctx) {
        await as(ctx).cast(
          req.ref?.tenant ?? "",
          req.ref?.service ?? "",
          req.message === undefined ? undefined : json(req.message, "message"),
        );
        return {};
      },
      async list(req, ctx) {
        const services = await as(ctx).list(req.tenant, req.tag === "" ? {} : { tag: req.tag });
        return { services: services.map(serviceInfo) };
      },
      async status(req, ctx) {
        return { service: serviceInfo(await as(ctx).status(req.ref?.tenant ?? "", req.ref?.service ?? "")) };
      },
      async kill(req, ctx) {
        await as(ctx).kill(req.ref?.tenant ?? "", req.ref?.service ?? "");
        return {};
      },
      async restart(req, ctx) {
        return { deployment: deployment(await as(ctx).restart(req.ref?.tenant ?? "", req.ref?.service ?? "")) };
      },
      async swap(req, ctx) {
        const options = {
          ...(req.rollbackWindowMs > 0 ? { rollbackWindowMs: req.rollbackWindowMs } : {}),
          ...(req.grants !== undefined ? { grants: req.grants } : {}),
          ...(req.file !== "" ? { file: req.file } : {}),
        };
        return { deployment: deployment(await as(ctx).swap(req.ref?.tenant ?? "", req.ref?.service ?? "", req.code, options)) };
      },
      async rollback(req, ctx) {
        const version = req.version > 0 ? req.version : undefined;
        return { deployment: deployment(await as(ctx).rollback(req.ref?.tenant ?? "", req.ref?.service ?? "", version)) };
      },
      async logs(req, ctx) {
        const entries = await as(ctx).logs(req.ref?.tenant ?? "", req.ref?.service ?? "");
        return { entries: entries.map((e) => ({ level: e.level, text: e.text, at: e.at })) };
      },
      async *followLogs(req, ctx) {
        const lines = as(ctx).followLogs(req.ref?.tenant ?? "", req.ref?.service ?? "", { signal: ctx.signal });
        try {
          for await (const e of lines) yield { level: e.level, text: e.text, at: e.at };
        } catch (err) {
          // The client went away: the stream simply ends.
          if (ctx.signal.aborted) return;
          throw toConnectError(err, surfaceOf(ctx.requestHeader.get(SURFACE_HEADER)));
        }
      },
      async history(req, ctx) {
        const versions = await as(ctx).versions(req.ref?.tenant ?? "", req.ref?.service ?? "");
        return { versions: versions.map((v) => ({ ...v, grants: plain(v.grants) })) };
      },
      async source(req, ctx) {
        const s = await as(ctx).source(req.ref?.tenant ?? "", req.ref?.service ?? "", req.version || undefined);
        return { version: s.version, deployedAt: s.deployedAt, sha256: s.sha256, code: s.code };
      },
      async usage(req, ctx) {
        return { usage: plain(await as(ctx).tenantUsage(req.tenant)) };
      },
      async queryEvents(req, ctx) {
        const f = req.filter;
        const page = await as(ctx).events({
          ...(f?.tenant ? { tenant: f.tenant } : {}),
          ...(f && f.types.length > 0 ? { types: f.types } : {}),
          ...(f?.subject ? { subject: f.subject } : {}),
          ...(req.afterId > 0n ? { afterId: Number(req.afterId) } : {}),
          ...(req.beforeId > 0n ? { beforeId: Number(req.beforeId) } : {}),
          ...(req.since ? { since: req.since } : {}),
          ...(req.until ? { until: req.until } : {}),
          ...(req.descending ? { order: "desc" as const } : {}),
          ...(req.limit > 0 ? { limit: req.limit } : {}),
          ...(req.cursor ? { cursor: req.cursor } : {}),
        });
        return { events: page.events.map(event), cursor: page.cursor ?? "" };
      },
      async *followEvents(req, ctx) {
        const f = req.filter;
        const events = as(ctx).subscribe({
          ...(f?.tenant ? { tenant: f.tenant } : {}),
          ...(f && f.types.length > 0 ? { types: f.types } : {}),
          ...(f?.subject ? { subject: f.subject } : {}),
          ...(req.fromId > 0n ? { fromId: Number(req.fromId) } : {}),
          signal: ctx.signal,
        });
        try {
          for await (const e of events) yield event(e);
        } catch (err) {
          // The client went away: the stream simply ends.
          if (ctx.signal.aborted) return;
          throw toConnectError(err, surfaceOf(ctx.requestHeader.get(SURFACE_HEADER)));
        }
      },
      async verify(_req, ctx) {
        const r = await as(ctx).verify();
        return r.ok
          ? { ok: true, events: BigInt(r.events), headHash: r.headHash, verifiedUpTo: BigInt(r.verifiedUpTo) }
          : { ok: false, at: BigInt(r.at), problem: r.problem, message: r.message, verifiedUpTo: BigInt(r.verifiedUpTo) };
      },
      async health() {
        return { status: "serving", store: kernel.store.kind, schedulers: kernel.schedulers, uptimeMs: BigInt(Date.now() - started) };
      },
    });

    router.service(TokenService, {
      async grant(req, ctx) {
        const g = await as(ctx).tokens.grant({
          tenant: req.unscoped ? null : req.tenant,
          permissions: req.permissions,
          ...(req.ttlMs > 0n ? { ttlMs: Number(req.ttlMs) } : {}),
          ...(req.label ? { label: req.label } : {}),
        });
        return { info: tokenInfo(g), token: g.token };
      },
      async attenuate(req, ctx) {
        const g = await as(ctx).tokens.attenuate({
          permissions: req.permissions,
          ...(req.ttlMs > 0n ? { ttlMs: Number(req.ttlMs) } : {}),
          ...(req.label ? { label: req.label } : {}),
        });
        return { info: tokenInfo(g), token: g.token };
      },
      async list(req, ctx) {
        const tokens = await as(ctx).tokens.list(req.tenant ? { tenant: req.tenant } : {});
        return { tokens: tokens.map(tokenInfo) };
      },
      async revoke(req, ctx) {
        return { revoked: [...(await as(ctx).tokens.revoke(req.id)).revoked] };
      },
      async whoAmI(_req, ctx) {
        return { info: tokenInfo(await as(ctx).whoami()) };
      },
    });

    router.service(SecretService, {
      async put(req, ctx) {
        const s = await as(ctx).secrets.put(req.tenant, req.name, req.value);
        return { secret: { name: s.name, updatedAt: s.updatedAt, keyId: s.keyId } };
      },
      async delete(req, ctx) {
        return { deleted: await as(ctx).secrets.delete(req.tenant, req.name) };
      },
      async list(req, ctx) {
        const secrets = await as(ctx).secrets.list(req.tenant);
        return { secrets: secrets.map((s) => ({ name: s.name, updatedAt: s.updatedAt, keyId: s.keyId })) };
      },
    });

    router.service(TenantService, {
      async create(req, ctx) {
        const t = await as(ctx).tenants.create(req.name, {
          ...(req.limits !== undefined ? { limits: req.limits } : {}),
          reuseName: req.reuseName,
        });
        return { tenant: tenantInfo(t) };
      },
      async list(_req, ctx) {
        return { tenants: (await as(ctx).tenants.list()).map(tenantInfo) };
      },
      async get(req, ctx) {
        return { tenant: tenantInfo(await as(ctx).tenants.get(req.name)) };
      },
      async update(req, ctx) {
        return { tenant: tenantInfo(await as(ctx).tenants.update(req.name, req.limits ?? {})) };
      },
      async delete(req, ctx) {
        const d = await as(ctx).tenants.delete(req.name);
        return { tenant: d.tenant, services: d.services, tokensRevoked: d.tokensRevoked, secretsDeleted: d.secretsDeleted };
      },
    });
  };
}

/**
 * The session of the request an in-process call is made for, when that request has verified the
 * same token already (an MCP tool call inside its HTTP request): the edge uses it instead of
 * verifying again. Undefined outside such a request.
 */
export type VerifiedSession = () => KernelSession | undefined;

/** `Bearer <token>` as the token; anything else as no token (the kernel says which). */
export function bearer(header: string | null): string | undefined {
  if (header === null) return undefined;
  const m = /^Bearer[ ]+(\S+)\s*$/i.exec(header);
  // A malformed header is passed on as it is, so the kernel refuses it precisely (and audits it).
  return m ? m[1] : header;
}

const validator = createValidator();

/**
 * The edge of every call: the schema's constraints (protovalidate) are enforced, unary calls are
 * admitted through the caller's tenant lane of the shedder (Health is not queued), streams take
 * one of their tenant's stream slots for as long as they run, and every failure becomes a Connect
 * error with Solo's details.
 */
export function edge(
  kernel: Kernel,
  shedder: Shedder,
  streams: Shedder,
  throttle?: DenialThrottle,
  requester?: Requester,
  verified?: VerifiedSession,
): Interceptor {
  return (next) => async (req) => {
    try {
      const unreadable = req.contextValues.get(BODY_ERROR);
      if (unreadable) throw unreadable;
      // A call made inside an admitted request (an MCP session's) has no ticket of its own: a
      // requester with no token left has it refused here, before the kernel.
      if (throttle && requester && !req.contextValues.get(TICKET) && throttle.exhausted(requester))
        throw throttledError(throttle.perSecond);
      if (!req.stream) {
        check(req.method.input, req.message);
        if (req.method.name === "Health") return await next(req);
      }
      // A lane per tenant the token reaches ("*" for unscoped tokens, "" for no valid token). The
      // session is the handler's too: the token is verified here, once for the whole call (or, for
      // a call made inside a request that verified it already, an MCP tool's, not again).
      const session = verified?.() ?? sessionOf(kernel, req.header, req.contextValues, requester);
      req.contextValues.set(SESSION, session);
      const reach = session.reach();
      const lane = reach.valid ? (reach.tenant ?? "*") : "";
      if (req.stream) {
        // A stream holds its lane's stream slot until it ends; a tenant at its limit is refused.
        await streams.admit(lane, req.signal);
        let held = true;
        const release = (): void => {
          if (held) streams.release(lane);
          held = false;
        };
        try {
          const input = req.method.input;
          const messages = req.message;
          const res = await next({
            ...req,
            message: (async function* () {
              for await (const m of messages) {
                check(input, m);
                yield m;
              }
            })(),
          });
          if (!res.stream) {
            release();
            return res;
          }
          const out = res.message;
          return {
            ...res,
            message: (async function* () {
              try {
                yield* out;
              } catch (err) {
                noteDenial(err);
                throw err;
              } finally {
                release();
              }
            })(),
          };
        } catch (err) {
          release();
          throw err;
        }
      }
      await shedder.admit(lane, req.signal);
      try {
        return await next(req);
      } finally {
        shedder.release(lane);
      }
    } catch (err) {
      const e = toConnectError(err, surfaceOf(req.header.get(SURFACE_HEADER)));
      noteDenial(e);
      throw e;
    }

    // A denial counts against its requester (from the port; in-process callers have none).
    function noteDenial(err: unknown): void {
      const e = ConnectError.from(err);
      // In-process callers (MCP's sessions) name their requester when their clients are made.
      const who = req.contextValues.get(REQUESTER) ?? requester;
      if (throttle && who && isDenial(e)) throttle.denied(who, req.contextValues.get(TICKET));
    }
  };
}

function check(schema: Parameters<typeof validator.validate>[0], message: Parameters<typeof validator.validate>[1]): void {
  const unknown = unknownField(message, "", 0);
  if (unknown) {
    throw new SoloError(
      "SOLO_ERR_REQUEST_INVALID",
      `${unknown.path === "" ? "" : `${unknown.path}: `}field number ${unknown.no} is not a field of ${unknown.type}`,
      {
        field: unknown.path === "" ? `#${unknown.no}` : `${unknown.path}.#${unknown.no}`,
        hint: "this server does not know that field: update the client's proto/solo/v1/solo.proto to this server's, or drop the field",
      },
    );
  }
  const r = validator.validate(schema, message);
  if (r.kind === "valid") return;
  if (r.kind === "error") throw new SoloError("SOLO_ERR_INTERNAL", `validating the request failed: ${r.error.message}`);
  const first = r.violations[0];
  const field = first ? pathToString(first.field) : "";
  throw new SoloError("SOLO_ERR_REQUEST_INVALID", r.violations.map((v) => v.toString()).join("; "), {
    field,
    violations: r.violations.slice(0, 20).map((v) => ({ field: pathToString(v.field), rule: v.ruleId, message: v.message })),
    hint: "see proto/solo/v1/solo.proto for each field's constraints",
  });
}

/**
 * The first field a binary message carried that its schema does not have (protobuf keeps them
 * as `$unknown`): refused like a misspelled JSON key, so nothing is silently ignored.
 */
function unknownField(m: unknown, path: string, depth: number): { path: string; no: number; type: string } | undefined {
  if (m === null || typeof m !== "object" || depth > 100) return undefined;
  if (Array.isArray(m)) {
    for (const x of m) {
      const found = unknownField(x, path, depth + 1);
      if (found) return found;
    }
    return undefined;
  }
  if (m instanceof Uint8Array) return undefined;
  const o = m as { $typeName?: string; $unknown?: Array<{ no: number }> };
  const first = o.$unknown?.[0];
  if (first) return { path, no: first.no, type: o.$typeName ?? "the message" };
  for (const [k, v] of Object.entries(o)) {
    if (k === "$typeName" || k === "$unknown") continue;
    const found = unknownField(v, path === "" ? k : `${path}.${k}`, depth + 1);
    if (found) return found;
  }
  return undefined;
}

// ---- conversions ------------------------------------------------------------------------------

/** A request's google.protobuf.Value as JSON; one that JSON cannot hold (NaN, Infinity) names its field. */
function json(v: Value, field: string): JsonValue {
  try {
    return toJson(ValueSchema, v);
  } catch (err) {
    throw new SoloError("SOLO_ERR_REQUEST_INVALID", `${field}: ${(err as Error).message}`, {
      field,
      hint: "numbers must be finite: JSON has no NaN or Infinity (1e400 is Infinity)",
    });
  }
}

function value(v: unknown): Value {
  return fromJson(ValueSchema, v as JsonValue);
}

function plain(v: unknown): { [k: string]: JsonValue } {
  return JSON.parse(JSON.stringify(v ?? {})) as { [k: string]: JsonValue };
}

function deployment(d: Deployment): DeploymentMsg {
  return create(DeploymentSchema, {
    tenant: d.tenant,
    service: d.service,
    version: d.version,
    findings: d.findings.map((f) => ({
      rule: f.rule,
      severity: f.severity,
      message: f.message,
      line: f.line,
      column: f.column,
      hint: f.hint,
    })),
  });
}

function serviceInfo(s: ServiceInfo): ServiceInfoMsg {
  return create(ServiceInfoSchema, {
    tenant: s.tenant,
    service: s.service,
    version: s.version,
    state: s.state,
    handlers: [...s.handlers],
    deployedAt: s.deployedAt,
    restarts: s.restarts,
    tags: [...s.tags],
    limits: plain(s.limits),
    usage: plain(s.usage),
    ...(s.crash ? { crash: plain(s.crash) } : {}),
    supervision: plain(s.supervision),
    breaker: plain(s.breaker),
    grants: plain(s.grants),
    metadata: plain(s.metadata),
  });
}

function event(e: SoloEvent): Event {
  return create(EventSchema, {
    id: BigInt(e.id),
    timestamp: BigInt(e.timestamp),
    wallTime: BigInt(e.wallTime),
    tenant: e.tenant ?? "",
    type: e.type,
    subject: e.subject ?? "",
    payload: value(e.payload),
    causationId: BigInt(e.causationId ?? 0),
    correlationId: e.correlationId ?? "",
    prevHash: e.prevHash,
    hash: e.hash,
  });
}

function tokenInfo(t: TokenInfo): TokenInfoMsg {
  return create(TokenInfoSchema, {
    id: t.id,
    tenant: t.tenant ?? "",
    permissions: [...t.permissions],
    expiresAt: t.expiresAt ?? "",
    createdAt: t.createdAt,
    creator: t.creator,
    parent: t.parent ?? "",
    label: t.label,
    state: t.state,
    revokedAt: t.revokedAt ?? "",
  });
}

function tenantInfo(t: TenantInfo): {
  name: string;
  incarnation: number;
  limits: { [k: string]: JsonValue };
  overrides: { [k: string]: JsonValue };
  createdAt: string;
} {
  return { name: t.name, incarnation: t.incarnation, limits: plain(t.limits), overrides: plain(t.overrides), createdAt: t.createdAt };
}

/** A call's session: its bearer token, for the request it serves (who sent it, its id). */
function sessionOf(kernel: Kernel, header: Headers, values: ContextValues, requester: Requester | undefined): KernelSession {
  return kernel.as(
    bearer(header.get("authorization")),
    viaOf(values.get(REQUESTER) ?? requester, values.get(REQUEST_ID) ?? header.get("x-request-id")),
  );
}
