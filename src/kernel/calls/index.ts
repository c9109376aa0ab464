// The calls part: a call or cast from the embedder (or a session) to a running service, through
// its breaker to its scheduler and back, with its timeout and signal; and the redelivery of calls
// and casts whose scheduler was replaced before they started.

import type { CallOptions } from "../../api/services.ts";
import { SoloError } from "../../lib/errors/errors.ts";
import { words } from "../../lib/errors/transport.ts";
import { describeType } from "../../lib/names.ts";
import { crashError } from "../../sandbox/crash.ts";
import { encodeJson } from "../../sandbox/json.ts";
import type { SchedulerPool } from "../../scheduler/index.ts";
import type { Breakers } from "../breaker/index.ts";
import type { Registry, ServiceRecord } from "../registry/index.ts";
import type { Resources } from "../resources/index.ts";
import type { TenantRegistry } from "../tenants/tenants.ts";

const DEFAULT_CALL_TIMEOUT_MS = 5000;
const MAX_CALL_TIMEOUT_MS = 600_000;
/** How long casts wait for their service to come back after its scheduler was replaced. */
const RECAST_WAIT_MS = 60_000;

export interface CallsParts {
  readonly registry: Registry;
  readonly breakers: Breakers;
  readonly resources: Resources;
  readonly tenants: TenantRegistry;
  readonly pool: SchedulerPool;
}

export class Calls {
  /** The parts it works with, as open.ts gave them. */
  private readonly p: CallsParts;

  constructor(parts: CallsParts) {
    this.p = parts;
  }

  call(tenant: string, service: string, request: unknown, options: CallOptions): Promise<unknown> {
    const record = this.p.registry.running(tenant, service);
    this.p.resources.checkCooldown(record.tenant);
    const { timeoutMs, signal } = checkCallOptions(options);
    const payload = request === undefined ? "" : encodeJson(request, "the request", record.limits.messageBytes);
    if (signal?.aborted) throw canceled(record);
    const admitted = this.p.breakers.admit(record);
    return this.send(record, payload, timeoutMs, signal).then(
      (reply) => {
        this.p.breakers.succeeded(record, admitted);
        return reply;
      },
      (err: unknown) => {
        this.p.breakers.failed(record, admitted, err);
        throw err;
      },
    );
  }

  cast(tenant: string, service: string, message: unknown): void {
    const record = this.p.registry.running(tenant, service);
    this.p.resources.checkCooldown(record.tenant);
    const payload = message === undefined ? "" : encodeJson(message, "the message", record.limits.messageBytes);
    this.p.breakers.admitCast(record);
    if (!this.p.pool.cast(record.scheduler, record.sid, payload, record.tenant, this.p.tenants.limits(record.tenant).memoryBytes)) {
      throw new SoloError(
        "SOLO_ERR_MAILBOX_FULL",
        `tenant ${record.tenant}'s casts on their way to its services hold its memory limit's worth of bytes; this one was not sent`,
        {
          tenant: record.tenant,
          service: record.service,
          resource: "queued_bytes",
          hint: "its services cannot keep up with the casts: send fewer or smaller ones, or wait for them to catch up",
        },
      );
    }
  }

  private send(record: ServiceRecord, payload: string, timeoutMs: number, signal: AbortSignal | undefined): Promise<unknown> {
    const deadline = Date.now() + timeoutMs;
    return new Promise<unknown>((resolve, reject) => {
      const { rid, promise } = this.p.pool.request(record.scheduler, (id) => ({ op: "call", rid: id, sid: record.sid, payload, deadline }));
      const onAbort = (): void => {
        clearTimeout(timer);
        this.p.pool.forget(rid);
        reject(canceled(record));
      };
      const timer = setTimeout(() => {
        signal?.removeEventListener("abort", onAbort);
        this.p.pool.forget(rid);
        reject(callTimeout(record, timeoutMs));
      }, timeoutMs);
      signal?.addEventListener("abort", onAbort, { once: true });
      promise.then(
        (json) => {
          clearTimeout(timer);
          signal?.removeEventListener("abort", onAbort);
          try {
            resolve(json === "" ? undefined : JSON.parse(json));
          } catch (err) {
            reject(
              new SoloError(
                "SOLO_ERR_ENGINE_FAULT",
                `the reply of ${record.tenant}/${record.service} could not be read`,
                {},
                { cause: err },
              ),
            );
          }
        },
        (err: unknown) => {
          clearTimeout(timer);
          signal?.removeEventListener("abort", onAbort);
          if (err instanceof SoloError && err.reason === "SOLO_ERR_SCHEDULER_FAILED") {
            this.redeliver(record, payload, deadline, timeoutMs, signal, err).then(resolve, reject);
          } else reject(err);
        },
      );
    });
  }

