import { AsyncLocalStorage } from "node:async_hooks";

/**
 * The correlation id of the request being served, carried through its asynchronous work: every
 * event appended while serving it (the deploy's, a denial's, a secret's read) records it as its
 * `correlationId`, so one request's events can be found together. The gateway sets it from the
 * request id; events a service's own activity causes later (a crash, a restart) carry none.
 */
const current = new AsyncLocalStorage<string>();

/** Runs `fn` with `id` as the correlation id of the events it causes. */
export function withCorrelation<T>(id: string, fn: () => T): T {
  return current.run(id, fn);
}

/** The correlation id in effect, if any. */
export function correlation(): string | undefined {
  return current.getStore();
}
