// openKernel: the composition root. It builds the kernel's parts in order (each given only the
// parts before it) and, at close, stops them in reverse, as an OTP supervisor terminates its
// children in reverse start order.

import type { Kernel, KernelOptions } from "../api/kernel.ts";
import type { SoloError } from "../lib/errors/errors.ts";
import { compileEngine, type EngineImage } from "../sandbox/engine.ts";
import { type Culprit, SchedulerPool } from "../scheduler/index.ts";
import { openStore } from "../store/open.ts";
import type { Store } from "../store/store.ts";
import { Audit } from "./audit/index.ts";
import { Authority } from "./auth/authority.ts";
import { TokenTable } from "./auth/tokens.ts";
import { Breakers } from "./breaker/index.ts";
import { Calls } from "./calls/index.ts";
import { type DataDirLock, lockDataDir } from "./data-dir.ts";
import { CodeChecks, Deployer, Launcher, recover } from "./deployer/index.ts";
import { HotSwap } from "./hotswap/index.ts";
import { ServiceIo } from "./io/index.ts";
import { KernelImpl } from "./kernel.ts";
import { EventLog } from "./log/event-log.ts";
import { LogLines } from "./log/lines.ts";
import { checkOptions, type ResolvedOptions } from "./options.ts";
import { assertOpen, type Lifetime, type Parts } from "./parts.ts";
import { Registry, STOPPED } from "./registry/index.ts";
import { Resources } from "./resources/index.ts";
import { type RouterParts, route } from "./router.ts";
import { Supervisor } from "./supervisor/index.ts";
import { TenantLifecycle } from "./tenants/lifecycle.ts";
import { TenantRegistry } from "./tenants/tenants.ts";
import { givenMasterKey, masterKeyFile } from "./vault/cipher.ts";
import { Vault } from "./vault/vault.ts";

const CLOSE_GRACE_MS = 5000;
/** How often schedulers report their services' usage. */
const USAGE_INTERVAL_MS = 500;

/**
 * Opens a kernel on a data directory and starts its schedulers.
 *
 * @example
 * const kernel = await openKernel({ dataDir: "./.solo" });
 * await kernel.deploy({ tenant: "acme", service: "counter", code });
 * await kernel.call("acme", "counter", { op: "inc" });
 * await kernel.close();
 */
export async function openKernel(options: KernelOptions = {}): Promise<Kernel> {
  const opts = checkOptions(options);
  const engine = await compileEngine();
  const lock = await lockDataDir(opts.dataDir);
  try {
    const parts = await assemble(opts, lock, engine);
    return new KernelImpl(parts, () => shutdown(parts));
  } catch (err) {
    await lock.release();
    throw err;
  }
}

