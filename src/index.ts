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
export { ERROR_CODES, type ErrorCode, type ErrorData, type ErrorDetails, REASONS, type Reason, SoloError } from "./errors.ts";
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
} from "./kernel/kernel.ts";
export { DEFAULT_LIMITS, LIMIT_RANGES, type LimitsInput, type ServiceLimits } from "./kernel/limits.ts";
export { NAME_PATTERN } from "./kernel/names.ts";
export { CRASH_KINDS, type Crash, type CrashKind } from "./sandbox/service.ts";
