import type { Registry } from "../kernel/registry/index.ts";

// Deliberate layer violation, to show the linter refuses it (reverted in the next commit).
export type R = Registry;
