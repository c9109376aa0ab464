// Public types: the limits a service and a tenant run under (their ranges and checks are the kernel's).

/** The limits one service runs under. Every field is enforced by the engine or the scheduler. */
export interface ServiceLimits {
  /** Heap of the service's QuickJS runtime (`setMemoryLimit`), in bytes. */
  readonly memoryBytes: number;
  /** JavaScript stack of the service (`setMaxStackSize`), in bytes. */
  readonly stackBytes: number;
  /** CPU time one message (with all its promise jobs) may use, in milliseconds. */
  readonly cpuMsPerMessage: number;
  /** Largest JSON encoding of a request, reply, cast, timer message or init args, in bytes. */
  readonly messageBytes: number;
  /** Largest JSON encoding of the state returned by `init` (and, later, `codeChange`), in bytes. */
  readonly stateBytes: number;
  /** Most `sendAfter` timers a service may have pending at once. */
  readonly timers: number;
  /** Bytes of durable `solo.storage` (keys and values, UTF-8) the service may hold. */
  readonly storageBytes: number;
  /** Keys of durable `solo.storage` the service may hold. */
  readonly storageKeys: number;
  /** Messages that may wait in the mailbox; beyond it calls are refused and casts dropped (counted). */
  readonly mailbox: number;
}

/** What one tenant may use in all: enforced at deploy and, for memory, at run time. */
export interface TenantLimits {
  /** Services (not killed) the tenant may have. */
  readonly maxServices: number;
  /**
   * Bytes all the tenant's services may hold together: the maximum of the tenant's WebAssembly
   * linear memory, so the engine refuses allocations past it. At least 16 MiB (the engine's own
   * minimum), at most 2 GiB (what a 32-bit WebAssembly memory can address here).
   */
  readonly memoryBytes: number;
}

/** A partial set of limits, as given to `openKernel` or `deploy`. */
export type LimitsInput = Partial<ServiceLimits>;
