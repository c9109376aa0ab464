// The kernel as its adapters (gateway, MCP, CLI) and the public barrel see it: openKernel and the
// embedding API's types. Nothing else of the kernel is imported from outside it.

export type * from "./api.ts";
export { openKernel } from "./open.ts";
