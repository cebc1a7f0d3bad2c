// The engine's World on NATS KV: agents (presence and the conversations each holds), the seats
// of every routing group's waiting list, and blocked visitors. Reads come from a local cache kept
// fresh by watchers; writes are staged and committed by compare-and-set, so two workers that
// change the same agent at once cannot both win (ARCHITECTURE.md rule 4).
import { type KV, type KvEntry, KvWatchInclude } from '@nats-io/kv';
import type { Logger } from 'pino';
import { initialTransition } from 'xstate';
import { agentMachine } from '../../actors/agent.ts';
import type { AgentSettings } from '../../actors/settings.ts';
import type { AgentSnapshot, World } from '../../actors/world.ts';

type Bucket = 'agents' | 'seats' | 'visitors';

interface Cached<T> {
  value: T;
  /** 0 when the key does not exist yet. */
  revision: number;
}

interface Staged {
  bucket: Bucket;
  key: string;
  value: unknown;
  /** The revision the change was made against. */
  base: number;
  /** True when the change adds to a list (a seat or a slot taken): committed first. */
  acquires: boolean;
  /** For an agent: the snapshot before the first staged change, to tell listeners what changed. */
  before?: AgentSnapshot | undefined;
}

/** Raised when another worker changed a key this worker staged a change to. */
export class WorldConflictError extends Error {
  readonly code = 'PARLEY_ERR_WORLD_CONFLICT';
}

interface AgentRecord {
  presence: string;
  context: AgentSnapshot['context'];
}

export interface KvWorldBuckets {
  agents: KV;
  /** Seats live in the groups bucket under `seats.<group>`. */
  groups: KV;
  visitors: KV;
}

const seatKey = (group: string) => `seats.${group}`;
const decoder = new TextDecoder();

/** A change another worker made to an agent, seen by the watcher. */
export type AgentChange = (
  agent: string,
  before: AgentSnapshot | undefined,
  after: AgentSnapshot,
) => void;

export class KvWorld implements World {
  readonly #kv: KvWorldBuckets;
  #agentSettings: Map<string, AgentSettings>;
  readonly #agents = new Map<string, Cached<AgentSnapshot>>();
  readonly #seats = new Map<string, Cached<readonly string[]>>();
  readonly #blocked = new Map<string, Cached<boolean>>();
  readonly #staged = new Map<string, Staged>();
  readonly #log: Logger | undefined;
  readonly #stops: (() => void)[] = [];
  #onAgent: AgentChange | undefined;

  private constructor(kv: KvWorldBuckets, agents: readonly AgentSettings[], log?: Logger) {
    this.#kv = kv;
    this.#agentSettings = new Map(agents.map((a) => [a.id, a]));
    this.#log = log;
  }

  /** Loads agents, seats and blocked visitors, and keeps them fresh until `close()`. */
  static async open(
    kv: KvWorldBuckets,
    settings: { agents: readonly AgentSettings[]; groups: readonly { id: string }[] },
    options: { log?: Logger; onAgent?: AgentChange } = {},
  ): Promise<KvWorld> {
    const world = new KvWorld(kv, settings.agents, options.log);
    world.#onAgent = options.onAgent;
    for (const a of settings.agents) world.#cacheAgent(a.id, await kv.agents.get(a.id));
    for (const g of settings.groups) world.#cacheSeats(g.id, await kv.groups.get(seatKey(g.id)));
    for await (const key of await kv.visitors.keys()) {
      world.#cacheBlocked(key, await kv.visitors.get(key));
    }
    await world.#watch();
    return world;
  }

