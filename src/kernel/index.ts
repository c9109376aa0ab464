// The kernel as its adapters (gateway, MCP, CLI) and the public barrel see it: openKernel and the
// embedding API's types. Nothing else of the kernel is imported from outside it.

export type * from "./api.ts";
export type { Requester, Via } from "./auth/denials.ts";
export { requesterKey } from "./auth/denials.ts";
export type { TokenInfo } from "./auth/tokens.ts";
export { withCorrelation } from "./log/correlation.ts";
export type { SoloEvent } from "./log/event-log.ts";
export { openKernel } from "./open.ts";
export type { TenantInfo } from "./tenants/tenants.ts";
