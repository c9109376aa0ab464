/**
 * What the examples' tests share: a kernel on a temporary directory, its gateway on a random port
 * with real mutual TLS, and clients that act for a tenant with a token scoped to it, exactly as
 * an agent using `npx solo ...` would reach a running kernel.
 *
 * @example
 * const gw = await startTestGateway();
 * const acme = await gw.tenant("acme", ["deploy:limiter", "call:limiter"]);
 * await acme.deploy("limiter", exampleSource(import.meta.url, "service.ts"));
 * await acme.call("limiter", { key: "alice" });
 * await gw.close();
 * @internal
 */
import assert from "node:assert/strict";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fromJson, type JsonObject, type JsonValue, toJson } from "@bufbuild/protobuf";
import { ValueSchema } from "@bufbuild/protobuf/wkt";
import { type Client, ConnectError, createClient } from "@connectrpc/connect";
import { gatewayTransport } from "../src/gateway/client.ts";
import { codeName } from "../src/gateway/errors.ts";
import { type Gateway, startGateway } from "../src/gateway/server.ts";
import { ErrorDetailSchema, KernelService, SecretService } from "../src/gen/solo/v1/solo_pb.js";
import { type ErrorCode, type Kernel, type KernelOptions, openKernel } from "../src/index.ts";
import { type CertAndKey, createCa, issueCert } from "../src/tls/certs.ts";

export { until } from "../test/support/helpers.ts";

/** One event as a client reads it: the fields the examples' tests look at, the payload as JSON. */
export interface SeenEvent {
  readonly id: bigint;
  readonly type: string;
  readonly subject: string;
  readonly payload: JsonValue;
}

/** What a deploy through the gateway may carry besides the code. */
export interface DeployOptions {
  readonly args?: JsonValue;
  readonly grants?: JsonObject;
  readonly limits?: JsonObject;
  readonly supervision?: JsonObject;
}

/** A tenant's view of the kernel through the gateway, with one scoped token. */
export interface TenantClient {
  readonly tenant: string;
  /** The raw Connect clients, for what the helpers below do not cover. */
  readonly kernel: Client<typeof KernelService>;
  readonly secrets: Client<typeof SecretService>;
  /** Deploys `code` as `tenant/service`; resolves with the version. */
  deploy(service: string, code: string, options?: DeployOptions): Promise<number>;
  /** Calls the service and returns its reply as JSON (`null` for none). */
  call<T = JsonValue>(service: string, request: JsonValue, timeoutMs?: number): Promise<T>;
  cast(service: string, message: JsonValue): Promise<void>;
  /** The tenant's events of these types, oldest first. */
  events(types: readonly string[]): Promise<SeenEvent[]>;
  restart(service: string): Promise<void>;
}

/** A running kernel and gateway, and ways to act on them. */
export interface TestGateway {
  /** The embedder's handle, for setup only (tenants, tokens); tests act through clients. */
  readonly kernel: Kernel;
  readonly url: string;
  /** Creates the tenant and a token for it with exactly these permissions, and clients using it. */
  tenant(name: string, permissions: readonly string[]): Promise<TenantClient>;
  close(): Promise<void>;
}

/** Starts a kernel (with `options`, e.g. a fetch policy) and its gateway with fresh TLS material. */
export async function startTestGateway(options: Omit<KernelOptions, "dataDir"> = {}): Promise<TestGateway> {
  const dir = mkdtempSync(join(tmpdir(), "solo-example-"));
  const kernel = await openKernel({ schedulers: 1, ...options, dataDir: dir });
  let gateway: Gateway | undefined;
  try {
    const ca = await createCa({ commonName: "solo example ca" });
    const server = await issueCert(ca, { commonName: "localhost", dnsNames: ["localhost"], ips: ["127.0.0.1"], usage: "server" });
    const client = await issueCert(ca, { commonName: "solo-example-client", usage: "client" });
    gateway = await startGateway(kernel, { port: 0, tls: { cert: server.certPem, key: server.keyPem, ca: ca.certPem } });
    const url = gateway.url;
    return {
      kernel,
      url,
      async tenant(name, permissions) {
        await kernel.tenants.create(name);
        const { token } = await kernel.tokens.grant({ tenant: name, permissions, ttlMs: 3_600_000, label: `${name} example test` });
        return tenantClient(name, url, ca, client, token);
      },
      async close() {
        await gateway?.close(1000);
        await kernel.close();
        rmSync(dir, { recursive: true, force: true });
      },
    };
  } catch (err) {
    await gateway?.close(0);
    await kernel.close();
    rmSync(dir, { recursive: true, force: true });
    throw err;
  }
}

