// The registry part: the services the kernel knows, by name and instance. See registry.ts.

export {
  CRASHED,
  cancelRestart,
  cancelSwapWatch,
  clipDetails,
  crashOf,
  deploymentRow,
  EMPTY_USAGE,
  EXITED,
  FAILED,
  grantsOf,
  infoOf,
  KILLED,
  keyOf,
  killedDurably,
  type LaunchSpec,
  type Lifecycle,
  metaOf,
  RUNNING,
  restarting,
  type ServiceRecord,
  STOPPED,
  type SwapWatch,
  serviceNotFound,
} from "./record.ts";
export { Registry } from "./registry.ts";
