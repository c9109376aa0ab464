/**
 * Messages to a service: `solo call` (waits for the reply) and `solo cast` (does not).
 */
import { fromJson, toJson } from "@bufbuild/protobuf";
import { ValueSchema } from "@bufbuild/protobuf/wkt";
import { type Cli, parseJson, ref } from "../command.ts";
import type { Clients } from "../connection.ts";

/** `solo call <tenant/service> [request]`: prints the reply as JSON. */
export async function call(cli: Cli, c: Clients, target: string, request: string | undefined, o: { timeout?: number }): Promise<void> {
  const r = await c.kernel.call({
    ref: ref(target),
    ...(request !== undefined ? { request: fromJson(ValueSchema, parseJson(request, "the request")) } : {}),
    ...(o.timeout !== undefined ? { timeoutMs: o.timeout } : {}),
  });
  const reply = r.reply === undefined ? null : toJson(ValueSchema, r.reply);
  cli.out({ reply }, () => process.stdout.write(`${JSON.stringify(reply, null, 2)}\n`));
}

/** `solo cast <tenant/service> [message]`. */
export async function cast(cli: Cli, c: Clients, target: string, message: string | undefined): Promise<void> {
  await c.kernel.cast({
    ref: ref(target),
    ...(message !== undefined ? { message: fromJson(ValueSchema, parseJson(message, "the message")) } : {}),
  });
  cli.out({ ok: true }, () => process.stdout.write("sent\n"));
}
