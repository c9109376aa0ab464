// The supervisor part: restart decisions (policy.ts, pure) and their runtime (supervisor.ts).

export {
  type Clock,
  DEFAULT_SUPERVISION,
  decide,
  RESTART_TYPES,
  type RestartType,
  resolveSupervision,
  type SupervisionInput,
  type SupervisionPolicy,
  SYSTEM_CLOCK,
} from "./policy.ts";
export { Supervisor, type SupervisorLinks } from "./supervisor.ts";
