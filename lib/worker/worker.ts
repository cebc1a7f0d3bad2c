// A worker: joins the live workers, takes its fair share of the routing groups (and maybe the
// agents' commands) through leases, hosts each, and gives them up on shutdown or when the share
// changes. Kill it and the survivors take its groups over within one lease period.
import { randomBytes } from 'node:crypto';
import { jetstream, jetstreamManager } from '@nats-io/jetstream';
import { Kvm } from '@nats-io/kv';
import type { NatsConnection, Subscription } from '@nats-io/transport-node';
import type { Logger } from 'pino';
import type { Settings } from '../../actors/settings.ts';
import { connectNats, retryTransient } from '../nats/connection.ts';
import { Leases } from '../nats/leases.ts';
import { LiveConfig } from '../nats/live-config.ts';
import { answerPings, DeathWatch } from '../nats/liveness.ts';
import { fairShare, Members } from '../nats/members.ts';
import { AGENT_TOKEN, BUCKETS, DEFAULTS, ensureStreams } from '../nats/streams.ts';
import { AgentHost } from './agents.ts';
import { GroupHost } from './host.ts';
import { type InspectionServer, serveInspection } from './inspect.ts';
import { createLock } from './lock.ts';
import { KvWorld } from './world.ts';

export interface WorkerOptions {
  /** NATS server URL(s). */
  readonly url: string | string[];
  /** The starting configuration: it seeds the live configuration when none is stored yet. */
  readonly settings: Settings;
  readonly log: Logger;
  /** A KV-safe id; a random one by default. */
  readonly id?: string;
  /** Lease period in ms (default 5000): a dead worker's groups move within it. */
  readonly leaseMs?: number;
  /**
   * Stream and bucket replicas, exactly. Left out: 3 on a cluster (as many as its servers when
   * fewer), 1 on one server, and streams already larger are not lowered.
   */
  readonly replicas?: number;
  readonly batch?: number;
  /** How long an idle conversation stays in memory once stored (default 60 s). */
  readonly idleMs?: number;
  /** How often changed conversations are stored (default 1 s). */
  readonly checkpointMs?: number;
  /** How often each group looks for places held without their conversation (default 60 s). */
  readonly repairMs?: number;
}

type Hosted = { kind: 'group'; host: GroupHost } | { kind: 'agents'; host: AgentHost };

export class Worker {
  readonly id: string;
  readonly nc: NatsConnection;
  readonly #options: WorkerOptions;
  readonly #log: Logger;
  readonly #leases: Leases;
  readonly #members: Members;
  readonly #world: KvWorld;
  readonly #hosted = new Map<string, Hosted>();
  readonly #starting = new Set<string>();
  /** The live-inspection subscription of each hosted routing group. */
  readonly #inspections = new Map<string, InspectionServer>();
  readonly #lock = createLock();
  readonly #live: LiveConfig;
  #settings: Settings;
  #timer: NodeJS.Timeout | undefined;
  #rebalancing: Promise<void> = Promise.resolve();
  /** Pings the other workers: one found dead has its groups taken before its leases run out. */
  readonly #deaths: DeathWatch;
  readonly #pings: Subscription;
  #stopped = false;

