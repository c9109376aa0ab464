// The supervisor part: restart decisions (policy.ts, pure) and their runtime (supervisor.ts).

export type { Clock } from "../../api/kernel.ts";
export { RESTART_TYPES, type RestartType, type SupervisionInput, type SupervisionPolicy } from "../../api/supervision.ts";
export { DEFAULT_SUPERVISION, decide, resolveSupervision, SYSTEM_CLOCK } from "./policy.ts";
export { Supervisor, type SupervisorLinks } from "./supervisor.ts";
