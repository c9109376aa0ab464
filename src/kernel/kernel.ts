import { hash } from "node:crypto";
import type { Crash } from "../api/crash.ts";
import { SoloError } from "../lib/errors/errors.ts";
import { checkMeta, checkService, checkTenant, describeType, NO_META, type ServiceMeta, TAG_PATTERN } from "../lib/names.ts";
import { compileEngine, type EngineImage } from "../sandbox/engine.ts";
import { encodeJson } from "../sandbox/json.ts";
import { crashError, deployFailure } from "../sandbox/service.ts";
import { stripTypes } from "../sandbox/typescript.ts";
import { type Culprit, type FromScheduler, type PendingTimer, SchedulerPool } from "../scheduler/index.ts";
import { openStore } from "../store/open.ts";
import type { DeploymentRecord, Store } from "../store/store.ts";
import { analyze, type Finding } from "./analyzer/analyze.ts";
import type {
  CallOptions,
  Deployment,
  DeploySpec,
  Kernel,
  KernelObserver,
  KernelOptions,
  KernelStats,
  LogEntry,
  ServiceInfo,
  ServiceSource,
  ServiceState,
  ServiceUsage,
  ServiceVersion,
  SwapOptions,
  TenantUsage,
} from "./api.ts";
import { Authority, type Decision, type Target } from "./auth/authority.ts";
import type { Via } from "./auth/denials.ts";
import type { Permission } from "./auth/permissions.ts";
import { type GrantedToken, type Principal, SYSTEM, type TokenInfo, type TokenPrincipal, TokenTable } from "./auth/tokens.ts";
import { type CallOutcome, CircuitBreaker } from "./breaker/breaker.ts";
import { type DataDirLock, lockDataDir } from "./data-dir.ts";
import { resolveLimits, type ServiceLimits } from "./limits.ts";
import { type EventInput, EventLog, type SoloEvent, type VerifyReport } from "./log/event-log.ts";
import { checkEventQuery, checkSubscribe, type EventPage, type EventQuery, encodeCursor, type SubscribeOptions } from "./log/query.ts";
import { checkOptions, type ResolvedOptions } from "./options.ts";
import { grantPermissions, grantsData, resolveGrants, type ServiceGrants } from "./powers/grants.ts";
import { ServiceIo } from "./service-io.ts";
import {
  type KernelSession,
  type SecretsApi,
  Session,
  type SessionHost,
  type TenantsApi,
  type TokensApi,
  type VaultApi,
} from "./session.ts";
import { decide, resolveSupervision, type SupervisionPolicy } from "./supervisor/supervisor.ts";
import { TenantLifecycle, tenantBusy } from "./tenants/lifecycle.ts";
import { TenantRegistry } from "./tenants/tenants.ts";
import { givenMasterKey, masterKeyFile } from "./vault/cipher.ts";
import { Vault } from "./vault/vault.ts";

export type * from "./api.ts";

interface ServiceRecord {
  readonly tenant: string;
  readonly service: string;
  readonly sid: number;
  readonly version: number;
  /** The author's source and the init args, to start this version again. */
  readonly code: string;
  readonly args: string;
  readonly meta: ServiceMeta;
  readonly supervision: SupervisionPolicy;
  readonly grants: ServiceGrants;
  restarts: number;
  /** When the supervisor restarted it (clock ms), for the intensity window. */
  restartTimes: number[];
  restartTimer?: unknown;
  /** After a swap, until its rollback window ends: the version to go back to and the state captured then. */
  swapWatch?: {
    readonly from: ServiceRecord;
    readonly state: string;
    /** The `sendAfter` timers pending with that state, armed again if it comes back. */
    readonly timers: readonly PendingTimer[];
    readonly timer: unknown | undefined;
  };
  /** kill() was asked for it: whatever was starting it in the meantime must not bring it back. */
  killed?: boolean;
  /** The kill is in the store: it will not be recovered. */
  killDurable?: boolean;
  /** Crashed before it was registered under its name (right after init): handled once it is. */
  earlyCrash?: Crash | null;
  /** When a pending restart is due (clock ms). */
  restartAt?: number;
  /** The event that recorded this version's start (deploy or recovery): the cause of what follows. */
  causeId: number | null;
  readonly scheduler: number;
  readonly limits: ServiceLimits;
  readonly deployedAt: string;
  state: ServiceState;
  handlers: readonly string[];
  usage: ServiceUsage;
  crash?: Crash;
  logs: LogEntry[];
}

const DEFAULT_CALL_TIMEOUT_MS = 5000;
const MAX_CALL_TIMEOUT_MS = 600_000;
const LOG_LINES_KEPT = 200;
const CLOSE_GRACE_MS = 5000;
/** A tenant's cooldown after its service stalled a scheduler: the first, the longest, and how long strikes are remembered. */
const COOLDOWN_FIRST_MS = 1000;
const COOLDOWN_MAX_MS = 300_000;
const COOLDOWN_MEMORY_MS = 600_000;
/** How long casts wait for their service to come back after its scheduler was replaced. */
const RECAST_WAIT_MS = 60_000;
const DEPLOY_KEYS = new Set(["tenant", "service", "code", "args", "limits", "supervision", "tags", "metadata", "grants"]);
const FINDINGS_RECORDED = 50;
// Services recovered at once when a kernel opens over existing state.
const RECOVERY_CONCURRENCY = 64;
const FAILURES_LISTED = 100;
const EMPTY_USAGE: ServiceUsage = Object.freeze({ messages: 0, cpuMs: 0, memoryBytes: 0, mailbox: 0, unhandled: 0, dropped: 0 });

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
    const kernel = new KernelImpl(opts, lock, engine);
    await kernel.start();
    return kernel;
  } catch (err) {
    await lock.release();
    throw err;
  }
}

class KernelImpl implements Kernel, SessionHost {
  readonly dataDir: string;
  readonly schedulers: number;
  private readonly opts: ResolvedOptions;
  private readonly lock: DataDirLock;
  private readonly pool: SchedulerPool;
  private readonly byTenant = new Map<string, Map<string, ServiceRecord>>();
  private readonly bySid = new Map<number, ServiceRecord>();
  private readonly placement = new Map<string, number>();
  private readonly deploying = new Set<string>();
  /** The highest version each service has ever had, so versions never repeat across restarts. */
  private readonly highestVersion = new Map<string, number>();
  /** Each service's circuit breaker, by tenant/service; a new version starts with a closed one. */
  private readonly breakers = new Map<string, CircuitBreaker>();
  private nextSid = 0;
  private closed: Promise<void> | undefined;
  private closing = false;
  private db: Store | undefined;
  private eventLog: EventLog | undefined;
  private io: ServiceIo | undefined;
  private registry: TenantRegistry | undefined;
  private authority: Authority | undefined;
  private vaultImpl: Vault | undefined;
  private tenantLifecycle: TenantLifecycle | undefined;
  private readonly openedAt = Date.now();

  /** Each tenant's instance as its scheduler last reported it: linear memory, maximum, bytes of waiting messages. */
  private readonly tenantMemory = new Map<string, { readonly bytes: number; readonly cap: number; readonly queued: number }>();

  constructor(opts: ResolvedOptions, lock: DataDirLock, engine: EngineImage) {
    this.opts = opts;
    this.lock = lock;
    this.dataDir = lock.path;
    this.schedulers = opts.schedulers;
    this.pool = new SchedulerPool(
      opts.schedulers,
      engine,
      {
        onMessage: (_index, msg) => this.onSchedulerMessage(msg),
        onSchedulerDied: (index, error, culprit, unstarted) => this.onSchedulerDied(index, error, culprit, unstarted),
      },
      500,
    );
  }

  get store(): { readonly kind: "sqlite" | "postgres"; readonly location: string } {
    const db = this.storeOrThrow();
    return { kind: db.kind, location: db.location };
  }

  private storeOrThrow(): Store {
    if (!this.db) throw new SoloError("SOLO_ERR_KERNEL_CLOSED", "the kernel is not open");
    return this.db;
  }

  private get log(): EventLog {
    if (!this.eventLog) throw new SoloError("SOLO_ERR_KERNEL_CLOSED", "the kernel is not open");
    return this.eventLog;
  }

  async start(): Promise<void> {
    try {
      this.db = await openStore(this.dataDir, this.opts.database);
      this.eventLog = await EventLog.open(this.db);
      this.io = new ServiceIo(this.db, this.eventLog, () => this.vaultOrThrow(), this.opts.fetch);
      this.registry = new TenantRegistry(await this.db.tenants(), this.opts.tenantLimits);
      const now = (): number => this.opts.clock.now();
      this.authority = new Authority(this.eventLog, new TokenTable(await this.db.tokens()), now, (name) => this.tenantsOrThrow().has(name));
      const { dataDir, masterKey } = { dataDir: this.dataDir, masterKey: this.opts.masterKey };
      this.vaultImpl = await Vault.open(
        this.db,
        this.eventLog,
        masterKey === undefined ? masterKeyFile(dataDir) : givenMasterKey(masterKey),
      );
      const { db, eventLog, registry, authority } = {
        db: this.db,
        eventLog: this.eventLog,
        registry: this.registry,
        authority: this.authority,
      };
      this.tenantLifecycle = new TenantLifecycle({
        assertOpen: () => this.assertOpen(),
        registry,
        log: eventLog,
        store: db,
        authority,
        defaults: this.opts.tenantLimits,
        budgetBytes: this.opts.memoryBudgetBytes,
        instanceCap: (tenant) => this.tenantMemory.get(tenant)?.cap ?? 0,
        now,
        busy: (tenant) => [...this.deploying].some((k) => k.startsWith(`${tenant}/`)),
        stopServices: (tenant) => this.stopTenantServices(tenant),
        forget: (tenant) => this.forgetTenant(tenant),
        limitsChanged: (tenant) => {
          const index = this.placement.get(tenant);
          const memoryBytes = this.tenantsOrThrow().limits(tenant).memoryBytes;
          if (index !== undefined) this.pool.post(index, { op: "tenantMemory", tenant, memoryBytes });
        },
      });
      for (const v of await this.db.latestVersions()) this.highestVersion.set(`${v.tenant}/${v.service}`, v.version);
      await this.pool.ready();
      await this.recover();
    } catch (err) {
      await this.pool.close(0);
      await this.vaultImpl?.close();
      await this.eventLog?.close();
      await this.db?.close();
      throw err;
    }
  }

