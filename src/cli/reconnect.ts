/**
 * What `--follow` commands share: a stream that breaks because the kernel went away (stopped,
 * restarted, the network dropped) is followed on once the kernel answers again, backing off.
 */
import { setTimeout as sleep } from "node:timers/promises";
import { Code, ConnectError } from "@connectrpc/connect";
import type { Clients } from "./connection.ts";
import { colours, dim } from "./output.ts";

/** Waits before the n-th try to reconnect: 250 ms, doubling, at most 5 s. */
export const backoffMs = (attempt: number): number => Math.min(250 * 2 ** attempt, 5000);

/** Says something about the stream on stderr, as `solo <command>: text`, dimmed on a terminal. */
export function noter(command: string): (text: string) => void {
  return (text) => void process.stderr.write(`${dim(`solo ${command}: ${text}`, colours(process.stderr))}\n`);
}

/**
 * Reads the streams `open` makes, one after another, handing each item to `take`, until `signal`
 * aborts (Ctrl-C). When a stream breaks in a way that may mend (the kernel stopped or restarted,
 * the network dropped) it says so, waits for the kernel to answer `health` again and opens the
 * next, saying where it follows on (`resumed()`). Errors a retry cannot mend end it.
 */
export async function followAcrossRestarts<T>(
  c: Clients,
  signal: AbortSignal,
  note: (text: string) => void,
  what: string,
  open: () => AsyncIterable<T>,
  take: (item: T) => void,
  resumed: () => string,
): Promise<void> {
  // Tries since the last item taken: a kernel that answers health but breaks each stream at once
  // (streams full, say) is retried ever more slowly, not four times a second.
  let tries = 0;
  for (;;) {
    let broke: string;
    try {
      for await (const item of open()) {
        take(item);
        tries = 0;
      }
      broke = "the kernel ended the stream";
    } catch (err) {
      if (signal.aborted) return;
      if (!retriable(err)) throw err;
      broke = (err as Error).message;
    }
    note(`the ${what} stream broke (${broke}); reconnecting (Ctrl-C stops)`);
    tries = await reconnect(c, signal, note, tries);
    if (tries < 0) return;
    note(`reconnected to ${c.url}; following on after ${resumed()}`);
  }
}

/**
 * Tries `health` until the kernel answers, waiting longer each try (counting on from `tries`);
 * the tries made so far, or -1 when `signal` aborts (Ctrl-C). Says each new reason a try fails.
 */
export async function reconnect(c: Clients, signal: AbortSignal, note: (text: string) => void, tries: number): Promise<number> {
  let said = "";
  for (let attempt = tries; ; attempt++) {
    try {
      await sleep(backoffMs(attempt), undefined, { signal });
      await c.kernel.health({}, { signal, timeoutMs: 5000 });
      return attempt + 1;
    } catch (err) {
      if (signal.aborted) return -1;
      if (!retriable(err)) throw err;
      const why = (err as Error).message;
      if (why !== said) note(`still cannot reach the kernel (${why}); retrying`);
      said = why;
    }
  }
}

/** Whether a broken stream may mend by itself: the kernel or the network went away, not the request. */
export function retriable(err: unknown): boolean {
  if (!(err instanceof ConnectError)) return false;
  switch (err.code) {
    case Code.Unavailable:
    case Code.Internal:
    case Code.Unknown:
    case Code.Aborted:
    case Code.Canceled:
    case Code.DeadlineExceeded:
    case Code.ResourceExhausted:
      return true;
    default:
      return false;
  }
}

/** An AbortSignal that Ctrl-C and SIGTERM abort, and a function that stops listening for them. */
export function interrupted(): { readonly signal: AbortSignal; readonly release: () => void } {
  const abort = new AbortController();
  const stop = (): void => abort.abort();
  process.once("SIGINT", stop);
  process.once("SIGTERM", stop);
  return {
    signal: abort.signal,
    release: () => {
      process.off("SIGINT", stop);
      process.off("SIGTERM", stop);
    },
  };
}