function tenantClient(tenant: string, url: string, ca: CertAndKey, cert: CertAndKey, token: string): TenantClient {
  const transport = gatewayTransport({ url, ca: ca.certPem, cert: cert.certPem, key: cert.keyPem, token });
  const kernel = createClient(KernelService, transport);
  const ref = (service: string) => ({ tenant, service });
  return {
    tenant,
    kernel,
    secrets: createClient(SecretService, transport),
    async deploy(service, code, o = {}) {
      const r = await kernel.deploy({
        ref: ref(service),
        code,
        ...(o.args !== undefined ? { args: fromJson(ValueSchema, o.args) } : {}),
        ...(o.grants !== undefined ? { grants: o.grants } : {}),
        ...(o.limits !== undefined ? { limits: o.limits } : {}),
        ...(o.supervision !== undefined ? { supervision: o.supervision } : {}),
      });
      assert.deepEqual(
        r.deployment?.findings.map((f) => `${f.rule}@${f.line}:${f.column} ${f.message}`),
        [],
        "the analyzer has nothing to say about an example",
      );
      return r.deployment?.version ?? 0;
    },
    async call<T>(service: string, request: JsonValue, timeoutMs?: number) {
      const r = await kernel.call({ ref: ref(service), request: fromJson(ValueSchema, request), ...(timeoutMs ? { timeoutMs } : {}) });
      return (r.reply === undefined ? null : toJson(ValueSchema, r.reply)) as T;
    },
    async cast(service, message) {
      await kernel.cast({ ref: ref(service), message: fromJson(ValueSchema, message) });
    },
    async events(types) {
      const out: SeenEvent[] = [];
      let cursor = "";
      for (;;) {
        const page = await kernel.queryEvents({ filter: { tenant, types: [...types] }, limit: 1000, cursor });
        for (const e of page.events) {
          out.push({ id: e.id, type: e.type, subject: e.subject, payload: e.payload ? toJson(ValueSchema, e.payload) : null });
        }
        if (page.cursor === "" || page.events.length === 0) return out;
        cursor = page.cursor;
      }
    },
    async restart(service) {
      await kernel.restart({ ref: ref(service) });
    },
  };
}

/** The text of an example's file, as `npx solo deploy tenant/name <file>` would send it. */
export function exampleSource(moduleUrl: string, file: string): string {
  return readFileSync(new URL(file, moduleUrl), "utf8");
}

/** Awaits a gateway call that must fail, and returns its code, Solo reason and details. */
export async function gatewayError(
  p: Promise<unknown>,
): Promise<{ code: ErrorCode; reason: string; message: string; field: string; details: JsonObject }> {
  try {
    await p;
  } catch (err) {
    assert.ok(err instanceof ConnectError, `expected a ConnectError, got ${String(err)}`);
    const [detail] = err.findDetails(ErrorDetailSchema);
    return {
      code: codeName(err.code),
      reason: detail?.reason ?? "",
      message: err.rawMessage,
      field: detail?.field ?? "",
      details: detail?.details ?? {},
    };
  }
  return assert.fail("expected the gateway call to fail");
}

/** A service's own error answer (`{ error }` from its `handleCall`), as a client reads it. */
export interface ErrorAnswer {
  readonly code: string;
  readonly message: string;
  readonly details?: JsonValue;
}

/**
 * Awaits a gateway call that the service must answer with an error of its own, checks that it
 * came as one (`failed_precondition`, reason `SOLO_ERR_APPLICATION_ERROR`, naming the service),
 * and returns the service's answer: its code, message and details.
 */
export async function errorAnswer(p: Promise<unknown>, service: string): Promise<ErrorAnswer> {
  const e = await gatewayError(p);
  assert.deepEqual([e.code, e.reason], ["failed_precondition", "SOLO_ERR_APPLICATION_ERROR"], e.message);
  assert.equal(e.details.service, service);
  const answer = e.details.answer as unknown as ErrorAnswer;
  assert.equal(e.message, `service ${service} answered with an error: ${answer.code}: ${answer.message}`);
  return answer;
}
