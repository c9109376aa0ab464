// The event log's operations: a page of events, following them live, and verifying the chain.
// A scoped token reads its own tenant's events (of this incarnation of it) whatever the query
// says; asking for another tenant's is a denial, not a silently narrowed answer.

import type { EventPage, EventQuery, SoloEvent, SubscribeOptions, VerifyReport } from "../../api/events.ts";
import { checkTenant } from "../../lib/names.ts";
import type { Permission } from "../auth/permissions.ts";
import type { Principal } from "../auth/tokens.ts";
import { type EventScope, followEvents, readEvents } from "../log/scope.ts";
import { assertOpen, type Parts } from "../parts.ts";
import type { Gate, Operation } from "./operation.ts";
import { settled } from "./operation.ts";

const READ_EVENTS: Permission = { action: "events:read" };

// First the token, to learn its reach; then the check against the tenant it reads.
async function admitRead(g: Gate, operation: string, query: { readonly tenant?: unknown } | undefined) {
  const asked = query !== null && typeof query === "object" ? query.tenant : undefined;
  if (asked !== undefined && asked !== null) checkTenant(asked);
  const who = await g.verify(operation);
  await g.permit(who, operation, typeof asked === "string" ? asked : who.tenant, READ_EVENTS);
  return who;
}

/** The one tenant a principal's reads are confined to, from the start of that tenant's incarnation. */
function scopeOf(k: Parts, p: Principal): EventScope | undefined {
  if (p.kind !== "token" || p.tenant === null) return undefined;
  return { tenant: p.tenant, floor: k.tenants.row(p.tenant)?.eventsAfter ?? k.log.headId };
}

export const events: Operation<[query?: EventQuery], Promise<EventPage>> = {
  admit: (g, query) => admitRead(g, "events", query),
  run: (k, p, _via, query) => settled(k, () => readEvents(k.log, query, scopeOf(k, p))),
};

export const subscribe: Operation<[options?: SubscribeOptions], AsyncIterableIterator<SoloEvent>> = {
  admit: (g, options) => admitRead(g, "subscribe", options),
  run: (k, p, _via, options) => {
    assertOpen(k.lifetime);
    return followEvents(k.log, options, scopeOf(k, p));
  },
};

export const verify: Operation<[], Promise<VerifyReport>> = {
  admit: async (g) => {
    const who = await g.verify("verify");
    await g.permit(who, "verify", who.tenant, READ_EVENTS);
    return who;
  },
  run: (k) => settled(k, () => k.log.verify()),
};
