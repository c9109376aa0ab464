/**
 * Solo's embedding API.
 *
 * @example
 * import { openKernel } from "solo";
 * const kernel = await openKernel();
 * await kernel.deploy({ tenant: "acme", service: "counter", code: "export default { ... }" });
 * console.log(await kernel.call("acme", "counter", { op: "inc" }));
 * await kernel.close();
 */

export { type Finding, RULES, type RuleId } from "./api/analyzer.ts";
export { CRASH_KINDS, type Crash, type CrashKind } from "./api/crash.ts";
export {
  EVENT_TYPES,
  type EventPage,
  type EventQuery,
  type KernelEventType,
  type SoloEvent,
  type SubscribeOptions,
  type VerifyReport,
} from "./api/events.ts";
export type { FetchPolicy, FetchResponse } from "./api/fetch.ts";
export type { GrantsInput, ServiceGrants } from "./api/grants.ts";
export type { Clock, Kernel, KernelOptions, KernelSession } from "./api/kernel.ts";
export type { LimitsInput, ServiceLimits, TenantLimits } from "./api/limits.ts";
export type { SecretInfo, SecretsApi, VaultApi, VaultStatus } from "./api/secrets.ts";
export type {
  CallOptions,
  Deployment,
  DeploySpec,
  LogEntry,
  ServiceInfo,
  ServiceState,
  ServiceUsage,
  SwapOptions,
} from "./api/services.ts";
export { RESTART_TYPES, type RestartType, type SupervisionInput, type SupervisionPolicy } from "./api/supervision.ts";
export type { TenantCreateOptions, TenantDeletion, TenantInfo, TenantsApi, TenantUsage } from "./api/tenants.ts";
export type { GrantedToken, Requester, TokenInfo, TokenSpec, TokensApi, Via } from "./api/tokens.ts";
export { FIXED_PERMISSIONS } from "./kernel/auth/permissions.ts";
export { TOKEN_PREFIX } from "./kernel/auth/tokens.ts";
export { openKernel } from "./kernel/index.ts";
export { DEFAULT_LIMITS, DEFAULT_TENANT_LIMITS, LIMIT_RANGES, TENANT_LIMIT_RANGES } from "./kernel/limits.ts";
export { DEFAULT_SUPERVISION } from "./kernel/supervisor/policy.ts";
export { ERROR_CODES, type ErrorCode, type ErrorData, type ErrorDetails, REASONS, type Reason, SoloError } from "./lib/errors/errors.ts";
export { NAME_PATTERN } from "./lib/names.ts";
