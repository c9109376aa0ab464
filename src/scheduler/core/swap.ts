/**
 * A hot swap, between two messages: the state leaves the old version as JSON, the new module is
 * loaded in a fresh runtime, adopts the state through its codeChange(fromVersion, state), and only
 * then replaces the old one. Any failure leaves the old version running, untouched.
 * @internal
 */
import type { ErrorData } from "../../lib/errors/errors.ts";
import { SoloError } from "../../lib/errors/errors.ts";
import { failed, replied } from "../../sandbox/contract.ts";
import { EngineFault, type ServiceSandbox } from "../../sandbox/service.ts";
import type { SwapOp, Swapped } from "../protocol.ts";
import type { HostPowers } from "./host-powers.ts";
import type { RunLoop } from "./run-loop.ts";
import { errorOf, type Message, type Service } from "./service.ts";

/** The CPU a swap's export or adoption may take at least, whatever the service's budget. */
const STATE_MOVE_MS = 1000;

/** Carries out swaps when their turn in a mailbox comes. @internal */
export class HotSwap {
  private readonly loop: RunLoop;
  private readonly powers: HostPowers;

  constructor(loop: RunLoop, powers: HostPowers) {
    this.loop = loop;
    this.powers = powers;
  }

  /** Swaps service `s` to the version `spec`, and answers the swap's message `m`. */
  run(s: Service, m: Message, spec: SwapOp): void {
    const fail = (e: ErrorData): void => this.loop.respond(m, failed(e));
    const engine = s.tenant.module;
    if (!engine) {
      fail(errorOf("SOLO_ERR_INTERNAL", "the tenant's engine is not ready"));
      return;
    }
    const { loop } = this;
    const old = s.sandbox;
    // Each phase (export, load, adopt) is a step of its own on the board, each under its own limit.
    // A swap is an operator's act: moving the state may take a second whatever the service's budget.
    const moveMs = Math.max(old.spec.limits.cpuMsPerMessage, STATE_MOVE_MS);
    const exported = loop.guest(s.sid, moveMs, () => old.begin("export", "", "", moveMs));
    old.endMessage();
    if (exported.t !== "reply") {
      const why = exported.t === "failed" ? exported.crash.message : "no state";
      fail(errorOf("SOLO_ERR_SWAP_FAILED", `the state of ${s.name} cannot move to the new version: ${why}`, { phase: "export" }));
      return;
    }
    let next: ServiceSandbox | undefined;
    try {
      next = this.powers.sandbox(
        engine,
        {
          tenant: s.tenant.name,
          service: s.name,
          version: spec.version,
          filename: spec.filename,
          limits: spec.limits,
          grants: spec.grants,
        },
        s.sid,
      );
      const fresh = next;
      const handlers = loop.guest(s.sid, spec.limits.cpuMsPerMessage, () => fresh.load(spec.code));
      const from = spec.fromVersion === 0 ? "" : String(spec.fromVersion);
      const adopted = loop.guest(s.sid, moveMs, () => fresh.begin("adopt", exported.json, from, moveMs));
      next.endMessage();
      if (adopted.t !== "done") {
        const why =
          adopted.t === "failed"
            ? adopted.crash.message
            : adopted.t === "pending"
              ? "codeChange returned a promise; it must return the new state synchronously"
              : "codeChange gave no state";
        next.dispose();
        fail(
          errorOf("SOLO_ERR_SWAP_FAILED", `codeChange of the new version failed: ${why}`, {
            phase: "codeChange",
            ...(adopted.t === "failed" ? { crash: adopted.crash } : {}),
          }),
        );
        return;
      }
      s.sandbox = next;
      s.handlers = handlers;
      s.code = spec.code;
      old.dispose();
      loop.respond(m, replied(JSON.stringify({ handlers, state: exported.json, timers: s.pendingTimers() } satisfies Swapped)));
    } catch (err) {
      if (err instanceof EngineFault) {
        fail(SoloError.from(err).toData());
        loop.poisonTenant(s.tenant, err);
        return;
      }
      next?.dispose();
      const e = SoloError.from(err);
      fail(errorOf("SOLO_ERR_SWAP_FAILED", `the new version cannot be loaded: ${e.message}`, { phase: "load", cause: e.toData() }));
    }
  }
}
