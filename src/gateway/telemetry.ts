import { randomUUID } from "node:crypto";
import { ConnectError, type Interceptor } from "@connectrpc/connect";
import pino, { type Logger } from "pino";
import pinoPretty from "pino-pretty";
import { Counter, collectDefaultMetrics, Gauge, Histogram, Registry } from "prom-client";
import type { Kernel, KernelStats } from "../kernel/index.ts";
import { withCorrelation } from "../kernel/index.ts";
import { REQUEST_ID_PATTERN } from "../lib/names.ts";
import type { EdgeClosure } from "./connections.ts";
import { codeName } from "./errors.ts";
import { REQUEST_ID } from "./requester.ts";
import type { ShedderStats } from "./shedder.ts";

/**
 * The gateway's telemetry: Prometheus metrics (served on `/metrics`) and structured logs.
 *
 * Calls are counted by service, method and code, timed in a histogram, and logged one line each
 * with a request id (the caller's `x-request-id`, or a new one; echoed in the response). Kernel
 * state (services by state, restarts, breakers, mailboxes, memory per tenant, the event log's
 * queue and commit latency) and admission (in flight, queued, shed) are read at each scrape.
 */
export interface Telemetry {
  readonly registry: Registry;
  readonly logger: Logger;
  /** Counts, times and logs every call. */
  readonly interceptor: Interceptor;
  /** Counts a connection or request the edge closed (a timeout, a cap, a refused renegotiation). */
  edgeClosed(why: EdgeClosure): void;
  /** Starts reading the kernel and the shedder at each scrape; returns the stop. */
  attach(kernel: Kernel, admission: ShedderStats): () => void;
}

/** Logs as JSON lines, or human-readable on a terminal. */
export function createLogger(options: { level?: string; pretty?: boolean } = {}): Logger {
  const pretty = options.pretty ?? process.stdout.isTTY === true;
  const level = options.level ?? process.env.SOLO_LOG_LEVEL ?? "info";
  if (!pretty) return pino({ level, base: { service: "solo" } });
  return pino(
    { level, base: undefined },
    pinoPretty({ colorize: !("NO_COLOR" in process.env && process.env.NO_COLOR !== ""), sync: true, ignore: "pid,hostname" }),
  );
}

