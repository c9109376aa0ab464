// Event reads as a principal may make them: the embedder and unscoped tokens read everything; a
// scoped token reads its own tenant's events of this incarnation of it (after its floor), whatever
// its query says.

import type { EventPage, EventQuery, SoloEvent, SubscribeOptions } from "../../api/events.ts";
import type { EventLog } from "./event-log.ts";
import { checkEventQuery, checkSubscribe, encodeCursor } from "./query.ts";

/** The one tenant a read is confined to, and the last event of that tenant's earlier incarnations. */
export interface EventScope {
  readonly tenant: string;
  readonly floor: number;
}

export async function readEvents(log: EventLog, query: EventQuery | undefined, scope: EventScope | undefined): Promise<EventPage> {
  const checked = checkEventQuery(query);
  const limit = checked.limit;
  let filter = checked.filter;
  if (scope) {
    filter = { ...filter, tenant: scope.tenant };
    if (filter.order === "asc" || filter.afterId !== undefined) filter = { ...filter, afterId: Math.max(filter.afterId ?? 0, scope.floor) };
    else filter = { ...filter, afterId: scope.floor };
  }
  const rows = await log.query(filter);
  const events = rows.slice(0, limit);
  const last = events[events.length - 1];
  return { events, cursor: rows.length > limit && last ? encodeCursor(last.id, filter.order) : null };
}

export function followEvents(
  log: EventLog,
  options: SubscribeOptions | undefined,
  scope: EventScope | undefined,
): AsyncIterableIterator<SoloEvent> {
  const { filter, fromId, signal } = checkSubscribe(options);
  if (!scope) return log.follow(filter, fromId ?? log.headId + 1, signal);
  return log.follow({ ...filter, tenant: scope.tenant }, Math.max(fromId ?? log.headId + 1, scope.floor + 1), signal);
}
