import type { Via } from "../../api/tokens.ts";
import { requesterKey } from "../../lib/requester.ts";
import type { EventInput } from "../log/event-log.ts";

export { requesterKey };

/** One denial to record. */
export interface Denial {
  /** The chain it is filed in: the requester's own tenant (a valid scoped token's), else none. */
  readonly tenant: string | null;
  readonly subject: string | null;
  readonly operation: string;
  readonly targetTenant: string | null;
  readonly reason: string;
  readonly message: string;
  readonly tokenId: string | null;
  readonly required?: string;
  readonly via?: Via | undefined;
  /** Tells apart repeats of a denial without a valid token: a digest of what was presented (not recorded). */
  readonly credential?: string;
}

/** How long repeats of one denial are counted before their record is written. */
export const DENIAL_WINDOW_MS = 10_000;
/** Distinct denials one requester may have counted at once; beyond, they are counted together. */
export const DENIAL_KEYS_PER_REQUESTER = 16;
/** Distinct denials counted at once in all; beyond, each tenant's are counted together by reason. */
export const DENIAL_KEYS = 4096;
/** New kinds from network requesters written at once per window period, in all; beyond, folded per tenant and reason. */
export const DENIAL_OPENS_PER_WINDOW = 256;
/** Distinct values a folded record lists of each field (operations, targets, tokens, requesters). */
const SAMPLE = 16;

/** How a window groups denials: one kind exactly, one requester's of a reason, or everyone's of a reason. */
type Fold = "exact" | "requester" | "all";

interface Window {
  readonly fold: Fold;
  /** What `perRequester` counts this window under (exact and requester folds). */
  readonly requester: string;
  count: number;
  firstAt: number;
  lastAt: number;
  last: Denial;
  /** Counts by value of what a folded window mixes (bounded; the rest under "(others)"). */
  readonly operations: Map<string, number>;
  readonly targets: Map<string, number>;
  readonly tokens: Map<string, number>;
  readonly requesters: Map<string, number>;
  timer: NodeJS.Timeout;
}

/**
 * Records denials without becoming a weapon. The first denial of a kind (requester, presented
 * credential or token, reason, operation, target) is written at once; repeats within
 * {@link DENIAL_WINDOW_MS} are counted and written as one record with the count, the first and
 * last time, when the window ends. A requester that varies what it asks for is folded into one
 * window per reason once it has {@link DENIAL_KEYS_PER_REQUESTER} open, and past
 * {@link DENIAL_KEYS} windows in all (or {@link DENIAL_OPENS_PER_WINDOW} opened by network
 * requesters in one window's time), new kinds are folded per tenant and reason whoever sends
 * them: a flood costs a bounded number of writes and of memory whatever it sends. A folded record
 * says what it mixed (`"*"`) and lists counts by operation, target, token (and requester).
 */
export class DenialLedger {
  private readonly append: (e: EventInput) => Promise<unknown>;
  private readonly now: () => number;
  private readonly windows = new Map<string, Window>();
  private readonly perRequester = new Map<string, number>();
  /** Denials seen since the kernel opened (all, recorded or counted). */
  seen = 0;
  /** Durable records written for them. */
  written = 0;

  private readonly windowMs: number;

  constructor(append: (e: EventInput) => Promise<unknown>, now: () => number, windowMs = DENIAL_WINDOW_MS) {
    this.append = append;
    this.now = now;
    this.windowMs = windowMs;
  }

  // New windows network requesters opened in the current period (see DENIAL_OPENS_PER_WINDOW).
  private opened = 0;
  private periodStart = performance.now();

  /** Whether a new kind must be folded: too many windows, or (for network requesters) too many opened lately. */
  private saturated(network: boolean): boolean {
    if (this.windows.size >= DENIAL_KEYS) return true;
    if (!network) return false;
    const now = performance.now();
    if (now - this.periodStart >= this.windowMs) {
      this.periodStart = now;
      this.opened = 0;
    }
    return this.opened >= DENIAL_OPENS_PER_WINDOW;
  }

  /** Kinds of denial being counted now. */
  get counting(): number {
    return this.windows.size;
  }

