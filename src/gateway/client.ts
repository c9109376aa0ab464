import type { Interceptor, Transport } from "@connectrpc/connect";
import { createConnectTransport, createGrpcTransport, createGrpcWebTransport } from "@connectrpc/connect-node";

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