export function createTelemetry(logger: Logger): Telemetry {
  const registry = new Registry();
  collectDefaultMetrics({ register: registry, prefix: "solo_" });
  const calls = new Counter({
    name: "solo_rpc_calls_total",
    help: "Calls served by the gateway, by service, method and result code.",
    labelNames: ["service", "method", "code"] as const,
    registers: [registry],
  });
  const latency = new Histogram({
    name: "solo_rpc_duration_seconds",
    help: "Time to answer a call (for streams: to the first response), by service and method.",
    labelNames: ["service", "method"] as const,
    buckets: [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
    registers: [registry],
  });
  const commit = new Histogram({
    name: "solo_event_log_commit_seconds",
    help: "Time of one durable commit of the event log (a group of appends and writes).",
    buckets: [0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1],
    registers: [registry],
  });
  const edge = new Counter({
    name: "solo_edge_closed_total",
    help: "Connections and requests the gateway's edge closed, by why: a timeout, a cap, a refused renegotiation.",
    labelNames: ["why"] as const,
    registers: [registry],
  });
  const interceptor: Interceptor = (next) => async (req) => {
    const given = req.header.get("x-request-id");
    const id = given !== null && REQUEST_ID_PATTERN.test(given) ? given : randomUUID();
    // Streams' handlers run outside this call's async context: they read the id from here.
    req.contextValues.set(REQUEST_ID, id);
    const labels = { service: req.service.typeName, method: req.method.name };
    const started = performance.now();
    const log = (code: string, extra: Record<string, unknown> = {}): void => {
      const seconds = (performance.now() - started) / 1000;
      calls.inc({ ...labels, code });
      latency.observe(labels, seconds);
      const line = { reqId: id, rpc: `${labels.service}/${labels.method}`, code, ms: Math.round(seconds * 100_000) / 100, ...extra };
      if (code === "ok") logger.info(line, "call");
      else logger.warn(line, "call failed");
    };
    try {
      // The request id is the correlation id of the events the call causes.
      const res = await withCorrelation(id, () => next(req));
      res.header.set("x-request-id", id);
      log("ok");
      return res;
    } catch (err) {
      const e = ConnectError.from(err);
      e.metadata.set("x-request-id", id);
      log(codeName(e.code), { message: e.rawMessage.slice(0, 300) });
      throw e;
    }
  };
  return {
    registry,
    logger,
    interceptor,
    edgeClosed: (why) => edge.inc({ why }),
    attach(kernel, admission) {
      const unobserve = kernel.observe({ commit: (ms) => commit.observe(ms / 1000) });
      // One snapshot of the kernel per scrape, however many gauges read it.
      let snapshot: KernelStats | undefined;
      const stats = (): KernelStats => {
        if (!snapshot) {
          snapshot = kernel.stats();
          setImmediate(() => {
            snapshot = undefined;
          });
        }
        return snapshot;
      };
      [
        new Gauge({
          name: "solo_services",
          help: "Services by tenant and state.",
          labelNames: ["tenant", "state"] as const,
          registers: [registry],
          collect() {
            this.reset();
            for (const t of stats().tenants) for (const [state, n] of Object.entries(t.services)) this.set({ tenant: t.tenant, state }, n);
          },
        }),
        new Gauge({
          name: "solo_service_restarts",
          help: "Supervisor restarts of the current versions of a tenant's services.",
          labelNames: ["tenant"] as const,
          registers: [registry],
          collect() {
            this.reset();
            for (const t of stats().tenants) this.set({ tenant: t.tenant }, t.restarts);
          },
        }),
        new Gauge({
          name: "solo_tenant_memory_bytes",
          help: "Memory the host holds for a tenant: its WebAssembly instance's linear memory (0 while it runs nothing).",
          labelNames: ["tenant"] as const,
          registers: [registry],
          collect() {
            this.reset();
            for (const t of stats().tenants) this.set({ tenant: t.tenant }, t.memoryBytes);
          },
        }),
        new Gauge({
          name: "solo_tenant_memory_limit_bytes",
          help: "A tenant's memory limit: the most its instance may ever hold.",
          labelNames: ["tenant"] as const,
          registers: [registry],
          collect() {
            this.reset();
            for (const t of stats().tenants) this.set({ tenant: t.tenant }, t.limitBytes);
          },
        }),
        new Gauge({
          name: "solo_tenant_heap_bytes",
          help: "Bytes a tenant's running services' runtimes hold, as the engine counts them.",
          labelNames: ["tenant"] as const,
          registers: [registry],
          collect() {
            this.reset();
            for (const t of stats().tenants) this.set({ tenant: t.tenant }, t.heapBytes);
          },
        }),
        new Gauge({
          name: "solo_memory_budget_bytes",
          help: "The memory all tenants may be given together (budget), and what their limits add up to (committed).",
          labelNames: ["kind"] as const,
          registers: [registry],
          collect() {
            this.reset();
            const { memory } = stats();
            this.set({ kind: "budget" }, memory.budgetBytes);
            this.set({ kind: "committed" }, memory.committedBytes);
          },
        }),
        new Gauge({
          name: "solo_scheduler_step_seconds",
          help: "How long each scheduler has been in the service step it runs now (0 between steps).",
          labelNames: ["scheduler"] as const,
          registers: [registry],
          collect() {
            this.reset();
            for (const s of stats().schedulers) this.set({ scheduler: String(s.index) }, (s.running?.forMs ?? 0) / 1000);
          },
        }),
        new Gauge({
          name: "solo_mailbox_messages",
          help: "Messages waiting in a tenant's services' mailboxes.",
          labelNames: ["tenant"] as const,
          registers: [registry],
          collect() {
            this.reset();
            for (const t of stats().tenants) this.set({ tenant: t.tenant }, t.mailbox);
          },
        }),
        new Gauge({
          name: "solo_breakers",
          help: "Services' circuit breakers by state.",
          labelNames: ["state"] as const,
          registers: [registry],
          collect() {
            for (const [state, n] of Object.entries(stats().breakers)) this.set({ state }, n);
          },
        }),
        new Gauge({
          name: "solo_event_log_queue_depth",
          help: "Appends and writes waiting for the event log's next commit.",
          registers: [registry],
          collect() {
            this.set(stats().log.queued);
          },
        }),
        new Gauge({
          name: "solo_token_verifications",
          help: "Successful capability token verifications since the kernel opened.",
          registers: [registry],
          collect() {
            this.set(stats().verifications);
          },
        }),
        new Gauge({
          name: "solo_capability_denials",
          help: "Denials since the kernel opened (seen), and the durable capability_denied records written for them (written).",
          labelNames: ["kind"] as const,
          registers: [registry],
          collect() {
            const d = stats().denials;
            this.set({ kind: "seen" }, d.seen);
            this.set({ kind: "written" }, d.written);
          },
        }),
        new Gauge({
          name: "solo_gateway_calls_in_flight",
          help: "Calls admitted and running.",
          registers: [registry],
          collect() {
            this.set(admission.running);
          },
        }),
        new Gauge({
          name: "solo_gateway_calls_queued",
          help: "Calls waiting for admission.",
          registers: [registry],
          collect() {
            this.set(admission.queued);
          },
        }),
        new Gauge({
          name: "solo_gateway_shed",
          help: "Calls refused at admission (SOLO_ERR_OVERLOADED) since the gateway started.",
          registers: [registry],
          collect() {
            this.set(admission.shed);
          },
        }),
      ];
      return () => {
        unobserve();
        for (const name of GAUGES) registry.removeSingleMetric(name);
      };
    },
  };
}

const GAUGES = [
  "solo_services",
  "solo_service_restarts",
  "solo_tenant_memory_bytes",
  "solo_tenant_memory_limit_bytes",
  "solo_tenant_heap_bytes",
  "solo_memory_budget_bytes",
  "solo_scheduler_step_seconds",
  "solo_mailbox_messages",
  "solo_breakers",
  "solo_event_log_queue_depth",
  "solo_token_verifications",
  "solo_capability_denials",
  "solo_gateway_calls_in_flight",
  "solo_gateway_calls_queued",
  "solo_gateway_shed",
];

/**
 * The part of a Prometheus text exposition about one tenant: the samples labelled
 * `tenant="<tenant>"`, with their metrics' HELP and TYPE lines. What a tenant's token reads at
 * `/metrics`; kernel-wide series (process, admission, calls of every tenant) are the admin's.
 */
export function tenantSeries(text: string, tenant: string): string {
  const label = `tenant="${tenant}"`;
  const out: string[] = [];
  let header: string[] = [];
  let kept = false;
  for (const line of text.split("\n")) {
    if (line.startsWith("# HELP ")) {
      header = [line];
      kept = false;
      continue;
    }
    if (line.startsWith("#")) {
      header.push(line);
      continue;
    }
    const brace = line.indexOf("{");
    const labels = brace < 0 ? "" : line.slice(brace + 1, line.indexOf("}", brace));
    if (!labels.split(",").includes(label)) continue;
    if (!kept) {
      out.push(...header);
      kept = true;
    }
    out.push(line);
  }
  return out.length === 0 ? "" : `${out.join("\n")}\n`;
}
