#!/usr/bin/env -S node --disable-warning=ExperimentalWarning
/**
 * `node src/cli/solo.ts` runs `solo` as before; the bin (and the fast way) is solo.js, which
 * says why. Starting from this file loads Node's TypeScript stripper first, so it is slower.
 */
import { enableCompileCache } from "node:module";

enableCompileCache();
await import("./main.ts");