  // A call that was waiting on a scheduler that is gone. If its service was the one whose step the
  // watchdog stopped, it gets that crash; if it had started, its outcome is unknown and it is not
  // run again. Otherwise it is delivered again, once the service is running on the fresh
  // scheduler, within what is left of its timeout.
  private async redeliver(
    record: ServiceRecord,
    payload: string,
    deadline: number,
    timeoutMs: number,
    signal: AbortSignal | undefined,
    err: SoloError,
  ): Promise<unknown> {
    if (err.details.culpritSid === record.sid) {
      if (err.details.culpritWhy === "killed") {
        throw new SoloError("SOLO_ERR_SERVICE_STOPPED", `service ${record.service} was stopped while it handled this call`, {
          tenant: record.tenant,
          service: record.service,
        });
      }
      const crash = record.crash;
      throw crash ? SoloError.fromData(crashError(crash, record.service)) : err;
    }
    // It had started: running it again could repeat what it did. Its outcome is unknown.
    if (err.details.started === true) throw err;
    const fresh = await this.p.registry.whenRunning(
      record,
      deadline,
      () => callTimeout(record, timeoutMs),
      () => canceled(record),
      signal,
    );
    return this.send(fresh, payload, Math.max(1, deadline - Date.now()), signal);
  }

  // Casts a service had not started when its scheduler went are sent to it again, in order, once
  // it runs on the fresh one. If it does not come back, they are counted as unhandled.
  recast(old: ServiceRecord, casts: readonly string[]): void {
    this.p.registry
      .whenRunning(
        old,
        Date.now() + RECAST_WAIT_MS,
        () => callTimeout(old, RECAST_WAIT_MS),
        () => canceled(old),
      )
      .then(
        (fresh) => {
          const limit = this.p.tenants.limits(fresh.tenant).memoryBytes;
          let dropped = 0;
          for (const payload of casts) if (!this.p.pool.cast(fresh.scheduler, fresh.sid, payload, fresh.tenant, limit)) dropped++;
          if (dropped > 0) fresh.usage = { ...fresh.usage, dropped: fresh.usage.dropped + dropped };
        },
        () => {
          old.usage = { ...old.usage, unhandled: old.usage.unhandled + casts.length };
        },
      );
  }
}

function checkCallOptions(options: unknown): { timeoutMs: number; signal: AbortSignal | undefined } {
  if (options === null || typeof options !== "object") {
    throw new SoloError(
      "SOLO_ERR_REQUEST_INVALID",
      `call options must be an object like { timeoutMs: 1000 }, got ${describeType(options)}`,
    );
  }
  const o = options as { timeoutMs?: unknown; signal?: unknown };
  const timeoutMs = o.timeoutMs ?? DEFAULT_CALL_TIMEOUT_MS;
  if (typeof timeoutMs !== "number" || !Number.isInteger(timeoutMs) || timeoutMs < 1 || timeoutMs > MAX_CALL_TIMEOUT_MS) {
    throw new SoloError("SOLO_ERR_REQUEST_INVALID", `call: timeoutMs must be an integer from 1 to ${MAX_CALL_TIMEOUT_MS}`, {
      field: "timeoutMs",
    });
  }
  if (o.signal !== undefined && !(o.signal instanceof AbortSignal)) {
    throw new SoloError("SOLO_ERR_REQUEST_INVALID", "call: signal must be an AbortSignal", { field: "signal" });
  }
  return { timeoutMs, signal: o.signal };
}

function callTimeout(record: ServiceRecord, timeoutMs: number): SoloError {
  return new SoloError("SOLO_ERR_CALL_TIMEOUT", `call to ${record.tenant}/${record.service} timed out after ${timeoutMs} ms`, {
    tenant: record.tenant,
    service: record.service,
    timeoutMs,
    hint: `the service is slow or its mailbox is long; raise ${words("call.timeout")} or look at ${words("services.usage", { tenant: record.tenant })}`,
  });
}

function canceled(record: ServiceRecord): SoloError {
  return new SoloError("SOLO_ERR_CALL_CANCELED", `call to ${record.tenant}/${record.service} was canceled by its signal`, {
    tenant: record.tenant,
    service: record.service,
  });
}
