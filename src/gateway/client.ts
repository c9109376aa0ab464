import { type Client, createClient, type Interceptor, type Transport } from "@connectrpc/connect";
import { createConnectTransport, createGrpcTransport, createGrpcWebTransport } from "@connectrpc/connect-node";
import { KernelService, SecretService, TenantService, TokenService } from "../gen/solo/v1/solo_pb.js";

/** The wire protocols the gateway serves. */
export type GatewayProtocol = "grpc" | "grpc-web" | "connect" | "connect-binary";

/** How a client reaches the gateway: its URL, the client certificate and CA, and a token. */
export interface GatewayClientOptions {
  readonly url: string;
  /** PEM: the gateway's CA, and this client's certificate and key (mutual TLS). */
  readonly ca: string;
  readonly cert: string;
  readonly key: string;
  /** Sent as `authorization: Bearer <token>` on every call; none if omitted. */
  readonly token?: string;
  /** Default `grpc`. */
  readonly protocol?: GatewayProtocol;
  /** More headers on every call (`x-request-id`, ...). */
  readonly headers?: Readonly<Record<string, string>>;
}

/** Adds the bearer token (and any other headers) to every call. */
export function bearer(token: string | undefined, headers: Readonly<Record<string, string>> = {}): Interceptor {
  return (next) => (req) => {
    if (token !== undefined) req.header.set("authorization", `Bearer ${token}`);
    for (const [k, v] of Object.entries(headers)) req.header.set(k, v);
    return next(req);
  };
}

/** A transport to the gateway over one HTTP/2 connection, with mutual TLS and the bearer token. */
export function gatewayTransport(o: GatewayClientOptions): Transport {
  const common = {
    baseUrl: o.url,
    httpVersion: "2" as const,
    nodeOptions: { ca: o.ca, cert: o.cert, key: o.key },
    interceptors: [bearer(o.token, o.headers)],
  };
  switch (o.protocol ?? "grpc") {
    case "grpc":
      return createGrpcTransport(common);
    case "grpc-web":
      return createGrpcWebTransport(common);
    case "connect":
      return createConnectTransport(common);
    case "connect-binary":
      return createConnectTransport({ ...common, useBinaryFormat: true });
  }
}

/** The gateway's four services' clients over one transport. */
export interface Clients {
  readonly kernel: Client<typeof KernelService>;
  readonly tokens: Client<typeof TokenService>;
  readonly secrets: Client<typeof SecretService>;
  readonly tenants: Client<typeof TenantService>;
  /** Where they go: the gateway's URL, or `in-process`. */
  readonly url: string;
}

/** The four services' clients over `transport`. */
export function clientsOver(transport: Transport, url: string): Clients {
  return {
    kernel: createClient(KernelService, transport),
    tokens: createClient(TokenService, transport),
    secrets: createClient(SecretService, transport),
    tenants: createClient(TenantService, transport),
    url,
  };
}
