// The breaker part: per-service circuit breakers (breakers.ts) over the pure state machine (circuit.ts).

export type { BreakerState } from "../../api/services.ts";
export { type Admitted, Breakers } from "./breakers.ts";
export { CircuitBreaker } from "./circuit.ts";