  /**
   * Takes a new configuration: agents' slots as configured now, agents and groups added since
   * (their state read from KV). Agents removed keep their cached state for conversations they hold.
   */
  async reconfigure(settings: {
    agents: readonly AgentSettings[];
    groups: readonly { id: string }[];
  }): Promise<void> {
    this.#agentSettings = new Map(settings.agents.map((a) => [a.id, a]));
    for (const a of settings.agents) {
      const cached = this.#agents.get(a.id);
      if (!cached) {
        this.#cacheAgent(a.id, await this.#kv.agents.get(a.id));
        continue;
      }
      if (cached.value.context.slots === a.slots) continue;
      cached.value = agentMachine.resolveState({
        value: cached.value.value as never,
        context: { ...cached.value.context, slots: a.slots },
      });
    }
    for (const g of settings.groups) {
      if (!this.#seats.has(g.id)) this.#cacheSeats(g.id, await this.#kv.groups.get(seatKey(g.id)));
    }
  }

  set onAgent(fn: AgentChange | undefined) {
    this.#onAgent = fn;
  }

  // World ---------------------------------------------------------------------------------------

  agent(id: string): AgentSnapshot | undefined {
    const cached = this.#agents.get(id);
    if (cached) return cached.value;
    const settings = this.#agentSettings.get(id);
    if (!settings) return undefined;
    const initial = initialTransition(agentMachine, settings)[0];
    this.#agents.set(id, { value: initial, revision: 0 });
    return initial;
  }

  putAgent(id: string, snapshot: AgentSnapshot): void {
    const before = this.agent(id);
    const cached = this.#agents.get(id)!;
    const record: AgentRecord = { presence: String(snapshot.value), context: snapshot.context };
    const acquires =
      (before?.context.conversations ?? []).length < snapshot.context.conversations.length;
    this.#stage('agents', id, record, cached.revision, acquires, before);
    cached.value = snapshot;
  }

  seats(group: string): readonly string[] {
    return this.#seats.get(group)?.value ?? [];
  }

  putSeats(group: string, conversations: readonly string[]): void {
    const cached = this.#seats.get(group) ?? { value: [], revision: 0 };
    this.#seats.set(group, cached);
    const acquires = conversations.length > cached.value.length;
    this.#stage('seats', seatKey(group), conversations, cached.revision, acquires);
    cached.value = conversations;
  }

  isBlocked(visitor: string): boolean {
    return this.#blocked.get(visitor)?.value === true;
  }

  block(visitor: string): void {
    const cached = this.#blocked.get(visitor) ?? { value: false, revision: 0 };
    this.#blocked.set(visitor, cached);
    this.#stage('visitors', visitor, { blocked: true }, cached.revision, false);
    cached.value = true;
  }

  blockedVisitors(): readonly string[] {
    return [...this.#blocked].filter(([, c]) => c.value).map(([v]) => v);
  }

  // Commit and rollback ---------------------------------------------------------------------------

  /** True when changes are staged and not yet committed. */
  get dirty(): boolean {
    return this.#staged.size > 0;
  }

  /**
   * Writes every staged change by compare-and-set, the ones that take a seat or a slot first (so
   * a commit cut short leaves at worst a reservation too many, never a cap broken). Throws
   * WorldConflictError when another worker got there first; `rollback()` then reloads.
   */
  async commit(): Promise<void> {
    const staged = [...this.#staged.values()].sort(
      (a, b) => Number(b.acquires) - Number(a.acquires),
    );
    for (const s of staged) {
      const kv = this.#bucket(s.bucket);
      const data = JSON.stringify(s.value);
      let revision: number;
      try {
        revision =
          s.base === 0 ? await kv.create(s.key, data) : await kv.update(s.key, data, s.base);
      } catch (error) {
        throw new WorldConflictError(`${s.bucket} ${s.key} changed under us: ${String(error)}`);
      }
      this.#staged.delete(`${s.bucket}:${s.key}`);
      this.#setRevision(s.bucket, s.key, revision);
      if (s.bucket === 'agents') {
        // Hosts in this process learn of it here; other workers through their watchers.
        const after = this.#agents.get(s.key)?.value;
        const listener = this.#onAgent;
        if (after && listener) queueMicrotask(() => listener(s.key, s.before, after));
      }
    }
  }

  /** Drops staged changes and reloads the keys they touched from KV. */
  async rollback(): Promise<void> {
    const staged = [...this.#staged.values()];
    this.#staged.clear();
    for (const s of staged) {
      const entry = await this.#bucket(s.bucket).get(s.key);
      if (s.bucket === 'agents') this.#cacheAgent(s.key, entry, true);
      else if (s.bucket === 'seats') this.#cacheSeats(s.key.slice('seats.'.length), entry, true);
      else this.#cacheBlocked(s.key, entry, true);
    }
  }

  close(): void {
    for (const stop of this.#stops) stop();
  }

  // Internals -----------------------------------------------------------------------------------

  #stage(
    bucket: Bucket,
    key: string,
    value: unknown,
    revision: number,
    acquires: boolean,
    before?: AgentSnapshot,
  ): void {
    const id = `${bucket}:${key}`;
    const prior = this.#staged.get(id);
    this.#staged.set(id, {
      bucket,
      key,
      value,
      base: prior ? prior.base : revision,
      acquires: (prior?.acquires ?? false) || acquires,
      before: prior ? prior.before : before,
    });
  }

  #bucket(bucket: Bucket): KV {
    return bucket === 'agents'
      ? this.#kv.agents
      : bucket === 'seats'
        ? this.#kv.groups
        : this.#kv.visitors;
  }

