// The runtime's own records: what the kernel writes with no caller to tell (crashes, restarts,
// breakers, limits met), and a service's use of a power it was not granted, rate-limited.

import type { Clock } from "../../lib/clock.ts";
import type { EventInput, EventLog, SoloEvent } from "../log/event-log.ts";

/** Who a denied power belongs to. */
export interface Offender {
  readonly tenant: string;
  readonly service: string;
  readonly sid: number;
  readonly version: number;
  readonly causeId: number | null;
}

const GRANT_DENIAL_EVERY_MS = 60_000;

export class Audit {
  private readonly log: EventLog;
  private readonly clock: Clock;
  /** Per service instance and grant: denials since the last record, and when that was written. */
  private readonly grantDenials = new Map<string, { count: number; at: number }>();

  constructor(log: EventLog, clock: Clock) {
    this.log = log;
    this.clock = clock;
  }

  // Appended in the background; a store that cannot take it is reported on stderr, since there
  // is no caller to tell.
  record(input: EventInput): Promise<SoloEvent | undefined> {
    return this.log.append(input).catch((err: unknown) => {
      console.error(`solo: recording ${input.type} failed:`, err);
      return undefined;
    });
  }

  // A service's use of a power it was not granted, recorded at most once a minute per service
  // and grant (with the count since), so a loop cannot drown the log.
  grantDenied(r: Offender, grant: string, detail: string): void {
    const key = `${r.sid}\0${grant}`;
    const now = this.clock.now();
    const seen = this.grantDenials.get(key);
    if (seen && now - seen.at < GRANT_DENIAL_EVERY_MS) {
      seen.count++;
      return;
    }
    const count = (seen?.count ?? 0) + 1;
    this.grantDenials.set(key, { count: 0, at: now });
    if (grant === "secrets") {
      void this.record({
        tenant: r.tenant,
        type: "secret_access_denied",
        subject: detail,
        payload: { name: detail, service: r.service, version: r.version, attempts: count },
        causationId: r.causeId,
      });
      return;
    }
    void this.record({
      tenant: r.tenant,
      type: "grant_denied",
      subject: r.service,
      payload: { version: r.version, grant, detail, attempts: count },
      causationId: r.causeId,
    });
  }
}
