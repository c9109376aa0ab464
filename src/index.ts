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

export { CRASH_KINDS, type Crash, type CrashKind } from "./api/crash.ts";
export { type Finding, RULES, type RuleId } from "./kernel/analyzer/index.ts";
export type {
  KernelSession,
  SecretsApi,
  TenantCreateOptions,
  TenantDeletion,
  TenantsApi,
  TokensApi,
  VaultApi,
} from "./kernel/api.ts";
export type { TokenSpec } from "./kernel/auth/authority.ts";
export type { Requester, Via } from "./kernel/auth/denials.ts";
export { FIXED_PERMISSIONS } from "./kernel/auth/permissions.ts";
export { type GrantedToken, TOKEN_PREFIX, type TokenInfo } from "./kernel/auth/tokens.ts";
export {
  type CallOptions,
  type Deployment,
  type DeploySpec,
  type Kernel,
  type KernelOptions,
  type LogEntry,
  openKernel,
  type ServiceInfo,
  type ServiceState,
  type ServiceUsage,
  type SwapOptions,
  type TenantUsage,
} from "./kernel/index.ts";
export {
  DEFAULT_LIMITS,
  DEFAULT_TENANT_LIMITS,
  LIMIT_RANGES,
  type LimitsInput,
  type ServiceLimits,
  TENANT_LIMIT_RANGES,
  type TenantLimits,
} from "./kernel/limits.ts";
export type { SoloEvent, VerifyReport } from "./kernel/log/event-log.ts";
export { EVENT_TYPES, type KernelEventType } from "./kernel/log/event-types.ts";
export type { EventPage, EventQuery, SubscribeOptions } from "./kernel/log/query.ts";
export type { FetchPolicy, FetchResponse } from "./kernel/powers/fetch/index.ts";
export type { GrantsInput, ServiceGrants } from "./kernel/powers/grants.ts";
export {
  type Clock,
  DEFAULT_SUPERVISION,
  RESTART_TYPES,
  type RestartType,
  type SupervisionInput,
  type SupervisionPolicy,
} from "./kernel/supervisor/policy.ts";
export type { TenantInfo } from "./kernel/tenants/tenants.ts";
export type { SecretInfo, VaultStatus } from "./kernel/vault/vault.ts";
export { ERROR_CODES, type ErrorCode, type ErrorData, type ErrorDetails, REASONS, type Reason, SoloError } from "./lib/errors/errors.ts";
export { NAME_PATTERN } from "./lib/names.ts";
