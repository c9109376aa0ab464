// The kernel as its adapters (gateway, MCP, CLI) and the public barrel see it: openKernel and the
// embedding API's types (declared in src/api/). Nothing else of the kernel is imported from outside it.

export type { SoloEvent } from "../api/events.ts";
export type { Kernel, KernelObserver, KernelOptions, KernelSession, KernelStats } from "../api/kernel.ts";
export type { SecretsApi, VaultApi } from "../api/secrets.ts";
export type {
  CallOptions,
  Deployment,
  DeploySpec,
  LogEntry,
  ServiceInfo,
  ServiceSource,
  ServiceState,
  ServiceUsage,
  ServiceVersion,
  SwapOptions,
} from "../api/services.ts";
export type { TenantCreateOptions, TenantDeletion, TenantInfo, TenantsApi, TenantUsage } from "../api/tenants.ts";
export type { Requester, TokenInfo, TokensApi, Via } from "../api/tokens.ts";
export { requesterKey } from "./auth/denials.ts";
export { withCorrelation } from "./log/correlation.ts";
export { openKernel } from "./open.ts";
