// Messages from the scheduler threads, each to the part that owns what it reports: a service's
// exit to its supervisor, usage to resources, a denied power to audit, a storage or fetch request
// to service I/O, a log line to the service's record and the embedder's onLog.

import type { LogEntry } from "../api/services.ts";
import type { FromScheduler, SchedulerPool } from "../scheduler/index.ts";
import type { Audit } from "./audit/index.ts";
import type { ServiceIo } from "./io/index.ts";
import type { LogLines } from "./log/lines.ts";
import type { Registry } from "./registry/index.ts";
import type { Resources } from "./resources/index.ts";
import type { Supervisor } from "./supervisor/index.ts";

/** A service's log lines kept in memory. */

export interface RouterParts {
  readonly registry: Registry;
  readonly supervisor: Supervisor;
  readonly resources: Resources;
  readonly audit: Audit;
  readonly io: ServiceIo;
  readonly pool: SchedulerPool;
  readonly lines: LogLines;
  readonly onLog: ((entry: LogEntry) => void) | undefined;
}

export function route(k: RouterParts, msg: FromScheduler): void {
  switch (msg.op) {
    case "status": {
      const r = k.registry.instance(msg.sid);
      if (r?.life.state !== "running") return; // unknown, or already killed or replaced
      if (msg.status === "crashed" && msg.crash?.resource === "tenant_memory" && msg.crash.reason === "SOLO_ERR_LIMIT_MEMORY") {
        // Recorded before the crash, as the scheduler reported them (the limit met, then the exit).
        k.resources.tenantFull(r, msg.holders ?? []);
      }
      k.supervisor.exited(r, msg.status, msg.crash, msg.stalledMs);
      return;
    }
    case "io": {
      const r = k.registry.instance(msg.sid);
      if (!r) return;
      k.io.handle(r, msg.kind, msg.arg).then(
        (outcome) => {
          if (r.life.state === "running") k.pool.post(r.scheduler, { op: "io", sid: r.sid, cid: msg.cid, outcome });
        },
        (err: unknown) => console.error("solo: a service's storage request failed unexpectedly:", err),
      );
      return;
    }
    case "denied": {
      const r = k.registry.instance(msg.sid);
      if (r) k.audit.grantDenied(r, msg.grant, msg.detail);
      return;
    }
    case "usage":
      k.resources.sampled(msg.tenants, msg.samples);
      return;
    case "log": {
      const r = k.registry.instance(msg.sid);
      if (!r) return;
      const level = msg.level === "debug" || msg.level === "warn" || msg.level === "error" ? msg.level : "info";
      const entry: LogEntry = { tenant: r.tenant, service: r.service, level, text: msg.text, at: new Date(msg.at).toISOString() };
      k.lines.add(entry);
      k.onLog?.(entry);
      return;
    }
    default:
      return;
  }
}
