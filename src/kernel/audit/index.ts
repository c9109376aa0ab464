// The runtime's own records: what the kernel writes with no caller to tell (crashes, restarts,
// breakers, limits met), and a service's use of a power it was not granted, rate-limited.

import type { SoloEvent } from "../../api/events.ts";
import type { Clock } from "../../api/kernel.ts";
import type { EventInput, EventLog } from "../log/event-log.ts";

/** Who a denied power belongs to. */
export interface Offender {
  readonly tenant: string;
  readonly service: string;
  readonly sid: number;
  readonly version: number;
  readonly causeId: number | null;
}

const GRANT_DENIAL_EVERY_MS = 60_000;
/** Past this many (instance, grant) entries, those whose minute is over are written out and dropped. */
const GRANT_DENIAL_SWEEP_AT = 1024;

/** One instance's denials of one grant since its last record. */
interface Counting {
  count: number;
  readonly at: number;
  readonly offender: Offender;
  readonly grant: string;
  detail: string;
}

export class Audit {
  private readonly log: EventLog;
  private readonly clock: Clock;
  /** Per service instance and grant: denials since the last record, and when that was written. */
  private readonly grantDenials = new Map<string, Counting>();

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
  // instance and grant (with the count since), so a loop cannot drown the log.
  grantDenied(r: Offender, grant: string, detail: string): void {
    const key = `${r.sid}\0${grant}`;
    const now = this.clock.now();
    const seen = this.grantDenials.get(key);
    if (seen && now - seen.at < GRANT_DENIAL_EVERY_MS) {
      seen.count++;
      seen.detail = detail;
      return;
    }
    // Each restart is a new instance: a crash loop that uses a power it lacks must not grow the map.
    if (seen === undefined && this.grantDenials.size >= GRANT_DENIAL_SWEEP_AT) this.sweep(now);
    this.grantDenials.set(key, { count: 0, at: now, offender: r, grant, detail });
    this.writeDenial(r, grant, detail, (seen?.count ?? 0) + 1);
  }

  /** Instances and grants whose denials are being counted now. */
  get countingGrantDenials(): number {
    return this.grantDenials.size;
  }

  // Entries whose minute is over go; what they counted since their record is written now.
  private sweep(now: number): void {
    for (const [key, seen] of this.grantDenials) {
      if (now - seen.at < GRANT_DENIAL_EVERY_MS) continue;
      this.grantDenials.delete(key);
      if (seen.count > 0) this.writeDenial(seen.offender, seen.grant, seen.detail, seen.count);
    }
  }

  private writeDenial(r: Offender, grant: string, detail: string, attempts: number): void {
    if (grant === "secrets") {
      void this.record({
        tenant: r.tenant,
        type: "secret_access_denied",
        subject: detail,
        payload: { name: detail, service: r.service, version: r.version, attempts },
        causationId: r.causeId,
      });
      return;
    }
    void this.record({
      tenant: r.tenant,
      type: "grant_denied",
      subject: r.service,
      payload: { version: r.version, grant, detail, attempts },
      causationId: r.causeId,
    });
  }
}
