import { createRouterTransport, type Interceptor } from "@connectrpc/connect";
import type { Kernel, Requester } from "../kernel/index.ts";
import { SURFACE_HEADER } from "../lib/errors/transport.ts";
import { bearer, type Clients, clientsOver } from "./client.ts";
import { edge, routes, type VerifiedSession } from "./service.ts";
import { Shedder, type ShedderLimits } from "./shedder.ts";
import type { Telemetry } from "./telemetry.ts";
import type { DenialThrottle } from "./throttle.ts";

/** The gateway's handlers and edge (validation, admission, telemetry), shared by its port and in-process callers. */
export interface GatewayCore {
  readonly kernel: Kernel;
  /** When the gateway started (Health reports its uptime). */
  readonly started: number;
  readonly shedder: Shedder;
  readonly streams: Shedder;
  readonly telemetry?: Telemetry | undefined;
  readonly readMaxBytes: number;
  /** Slows requesters (from the port) that keep being denied. */
  readonly throttle?: DenialThrottle | undefined;
}

/** Streams open at once, in all and per tenant (FollowEvents); none wait. */
export const DEFAULT_STREAM_LIMITS: ShedderLimits = Object.freeze({ maxInFlight: 1024, maxInFlightPerLane: 32, maxQueuedPerLane: 0 });
/** Largest request body, in bytes (code is at most 16 MiB). */
export const DEFAULT_READ_MAX_BYTES = 32 * 1024 * 1024;

/** A gateway core with its own admission, for a kernel served without a port (`solo mcp --embedded`). */
export function gatewayCore(kernel: Kernel, o: Partial<Omit<GatewayCore, "kernel">> = {}): GatewayCore {
  return {
    kernel,
    started: o.started ?? Date.now(),
    shedder: o.shedder ?? new Shedder(),
    streams: o.streams ?? new Shedder(DEFAULT_STREAM_LIMITS),
    telemetry: o.telemetry,
    readMaxBytes: o.readMaxBytes ?? DEFAULT_READ_MAX_BYTES,
    throttle: o.throttle,
  };
}

/** The interceptors every call passes, whichever way it came in. */
export function coreInterceptors(core: GatewayCore, requester?: Requester, verified?: VerifiedSession): Interceptor[] {
  const e = edge(core.kernel, core.shedder, core.streams, core.throttle, requester, verified);
  return core.telemetry ? [core.telemetry.interceptor, e] : [e];
}

/**
 * The gateway's services as clients inside this process, acting with `token`: each call is
 * serialized, validated, admitted and served exactly as one that came over the port, without a
 * socket. The MCP server's HTTP sessions and `solo mcp --embedded` act through these.
 */
export function inProcessClients(core: GatewayCore, token: string, requester?: Requester, verified?: VerifiedSession): Clients {
  const transport = createRouterTransport(routes(core.kernel, core.started), {
    // In-process callers are MCP's tools: the kernel's hints name tools for them.
    transport: { interceptors: [bearer(token, { [SURFACE_HEADER]: "mcp" })] },
    router: { interceptors: coreInterceptors(core, requester, verified), readMaxBytes: core.readMaxBytes },
  });
  return clientsOver(transport, "in-process");
}