  // Every service deployed and not killed starts again, from its latest version's code, args and
  // limits; its durable data comes back through solo.storage. Recovery of one service failing
  // (its init throws now, say) leaves it listed as crashed and does not stop the others.
  private async recover(): Promise<void> {
    const started = performance.now();
    const deployments = this.recoveryOrder(await this.storeOrThrow().activeDeployments());
    const up: ServiceRecord[] = [];
    const down: Array<{ d: DeploymentRecord; error: SoloError }> = [];
    let next = 0;
    const worker = async (): Promise<void> => {
      while (next < deployments.length) {
        const d = deployments[next++] as DeploymentRecord;
        let limits = this.opts.limits;
        let supervision = this.opts.supervision;
        try {
          // Limits are re-resolved over today's defaults: a field added since has its default.
          limits = resolveLimits(JSON.parse(d.limits) as unknown, this.opts.limits);
          supervision = resolveSupervision(d.supervision ? (JSON.parse(d.supervision) as unknown) : undefined, this.opts.supervision);
          up.push(
            await this.launch({
              ...d,
              limits,
              supervision,
              meta: metaOf(d),
              grants: grantsOf(d),
              deployedAt: new Date(d.deployedAt).toISOString(),
            }),
          );
        } catch (err) {
          const error = SoloError.from(err);
          down.push({ d, error });
          this.registerCrashed(d, limits, supervision, error);
        }
      }
    };
    await Promise.all(Array.from({ length: Math.min(RECOVERY_CONCURRENCY, deployments.length) }, worker));
    const kernelEvent = await this.log.append({
      tenant: null,
      type: "kernel_started",
      payload: {
        store: this.storeOrThrow().kind,
        schedulers: this.schedulers,
        recovered: up.length,
        failed: down.length,
        failures: down.slice(0, FAILURES_LISTED).map(({ d, error }) => ({
          tenant: d.tenant,
          service: d.service,
          version: d.version,
          reason: error.reason,
          message: error.message.slice(0, 200),
        })),
        durationMs: Math.round(performance.now() - started),
      },
    });
    const inputs: EventInput[] = [];
    for (const r of up) {
      inputs.push({
        tenant: r.tenant,
        type: "service_started",
        subject: r.service,
        payload: { version: r.version, recovered: true },
        causationId: kernelEvent.id,
      });
    }
    for (const { d, error } of down) {
      inputs.push({
        tenant: d.tenant,
        type: "service_crashed",
        subject: d.service,
        payload: { version: d.version, phase: "recovery", crash: crashOf(error) },
        causationId: kernelEvent.id,
      });
    }
    if (inputs.length === 0) return;
    const { events } = await this.log.write([], inputs);
    for (let i = 0; i < up.length; i++) {
      (up[i] as ServiceRecord).causeId = (events[i] as SoloEvent).id;
      this.afterStart(up[i] as ServiceRecord);
    }
    // A service that could not start is supervised like any crash: restarted, or failed.
    for (let i = 0; i < down.length; i++) {
      const { d } = down[i] as { d: DeploymentRecord };
      const r = this.byTenant.get(d.tenant)?.get(d.service);
      if (r) this.supervise(r, (events[up.length + i] as SoloEvent).id);
    }
  }

  // Tenants are placed before anything starts (largest first, each on the least loaded
  // scheduler), and their services are interleaved, so every scheduler has work throughout: in
  // store order all services in flight would belong to one tenant, hence to one scheduler.
  private recoveryOrder(deployments: readonly DeploymentRecord[]): DeploymentRecord[] {
    const byTenant = new Map<string, DeploymentRecord[]>();
    for (const d of deployments) {
      const list = byTenant.get(d.tenant);
      if (list) list.push(d);
      else byTenant.set(d.tenant, [d]);
    }
    const lists = [...byTenant.values()].sort((a, b) => b.length - a.length);
    const load = new Array<number>(this.schedulers).fill(0);
    for (const list of lists) {
      const tenant = (list[0] as DeploymentRecord).tenant;
      let best = 0;
      for (let i = 1; i < load.length; i++) if ((load[i] ?? 0) < (load[best] ?? 0)) best = i;
      this.placement.set(tenant, best);
      load[best] = (load[best] ?? 0) + list.length;
    }
    const order: DeploymentRecord[] = [];
    for (let i = 0; order.length < deployments.length; i++) {
      for (const list of lists) {
        const d = list[i];
        if (d) order.push(d);
      }
    }
    return order;
  }

  private registerCrashed(d: DeploymentRecord, limits: ServiceLimits, supervision: SupervisionPolicy, error: SoloError): void {
    const crash = crashOf(error);
    const record: ServiceRecord = {
      tenant: d.tenant,
      service: d.service,
      sid: ++this.nextSid,
      version: d.version,
      code: d.code,
      args: d.args,
      meta: metaOf(d),
      supervision,
      grants: grantsOf(d),
      restarts: 0,
      restartTimes: [],
      causeId: null,
      scheduler: -1,
      limits,
      deployedAt: new Date(d.deployedAt).toISOString(),
      state: "crashed",
      handlers: [],
      usage: EMPTY_USAGE,
      crash,
      logs: [],
    };
    this.bySid.set(record.sid, record);
    this.named(d.tenant).set(d.service, record);
  }

  private named(tenant: string): Map<string, ServiceRecord> {
    let named = this.byTenant.get(tenant);
    if (!named) {
      named = new Map();
      this.byTenant.set(tenant, named);
    }
    return named;
  }

  deploy(spec: DeploySpec): Promise<Deployment> {
    return this.deployAs(SYSTEM, spec);
  }

  async deployAs(p: Principal, spec: DeploySpec, via?: Via): Promise<Deployment> {
    this.assertOpen();
    const { tenant, service, fields } = checkIdentity(spec);
    // Only the embedder creates a tenant by deploying into it; a token needs tenants.create.
    if (p.kind === "system") await this.lifecycle().ensure(tenant);
    else if (!this.tenantsOrThrow().has(tenant)) throw this.tenantsOrThrow().missing(tenant);
    this.checkCooldown(tenant);
    const key = `${tenant}/${service}`;
    const version = (this.highestVersion.get(key) ?? 0) + 1;
    try {
      const { code, args, limits, supervision, meta, grants } = this.checkDeploy(fields);
      await this.checkGrantable(p, tenant, service, grants, via);
      const previous = this.byTenant.get(tenant)?.get(service);
      if (this.deploying.has(key) || previous?.state === "running") {
        throw new SoloError(
          "SOLO_ERR_DEPLOY_EXISTS",
          previous?.state === "running"
            ? `service ${service} already exists in tenant ${tenant} (version ${previous.version})`
            : `service ${service} is being deployed in tenant ${tenant}`,
          {
            tenant,
            service,
            hint: "use swap() to replace its code keeping its state, or kill it first",
          },
        );
      }
      this.checkTenantRoom(tenant, service);
      const { stripped, findings } = this.analyzeCode(code, service, "deploy");
      if (this.lifecycle().isDeleting(tenant)) throw tenantBusy(tenant, "is being deleted");
      // Taken now, so a number never comes back even if the outcome of the write is unknown.
      this.highestVersion.set(key, version);
      this.deploying.add(key);
      // A new version replaces a crashed, restarting or failed one: the supervisor stands down.
      const wasRestarting = previous?.state === "restarting";
      const restartDue = previous?.restartAt ?? 0;
      if (previous && wasRestarting) {
        this.cancelRestart(previous);
        previous.state = "crashed";
      }
      try {
        const deployedAt = Date.now();
        const record = await this.launch(
          {
            tenant,
            service,
            version,
            code,
            stripped,
            args,
            limits,
            supervision,
            meta,
            grants,
            deployedAt: new Date(deployedAt).toISOString(),
          },
          previous,
        );
        // Acknowledged only once the deployment and its event are durable; if they cannot be
        // written, the new instance is stopped and nothing is left half-started.
        let event: SoloEvent;
        try {
          const { events } = await this.log.write(
            [
              {
                t: "deployment.put",
                deployment: {
                  tenant,
                  service,
                  version,
                  code,
                  args,
                  limits: JSON.stringify(limits),
                  supervision: JSON.stringify(supervision),
                  ...(meta !== NO_META ? { meta: JSON.stringify(meta) } : {}),
                  grants: JSON.stringify(grantsData(grants)),
                  deployedAt,
                },
              },
            ],
            [
              {
                tenant,
                type: "service_deployed",
                subject: service,
                payload: {
                  version,
                  codeBytes: Buffer.byteLength(code),
                  codeSha256: hash("sha256", code),
                  handlers: [...record.handlers],
                  findings: findings.slice(0, FINDINGS_RECORDED),
                },
              },
            ],
          );
          event = events[0] as SoloEvent;
        } catch (err) {
          await this.pool.request(record.scheduler, (rid) => ({ op: "kill", rid, sid: record.sid })).promise.catch(() => undefined);
          this.bySid.delete(record.sid);
          if (this.byTenant.get(tenant)?.get(service) === record) {
            if (previous) {
              this.bySid.set(previous.sid, previous);
              this.named(tenant).set(service, previous);
            } else this.byTenant.get(tenant)?.delete(service);
          }
          throw err;
        }
        record.causeId = event.id;
        this.afterStart(record);
        this.highestVersion.set(key, version);
        this.breakers.delete(key);
        return { tenant, service, version, findings };
      } catch (err) {
        // The new version did not start: the one it was to replace goes back to its supervisor.
        if (previous && wasRestarting && this.byTenant.get(tenant)?.get(service) === previous) {
          const cause = previous.causeId;
          this.scheduleRestart(previous, Math.max(0, restartDue - this.opts.clock.now()), async () => cause);
        }
        throw err;
      } finally {
        this.deploying.delete(key);
      }
    } catch (err) {
      const error = SoloError.from(err);
      // Recorded before the caller hears of it; a store that cannot record it fails the same way.
      if (error.reason !== "SOLO_ERR_KERNEL_CLOSED" && !error.reason.startsWith("SOLO_ERR_STORE_")) {
        await this.log
          .append({
            tenant,
            type: "service_deployment_failed",
            subject: service,
            payload: { version, reason: error.reason, message: error.message.slice(0, 1000), details: clipDetails(error.details) },
          })
          .catch(() => undefined);
      }
      throw error;
    }
  }

  /**
   * Starts one version on its tenant's scheduler and runs init; on success the record is
   * registered under its name (replacing `previous`). Throws the deploy error otherwise.
   */
  private async launch(
    spec: LaunchSpec,
    previous?: ServiceRecord,
    adopt?: { readonly state: string; readonly timers: readonly PendingTimer[] },
    revive = false,
  ): Promise<ServiceRecord> {
    const { tenant, service, version, code, args, limits, supervision, deployedAt, meta, grants } = spec;
    const stripped = spec.stripped ?? stripTypes(code, `${service}.ts`);
    const filename = stripped === code ? `${service}.js` : `${service}.ts`;
    const scheduler = this.place(tenant);
    const record: ServiceRecord = {
      tenant,
      service,
      sid: ++this.nextSid,
      version,
      code,
      args,
      meta,
      supervision,
      grants,
      restarts: 0,
      restartTimes: [],
      causeId: null,
      scheduler,
      limits,
      deployedAt,
      // Counted as running (for placement) from the start; it is reachable by name only once
      // init has succeeded, and a failed deploy removes it.
      state: "running",
      handlers: [],
      usage: EMPTY_USAGE,
      logs: [],
    };
    // Until init succeeds the new record is known only by its sid: the previous version (crashed
    // or stopped) stays visible under the name, and a failed deploy leaves nothing behind. A kill
    // meanwhile finds it under `starting`.
    this.bySid.set(record.sid, record);
    const key = `${tenant}/${service}`;
    this.starting.set(key, record);
    try {
      const { promise } = this.pool.request(scheduler, (rid) => ({
        op: "deploy",
        rid,
        sid: record.sid,
        tenant,
        service,
        version,
        filename,
        code: stripped,
        args,
        limits,
        grants,
        tenantMemoryBytes: this.tenantsOrThrow().limits(tenant).memoryBytes,
        ...(adopt !== undefined ? { state: adopt.state, timers: adopt.timers } : {}),
      }));
      const reply = JSON.parse(await promise) as { handlers: string[] };
      // Killed while it was starting (its init stopped, or it got through just before), or, for a
      // revival, the version it revives was killed meanwhile: the new instance goes too.
      if (record.killed || (revive && previous?.killed)) {
        record.killed = true;
        await this.stopOnScheduler(record);
        throw new SoloError("SOLO_ERR_SERVICE_STOPPED", `service ${service} was killed while it was starting`, { tenant, service });
      }
      record.handlers = Object.freeze([...reply.handlers]);
      if (previous) {
        this.cancelRestart(previous);
        this.cancelSwapWatch(previous);
        this.bySid.delete(previous.sid);
      }
      this.named(tenant).set(service, record);
      return record;
    } catch (err) {
      this.bySid.delete(record.sid);
      if (record.killed) {
        throw new SoloError("SOLO_ERR_SERVICE_STOPPED", `service ${service} was killed while it was starting`, { tenant, service });
      }
      // Its own start ran past the hard limit and the watchdog replaced the scheduler: a CPU breach.
      if (err instanceof SoloError && err.reason === "SOLO_ERR_SCHEDULER_FAILED" && err.details.culpritSid === record.sid) {
        throw deployFailure({
          kind: "cpu_limit",
          reason: "SOLO_ERR_LIMIT_CPU",
          message: "starting it ran past its hard CPU limit inside code the engine could not interrupt; its scheduler was replaced",
        });
      }
      throw err;
    } finally {
      if (this.starting.get(key) === record) this.starting.delete(key);
    }
  }

