// The registry part: the services the kernel knows, by name and instance. See registry.ts.

export {
  cancelRestart,
  cancelSwapWatch,
  clipDetails,
  crashOf,
  deploymentRow,
  EMPTY_USAGE,
  grantsOf,
  infoOf,
  keyOf,
  type LaunchSpec,
  metaOf,
  type ServiceRecord,
  type SwapWatch,
  serviceNotFound,
} from "./record.ts";
export { Registry } from "./registry.ts";
