/**
 * What both of the gateway's listeners serve alike: the Connect routes (in the protocols a listener
 * takes) and `GET /metrics`.
 */
import { createContextValues } from "@connectrpc/connect";
import { connectNodeAdapter } from "@connectrpc/connect-node";
import type { Kernel } from "../kernel/index.ts";
import { SoloError } from "../lib/errors/errors.ts";
import { checkBodies } from "./body-check.ts";
import { httpStatus } from "./errors.ts";
import { type HttpRequest, type HttpResponse, plain } from "./http-types.ts";
import { coreInterceptors, type GatewayCore } from "./local.ts";
import { REQUESTER, requesterOf, viaOfRequest } from "./requester.ts";
import { bearer, routes } from "./service.ts";
import { type Telemetry, tenantSeries } from "./telemetry.ts";
import { type DenialThrottle, TICKET } from "./throttle.ts";

/** The Connect routes as a node request handler; `grpc: false` serves Connect and gRPC-Web only. */
export function apiHandler(
  core: GatewayCore,
  throttle: DenialThrottle,
  protocols: { grpc: boolean },
): (req: HttpRequest, res: HttpResponse) => void {
  return connectNodeAdapter({
    routes: (router) => {
      routes(core.kernel, core.started)(router);
      checkBodies(router, core.readMaxBytes);
    },
    grpc: protocols.grpc,
    // A field this server does not know is refused, naming it: a misspelled one must not be
    // silently ignored (a deploy whose "grants" is misspelled would run with the defaults).
    jsonOptions: { ignoreUnknownFields: false },
    contextValues: (req) =>
      createContextValues()
        .set(REQUESTER, requesterOf(req as HttpRequest))
        .set(TICKET, throttle.ticketOf(req)),
    interceptors: coreInterceptors(core),
    readMaxBytes: core.readMaxBytes,
  });
}

/**
 * `GET /metrics`, per principal: the bearer token's holder must have `services:read`; an
 * unscoped token reads every series, a tenant's token only its tenant's. A certificate alone
 * reads nothing (401).
 */
export function serveMetrics(
  kernel: Kernel,
  telemetry: Telemetry,
  req: HttpRequest,
  response: HttpResponse,
  throttle: DenialThrottle,
): void {
  const res = plain(response);
  const session = kernel.as(bearer(req.headers.authorization ?? null), viaOfRequest(req));
  session
    .metricsScope()
    .then(async (scope) => {
      const text = await telemetry.registry.metrics();
      res.writeHead(200, { "content-type": telemetry.registry.contentType });
      res.end(scope.tenant === null ? text : tenantSeries(text, scope.tenant));
    })
    .catch((err: unknown) => {
      const e = SoloError.from(err);
      throttle.deniedBy(req, e);
      res.writeHead(httpStatus(e.code), {
        "content-type": "text/plain; charset=utf-8",
        ...(e.code === "unauthenticated" ? { "www-authenticate": 'Bearer realm="solo"' } : {}),
      });
      res.end(`${e.message} (${e.reason})\n`);
    });
}