  /** Versions being started (deploy, restart, rollback), by tenant/service, until init answers. */
  private readonly starting = new Map<string, ServiceRecord>();

  call(tenant: string, service: string, request?: unknown, options: CallOptions = {}): Promise<unknown> {
    try {
      this.assertOpen();
      const record = this.running(tenant, service);
      this.checkCooldown(record.tenant);
      const { timeoutMs, signal } = checkCallOptions(options);
      const payload = request === undefined ? "" : encodeJson(request, "the request", record.limits.messageBytes);
      if (signal?.aborted) throw canceled(record);
      const breaker = this.breakerFor(record);
      const admission = breaker.admit(this.opts.clock.now());
      if (!admission.ok) throw circuitOpen(record, admission.retryAfterMs);
      return this.send(record, payload, timeoutMs, signal).then(
        (reply) => {
          this.settleBreaker(record, breaker, admission.trial, "success", undefined);
          return reply;
        },
        (err: unknown) => {
          this.settleBreaker(record, breaker, admission.trial, breakerOutcome(err), err);
          throw err;
        },
      );
    } catch (err) {
      return Promise.reject(err);
    }
  }

  async cast(tenant: string, service: string, message?: unknown): Promise<void> {
    this.assertOpen();
    const record = this.running(tenant, service);
    this.checkCooldown(record.tenant);
    const payload = message === undefined ? "" : encodeJson(message, "the message", record.limits.messageBytes);
    const breaker = this.breakerFor(record);
    const now = this.opts.clock.now();
    if (breaker.state(now) !== "closed") throw circuitOpen(record, Math.max(0, breaker.admitPeek(now)));
    if (!this.pool.cast(record.scheduler, record.sid, payload, record.tenant, this.tenantsOrThrow().limits(record.tenant).memoryBytes)) {
      throw new SoloError(
        "SOLO_ERR_MAILBOX_FULL",
        `tenant ${record.tenant}'s casts on their way to its services hold its memory limit's worth of bytes; this one was not sent`,
        {
          tenant: record.tenant,
          service: record.service,
          resource: "queued_bytes",
          hint: "its services cannot keep up with the casts: send fewer or smaller ones, or wait for them to catch up",
        },
      );
    }
  }

  async kill(tenant: string, service: string): Promise<void> {
    this.assertOpen();
    // A version still starting (its init running, perhaps stuck) is stopped too: its start fails.
    const starting = this.starting.get(`${checkTenant(tenant)}/${checkService(service)}`);
    if (starting && !starting.killed) {
      starting.killed = true;
      await this.stopOnScheduler(starting);
    }
    if (starting && !this.byTenant.get(tenant)?.has(service)) return;
    const record = this.lookup(tenant, service);
    // Stopped and durably killed: done. Killed but not recorded (the store failed): write it again.
    // Stopped by a restart that is starting it again: killed now, and the restart stands down.
    if (record.state === "stopped" && (!record.killed || record.killDurable) && !starting) return;
    const was = record.killed ? "stopped" : record.state;
    record.killed = true;
    this.cancelRestart(record);
    this.cancelSwapWatch(record);
    if (record.state === "running") {
      await this.stopOnScheduler(record);
    }
    record.state = "stopped";
    this.wake(record);
    // A crashed service is still deployed (a restart would bring it back) until it is killed.
    await this.log.write(
      [{ t: "deployment.kill", tenant: record.tenant, service: record.service }],
      [
        {
          tenant: record.tenant,
          type: "service_killed",
          subject: record.service,
          payload: { version: record.version, was },
          causationId: record.causeId,
        },
      ],
    );
    record.killDurable = true;
  }

  // Asks the service's scheduler to stop it. If the scheduler is replaced meanwhile (the watchdog
  // stopped another service's runaway, or this one's), the service went with it: stopped as asked.
  private async stopOnScheduler(r: ServiceRecord): Promise<void> {
    try {
      await this.pool.request(r.scheduler, (rid) => ({ op: "kill", rid, sid: r.sid })).promise;
    } catch (err) {
      if (!(err instanceof SoloError && err.reason === "SOLO_ERR_SCHEDULER_FAILED")) throw err;
    }
  }

  events(query?: EventQuery): Promise<EventPage> {
    return this.eventsScoped(query, undefined);
  }

  private async eventsScoped(query: EventQuery | undefined, scope: { tenant: string; floor: number } | undefined): Promise<EventPage> {
    this.assertOpen();
    const checked = checkEventQuery(query);
    const limit = checked.limit;
    let filter = checked.filter;
    if (scope) {
      filter = { ...filter, tenant: scope.tenant };
      if (filter.order === "asc" || filter.afterId !== undefined)
        filter = { ...filter, afterId: Math.max(filter.afterId ?? 0, scope.floor) };
      else filter = { ...filter, afterId: scope.floor };
    }
    const rows = await this.log.query(filter);
    const events = rows.slice(0, limit);
    const last = events[events.length - 1];
    return { events, cursor: rows.length > limit && last ? encodeCursor(last.id, filter.order) : null };
  }

  subscribe(options?: SubscribeOptions): AsyncIterableIterator<SoloEvent> {
    this.assertOpen();
    const { filter, fromId, signal } = checkSubscribe(options);
    return this.log.follow(filter, fromId ?? this.log.headId + 1, signal);
  }

  verify(): Promise<VerifyReport> {
    try {
      this.assertOpen();
      return this.log.verify();
    } catch (err) {
      return Promise.reject(err);
    }
  }

  list(tenant: string, filter: { readonly tag?: string } = {}): ServiceInfo[] {
    const services = this.byTenant.get(checkTenant(tenant));
    const tag = filter?.tag;
    if (tag !== undefined && (typeof tag !== "string" || !TAG_PATTERN.test(tag))) {
      throw new SoloError("SOLO_ERR_REQUEST_INVALID", "list: tag must be a valid tag", { field: "tag" });
    }
    if (!services) return [];
    const out: ServiceInfo[] = [];
    for (const r of services.values()) if (tag === undefined || r.meta.tags.includes(tag)) out.push(this.info(r));
    return out.sort((a, b) => (a.service < b.service ? -1 : a.service > b.service ? 1 : 0));
  }

  status(tenant: string, service: string): ServiceInfo {
    return this.info(this.lookup(tenant, service));
  }

  private info(r: ServiceRecord): ServiceInfo {
    const b = this.breakers.get(`${r.tenant}/${r.service}`);
    return infoOf(r, b ? { state: b.state(this.opts.clock.now()), consecutiveFailures: b.consecutiveFailures } : CLOSED_BREAKER);
  }

  tenantUsage(tenant: string): TenantUsage {
    const t = checkTenant(tenant);
    let services = 0;
    let running = 0;
    let heapBytes = 0;
    let mailbox = 0;
    let dropped = 0;
    for (const r of this.byTenant.get(t)?.values() ?? []) {
      if (r.state === "stopped") continue;
      services++;
      if (r.state === "running") {
        running++;
        heapBytes += r.usage.memoryBytes;
        mailbox += r.usage.mailbox;
      }
      dropped += r.usage.dropped;
    }
    const memoryBytes = this.tenantMemory.get(t)?.bytes ?? 0;
    const queuedBytes = this.tenantMemory.get(t)?.queued ?? 0;
    return { tenant: t, services, running, memoryBytes, heapBytes, queuedBytes, mailbox, dropped, limits: this.tenantsOrThrow().limits(t) };
  }

  // Deploy refuses a service the tenant has no room for: a name beyond its service count, or any
  // new service while its services already hold its memory.
  private checkTenantRoom(tenant: string, service: string): void {
    const limits = this.tenantsOrThrow().limits(tenant);
    const usage = this.tenantUsage(tenant);
    const replacing = this.byTenant.get(tenant)?.get(service);
    // Deploys of new names still starting count too, so concurrent deploys cannot overshoot.
    const starting = [...this.deploying].filter(
      (k) => k.startsWith(`${tenant}/`) && k !== `${tenant}/${service}` && !this.byTenant.get(tenant)?.has(k.slice(tenant.length + 1)),
    ).length;
    const others = usage.services + starting - (replacing && replacing.state !== "stopped" ? 1 : 0);
    if (others >= limits.maxServices) {
      throw new SoloError("SOLO_ERR_TENANT_LIMIT", `tenant ${tenant} already has ${others} services, its limit`, {
        tenant,
        limit: limits.maxServices,
        resource: "services",
        hint: "kill services the tenant no longer needs",
      });
    }
  }

  // A service failed because its tenant's memory was full: the engine refused to grow the tenant's
  // instance past its limit. The service crashed (and is supervised as any crash); the record says
  // which tenant limit it met and what its neighbours held, so an operator can see who fills it.
  private onTenantFull(r: ServiceRecord, largest: ReadonlyArray<readonly [string, number]>): void {
    const holders = largest.map(([service, bytes]) => ({ service, bytes }));
    const limit = this.tenantsOrThrow().limits(r.tenant).memoryBytes;
    void this.record({
      tenant: r.tenant,
      type: "resource_violation",
      subject: r.service,
      payload: {
        version: r.version,
        resource: "tenant_memory",
        limit,
        used: this.tenantMemory.get(r.tenant)?.bytes ?? limit,
        largest: holders,
      },
      causationId: r.causeId,
    });
  }

  async restart(tenant: string, service: string): Promise<Deployment> {
    this.assertOpen();
    const r = this.lookup(tenant, service);
    this.checkCooldown(r.tenant);
    if (r.state === "stopped") {
      throw new SoloError("SOLO_ERR_SERVICE_STOPPED", `service ${r.service} was killed; deploy it to start it again`, {
        tenant: r.tenant,
        service: r.service,
      });
    }
    const key = this.claim(r);
    try {
      this.cancelRestart(r);
      if (r.state === "running") {
        await this.stopOnScheduler(r);
        r.state = "stopped";
      }
      // An operator's restart starts the intensity count afresh; a swap's rollback window goes on.
      const watch = r.swapWatch;
      r.swapWatch = undefined;
      let fresh: ServiceRecord;
      try {
        // As a revival: a kill while it starts again stops it for good.
        fresh = await this.launch(r, r, undefined, true);
      } catch (err) {
        if (r.killed) throw err;
        // It did not come back (its init fails now): a crash like any other, for its supervisor
        // (or, inside a swap's window, for the watchdog).
        r.swapWatch = watch;
        r.state = "crashed";
        r.crash = crashOf(SoloError.from(err));
        this.crashed(r, r.crash, "restart");
        throw err;
      }
      fresh.restarts = r.restarts + 1;
      fresh.swapWatch = watch;
      const event = await this.log.append({
        tenant: r.tenant,
        type: "service_restarted",
        subject: r.service,
        payload: { version: r.version, restarts: fresh.restarts, by: "operator" },
        causationId: r.causeId,
      });
      fresh.causeId = event.id;
      this.afterStart(fresh);
      return { tenant: r.tenant, service: r.service, version: r.version, findings: [] };
    } finally {
      this.deploying.delete(key);
    }
  }

