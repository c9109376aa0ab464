// The breaker part: per-service circuit breakers (breakers.ts) over the pure state machine (circuit.ts).

export { type Admitted, Breakers } from "./breakers.ts";
export { type BreakerState, CircuitBreaker } from "./circuit.ts";