  /** Records `d`: at once if it is the first of its kind in the window, else counted. */
  record(d: Denial): Promise<void> {
    this.seen++;
    const requester = requesterKey(d.via?.requester);
    const at = this.now();
    let fold: Fold = "exact";
    let key = [
      d.tenant ?? "",
      requester,
      d.credential ?? "",
      d.tokenId ?? "",
      d.reason,
      d.operation,
      d.targetTenant ?? "",
      d.subject ?? "",
      d.message,
    ].join("\u0000");
    if (!this.windows.has(key)) {
      // An embedder's own callers (no requester) are told apart only up to the global bound.
      const crowded = d.via?.requester !== undefined && (this.perRequester.get(requester) ?? 0) >= DENIAL_KEYS_PER_REQUESTER;
      const requesterKeyed = [d.tenant ?? "", requester, d.reason, "*"].join("\u0000");
      const saturated = this.saturated(d.via?.requester !== undefined);
      if (crowded || saturated) {
        fold = "requester";
        key = requesterKeyed;
        if (!this.windows.has(key) && saturated) {
          fold = "all";
          key = [d.tenant ?? "", "*", d.reason, "*"].join("\u0000");
        }
      }
    }
    const w = this.windows.get(key);
    if (w) {
      if (w.count === 0) w.firstAt = at;
      w.count++;
      w.lastAt = at;
      w.last = d;
      if (w.fold !== "exact") tallyAll(w, d);
      return Promise.resolve();
    }
    const opened: Window = {
      fold,
      requester: fold === "all" ? "*" : requester,
      count: 0,
      firstAt: at,
      lastAt: at,
      last: d,
      operations: new Map(),
      targets: new Map(),
      tokens: new Map(),
      requesters: new Map(),
      timer: setTimeout(() => this.close(key), this.windowMs),
    };
    opened.timer.unref();
    this.windows.set(key, opened);
    if (d.via?.requester !== undefined) this.opened++;
    this.perRequester.set(opened.requester, (this.perRequester.get(opened.requester) ?? 0) + 1);
    let payload = payloadOf(d);
    if (fold !== "exact") {
      tallyAll(opened, d);
      payload = foldedPayload(opened, d);
      opened.operations.clear();
      opened.targets.clear();
      opened.tokens.clear();
      opened.requesters.clear();
    }
    return this.write(
      {
        tenant: d.tenant,
        type: "capability_denied",
        subject: fold === "exact" ? d.subject : null,
        payload,
        ...(d.via?.correlationId ? { correlationId: d.via.correlationId } : {}),
      },
      key,
    );
  }

  /** Writes what every window has counted (at close). */
  async flush(): Promise<void> {
    const keys = [...this.windows.keys()];
    await Promise.all(keys.map((k) => this.close(k, true)));
  }

  /** Ends a window: its count, if any, becomes one record; a window that counted more goes on. */
  private close(key: string, final = false): Promise<void> {
    const w = this.windows.get(key);
    if (!w) return Promise.resolve();
    clearTimeout(w.timer);
    const count = w.count;
    if (count === 0 || final) {
      this.drop(key);
    } else {
      w.count = 0;
      w.timer = setTimeout(() => this.close(key), this.windowMs);
      w.timer.unref();
    }
    if (count === 0) return Promise.resolve();
    const d = w.last;
    const counted = {
      tenant: d.tenant,
      type: "capability_denied" as const,
      subject: w.fold === "exact" ? d.subject : null,
      payload: {
        ...(w.fold === "exact" ? payloadOf(d) : foldedPayload(w, d)),
        count,
        firstAt: new Date(w.firstAt).toISOString(),
        lastAt: new Date(w.lastAt).toISOString(),
      },
      correlationId: null,
    };
    w.operations.clear();
    w.targets.clear();
    w.tokens.clear();
    w.requesters.clear();
    return this.write(counted);
  }

  private drop(key: string): void {
    const w = this.windows.get(key);
    if (!w) return;
    clearTimeout(w.timer);
    this.windows.delete(key);
    const left = (this.perRequester.get(w.requester) ?? 1) - 1;
    if (left <= 0) this.perRequester.delete(w.requester);
    else this.perRequester.set(w.requester, left);
  }

  private write(e: EventInput, key?: string): Promise<void> {
    this.written++;
    return this.append(e).then(
      () => undefined,
      (failure: unknown) => {
        // Not recorded: the next one of its kind is written at once rather than counted.
        if (key !== undefined) this.drop(key);
        console.error("solo: recording capability_denied failed:", failure);
      },
    );
  }
}

function tally(m: Map<string, number>, value: string): void {
  const k = m.has(value) || m.size < SAMPLE ? value : "(others)";
  m.set(k, (m.get(k) ?? 0) + 1);
}

function tallyAll(w: Window, d: Denial): void {
  tally(w.operations, d.operation);
  tally(w.targets, d.targetTenant ?? "(kernel)");
  tally(w.tokens, d.tokenId ?? "(none)");
  if (w.fold === "all")
    tally(w.requesters, d.via?.requester ? `${d.via.requester.address ?? ""} ${d.via.requester.certificate ?? ""}`.trim() : "(embedder)");
}

// A record of denials of one reason that differ in what was asked: what they mixed is "*", with
// counts by value; one requester's fold keeps the requester.
function foldedPayload(w: Window, d: Denial): Record<string, unknown> {
  return {
    operation: "*",
    targetTenant: "*",
    reason: d.reason,
    message: `denials for ${d.reason} of several kinds, counted together`,
    tokenId: "*",
    operations: Object.fromEntries(w.operations),
    targetTenants: Object.fromEntries(w.targets),
    tokenIds: Object.fromEntries(w.tokens),
    ...(w.fold === "all"
      ? { requesters: Object.fromEntries(w.requesters) }
      : d.via?.requester
        ? { requester: { ...d.via.requester } }
        : {}),
  };
}

function payloadOf(d: Denial): Record<string, unknown> {
  return {
    operation: d.operation,
    targetTenant: d.targetTenant,
    reason: d.reason,
    message: d.message.slice(0, 500),
    tokenId: d.tokenId,
    ...(d.required !== undefined ? { required: d.required } : {}),
    ...(d.via?.requester ? { requester: { ...d.via.requester } } : {}),
  };
}