async function assemble(opts: ResolvedOptions, lock: DataDirLock, engine: EngineImage): Promise<Parts> {
  const lifetime: Lifetime = { closed: false };
  const closed = (): boolean => lifetime.closed;
  const clock = opts.clock;
  // The schedulers start first (their threads load while the store opens); their messages go to
  // the parts through the router once the parts exist.
  let parts: Parts | undefined;
  let routed: RouterParts | undefined;
  const pool = new SchedulerPool(
    opts.schedulers,
    engine,
    {
      onMessage: (_index, msg) => {
        if (routed) route(routed, msg);
      },
      onSchedulerDied: (index: number, error: SoloError, culprit: Culprit | undefined, unstarted) =>
        parts?.supervisor.schedulerDied(index, error, culprit, unstarted),
    },
    USAGE_INTERVAL_MS,
  );
  let store: Store | undefined;
  let log: EventLog | undefined;
  let vault: Vault | undefined;
  try {
    store = await openStore(lock.path, opts.database);
    log = await EventLog.open(store);
    vault = await Vault.open(store, log, opts.masterKey === undefined ? masterKeyFile(lock.path) : givenMasterKey(opts.masterKey));
    const tenants = new TenantRegistry(await store.tenants(), opts.tenantLimits);
    const now = (): number => clock.now();
    const authority = new Authority(log, new TokenTable(await store.tokens()), now, (name) => tenants.has(name));
    const io = new ServiceIo(store, log, () => vault as Vault, opts.fetch);
    const registry = new Registry(clock, opts.schedulers, closed);
    const audit = new Audit(log, clock);
    // Services' recent log lines, written to the store in batches and taken back at open.
    const eventLog = log;
    const lines = new LogLines((mutations) => eventLog.write(mutations, []));
    lines.load(await store.logLines());
    const breakers = new Breakers(clock, audit);
    const resources = new Resources({ registry, tenants, pool, audit, clock });
    const calls = new Calls({ registry, breakers, resources, tenants, pool });
    const checks = new CodeChecks(opts);
    const launcher = new Launcher({ registry, pool, tenants, clock });
    const supervisor = new Supervisor({
      registry,
      launcher,
      resources,
      audit,
      lines,
      log,
      clock,
      closed,
      links: {
        rollBack: (r, watch, cause) => void hotswap.rollBackAfterCrash(r, watch, cause),
        recast: (old, casts) => calls.recast(old, casts),
      },
    });
    const hotswap = new HotSwap({
      registry,
      launcher,
      supervisor,
      resources,
      breakers,
      checks,
      authority,
      pool,
      store,
      log,
      audit,
      clock,
      closed,
    });
    const lifecycle = new TenantLifecycle({
      assertOpen: () => assertOpen(lifetime),
      registry: tenants,
      log,
      store,
      authority,
      defaults: opts.tenantLimits,
      budgetBytes: opts.memoryBudgetBytes,
      instanceCap: (tenant) => resources.instanceCap(tenant),
      now,
      busy: (tenant) => registry.tenantBusy(tenant),
      stopServices: (tenant) => deployer.killTenant(tenant),
      forget: (tenant) => {
        for (const r of registry.services(tenant)) breakers.reset(tenant, r.service);
        registry.forgetTenant(tenant);
        resources.forgetTenant(tenant);
        lines.forgetTenant(tenant);
      },
      limitsChanged: (tenant) => resources.limitsChanged(tenant),
    });
    const deployer = new Deployer({
      registry,
      launcher,
      supervisor,
      resources,
      breakers,
      checks,
      lifecycle,
      tenants,
      authority,
      store,
      log,
      lines,
      clock,
    });
    const assembled: Parts = {
      opts,
      lock,
      lifetime,
      openedAt: Date.now(),
      pool,
      store,
      log,
      vault,
      authority,
      tenants,
      lifecycle,
      io,
      registry,
      audit,
      lines,
      breakers,
      resources,
      calls,
      checks,
      launcher,
      supervisor,
      hotswap,
      deployer,
    };
    parts = assembled;
    routed = { registry, supervisor, resources, audit, io, pool, lines, onLog: opts.onLog };
    await pool.ready();
    await recover({ ...assembled, schedulers: opts.schedulers, limits: opts.limits, supervision: opts.supervision });
    return assembled;
  } catch (err) {
    await pool.close(0);
    await vault?.close();
    await log?.close();
    await store?.close();
    throw err;
  }
}

// In reverse: nothing new starts (restarts and swap windows stand down, waiting calls are told),
// the vault stops its background work, the schedulers stop their services (running terminate),
// denials still being counted are written, the kernel's last event is recorded, and the log,
// the store and the data directory's lock are let go.
async function shutdown(k: Parts): Promise<void> {
  k.lifetime.closed = true;
  k.supervisor.standDown();
  k.registry.wakeAll();
  try {
    await k.vault.close();
    await k.pool.close(CLOSE_GRACE_MS);
    k.lines.close(); // after the services' last lines are in
    await k.lines.flush();
    for (const r of k.registry.instances()) if (r.life.state === "running" || r.life.state === "restarting") r.life = STOPPED;
    await k.authority.denials.flush();
    await k.log
      .append({ tenant: null, type: "kernel_stopped", payload: { uptimeMs: Date.now() - k.openedAt } })
      .catch((err: unknown) => console.error("solo: recording kernel_stopped failed:", err));
    await k.log.close();
    await k.store.close();
  } finally {
    await k.lock.release();
  }
}