  logs(tenant: string, service: string): LogEntry[] {
    return [...this.lookup(tenant, service).logs];
  }

  async versions(tenant: string, service: string): Promise<ServiceVersion[]> {
    const { history, current } = await this.history(tenant, service);
    return history.map((d) => ({
      version: d.version,
      deployedAt: new Date(d.deployedAt).toISOString(),
      codeBytes: Buffer.byteLength(d.code),
      sha256: hash("sha256", d.code),
      grants: grantsData(grantsOf(d)),
      current: d.version === current,
    }));
  }

  async source(tenant: string, service: string, version?: number): Promise<ServiceSource> {
    checkVersion("source", version);
    const { history, current } = await this.history(tenant, service);
    const want = version ?? current;
    const d = history.find((h) => h.version === want);
    if (!d) {
      throw new SoloError("SOLO_ERR_VERSION_NOT_FOUND", `service ${service} has no version ${want}`, {
        tenant,
        service,
        versions: history.map((h) => h.version),
        hint: "versions(tenant, service) lists the versions there are",
      });
    }
    return {
      tenant: d.tenant,
      service: d.service,
      version: d.version,
      deployedAt: new Date(d.deployedAt).toISOString(),
      sha256: hash("sha256", d.code),
      code: d.code,
    };
  }

  // A service's stored versions, and the one it runs now: the registry's, else (killed, and the
  // kernel reopened since) the latest. A tenant's deletion removes its history with it.
  private async history(tenant: string, service: string): Promise<{ history: DeploymentRecord[]; current: number }> {
    this.assertOpen();
    const t = checkTenant(tenant);
    const s = checkService(service);
    const history = await this.storeOrThrow().deploymentHistory(t, s);
    const last = history.at(-1);
    if (!last) {
      throw serviceNotFound(t, s);
    }
    return { history, current: this.byTenant.get(t)?.get(s)?.version ?? last.version };
  }

  close(): Promise<void> {
    this.closed ??= (async () => {
      for (const r of this.bySid.values()) {
        this.cancelRestart(r);
        this.cancelSwapWatch(r);
      }
      // Calls waiting for a service to come back are told now (this.closed is set once this
      // function has returned its promise, so they look at `closing`).
      this.closing = true;
      for (const waiting of [...this.revivals.values()]) for (const check of [...waiting]) check();
      try {
        await this.vaultImpl?.close();
        await this.pool.close(CLOSE_GRACE_MS);
        for (const r of this.bySid.values()) if (r.state === "running" || r.state === "restarting") r.state = "stopped";
        // Denials still being counted are written with their counts.
        await this.authority?.denials.flush();
        await this.eventLog
          ?.append({ tenant: null, type: "kernel_stopped", payload: { uptimeMs: Date.now() - this.openedAt } })
          .catch((err: unknown) => console.error("solo: recording kernel_stopped failed:", err));
        await this.eventLog?.close();
        await this.db?.close();
      } finally {
        await this.lock.release();
      }
    })();
    return this.closed;
  }

  stats(): KernelStats {
    this.assertOpen();
    const now = this.opts.clock.now();
    const tenants: Array<KernelStats["tenants"][number]> = [];
    for (const [tenant, named] of this.byTenant) {
      const services: Record<ServiceState, number> = { running: 0, restarting: 0, crashed: 0, failed: 0, stopped: 0 };
      let heapBytes = 0;
      let mailbox = 0;
      let restarts = 0;
      let dropped = 0;
      for (const r of named.values()) {
        services[r.state]++;
        restarts += r.restarts;
        dropped += r.usage.dropped;
        if (r.state === "running") {
          heapBytes += r.usage.memoryBytes;
          mailbox += r.usage.mailbox;
        }
      }
      const memoryBytes = this.tenantMemory.get(tenant)?.bytes ?? 0;
      const limitBytes = this.tenantsOrThrow().limits(tenant).memoryBytes;
      tenants.push({ tenant, services, memoryBytes, limitBytes, heapBytes, mailbox, restarts, dropped });
    }
    const breakers = { closed: 0, open: 0, half_open: 0 };
    for (const b of this.breakers.values()) {
      const state = b.state(now);
      if (state === "closed") breakers.closed++;
      else if (state === "open") breakers.open++;
      else breakers.half_open++;
    }
    const log = this.log;
    const schedulers = this.pool.steps().map((step, index) => {
      const r = step ? this.bySid.get(step.sid) : undefined;
      return {
        index,
        running: step && r ? { tenant: r.tenant, service: r.service, forMs: Math.max(0, Date.now() - step.startedAt) } : null,
      };
    });
    return {
      tenants,
      memory: {
        budgetBytes: this.opts.memoryBudgetBytes,
        committedBytes: this.tenantsOrThrow().committedBytes(undefined, (t) => this.tenantMemory.get(t)?.cap ?? 0),
      },
      schedulers,
      breakers,
      log: { headId: log.headId, queued: log.queued, commits: log.counts.commits, ops: log.counts.ops },
      verifications: this.auth().verifications,
      denials: { seen: this.auth().denials.seen, written: this.auth().denials.written },
    };
  }

  observe(observer: KernelObserver): () => void {
    this.assertOpen();
    return this.log.onCommit((ms, ops) => observer.commit?.(ms, ops));
  }

  // ---- principals, tenants, secrets ----------------------------------------------------------

  // A token cannot give a service more than it holds: each grant needs its permission.
  private async checkGrantable(p: Principal, tenant: string, service: string, grants: ServiceGrants, via?: Via): Promise<void> {
    for (const need of grantPermissions(grants)) await this.auth().permit(p, { operation: "deploy", tenant, subject: service, via }, need);
  }

  // A service's use of a power it was not granted, recorded at most once a minute per service
  // and grant (with the count since), so a loop cannot drown the log.
  private readonly grantDenials = new Map<string, { count: number; at: number }>();

  private grantDenied(r: ServiceRecord, grant: string, detail: string): void {
    const key = `${r.sid}\0${grant}`;
    const now = this.opts.clock.now();
    const seen = this.grantDenials.get(key);
    if (seen && now - seen.at < 60_000) {
      seen.count++;
      return;
    }
    const count = (seen?.count ?? 0) + 1;
    this.grantDenials.set(key, { count: 0, at: now });
    if (grant === "secrets") {
      void this.record({
        tenant: r.tenant,
        type: "secret_access_denied",
        subject: detail,
        payload: { name: detail, service: r.service, version: r.version, attempts: count },
        causationId: r.causeId,
      });
      return;
    }
    void this.record({
      tenant: r.tenant,
      type: "grant_denied",
      subject: r.service,
      payload: { version: r.version, grant, detail, attempts: count },
      causationId: r.causeId,
    });
  }

  private tenantsOrThrow(): TenantRegistry {
    if (!this.registry) throw new SoloError("SOLO_ERR_KERNEL_CLOSED", "the kernel is not open");
    return this.registry;
  }

  private auth(): Authority {
    if (!this.authority) throw new SoloError("SOLO_ERR_KERNEL_CLOSED", "the kernel is not open");
    return this.authority;
  }

  private vaultOrThrow(): Vault {
    if (!this.vaultImpl) throw new SoloError("SOLO_ERR_KERNEL_CLOSED", "the kernel is not open");
    return this.vaultImpl;
  }

  as(token: string | undefined, via?: Via): KernelSession {
    return new Session(this, token, via);
  }

  authorize(token: unknown, target: Target, need: Permission | null): Promise<TokenPrincipal> {
    try {
      this.assertOpen();
      return this.auth().authorize(token, target, need);
    } catch (err) {
      return Promise.reject(err);
    }
  }

  decide(token: unknown, target: Target, need: Permission): Decision {
    try {
      this.assertOpen();
    } catch (error) {
      return { ok: false, error };
    }
    return this.auth().decide(token, target, need);
  }

  reach(token: unknown): { readonly valid: boolean; readonly tenant: string | null } {
    if (!this.authority || this.closed) return { valid: false, tenant: null };
    try {
      const p = this.authority.tokens.verify(token, this.opts.clock.now());
      return { valid: true, tenant: p.tenant };
    } catch {
      return { valid: false, tenant: null };
    }
  }

  verifyToken(token: unknown, operation: string, via?: Via): Promise<TokenPrincipal> {
    try {
      this.assertOpen();
      return this.auth().verifyToken(token, operation, via);
    } catch (err) {
      return Promise.reject(err);
    }
  }

  permit(p: TokenPrincipal, target: Target, need: Permission | null): Promise<void> {
    return this.auth().permit(p, target, need);
  }

  denied(err: unknown, target: Target, principal?: TokenPrincipal, token?: unknown): Promise<void> {
    return this.auth().denied(err, target, principal, token);
  }

  eventsFloor(tenant: string): number {
    return this.tenantsOrThrow().row(tenant)?.eventsAfter ?? this.log.headId;
  }

  tokenInfo(id: string): TokenInfo {
    const found = this.auth().tokens.info(id, this.opts.clock.now());
    if (!found) throw new SoloError("SOLO_ERR_TOKEN_NOT_FOUND", `no token ${id}`, { tokenId: id });
    return found;
  }

  grantToken(p: Principal, spec: unknown, operation: "tokens.grant" | "tokens.attenuate"): Promise<GrantedToken> {
    try {
      this.assertOpen();
      return this.auth().grant(p, spec, operation);
    } catch (err) {
      return Promise.reject(err);
    }
  }

  listTokens(p: Principal, tenant?: string | null): TokenInfo[] {
    this.assertOpen();
    if (tenant !== undefined && tenant !== null) checkTenant(tenant);
    return this.auth().list(p, tenant);
  }

  revokeToken(p: Principal, id: unknown, via?: Via): Promise<{ readonly revoked: readonly string[] }> {
    try {
      this.assertOpen();
      return this.auth().revoke(p, id, via);
    } catch (err) {
      return Promise.reject(err);
    }
  }

  readonly tokens: TokensApi = {
    grant: (spec) => this.grantToken(SYSTEM, spec, "tokens.grant"),
    list: async (filter) => this.listTokens(SYSTEM, filter?.tenant),
    revoke: (id) => this.revokeToken(SYSTEM, id),
  };

  readonly tenants: TenantsApi = {
    create: (name, options) => this.lifecycle().create(name, options),
    list: () => this.lifecycle().list(),
    get: (name) => this.lifecycle().get(name),
    update: (name, limits) => this.lifecycle().update(name, limits),
    delete: (name) => this.lifecycle().delete(name),
  };

  private async stopTenantServices(tenant: string): Promise<number> {
    const services = [...(this.byTenant.get(tenant)?.values() ?? [])];
    for (const r of services) if (r.state !== "stopped" || !r.killDurable) await this.kill(tenant, r.service);
    return services.length;
  }

  private forgetTenant(tenant: string): void {
    for (const r of this.byTenant.get(tenant)?.values() ?? []) {
      this.bySid.delete(r.sid);
      this.breakers.delete(`${tenant}/${r.service}`);
      this.highestVersion.delete(`${tenant}/${r.service}`);
    }
    this.byTenant.delete(tenant);
    this.placement.delete(tenant);
    this.tenantMemory.delete(tenant);
    this.cooldowns.delete(tenant);
  }

