/**
 * The plain-HTTP request and response as the gateway's listeners hand them to their handlers:
 * node:http2's compatibility objects (the main port, and HTTP/2 on the web listener) or node:http's
 * (HTTP/1.1 on the web listener). Handlers that serve both take these.
 */
import type { IncomingMessage, ServerResponse } from "node:http";
import type { Http2ServerRequest, Http2ServerResponse } from "node:http2";

/** A request over HTTP/2 or HTTP/1.1. */
export type HttpRequest = Http2ServerRequest | IncomingMessage;

/** A response over HTTP/2 or HTTP/1.1. */
export type HttpResponse = Http2ServerResponse | ServerResponse;

/** What both kinds of response do alike, callable on either (their overloads do not unite). */
export interface Response {
  writeHead(status: number, headers?: Record<string, string | number | readonly string[]>): unknown;
  setHeader(name: string, value: string | number | readonly string[]): unknown;
  end(chunk?: string | Uint8Array): unknown;
  readonly headersSent: boolean;
  readonly destroyed: boolean;
  readonly closed: boolean;
  once(event: "close" | "finish", listener: () => void): unknown;
  destroy(): unknown;
}

/** `res` as what both kinds of response do alike. */
export function plain(res: HttpResponse): Response {
  return res as unknown as Response;
}

/**
 * A request's whole body, at most `max` bytes; past that (declared or as it arrives) it throws
 * `tooLarge()`. The rest of a body too large is read and dropped, not destroyed: a request left
 * unread keeps its stream open for good (flow control stops the client and nothing reads it),
 * holding a closing listener for its grace, and an HTTP/1.1 connection stays usable.
 */
export async function readBody(req: HttpRequest, max: number, tooLarge: () => Error): Promise<Buffer> {
  if (Number(req.headers["content-length"] ?? 0) > max) throw tooLarge();
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req.iterator({ destroyOnReturn: false }) as AsyncIterable<Buffer>) {
    size += chunk.length;
    if (size > max) break;
    chunks.push(chunk);
  }
  if (size > max) {
    req.resume();
    throw tooLarge();
  }
  return Buffer.concat(chunks);
}
