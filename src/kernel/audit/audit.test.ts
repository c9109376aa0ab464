import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { ManualClock } from "../../../test/support/helpers.ts";
import type { SoloEvent } from "../../api/events.ts";
import { openStore } from "../../store/open.ts";
import type { Store } from "../../store/store.ts";
import { EventLog } from "../log/event-log.ts";
import { Audit, type Offender } from "./index.ts";

// The audit part over a real SQLite store and event log, with a clock the test moves.
describe("Audit's grant denials", () => {
  let dir: string;
  let store: Store;
  let log: EventLog;

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), "solo-audit-"));
    store = await openStore(dir, undefined);
    log = await EventLog.open(store);
  });

  after(async () => {
    await log.close();
    await store.close();
    rmSync(dir, { recursive: true, force: true });
  });

  const offender = (tenant: string, sid: number): Offender => ({ tenant, service: "loop", sid, version: 1, causeId: null });
  const denials = async (tenant: string): Promise<SoloEvent[]> => {
    // Background appends land in order: one more append is durable after every earlier one.
    await log.append({ tenant, type: "svc.audit.barrier", subject: "audit", payload: {} });
    return (await log.query({ tenant, types: ["grant_denied"], limit: 10_000, order: "asc" })).filter((e) => e.type === "grant_denied");
  };

  it("a crash loop that uses a power it lacks writes one record per instance a minute, and keeps a bounded count of instances", async () => {
    const clock = new ClockedAudit();
    // Each restart is a new instance (sid); 5,000 of them, a second apart, each trying once.
    for (let sid = 1; sid <= 5000; sid++) {
      clock.audit(log).grantDenied(offender("crashloop", sid), "storage", "solo.storage.get");
      clock.clock.advance(1000);
    }
    assert.equal((await denials("crashloop")).length, 5000, "each instance's first use is recorded");
    // Entries older than a minute go once the map is large: never more than the sweep threshold plus a minute's worth.
    assert.ok(clock.audit(log).countingGrantDenials <= 1024 + 60, String(clock.audit(log).countingGrantDenials));
  });

  it("a sweep writes what the instances it drops had counted, so no attempt goes unrecorded", async () => {
    const clock = new ClockedAudit();
    const audit = clock.audit(log);
    const looping = offender("sweep", 1);
    audit.grantDenied(looping, "emit", "solo.emit");
    for (let sid = 2; sid <= 1100; sid++) audit.grantDenied({ ...offender("sweep", sid), service: "other" }, "emit", "solo.emit");
    clock.clock.advance(30_000);
    for (let i = 0; i < 9; i++) audit.grantDenied(looping, "emit", "solo.emit");
    clock.clock.advance(31_000);
    // A new instance meets a full map a minute on: the sweep writes the 9 counted and drops the rest.
    audit.grantDenied({ ...offender("sweep", 5000), service: "other" }, "emit", "solo.emit");
    assert.equal(audit.countingGrantDenials, 1);
    audit.grantDenied(looping, "emit", "solo.emit");
    const records = (await denials("sweep")).filter((e) => e.subject === "loop");
    assert.deepEqual(
      records.map((e) => (e.payload as { attempts: number }).attempts),
      [1, 9, 1],
    );
  });
});

/** One audit part per test, on its own manual clock. */
class ClockedAudit {
  readonly clock = new ManualClock();
  private made: Audit | undefined;
  audit(log: EventLog): Audit {
    this.made ??= new Audit(log, this.clock);
    return this.made;
  }
}