  private lifecycle(): TenantLifecycle {
    if (!this.tenantLifecycle) throw new SoloError("SOLO_ERR_KERNEL_CLOSED", "the kernel is not open");
    return this.tenantLifecycle;
  }

  secretsFor(p: Principal): SecretsApi {
    const by = p.kind === "token" ? p.id : "system";
    return {
      put: async (tenant, name, value) => {
        this.assertOpen();
        const t = checkTenant(tenant);
        this.tenantsOrThrow().require(t);
        return this.vaultOrThrow().put(t, name, value, by, this.opts.clock.now());
      },
      delete: async (tenant, name) => {
        this.assertOpen();
        const t = checkTenant(tenant);
        this.tenantsOrThrow().require(t);
        return this.vaultOrThrow().delete(t, name, by);
      },
      list: async (tenant) => {
        this.assertOpen();
        const t = checkTenant(tenant);
        this.tenantsOrThrow().require(t);
        return this.vaultOrThrow().list(t);
      },
    };
  }

  readonly secrets: SecretsApi = this.secretsFor(SYSTEM);

  readonly vault: VaultApi = {
    status: async () => {
      this.assertOpen();
      return this.vaultOrThrow().status();
    },
    rotate: async (options) => {
      this.assertOpen();
      const wait = options?.wait ?? false;
      if (typeof wait !== "boolean") {
        throw new SoloError("SOLO_ERR_REQUEST_INVALID", "vault.rotate: wait must be a boolean", { field: "wait" });
      }
      return this.vaultOrThrow().rotate(this.opts.clock.now(), wait);
    },
    rotateMasterKey: async (options) => {
      this.assertOpen();
      const o = options ?? {};
      if (o === null || typeof o !== "object" || Object.keys(o).some((k) => k !== "newKey")) {
        throw new SoloError("SOLO_ERR_REQUEST_INVALID", "vault.rotateMasterKey takes { newKey? }", { field: "options" });
      }
      return this.vaultOrThrow().rotateMaster((o as { newKey?: unknown }).newKey);
    },
  };

  eventsIn(query: EventQuery | undefined, scope: { tenant: string; floor: number } | undefined): Promise<EventPage> {
    return this.eventsScoped(query, scope);
  }

  subscribeIn(
    options: SubscribeOptions | undefined,
    scope: { tenant: string; floor: number } | undefined,
  ): AsyncIterableIterator<SoloEvent> {
    this.assertOpen();
    const { filter, fromId, signal } = checkSubscribe(options);
    if (!scope) return this.log.follow(filter, fromId ?? this.log.headId + 1, signal);
    return this.log.follow({ ...filter, tenant: scope.tenant }, Math.max(fromId ?? this.log.headId + 1, scope.floor + 1), signal);
  }

  // ---- internals -------------------------------------------------------------------------

  private send(record: ServiceRecord, payload: string, timeoutMs: number, signal: AbortSignal | undefined): Promise<unknown> {
    const deadline = Date.now() + timeoutMs;
    return new Promise<unknown>((resolve, reject) => {
      const { rid, promise } = this.pool.request(record.scheduler, (id) => ({
        op: "call",
        rid: id,
        sid: record.sid,
        payload,
        deadline,
      }));
      const onAbort = (): void => {
        clearTimeout(timer);
        this.pool.forget(rid);
        reject(canceled(record));
      };
      const timer = setTimeout(() => {
        signal?.removeEventListener("abort", onAbort);
        this.pool.forget(rid);
        reject(callTimeout(record, timeoutMs));
      }, timeoutMs);
      signal?.addEventListener("abort", onAbort, { once: true });
      promise.then(
        (json) => {
          clearTimeout(timer);
          signal?.removeEventListener("abort", onAbort);
          try {
            resolve(json === "" ? undefined : JSON.parse(json));
          } catch (err) {
            reject(
              new SoloError(
                "SOLO_ERR_ENGINE_FAULT",
                `the reply of ${record.tenant}/${record.service} could not be read`,
                {},
                { cause: err },
              ),
            );
          }
        },
        (err: unknown) => {
          clearTimeout(timer);
          signal?.removeEventListener("abort", onAbort);
          if (err instanceof SoloError && err.reason === "SOLO_ERR_SCHEDULER_FAILED") {
            this.redeliver(record, payload, deadline, timeoutMs, signal, err).then(resolve, reject);
          } else reject(err);
        },
      );
    });
  }

  // A call that was waiting on a scheduler that is gone. If its service was the one whose step the
  // watchdog stopped, it gets that crash; if it had started, its outcome is unknown and it is not
  // run again. Otherwise it is delivered again, once the service is running on the fresh
  // scheduler, within what is left of its timeout.
  private async redeliver(
    record: ServiceRecord,
    payload: string,
    deadline: number,
    timeoutMs: number,
    signal: AbortSignal | undefined,
    err: SoloError,
  ): Promise<unknown> {
    if (err.details.culpritSid === record.sid) {
      if (err.details.culpritWhy === "killed") {
        throw new SoloError("SOLO_ERR_SERVICE_STOPPED", `service ${record.service} was stopped while it handled this call`, {
          tenant: record.tenant,
          service: record.service,
        });
      }
      const crash = record.crash;
      throw crash ? SoloError.fromData(crashError(crash, record.service)) : err;
    }
    // It had started: running it again could repeat what it did. Its outcome is unknown.
    if (err.details.started === true) throw err;
    const fresh = await this.whenRunning(record, deadline, timeoutMs, signal);
    return this.send(fresh, payload, Math.max(1, deadline - Date.now()), signal);
  }

  /** Waits until the service under `old`'s name runs again (a new instance), within `deadline`. */
  private whenRunning(old: ServiceRecord, deadline: number, timeoutMs: number, signal: AbortSignal | undefined): Promise<ServiceRecord> {
    const key = `${old.tenant}/${old.service}`;
    return new Promise<ServiceRecord>((resolve, reject) => {
      const done = (): void => {
        clearTimeout(timer);
        signal?.removeEventListener("abort", onAbort);
        this.revivals.get(key)?.delete(check);
      };
      const check = (): void => {
        const r = this.byTenant.get(old.tenant)?.get(old.service);
        if (this.closing || this.closed) {
          done();
          reject(new SoloError("SOLO_ERR_KERNEL_CLOSED", "the kernel closed before this operation finished"));
        } else if (r && r.sid !== old.sid && r.state === "running") {
          done();
          resolve(r);
        } else if (!r || (r.state !== "restarting" && r.state !== "running" && r.state !== "crashed") || r.killed) {
          done();
          try {
            this.running(old.tenant, old.service);
            reject(
              new SoloError("SOLO_ERR_SERVICE_CRASHED", `service ${old.service} is not running`, {
                tenant: old.tenant,
                service: old.service,
              }),
            );
          } catch (e) {
            reject(e);
          }
        } else if (r.state === "crashed" && r.sid === old.sid && r.supervision.restart === "temporary") {
          done();
          reject(SoloError.fromData(crashError(r.crash ?? CRASH_UNKNOWN, r.service)));
        }
      };
      const onAbort = (): void => {
        done();
        reject(canceled(old));
      };
      const timer = setTimeout(
        () => {
          done();
          reject(callTimeout(old, timeoutMs));
        },
        Math.max(1, deadline - Date.now()),
      );
      timer.unref();
      signal?.addEventListener("abort", onAbort, { once: true });
      let set = this.revivals.get(key);
      if (!set) {
        set = new Set();
        this.revivals.set(key, set);
      }
      set.add(check);
      check();
    });
  }

  /** Calls waiting for a service to run again after its scheduler was replaced, by tenant/service. */
  private readonly revivals = new Map<string, Set<() => void>>();

  /** Tells the calls waiting on a service that its state changed. */
  private wake(r: ServiceRecord): void {
    const waiting = this.revivals.get(`${r.tenant}/${r.service}`);
    if (!waiting) return;
    for (const check of [...waiting]) check();
    if (waiting.size === 0) this.revivals.delete(`${r.tenant}/${r.service}`);
  }

  // The rest of a deploy request, once checkIdentity has found an object with valid names.
  private checkDeploy(s: Readonly<Record<string, unknown>>): {
    code: string;
    args: string;
    limits: ServiceLimits;
    supervision: SupervisionPolicy;
    meta: ServiceMeta;
    grants: ServiceGrants;
  } {
    for (const key of Object.keys(s)) {
      if (!DEPLOY_KEYS.has(key)) {
        throw new SoloError("SOLO_ERR_REQUEST_INVALID", `deploy: unknown field ${JSON.stringify(key.slice(0, 80))}`, {
          field: key.slice(0, 80),
          hint: `deploy takes ${[...DEPLOY_KEYS].join(", ")}`,
        });
      }
    }
    const code = this.checkCode(s.code, "deploy");
    const limits = resolveLimits(s.limits, this.opts.limits);
    const supervision = resolveSupervision(s.supervision, this.opts.supervision);
    const args = s.args === undefined ? "" : encodeJson(s.args, "deploy args", limits.messageBytes);
    return { code, args, limits, supervision, meta: checkMeta(s.tags, s.metadata), grants: resolveGrants(s.grants) };
  }

  // The analyzer reads the code with its types stripped (positions are the author's). Its errors
  // refuse the code with every finding attached; its warnings travel with the result.
  private analyzeCode(code: string, service: string, what: string): { stripped: string; findings: Finding[] } {
    const stripped = stripTypes(code, `${service}.ts`);
    const { findings } = analyze(stripped);
    const errors = findings.filter((f) => f.severity === "error");
    if (errors.length > 0 && this.opts.analyzer === "enforce") {
      const first = errors[0] as Finding;
      throw new SoloError(
        "SOLO_ERR_DEPLOY_REJECTED",
        `${what}: the analyzer found ${errors.length} error${errors.length === 1 ? "" : "s"}; first at line ${first.line}, column ${first.column}: ${first.message}`,
        { findings: findings.slice(0, FINDINGS_RECORDED), hint: first.hint },
      );
    }
    return { stripped, findings };
  }

  /** Marks an operation under way on a service (restart, swap, rollback), or refuses if one is. */
  private claim(r: ServiceRecord): string {
    const key = `${r.tenant}/${r.service}`;
    if (this.deploying.has(key)) {
      throw new SoloError("SOLO_ERR_DEPLOY_EXISTS", `service ${r.service} is being deployed, restarted or swapped in tenant ${r.tenant}`, {
        tenant: r.tenant,
        service: r.service,
      });
    }
    this.deploying.add(key);
    return key;
  }

  private checkCode(code: unknown, what: string): string {
    if (typeof code !== "string" || code.trim() === "") {
      throw new SoloError(
        "SOLO_ERR_REQUEST_INVALID",
        `${what}: code must be a non-empty string of JavaScript or TypeScript, got ${describeType(code)}`,
        { field: "code" },
      );
    }
    const size = Buffer.byteLength(code);
    if (size > this.opts.maxCodeBytes) {
      throw new SoloError("SOLO_ERR_DEPLOY_CODE_TOO_LARGE", `${what}: code is ${size} bytes, over the limit of ${this.opts.maxCodeBytes}`, {
        field: "code",
        limit: this.opts.maxCodeBytes,
      });
    }
    return code;
  }

  private assertOpen(): void {
    if (this.closed) throw new SoloError("SOLO_ERR_KERNEL_CLOSED", "the kernel is closed; open a new one with openKernel()");
  }