  private constructor(
    options: WorkerOptions,
    id: string,
    nc: NatsConnection,
    leases: Leases,
    members: Members,
    world: KvWorld,
    live: LiveConfig,
  ) {
    this.#options = options;
    this.id = id;
    this.nc = nc;
    this.#log = options.log.child({ worker: id });
    this.#leases = leases;
    this.#members = members;
    this.#world = world;
    this.#live = live;
    // Answered from before the first lease is taken until the connection closes.
    this.#pings = answerPings(nc, id);
    this.#deaths = new DeathWatch(nc, {
      log: this.#log,
      onDead: (worker) => void this.#died(worker),
    });
    this.#settings = live.current.settings;
  }

  /** The configuration in force: the live one, which changes without a restart. */
  get settings(): Settings {
    return this.#settings;
  }

  /** A new live configuration: agents' slots, groups added (taken) or removed (let go), rules. */
  async #reconfigure(settings: Settings, revision: number): Promise<void> {
    if (this.#stopped) return;
    this.#settings = settings;
    try {
      await this.#world.reconfigure(settings);
      for (const [group, hosted] of this.#hosted) {
        if (hosted.kind === 'group' && settings.groups.some((g) => g.id === group)) {
          await hosted.host.reconfigure();
        }
      }
      this.#log.info({ revision }, 'configuration applied');
    } catch (error) {
      this.#log.error({ err: error, revision }, 'configuration not applied');
    }
    await this.rebalance();
  }

  /** Connects, creates or upgrades the streams and buckets, joins, and starts taking groups. */
  static async start(options: WorkerOptions): Promise<Worker> {
    const id = options.id ?? `w-${randomBytes(4).toString('hex')}`;
    const log = options.log.child({ worker: id });
    const nc = await connectNats(options.url, { name: `parley-worker-${id}`, log });
    try {
      const leaseMs = options.leaseMs ?? DEFAULTS.leaseTtlMs;
      // A cluster still electing its leaders (or short of servers for the replicas) is waited
      // for; only a real configuration error ends the start.
      const ready = <T>(what: string, work: () => Promise<T>) =>
        retryTransient(work, { log, what });
      await ready("Parley's streams and buckets", () =>
        ensureStreams(nc, {
          ...(options.replicas !== undefined ? { replicas: options.replicas } : {}),
          leaseTtlMs: Math.max(leaseMs, DEFAULTS.leaseTtlMs),
          workerTtlMs: Math.max(leaseMs, DEFAULTS.workerTtlMs),
        }),
      );
      const kvm = new Kvm(nc);
      const [agents, groups, visitors] = await ready('the buckets', () =>
        Promise.all([
          kvm.open(BUCKETS.agents),
          kvm.open(BUCKETS.groups),
          kvm.open(BUCKETS.visitors),
        ]),
      );
      const live = await ready('the live configuration', () =>
        LiveConfig.open(nc, options.settings, log),
      );
      await ready('the live configuration', () => live.watch());
      const world = await ready('the shared world', () =>
        KvWorld.open({ agents, groups, visitors }, live.current.settings, { log }),
      );
      return await Worker.#join(options, id, log, nc, leaseMs, world, live);
    } catch (error) {
      await nc.close().catch(() => undefined);
      throw error;
    }
  }

  static async #join(
    options: WorkerOptions,
    id: string,
    log: Logger,
    nc: NatsConnection,
    leaseMs: number,
    world: KvWorld,
    live: LiveConfig,
  ): Promise<Worker> {
    const ready = <T>(what: string, work: () => Promise<T>) => retryTransient(work, { log, what });
    let worker: Worker | undefined;
    const leases = await ready('the leases', () =>
      Leases.open(nc, {
        worker: id,
        leaseMs,
        log,
        onLost: (group, reason) => {
          if (worker) worker.#lost(group, reason);
        },
      }),
    );
    const members = await ready('the workers bucket', () =>
      Members.open(nc, { worker: id, ttlMs: leaseMs, log }),
    );
    worker = new Worker(options, id, nc, leases, members, world, live);
    const self = worker;
    live.onChange((version) => void self.#reconfigure(version.settings, version.revision));
    world.onAgent = (agent, before, after) => self.#agentChanged(agent, before?.value, after.value);
    await ready('the workers bucket', () => members.join());
    leases.start();
    self.#deaths.start();
    await self.rebalance();
    self.#timer = setInterval(() => void self.rebalance(), Math.max(200, leaseMs / 3));
    log.info({ leaseMs }, 'worker started');
    return worker;
  }

  /** The groups (and `_agent`) this worker hosts now. */
  hosted(): string[] {
    return [...this.#hosted.keys()].sort();
  }

  /** The live host of a group, for inspection. */
  host(group: string): GroupHost | undefined {
    const h = this.#hosted.get(group);
    return h?.kind === 'group' ? h.host : undefined;
  }

  /** Takes the groups of this worker's fair share that it lacks, and gives up those it should not hold. */
  rebalance(): Promise<void> {
    this.#rebalancing = this.#rebalancing
      .then(() => this.#rebalance())
      .catch((error) => {
        this.#log.warn({ err: error }, 'rebalance failed; trying again at the next beat');
      });
    return this.#rebalancing;
  }

  async #rebalance(): Promise<void> {
    if (this.#stopped) return;
    // A worker found dead is out of the share at once, whatever its heartbeat still says.
    const members = (await this.#members.members()).map((m) => m.worker);
    const live = members.filter((w) => !this.#deaths.isDead(w));
    if (!live.includes(this.id)) live.push(this.id);
    this.#deaths.watch(members.filter((w) => w !== this.id));
    const all = [...this.#settings.groups.map((g) => g.id), AGENT_TOKEN];
    const mine = new Set(fairShare(all, live, this.id));
    for (const group of this.#hosted.keys()) {
      if (!mine.has(group)) await this.#let(group, 'rebalanced');
    }
    // Take what is ours; also a group whose owner is gone and that nobody else took yet.
    for (const group of all) {
      if (this.#hosted.has(group) || this.#starting.has(group)) continue;
      const owner = await this.#leases.owner(group);
      const dead = owner && owner.worker !== this.id && this.#deaths.isDead(owner.worker);
      if (!mine.has(group) && owner && !dead) continue;
      if (!mine.has(group) && (!owner || dead) && live.length > 1) continue;
      const from = dead ? { from: owner.worker } : {};
      if (await this.#leases.acquire(group, from)) await this.#take(group);
    }
  }

  async #take(group: string): Promise<void> {
    this.#starting.add(group);
    try {
      const nc = this.nc;
      const js = jetstream(nc);
      const jsm = await jetstreamManager(nc);
      const kvm = new Kvm(nc);
      const groups = await kvm.open(BUCKETS.groups);
      const holds = (g: string) => this.#leases.holds(g);
      // Read at each use: the live configuration may change while the group is hosted.
      const current = () => this.#settings;
      const lock = this.#lock;
      if (group === AGENT_TOKEN) {
        const host = await AgentHost.start({
          js,
          jsm,
          groups,
          world: this.#world,
          get settings() {
            return current();
          },
          log: this.#log,
          holds,
          lock,
        });
        this.#hosted.set(group, { kind: 'agents', host });
      } else {
        const conversations = await kvm.open(BUCKETS.conversations);
        const visitorData = await kvm.open(BUCKETS.visitorData);
        const host = await GroupHost.start(
          {
            js,
            jsm,
            conversations,
            visitorData,
            groups,
            world: this.#world,
            get settings() {
              return current();
            },
            worker: this.id,
            log: this.#log,
            holds,
            lock,
            onFenced: (g) => void this.#let(g, 'fenced'),
            ...(this.#options.batch ? { batch: this.#options.batch } : {}),
            ...(this.#options.idleMs !== undefined ? { idleMs: this.#options.idleMs } : {}),
            ...(this.#options.checkpointMs !== undefined
              ? { checkpointMs: this.#options.checkpointMs }
              : {}),
            ...(this.#options.repairMs !== undefined ? { repairMs: this.#options.repairMs } : {}),
          },
          group,
        );
        this.#hosted.set(group, { kind: 'group', host });
        const inspection = await serveInspection({
          nc,
          group,
          worker: this.id,
          engine: () => host.engine,
          world: this.#world,
          get settings() {
            return current();
          },
          conversations,
          jsm,
          lock,
          log: this.#log,
        });
        // The lease may have been lost while subscribing: then nobody should answer for it here.
        if (this.#hosted.get(group)?.host === host) this.#inspections.set(group, inspection);
        else inspection.stop();
      }
    } catch (error) {
      this.#log.error({ err: error, group }, 'could not take the group; releasing it');
      await this.#leases.release(group).catch(() => undefined);
    } finally {
      this.#starting.delete(group);
    }
  }

  /** Another worker is gone: out of the list for everyone, and its groups shared out now. */
  async #died(worker: string): Promise<void> {
    if (this.#stopped) return;
    await this.#members.forget(worker).catch(() => undefined);
    await this.rebalance();
  }

  async #let(group: string, reason: string): Promise<void> {
    this.#stopInspection(group);
    const hosted = this.#hosted.get(group);
    this.#hosted.delete(group);
    await hosted?.host.stop();
    await this.#leases.release(group).catch(() => undefined);
    this.#log.info({ group, reason }, 'group let go');
  }

  #lost(group: string, reason: string): void {
    this.#log.warn({ group, reason }, 'lease lost');
    this.#stopInspection(group);
    const hosted = this.#hosted.get(group);
    this.#hosted.delete(group);
    void hosted?.host.stop();
  }

  #stopInspection(group: string): void {
    this.#inspections.get(group)?.stop();
    this.#inspections.delete(group);
  }

  #agentChanged(agent: string, before: unknown, after: unknown): void {
    const wentOffline = before !== 'offline' && after === 'offline';
    for (const h of this.#hosted.values()) {
      if (h.kind === 'group') void h.host.poke(agent, wentOffline);
    }
  }

  /** Hands every group over at once (their leases released) and leaves. */
  async stop(): Promise<void> {
    if (this.#stopped) return;
    this.#stopped = true;
    clearInterval(this.#timer);
    this.#deaths.stop();
    await this.#rebalancing;
    // All at once: each hands its group over (a last checkpoint, the lease released) on its own.
    await Promise.all([...this.#hosted.keys()].map((group) => this.#let(group, 'shutdown')));
    await this.#members.leave().catch(() => undefined);
    await this.#leases.close().catch(() => undefined);
    this.#world.close();
    this.#live.close();
    this.#pings.unsubscribe();
    await this.nc.drain().catch(() => undefined);
    this.#log.info('worker stopped');
  }
}