  #setRevision(bucket: Bucket, key: string, revision: number): void {
    const map: Map<string, Cached<unknown>> = bucket === 'agents'
      ? this.#agents
      : bucket === 'seats'
        ? this.#seats
        : this.#blocked;
    const k = bucket === 'seats' ? key.slice('seats.'.length) : key;
    const cached = map.get(k);
    if (cached && cached.revision < revision) cached.revision = revision;
  }

  /** Takes a value read from KV unless the cache already holds a newer one or a staged change. */
  #fresh(
    bucket: Bucket,
    key: string,
    cached: Cached<unknown> | undefined,
    revision: number,
    force: boolean,
  ): boolean {
    if (force) return true;
    if (this.#staged.has(`${bucket}:${key}`)) return false;
    return !cached || cached.revision < revision;
  }

  #cacheAgent(id: string, entry: KvEntry | null, force = false): void {
    const revision = entry?.revision ?? 0;
    const before = this.#agents.get(id);
    if (!this.#fresh('agents', id, before, revision, force)) return;
    const settings = this.#agentSettings.get(id);
    if (!settings) return;
    if (entry?.operation !== 'PUT') {
      this.#agents.set(id, { value: initialTransition(agentMachine, settings)[0], revision });
      return;
    }
    const record = JSON.parse(decoder.decode(entry.value)) as AgentRecord;
    const value = agentMachine.resolveState({
      value: record.presence as never,
      context: { ...record.context, slots: settings.slots },
    });
    this.#agents.set(id, { value, revision });
    if (!force && before?.value !== value) this.#onAgent?.(id, before?.value, value);
  }

  #cacheSeats(group: string, entry: KvEntry | null, force = false): void {
    const revision = entry?.revision ?? 0;
    if (!this.#fresh('seats', seatKey(group), this.#seats.get(group), revision, force)) return;
    const value =
      entry && entry.operation === 'PUT'
        ? (JSON.parse(decoder.decode(entry.value)) as string[])
        : [];
    this.#seats.set(group, { value, revision });
  }

  #cacheBlocked(visitor: string, entry: KvEntry | null, force = false): void {
    const revision = entry?.revision ?? 0;
    if (!this.#fresh('visitors', visitor, this.#blocked.get(visitor), revision, force)) return;
    this.#blocked.set(visitor, { value: entry?.operation === 'PUT', revision });
  }

  async #watch(): Promise<void> {
    const watch = async (kv: KV, key: string, apply: (e: KvEntry) => void) => {
      const it = await kv.watch({ key, include: KvWatchInclude.UpdatesOnly });
      this.#stops.push(() => it.stop());
      void (async () => {
        for await (const e of it) {
          try {
            apply(e);
          } catch (error) {
            this.#log?.warn({ err: error, key: e.key }, 'ignored a malformed world entry');
          }
        }
      })();
    };
    await watch(this.#kv.agents, '>', (e) => this.#cacheAgent(e.key, e));
    await watch(this.#kv.groups, 'seats.>', (e) =>
      this.#cacheSeats(e.key.slice('seats.'.length), e),
    );
    await watch(this.#kv.visitors, '>', (e) => this.#cacheBlocked(e.key, e));
  }
}
