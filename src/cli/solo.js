#!/usr/bin/env -S node --disable-warning=ExperimentalWarning
/**
 * `solo`'s entry point (package.json's bin): turns on Node's compile cache, then loads the
 * command table (main.ts).
 *
 * Two things make a warm run fast, and both need this file as it is:
 * - It is its own module because static imports load before a module's body runs: only what is
 *   imported after `enableCompileCache()` comes from the cache.
 * - It is JavaScript, not TypeScript: Node strips the types of a .ts file with a WebAssembly
 *   compiler that takes 100-300 ms to load, and the compile cache keeps the stripped code of
 *   every .ts file imported after it is on, but cannot help the entry point itself.
 *
 * The cache is `$NODE_COMPILE_CACHE`, else `<os temp dir>/node-compile-cache` (Node's default):
 * V8's code for each file, keyed by its content and the Node version. `NODE_DISABLE_COMPILE_CACHE=1`
 * turns it off. solo.ts does the same for `node src/cli/solo.ts`.
 */
import module from "node:module";
import { fileURLToPath } from "node:url";

// The shebang runs the first `node` on PATH; an older one would fail below with a SyntaxError.
const major = Number(process.versions.node.split(".")[0]);
if (major < 26) {
  const bin = fileURLToPath(new URL("../../node_modules/.bin", import.meta.url));
  process.stderr.write(
    `error: solo needs Node 26 or later, but the node on PATH (${process.execPath}) is ${process.version}\n` +
      `hint: put this checkout's Node first on PATH: export PATH="${bin}:$PATH"\n`,
  );
  process.exit(1);
}
module.enableCompileCache();
await import("./main.ts");