  /** Finds a deployed service, or throws not-found. Records being deployed are not under a name yet. */
  private lookup(tenant: string, service: string): ServiceRecord {
    const t = checkTenant(tenant);
    const s = checkService(service);
    const r = this.byTenant.get(t)?.get(s);
    if (!r) {
      throw serviceNotFound(t, s);
    }
    return r;
  }

  private running(tenant: string, service: string): ServiceRecord {
    const r = this.lookup(tenant, service);
    if (r.state === "restarting") {
      const retryAfterMs = Math.max(0, (r.restartAt ?? 0) - this.opts.clock.now());
      throw new SoloError("SOLO_ERR_SERVICE_RESTARTING", `service ${r.service} crashed and is being restarted: ${r.crash?.message ?? ""}`, {
        tenant: r.tenant,
        service: r.service,
        retryAfterMs,
        ...(r.crash ? { crash: r.crash } : {}),
        hint: `retry in ${retryAfterMs} ms`,
      });
    }
    if (r.state === "failed") {
      throw new SoloError(
        "SOLO_ERR_SERVICE_FAILED",
        `service ${r.service} crashed ${r.restartTimes.length + 1} times within ${r.supervision.periodMs} ms and was given up: ${r.crash?.message ?? ""}`,
        {
          tenant: r.tenant,
          service: r.service,
          ...(r.crash ? { crash: r.crash } : {}),
          hint: "fix the cause and deploy a new version, or restart(tenant, service) to try again",
        },
      );
    }
    if (r.state === "crashed") {
      throw new SoloError("SOLO_ERR_SERVICE_CRASHED", `service ${r.service} has crashed: ${r.crash?.message ?? "unknown reason"}`, {
        tenant: r.tenant,
        service: r.service,
        ...(r.crash ? { crash: r.crash } : {}),
        hint: "deploy it again to start a new version",
      });
    }
    if (r.state === "stopped") {
      throw new SoloError("SOLO_ERR_SERVICE_STOPPED", `service ${r.service} is stopped`, {
        tenant: r.tenant,
        service: r.service,
        hint: "deploy it again to start it",
      });
    }
    return r;
  }

  // A tenant lives on one scheduler for its whole life (its WebAssembly instance is there); a new
  // tenant goes to the scheduler running the fewest services. Counted on demand: placement happens
  // once per tenant, so the scan is cheap and never drifts from the records.
  private place(tenant: string): number {
    const existing = this.placement.get(tenant);
    if (existing !== undefined) return existing;
    const load = new Array<number>(this.schedulers).fill(0);
    for (const r of this.bySid.values()) if (r.state === "running") load[r.scheduler] = (load[r.scheduler] ?? 0) + 1;
    let best = 0;
    for (let i = 1; i < load.length; i++) if ((load[i] ?? 0) < (load[best] ?? 0)) best = i;
    this.placement.set(tenant, best);
    return best;
  }

  private onSchedulerMessage(msg: FromScheduler): void {
    switch (msg.op) {
      case "status": {
        const r = this.bySid.get(msg.sid);
        if (!r) return;
        if (r.state !== "running") return; // already killed or replaced
        r.state = msg.status;
        if (msg.crash) r.crash = msg.crash;
        if (msg.status !== "crashed") return;
        if (msg.crash?.resource === "tenant_memory" && msg.crash.reason === "SOLO_ERR_LIMIT_MEMORY")
          this.onTenantFull(r, msg.holders ?? []);
        // Held its thread far past its budget inside a built-in: its neighbours waited, so its
        // tenant cools down as if the watchdog had had to step in.
        if (msg.stalledMs !== undefined) this.strike(r.tenant);
        // Not under its name yet (the crash came right after init): whoever is starting it handles it.
        if (this.byTenant.get(r.tenant)?.get(r.service) !== r) r.earlyCrash = msg.crash ?? null;
        else this.crashed(r, msg.crash ?? null);
        return;
      }
      case "io": {
        const r = this.bySid.get(msg.sid);
        if (!r || !this.io) return;
        this.io.handle(r, msg.kind, msg.arg).then(
          (outcome) => {
            if (r.state === "running") this.pool.post(r.scheduler, { op: "io", sid: r.sid, cid: msg.cid, outcome });
          },
          (err: unknown) => console.error("solo: a service's storage request failed unexpectedly:", err),
        );
        return;
      }
      case "denied": {
        const r = this.bySid.get(msg.sid);
        if (r) this.grantDenied(r, msg.grant, msg.detail);
        return;
      }
      case "usage": {
        for (const [tenant, bytes, cap, queued] of msg.tenants) {
          if (bytes === 0 && queued === 0) this.tenantMemory.delete(tenant);
          else this.tenantMemory.set(tenant, { bytes, cap, queued });
        }
        for (const [sid, messages, cpuMs, memoryBytes, mailbox, unhandled, dropped] of msg.samples) {
          const r = this.bySid.get(sid);
          if (!r) continue;
          const before = r.usage.dropped;
          r.usage = { messages, cpuMs, memoryBytes, mailbox, unhandled, dropped };
          // At most one event per service per sample interval, however many messages were dropped.
          if (dropped > before) {
            void this.record({
              tenant: r.tenant,
              type: "resource_violation",
              subject: r.service,
              payload: {
                version: r.version,
                resource: "mailbox",
                limit: r.limits.mailbox,
                dropped: dropped - before,
                droppedTotal: dropped,
              },
              causationId: r.causeId,
            });
          }
        }
        return;
      }
      case "log": {
        const r = this.bySid.get(msg.sid);
        if (!r) return;
        const level = msg.level === "debug" || msg.level === "warn" || msg.level === "error" ? msg.level : "info";
        const entry: LogEntry = { tenant: r.tenant, service: r.service, level, text: msg.text, at: new Date(msg.at).toISOString() };
        r.logs.push(entry);
        if (r.logs.length > LOG_LINES_KEPT) r.logs.splice(0, r.logs.length - LOG_LINES_KEPT);
        this.opts.onLog?.(entry);
        return;
      }
      default:
        return;
    }
  }

  // Events the runtime records on its own (crashes, restarts): appended in the background; a
  // store that cannot take them is reported on stderr, since there is no caller to tell.
  private record(input: EventInput): Promise<SoloEvent | undefined> {
    if (!this.eventLog) return Promise.resolve(undefined);
    return this.eventLog.append(input).catch((err: unknown) => {
      console.error(`solo: recording ${input.type} failed:`, err);
      return undefined;
    });
  }

  // ---- circuit breakers -------------------------------------------------------------------

  private breakerFor(r: ServiceRecord): CircuitBreaker {
    const key = `${r.tenant}/${r.service}`;
    let b = this.breakers.get(key);
    if (!b) {
      b = new CircuitBreaker(r.supervision.breakerThreshold, r.supervision.breakerCooldownMs);
      this.breakers.set(key, b);
    }
    return b;
  }

  private settleBreaker(r: ServiceRecord, b: CircuitBreaker, trial: boolean, outcome: CallOutcome, err: unknown): void {
    const change = b.settle(trial, outcome, this.opts.clock.now());
    if (change === "opened") {
      const e = err instanceof SoloError ? err : undefined;
      void this.record({
        tenant: r.tenant,
        type: "circuit_breaker_opened",
        subject: r.service,
        payload: {
          version: r.version,
          threshold: r.supervision.breakerThreshold,
          cooldownMs: r.supervision.breakerCooldownMs,
          trial,
          lastFailure: e ? { reason: e.reason, message: e.message.slice(0, 500) } : null,
        },
        causationId: r.causeId,
      });
    } else if (change === "closed") {
      void this.record({
        tenant: r.tenant,
        type: "circuit_breaker_closed",
        subject: r.service,
        payload: { version: r.version },
        causationId: r.causeId,
      });
    }
  }

  // ---- supervision ------------------------------------------------------------------------

  /** Records a crash, then lets the tenant's supervisor decide. */
  private crashed(r: ServiceRecord, crash: Crash | null, phase?: string, innocent = false): void {
    // Decided now, so calls see "restarting" (with a retry hint) from the moment of the crash.
    const cause = this.record({
      tenant: r.tenant,
      type: "service_crashed",
      subject: r.service,
      payload: { version: r.version, crash, ...(phase ? { phase } : {}) },
      causationId: r.causeId,
    });
    const watch = r.swapWatch;
    if (watch) {
      r.swapWatch = undefined;
      if (watch.timer !== undefined) this.opts.clock.clearTimeout(watch.timer);
      r.state = "restarting";
      void this.rollBackAfterCrash(r, watch, cause);
      return;
    }
    this.supervise(r, cause, innocent);
  }

  // ---- hot swap ---------------------------------------------------------------------------

  async swap(tenant: string, service: string, code: string, options: SwapOptions = {}): Promise<Deployment> {
    this.assertOpen();
    const r = this.running(tenant, service);
    this.checkCooldown(r.tenant);
    const checked = this.checkCode(code, "swap");
    const windowMs = checkWindow(options);
    const key = this.claim(r);
    const version = (this.highestVersion.get(key) ?? 0) + 1;
    try {
      const { fresh, state, timers, findings } = await (async () => {
        const { stripped, findings } = this.analyzeCode(checked, r.service, "swap");
        return { ...(await this.swapIn(r, checked, stripped, version, r.version, r.grants)), findings };
      })().catch(async (err: unknown) => {
        const error = SoloError.from(err);
        await this.record({
          tenant: r.tenant,
          type: "hot_swap_failed",
          subject: r.service,
          payload: {
            from: r.version,
            to: version,
            reason: error.reason,
            message: error.message.slice(0, 1000),
            details: clipDetails(error.details),
          },
          causationId: r.causeId,
        });
        throw error;
      });
      if (r.killed) {
        // Killed while the scheduler was swapping: the instance is gone, and so is the swap.
        fresh.killed = true;
        fresh.state = "stopped";
        this.highestVersion.set(key, version); // the number ran, however briefly: it is not given out again
        throw new SoloError("SOLO_ERR_SERVICE_STOPPED", `service ${r.service} was killed during the swap`, {
          tenant: r.tenant,
          service: r.service,
        });
      }
      // Armed before the new version is recorded: it takes messages already, and a crash from
      // now on rolls it back (the timer starts once the swap is durable).
      fresh.swapWatch = { from: r, state, timers, timer: undefined };
      const { events } = await this.log.write(
        [
          {
            t: "deployment.put",
            deployment: {
              tenant: r.tenant,
              service: r.service,
              version,
              code: checked,
              args: r.args,
              limits: JSON.stringify(r.limits),
              supervision: JSON.stringify(r.supervision),
              ...(r.meta !== NO_META ? { meta: JSON.stringify(r.meta) } : {}),
              grants: JSON.stringify(grantsData(r.grants)),
              deployedAt: Date.now(),
            },
          },
        ],
        [
          {
            tenant: r.tenant,
            type: "hot_swap_started",
            subject: r.service,
            payload: { from: r.version, to: version, rollbackWindowMs: windowMs },
            causationId: r.causeId,
          },
        ],
      );
      fresh.causeId = (events[0] as SoloEvent).id;
      this.highestVersion.set(key, version);
      this.breakers.delete(key);
      // The verdict goes to whichever record carries this watch when the window ends: an
      // operator's restart() inside the window hands the watch on to the restarted instance.
      const watch = fresh.swapWatch;
      const settle = (): void => {
        const current = this.byTenant.get(r.tenant)?.get(r.service);
        if (!current || !watch || current.swapWatch?.from !== watch.from) return;
        current.swapWatch = undefined;
        void this.record({
          tenant: r.tenant,
          type: "hot_swap_succeeded",
          subject: r.service,
          payload: { from: r.version, to: version },
          causationId: current.causeId,
        });
      };
      if (watch && fresh.swapWatch === watch) {
        if (this.closed)
          fresh.swapWatch = undefined; // closed meanwhile: no timer may outlive the kernel
        else if (windowMs === 0) settle();
        else fresh.swapWatch = { from: r, state, timers, timer: this.opts.clock.setTimeout(settle, windowMs) };
      }
      return { tenant: r.tenant, service: r.service, version, findings };
    } finally {
      this.deploying.delete(key);
    }
  }

