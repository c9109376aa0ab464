/**
 * Name resolution for one hop, and DNS pinning: the connection's lookup answers only with the
 * addresses already checked, so a DNS answer cannot change between the check and the connect.
 */
import { isIP, type LookupFunction } from "node:net";
import { SoloError } from "../../../lib/errors/errors.ts";
import type { CompiledPolicy } from "./policy.ts";

/** The addresses `host` resolves to (itself, for an IP literal); a failure is SOLO_ERR_FETCH_FAILED. */
export async function resolve(
  host: string,
  policy: CompiledPolicy,
  signal: AbortSignal,
  where: string,
): Promise<ReadonlyArray<{ address: string; family: number }>> {
  const family = isIP(host);
  if (family !== 0) return [{ address: host, family }];
  let answers: unknown;
  try {
    answers = await abortable(policy.lookup(host), signal);
  } catch (err) {
    if (signal.aborted) throw signal.reason;
    const code = errorCode(err) ?? "dns";
    throw new SoloError(
      "SOLO_ERR_FETCH_FAILED",
      `fetching ${where} failed: ${host} could not be resolved (${code}); check the host name`,
      { host, cause: code },
      { cause: err },
    );
  }
  const valid = Array.isArray(answers)
    ? answers.filter(
        (a): a is { address: string; family: number } =>
          a !== null && typeof a === "object" && typeof a.address === "string" && isIP(a.address) !== 0,
      )
    : [];
  if (!Array.isArray(answers) || valid.length !== answers.length || valid.length === 0) {
    throw new SoloError("SOLO_ERR_FETCH_FAILED", `fetching ${where} failed: ${host} resolved to no usable address; check the host name`, {
      host,
      cause: "ENOTFOUND",
    });
  }
  return valid.map((a) => ({ address: a.address, family: isIP(a.address) }));
}

/** A lookup that answers only with the addresses already checked, whatever it is asked. */
export function pinnedLookup(addresses: ReadonlyArray<{ address: string; family: number }>): LookupFunction {
  return (_hostname, options, callback) => {
    const first = addresses[0];
    if (first === undefined) {
      callback(Object.assign(new Error("no checked address"), { code: "ENOTFOUND" }), "", 4);
      return;
    }
    // With autoSelectFamily Node asks for every address and tries them in turn (happy eyeballs).
    if (options.all === true) {
      callback(
        null,
        addresses.map((a) => ({ ...a })),
      );
      return;
    }
    callback(null, first.address, first.family);
  };
}

/** The `code` of a Node error (`ECONNREFUSED`, `ENOTFOUND`, ...), if it has one. */
export function errorCode(err: unknown): string | undefined {
  const code = err !== null && typeof err === "object" ? (err as { code?: unknown }).code : undefined;
  return typeof code === "string" ? code : undefined;
}

/** Settles with `promise`, or rejects with the signal's reason as soon as it aborts. */
function abortable<T>(promise: Promise<T>, signal: AbortSignal): Promise<T> {
  if (signal.aborted) return Promise.reject(signal.reason);
  return new Promise<T>((resolvePromise, reject) => {
    const onAbort = (): void => reject(signal.reason);
    signal.addEventListener("abort", onAbort, { once: true });
    promise.then(
      (value) => {
        signal.removeEventListener("abort", onAbort);
        resolvePromise(value);
      },
      (err: unknown) => {
        signal.removeEventListener("abort", onAbort);
        reject(err);
      },
    );
  });
}
