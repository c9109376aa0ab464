/**
 * Work a scheduler puts off to the next turn: a batch sent once whatever asked for it, a garbage
 * collection once instances were dropped.
 * @internal
 */
import v8 from "node:v8";
import { runInNewContext } from "node:vm";

/** `fn` as a function that runs it once on the next turn, however often it is called before. */
export function soon(fn: () => void): () => void {
  let pending = false;
  return () => {
    if (pending) return;
    pending = true;
    setImmediate(() => {
      pending = false;
      fn();
    });
  };
}

let gc: (() => void) | undefined;

// A dropped instance's linear memory goes back to the host only when V8 collects it, which it
// might not do for a long while on its own: it is asked to, once the instance is unreachable.
// (V8 takes --expose-gc only process-wide, so it is set where it is needed, the first time.)
function collect(): void {
  if (!gc) {
    v8.setFlagsFromString("--expose-gc");
    gc = runInNewContext("gc") as () => void;
  }
  gc();
}

/** Collects garbage on the next turn: a tenant's dropped WebAssembly instance gives its memory back. */
export const collectSoon = soon(collect);