  async rollback(tenant: string, service: string, version?: number): Promise<Deployment> {
    this.assertOpen();
    const r = this.running(tenant, service);
    this.checkCooldown(r.tenant);
    const key = `${r.tenant}/${r.service}`;
    const history = await this.storeOrThrow().deploymentHistory(r.tenant, r.service);
    const target =
      version === undefined ? [...history].reverse().find((d) => d.version < r.version) : history.find((d) => d.version === version);
    checkVersion("rollback", version);
    if (!target || target.version === r.version) {
      throw new SoloError(
        "SOLO_ERR_VERSION_NOT_FOUND",
        version === undefined
          ? `service ${r.service} has no version before ${r.version} to roll back to`
          : `service ${r.service} has no version ${version} other than the running one`,
        { tenant: r.tenant, service: r.service, versions: history.map((d) => d.version) },
      );
    }
    this.claim(r);
    try {
      this.cancelSwapWatch(r);
      const { fresh } = await this.swapIn(
        r,
        target.code,
        stripTypes(target.code, `${r.service}.ts`),
        target.version,
        r.version,
        grantsOf(target),
      );
      const { events } = await this.log.write(
        [{ t: "deployment.activate", tenant: r.tenant, service: r.service, version: target.version }],
        [
          {
            tenant: r.tenant,
            type: "hot_swap_rolled_back",
            subject: r.service,
            payload: { from: r.version, to: target.version, by: "operator" },
            causationId: r.causeId,
          },
        ],
      );
      fresh.causeId = (events[0] as SoloEvent).id;
      this.breakers.delete(key);
      return { tenant: r.tenant, service: r.service, version: target.version, findings: [] };
    } finally {
      this.deploying.delete(key);
    }
  }

  /** Replaces a running service's code on its scheduler (between two messages); returns the new record. */
  private async swapIn(
    r: ServiceRecord,
    code: string,
    stripped: string,
    version: number,
    fromVersion: number,
    grants: ServiceGrants,
  ): Promise<{ fresh: ServiceRecord; state: string; timers: readonly PendingTimer[] }> {
    const filename = stripped === code ? `${r.service}.js` : `${r.service}.ts`;
    const reply = JSON.parse(
      await this.pool.request(r.scheduler, (rid) => ({
        op: "swap",
        rid,
        sid: r.sid,
        version,
        fromVersion,
        filename,
        code: stripped,
        limits: r.limits,
        grants,
      })).promise,
    ) as { handlers: string[]; state: string; timers: PendingTimer[] };
    const fresh: ServiceRecord = {
      ...r,
      version,
      code,
      grants,
      handlers: Object.freeze([...reply.handlers]),
      causeId: r.causeId,
      restarts: 0,
      restartTimes: [],
      swapWatch: undefined,
      deployedAt: new Date().toISOString(),
    };
    delete fresh.crash;
    this.bySid.set(fresh.sid, fresh);
    if (this.byTenant.get(r.tenant)?.get(r.service) === r) this.named(r.tenant).set(r.service, fresh);
    return { fresh, state: reply.state, timers: reply.timers };
  }

  // The new version crashed inside its rollback window: the previous code comes back with the state
  // captured at the swap (no init), and the store points at the previous version again.
  private async rollBackAfterCrash(
    r: ServiceRecord,
    watch: NonNullable<ServiceRecord["swapWatch"]>,
    cause: Promise<SoloEvent | undefined>,
  ): Promise<void> {
    const key = `${r.tenant}/${r.service}`;
    const old = watch.from;
    this.deploying.add(key);
    let fresh: ServiceRecord;
    try {
      fresh = await this.launch(old, r, { state: watch.state, timers: watch.timers }, true);
    } catch (err) {
      this.deploying.delete(key);
      if (r.killed) return; // killed meanwhile: it stays down
      console.error(`solo: rolling ${key} back to version ${old.version} failed:`, err);
      r.state = "crashed";
      this.supervise(r, cause);
      return;
    }
    // Running again: the name is free for an operator from here on.
    this.deploying.delete(key);
    fresh.crash = r.crash;
    fresh.causeId = r.causeId;
    this.breakers.delete(key);
    try {
      const crashEvent = await cause;
      const { events } = await this.log.write(
        [{ t: "deployment.activate", tenant: r.tenant, service: r.service, version: old.version }],
        [
          {
            tenant: r.tenant,
            type: "hot_swap_rolled_back",
            subject: r.service,
            payload: { from: r.version, to: old.version, by: "watchdog", crash: r.crash ?? null },
            causationId: crashEvent?.id ?? r.causeId,
          },
        ],
      );
      fresh.causeId = (events[0] as SoloEvent).id;
      this.afterStart(fresh);
    } catch (err) {
      console.error(`solo: recording the rollback of ${key} to version ${old.version} failed:`, err);
    }
  }

  private cancelSwapWatch(r: ServiceRecord): void {
    if (!r.swapWatch) return;
    if (r.swapWatch.timer !== undefined) this.opts.clock.clearTimeout(r.swapWatch.timer);
    r.swapWatch = undefined;
  }

  // `innocent`: the service went down through no fault of its own (its scheduler was replaced for
  // another service's runaway step), so the restart does not use up its restart intensity.
  private supervise(r: ServiceRecord, cause: number | null | Promise<SoloEvent | undefined>, innocent = false): void {
    if (this.closed || this.byTenant.get(r.tenant)?.get(r.service) !== r) return;
    const { clock } = this.opts;
    const now = clock.now();
    const d = decide(r.supervision, innocent ? [] : r.restartTimes, true, now, clock.random());
    const causeId = async (): Promise<number | null> =>
      typeof cause === "object" && cause !== null ? ((await cause)?.id ?? r.causeId) : cause;
    if (d.action === "stay_down") {
      this.wake(r);
      return;
    }
    if (d.action === "fail") {
      r.state = "failed";
      this.wake(r);
      void causeId().then((id) =>
        this.record({
          tenant: r.tenant,
          type: "service_failed",
          subject: r.service,
          payload: {
            version: r.version,
            restarts: r.restarts,
            restartsInPeriod: d.restartsInPeriod,
            periodMs: r.supervision.periodMs,
            crash: r.crash ?? null,
          },
          causationId: id,
        }),
      );
      return;
    }
    if (!innocent) r.restartTimes = [...r.restartTimes.filter((t) => t > now - r.supervision.periodMs), now];
    this.scheduleRestart(r, d.delayMs, causeId);
  }

  private scheduleRestart(r: ServiceRecord, backoffMs: number, causeId: () => Promise<number | null>): void {
    const { clock } = this.opts;
    // A tenant cooling down after stalling its scheduler starts nothing again before it ends.
    const delayMs = Math.max(backoffMs, this.cooldownLeft(r.tenant));
    r.state = "restarting";
    r.restartAt = clock.now() + delayMs;
    r.restartTimer = clock.setTimeout(() => {
      r.restartTimer = undefined;
      // The restart does not wait for the crash event's commit; only the restart event needs its id.
      void this.restartNow(r, causeId, delayMs);
    }, delayMs);
  }

  private async restartNow(r: ServiceRecord, causeId: () => Promise<number | null>, delayMs: number): Promise<void> {
    if (this.closed || r.state !== "restarting" || this.byTenant.get(r.tenant)?.get(r.service) !== r) return;
    const key = `${r.tenant}/${r.service}`;
    this.deploying.add(key);
    let fresh: ServiceRecord;
    try {
      fresh = await this.launch(r, r, undefined, true);
    } catch (err) {
      this.deploying.delete(key);
      if (r.killed) return; // killed while it was starting again: it stays down
      // Starting again failed (init throws now, say): that is one more crash for the supervisor,
      // unless the scheduler it was starting on was replaced for another service's runaway.
      const error = SoloError.from(err);
      const innocent = error.reason === "SOLO_ERR_SCHEDULER_FAILED";
      r.state = "crashed";
      r.crash = innocent ? { kind: "scheduler_failed", reason: error.reason, message: error.message.slice(0, 1000) } : crashOf(error);
      r.restarts += 1;
      this.crashed(r, r.crash, "restart", innocent);
      return;
    }
    // Running and reachable from here on: an operator may restart or swap it at once.
    this.deploying.delete(key);
    fresh.restarts = r.restarts + 1;
    fresh.restartTimes = r.restartTimes;
    fresh.crash = r.crash;
    fresh.causeId = r.causeId; // until the restart's own event is written
    const cause = await causeId();
    const event = await this.record({
      tenant: r.tenant,
      type: "service_restarted",
      subject: r.service,
      payload: { version: r.version, restarts: fresh.restarts, delayMs, by: "supervisor" },
      causationId: cause,
    });
    fresh.causeId = event?.id ?? cause;
    this.afterStart(fresh);
  }

  /** A crash that came before the service was registered is handled now that it is. */
  private afterStart(r: ServiceRecord): void {
    this.wake(r);
    if (r.earlyCrash === undefined) return;
    const crash = r.earlyCrash;
    r.earlyCrash = undefined;
    if (this.byTenant.get(r.tenant)?.get(r.service) === r && r.state === "crashed") this.crashed(r, crash);
  }

  private cancelRestart(r: ServiceRecord): void {
    if (r.restartTimer !== undefined) this.opts.clock.clearTimeout(r.restartTimer);
    r.restartTimer = undefined;
    r.restartAt = undefined;
  }

  // A scheduler thread is gone: it died, or the watchdog replaced it to stop one service's step
  // that could not be interrupted (the culprit). The culprit crashes with SOLO_ERR_LIMIT_CPU (or,
  // if an operator was killing it, the kill simply completes); every other service that shared
  // the thread comes back on the fresh one through its supervisor, without using up its restart
  // intensity, and the calls that were waiting on them are delivered to them afterwards.
  private onSchedulerDied(
    index: number,
    error: SoloError,
    culprit: Culprit | undefined,
    unstarted: ReadonlyMap<number, readonly string[]>,
  ): void {
    const blamed = culprit ? this.bySid.get(culprit.sid) : undefined;
    const lost: Crash = {
      kind: "scheduler_failed",
      reason: "SOLO_ERR_SCHEDULER_FAILED",
      message: blamed
        ? `its scheduler was replaced to stop ${blamed.tenant}/${blamed.service}, which ${culprit?.why === "killed" ? "was being killed inside code that could not be interrupted" : "ran past its hard CPU limit"}; it is started again on a fresh scheduler`
        : error.message,
    };
    const affected: ServiceRecord[] = [];
    for (const r of this.bySid.values()) if (r.scheduler === index && r.state === "running") affected.push(r);
    for (const [tenant, i] of this.placement) {
      if (i !== index) continue;
      this.placement.delete(tenant);
      this.tenantMemory.delete(tenant);
    }
    // Stalling a scheduler costs the tenant a strike whether the watchdog found the step past its
    // hard limit or an operator's kill found it unable to let go: either way its neighbours lost
    // their state.
    if (blamed) this.strike(blamed.tenant);
    if (culprit) {
      void this.record({
        tenant: null,
        type: "scheduler_replaced",
        payload: {
          scheduler: index,
          reason: culprit.why === "killed" ? "killed" : "cpu_limit",
          culprit: blamed ? { tenant: blamed.tenant, service: blamed.service, version: blamed.version } : null,
          usedMs: Math.round(culprit.usedMs),
          hardLimitMs: culprit.hardLimitMs,
          services: affected.length,
        },
      });
    }
    for (const r of affected) {
      if (r.killed || (culprit?.why === "killed" && r.sid === culprit.sid)) continue; // the kill or restart in progress finishes it
      if (culprit && r.sid === culprit.sid) {
        const crash: Crash = {
          kind: "cpu_limit",
          reason: "SOLO_ERR_LIMIT_CPU",
          message: `one message ran ${Math.round(culprit.usedMs)} ms of CPU, past its hard limit of ${culprit.hardLimitMs} ms (10 times its budget of ${r.limits.cpuMsPerMessage} ms, at least 1 s), inside code the engine could not interrupt; its scheduler was replaced`,
        };
        r.state = "crashed";
        r.crash = crash;
        this.crashed(r, crash);
        continue;
      }
      r.state = "crashed";
      r.crash = lost;
      this.crashed(r, lost, undefined, culprit !== undefined);
      const casts = unstarted.get(r.sid);
      if (casts) this.recast(r, casts);
    }
  }

  // A tenant whose service stalled a scheduler (the watchdog had to replace it) cools down: for a
  // while its calls, casts, deploys, swaps and restarts are refused at once, and its services'
  // restarts wait, so the services it shared the thread with come back and are served first. The
  // wait doubles with each strike within ten minutes (1 s, 2 s, 4 s ... at most 5 min): a tenant
  // that keeps stalling its scheduler holds it a shrinking share of the time.
  private readonly cooldowns = new Map<string, { until: number; strikes: number; at: number }>();

  private strike(tenant: string): void {
    const now = this.opts.clock.now();
    const seen = this.cooldowns.get(tenant);
    const strikes = seen && now - seen.at < COOLDOWN_MEMORY_MS ? seen.strikes + 1 : 1;
    const holdMs = Math.min(COOLDOWN_MAX_MS, COOLDOWN_FIRST_MS * 2 ** (strikes - 1));
    this.cooldowns.set(tenant, { until: now + holdMs, strikes, at: now });
    // Its services' own traffic (timers, calls between them) waits too, on its scheduler.
    const index = this.placement.get(tenant);
    if (index !== undefined) this.pool.post(index, { op: "hold", tenant, ms: holdMs });
  }

  private cooldownLeft(tenant: string): number {
    const c = this.cooldowns.get(tenant);
    return c ? Math.max(0, c.until - this.opts.clock.now()) : 0;
  }

  private checkCooldown(tenant: string): void {
    const left = this.cooldownLeft(tenant);
    if (left === 0) return;
    const strikes = this.cooldowns.get(tenant)?.strikes ?? 1;
    throw new SoloError(
      "SOLO_ERR_TENANT_COOLDOWN",
      `tenant ${tenant} is cooling down for ${left} ms: one of its services ran a message past its hard CPU limit and stalled its scheduler (${strikes} time${strikes === 1 ? "" : "s"} in the last ten minutes)`,
      {
        tenant,
        retryAfterMs: left,
        strikes,
        hint: `retry in ${left} ms; find the message that stalls (service_crashed events with a cpu_limit crash after scheduler_replaced) and fix it`,
      },
    );
  }

  // Casts a service had not started when its scheduler went are sent to it again, in order, once
  // it runs on the fresh one. If it does not come back, they are counted as unhandled.
  private recast(old: ServiceRecord, casts: readonly string[]): void {
    this.whenRunning(old, Date.now() + RECAST_WAIT_MS, RECAST_WAIT_MS, undefined).then(
      (fresh) => {
        const limit = this.tenantsOrThrow().limits(fresh.tenant).memoryBytes;
        let dropped = 0;
        for (const payload of casts) if (!this.pool.cast(fresh.scheduler, fresh.sid, payload, fresh.tenant, limit)) dropped++;
        if (dropped > 0) fresh.usage = { ...fresh.usage, dropped: fresh.usage.dropped + dropped };
      },
      () => {
        old.usage = { ...old.usage, unhandled: old.usage.unhandled + casts.length };
      },
    );
  }
}

/** What starting one version of a service needs. */
interface LaunchSpec {
  readonly tenant: string;
  readonly service: string;
  readonly version: number;
  readonly code: string;
  /** The code with its types stripped, when the caller has it already. */
  readonly stripped?: string;
  readonly meta: ServiceMeta;
  readonly args: string;
  readonly limits: ServiceLimits;
  readonly supervision: SupervisionPolicy;
  readonly grants: ServiceGrants;
  readonly deployedAt: string;
}

function circuitOpen(r: ServiceRecord, retryAfterMs: number): SoloError {
  return new SoloError("SOLO_ERR_CIRCUIT_OPEN", `service ${r.service}'s circuit breaker is open after repeated failures; not called`, {
    tenant: r.tenant,
    service: r.service,
    retryAfterMs,
    hint: `retry in ${retryAfterMs} ms; one trial call then decides whether it closes`,
  });
}

// What a failed call says about the service: a crash it caused, or a timeout, is a failure; a
// refusal before it ran (mailbox full, restarting) or the caller's own cancel says nothing.
function breakerOutcome(err: unknown): CallOutcome {
  if (!(err instanceof SoloError)) return "failure";
  if (err.reason === "SOLO_ERR_CALL_TIMEOUT") return "failure";
  if (err.reason === "SOLO_ERR_SERVICE_CRASHED" || err.reason === "SOLO_ERR_CALL_CANCELED" || err.reason === "SOLO_ERR_MAILBOX_FULL") {
    return "neutral";
  }
  return (err.details as { crash?: unknown }).crash !== undefined ? "failure" : "neutral";
}

const CLOSED_BREAKER = Object.freeze({ state: "closed" as const, consecutiveFailures: 0 });

function infoOf(r: ServiceRecord, breaker: ServiceInfo["breaker"]): ServiceInfo {
  return {
    tenant: r.tenant,
    service: r.service,
    version: r.version,
    state: r.state,
    handlers: r.handlers,
    limits: r.limits,
    usage: r.usage,
    deployedAt: r.deployedAt,
    ...(r.crash ? { crash: r.crash } : {}),
    restarts: r.restarts,
    supervision: r.supervision,
    breaker,
    tags: r.meta.tags,
    metadata: r.meta.metadata,
    grants: grantsData(r.grants),
  };
}

/** A service's not-found error, for lookups in the registry and in the stored history alike. */
function serviceNotFound(tenant: string, service: string): SoloError {
  return new SoloError("SOLO_ERR_SERVICE_NOT_FOUND", `no service named ${service} in tenant ${tenant}`, {
    tenant,
    service,
    hint: "list(tenant) shows the deployed services",
  });
}

/** Refuses a version number that is given but not a positive integer. */
function checkVersion(operation: string, version: number | undefined): void {
  if (version !== undefined && (!Number.isSafeInteger(version) || version < 1)) {
    throw new SoloError("SOLO_ERR_REQUEST_INVALID", `${operation}: version must be a positive integer`, { field: "version" });
  }
}

/** The grants stored with a version (the defaults for one deployed before grants existed). */
function grantsOf(d: DeploymentRecord): ServiceGrants {
  return d.grants ? resolveGrants(JSON.parse(d.grants) as unknown) : resolveGrants(undefined);
}

/** The tags and metadata stored with a version. */
function metaOf(d: DeploymentRecord): ServiceMeta {
  if (!d.meta) return NO_META;
  const m = JSON.parse(d.meta) as ServiceMeta;
  return Object.freeze({ tags: Object.freeze([...m.tags]), metadata: Object.freeze({ ...m.metadata }) });
}

/** The crash a failed start describes, or one made from the error itself. */
function crashOf(error: SoloError): Crash {
  return (error.details as { crash?: Crash }).crash ?? { kind: "exception", reason: error.reason, message: error.message.slice(0, 1000) };
}

function checkIdentity(spec: unknown): { tenant: string; service: string; fields: Readonly<Record<string, unknown>> } {
  if (spec === null || typeof spec !== "object" || Array.isArray(spec)) {
    throw new SoloError(
      "SOLO_ERR_REQUEST_INVALID",
      `deploy takes an object { tenant, service, code, args?, limits? }, got ${describeType(spec)}`,
    );
  }
  const s = spec as Record<string, unknown>;
  return { tenant: checkTenant(s.tenant), service: checkService(s.service), fields: s };
}

// Error details go into the failure event; a pathological one must not make it oversized.
function clipDetails(details: Readonly<Record<string, unknown>>): unknown {
  const json = JSON.stringify(details);
  return json.length <= 4096 ? details : { clipped: true, keys: Object.keys(details).slice(0, 20) };
}

const DEFAULT_ROLLBACK_WINDOW_MS = 30_000;

function checkWindow(options: unknown): number {
  if (options === null || typeof options !== "object") {
    throw new SoloError("SOLO_ERR_REQUEST_INVALID", "swap options must be an object like { rollbackWindowMs: 30000 }", {
      field: "options",
    });
  }
  const w = (options as { rollbackWindowMs?: unknown }).rollbackWindowMs ?? DEFAULT_ROLLBACK_WINDOW_MS;
  if (typeof w !== "number" || !Number.isInteger(w) || w < 0 || w > 3_600_000) {
    throw new SoloError("SOLO_ERR_REQUEST_INVALID", "swap: rollbackWindowMs must be an integer from 0 to 3600000", {
      field: "rollbackWindowMs",
    });
  }
  return w;
}

function checkCallOptions(options: unknown): { timeoutMs: number; signal: AbortSignal | undefined } {
  if (options === null || typeof options !== "object") {
    throw new SoloError(
      "SOLO_ERR_REQUEST_INVALID",
      `call options must be an object like { timeoutMs: 1000 }, got ${describeType(options)}`,
    );
  }
  const o = options as { timeoutMs?: unknown; signal?: unknown };
  const timeoutMs = o.timeoutMs ?? DEFAULT_CALL_TIMEOUT_MS;
  if (typeof timeoutMs !== "number" || !Number.isInteger(timeoutMs) || timeoutMs < 1 || timeoutMs > MAX_CALL_TIMEOUT_MS) {
    throw new SoloError("SOLO_ERR_REQUEST_INVALID", `call: timeoutMs must be an integer from 1 to ${MAX_CALL_TIMEOUT_MS}`, {
      field: "timeoutMs",
    });
  }
  if (o.signal !== undefined && !(o.signal instanceof AbortSignal)) {
    throw new SoloError("SOLO_ERR_REQUEST_INVALID", "call: signal must be an AbortSignal", { field: "signal" });
  }
  return { timeoutMs, signal: o.signal };
}

function callTimeout(record: ServiceRecord, timeoutMs: number): SoloError {
  return new SoloError("SOLO_ERR_CALL_TIMEOUT", `call to ${record.tenant}/${record.service} timed out after ${timeoutMs} ms`, {
    tenant: record.tenant,
    service: record.service,
    timeoutMs,
    hint: "the service is slow or its mailbox is long; raise timeoutMs or look at list() usage",
  });
}

const CRASH_UNKNOWN: Crash = { kind: "scheduler_failed", reason: "SOLO_ERR_SCHEDULER_FAILED", message: "its scheduler stopped" };

function canceled(record: ServiceRecord): SoloError {
  return new SoloError("SOLO_ERR_CALL_CANCELED", `call to ${record.tenant}/${record.service} was canceled by its signal`, {
    tenant: record.tenant,
    service: record.service,
  });
}
