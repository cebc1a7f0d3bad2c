// The faults an operator fears, on a real three-server JetStream cluster with worker processes,
// while commands flow as a brand's traffic would: the server leading the streams SIGKILLed (and
// restarted), twice in a row, then a worker SIGKILLed. Afterwards every acknowledged command is
// checked against the events stream: applied exactly once, every group owned again, every snooze
// due woken, no cap or slot exceeded. Used by test/integration/chaos.test.ts (short) and by
// `npm run chaos` (bench/chaos.ts: 60 s at the highest rate the machine holds).
import {
  type JetStreamClient,
  type JetStreamManager,
  jetstream,
  jetstreamManager,
} from '@nats-io/jetstream';
import { type KV, Kvm } from '@nats-io/kv';
import type { NatsConnection } from '@nats-io/transport-node';
import type { Command, DomainEvent } from '../../actors/events.ts';
import { HOUR_MS } from '../../actors/settings.ts';
import { connectNats } from '../../lib/nats/connection.ts';
import {
  agentCommandSubject,
  BUCKETS,
  commandMsgId,
  commandSubject,
  STREAMS,
} from '../../lib/nats/streams.ts';
import { type NatsCluster, startNatsCluster } from './nats-server.ts';
import { agent, group, rule, testSettings } from './settings.ts';
import { startWorkerProcess, type WorkerProcess } from './worker-process.ts';

/** A fault, `at` ms after the load started. */
export type Fault =
  | { readonly at: number; readonly kind: 'kill-leader'; readonly downMs: number }
  | { readonly at: number; readonly kind: 'kill-worker'; readonly replaceAfterMs: number };

export interface ChaosOptions {
  /** How long commands flow, in ms. */
  readonly durationMs: number;
  /** Commands offered per second. */
  readonly rate: number;
  readonly faults: readonly Fault[];
  /** After the load: how long every acknowledged command has to show its effect (default 30 s). */
  readonly drainMs?: number;
  /** Workers' lease period; their default when left out. */
  readonly leaseMs?: number;
  /** Extra environment for the worker processes (PARLEY_REPLICAS, say). */
  readonly workerEnv?: Record<string, string>;
  /** Progress lines (fault injected, phase); none by default. */
  readonly log?: (line: string) => void;
}

export interface ChaosReport {
  /** Commands JetStream acknowledged. */
  readonly acked: number;
  /** Of those, the ones with at least one event of theirs in the events stream. */
  readonly applied: number;
  /** Acknowledged and never applied: ids, at most 20. */
  readonly lost: number;
  readonly lostIds: readonly string[];
  /** Effects seen more than once: a message added twice, a conversation started twice, a gap or a repeat in a thread. */
  readonly duplicated: number;
  readonly duplicatedWhat: readonly string[];
  /** Publishes never acknowledged after their retries (the client would report an error). */
  readonly refused: number;
  /** Summed over the groups (and `_agent`): seconds a lease had no live holder, sampled. */
  readonly unownedSeconds: number;
  /** The longest time one group went without a holder, in ms. */
  readonly longestUnownedMs: number;
  /** Groups without a holder at the end. */
  readonly unownedAtEnd: readonly string[];
  /** Snoozes whose deadline fell in the run. */
  readonly snoozesDue: number;
  /** Of those, not woken by the end (neither by the timer nor by the visitor). */
  readonly unwoken: number;
  readonly unwokenWhat: readonly string[];
  /** Deadline → the wake stored in the events stream, over the snoozes woken by the timer. */
  readonly wakeLatenessMaxMs: number;
  readonly wakeLatenessP99Ms: number;
  readonly wakeLatenessMedianMs: number;
  /** World samples where a waiting list held more than its cap, or an agent more than their slots. */
  readonly capExceeded: number;
  readonly slotsExceeded: number;
  /**
   * Conversations whose stored state (the workers' last checkpoint) is not what their events
   * say (another state, another agent): what readers saw and what the engine holds differ.
   */
  readonly diverged: number;
  readonly divergedWhat: readonly string[];
  /** Stored conversations written with fewer messages than an earlier write: a writer behind. */
  readonly backwardWrites: number;
  readonly backwardWhat: readonly string[];
  readonly faults: readonly string[];
  /** Worker processes that exited at start (each is started again). */
  readonly workerStartFailures: number;
}

/** The groups, rules and agents of the run: three groups, four agents of five slots, a bot. */
export function chaosSettings() {
  const snooze = { defaultMs: 1_000, minMs: 100, maxMs: HOUR_MS };
  return testSettings({
    groups: [
      group('tv', { cap: 40, snooze }),
      group('orders', { cap: 30, snooze }),
      group('general', { cap: 60, snooze }),
    ],
    rules: [
      rule('direct', { target: { group: 'tv', byAnswer: [] } }),
      rule('to-orders', { target: { group: 'orders', byAnswer: [] } }),
      rule('qualify', {
        bot: {
          greeting: 'Hello!',
          questions: [{ id: 'topic', text: 'What about?', choices: ['Order', 'Other'] }],
        },
        target: {
          group: 'general',
          byAnswer: [{ question: 'topic', answer: 'Order', group: 'orders' }],
        },
      }),
    ],
    agents: [
      agent('alice', ['tv'], 5),
      agent('bob', ['tv', 'orders'], 5),
      agent('carol', ['orders', 'general'], 5),
      agent('dave', ['general'], 5),
    ],
  });
}

const LEASES = ['tv', 'orders', 'general', '_agent'];
const AGENTS = ['alice', 'bob', 'carol', 'dave'];
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

interface Conversation {
  readonly id: string;
  readonly visitor: string;
  group: string;
  state: 'new' | 'bot' | 'queued' | 'assigned' | 'snoozed' | 'closed';
  agent: string | null;
  answered: boolean;
}

/** Runs the load and the faults, and checks the outcome. Starts and stops its own servers and workers. */
export async function runChaos(options: ChaosOptions): Promise<ChaosReport> {
  const log = options.log ?? (() => undefined);
  const settings = chaosSettings();
  const cluster = await startNatsCluster(3);
  const workers: WorkerProcess[] = [];
  let nc: NatsConnection | undefined;
  try {
    let n = 0;
    let workerStartFailures = 0;
    // A worker that cannot start (it should wait for the cluster instead) is started again.
    const startWorker = async (): Promise<void> => {
      for (let attempt = 1; ; attempt++) {
        const id = `chaos-w${++n}`;
        try {
          const w = await startWorkerProcess(cluster.urls.join(','), settings, {
            id,
            leaseMs: options.leaseMs ?? null,
            ...(options.workerEnv ? { env: options.workerEnv } : {}),
          });
          workers.push(w);
          log(`worker ${w.id} started, hosting ${w.hosted.join(',') || 'nothing yet'}`);
          return;
        } catch (error) {
          workerStartFailures++;
          log(`worker ${id} failed to start: ${(error as Error).message}`);
          if (attempt >= 10) throw error;
          await sleep(1_000);
        }
      }
    };
    await startWorker();
    await startWorker();
    nc = await connectNats(cluster.urls, { name: 'chaos' });
    const js = jetstream(nc, { timeout: 2_000 });
    const jsm = await jetstreamManager(nc, { timeout: 2_000 });
    const kvm = new Kvm(nc);
    const leases = await kvm.open(BUCKETS.leases);
    const groupsKv = await kvm.open(BUCKETS.groups);
    const agentsKv = await kvm.open(BUCKETS.agents);

    const load = new Load(
      js,
      settings.groups.map((g) => g.id),
    );
    const events = followEvents(js, load);
    for (const a of AGENTS) {
      await load.send(
        { type: 'SetAgentPresence', id: `presence-${a}`, agent: a, presence: 'online' },
        false,
      );
    }

    const started = Date.now();
    const owners = new OwnerWatch(leases, LEASES);
    const backward = await watchBackward(await kvm.open(BUCKETS.conversations));
    const world = new WorldWatch(groupsKv, agentsKv, settings);
    const faultsDone: string[] = [];
    const faults = options.faults.map(async (f) => {
      await sleep(Math.max(0, started + f.at - Date.now()));
      if (f.kind === 'kill-leader') {
        const leader = await streamLeader(jsm, cluster);
        if (!leader) return void faultsDone.push(`t+${f.at}: no leader found, nothing killed`);
        await leader.kill();
        const line = `t+${Date.now() - started}: SIGKILL nats-server ${leader.name} (leader of ${STREAMS.commands})`;
        faultsDone.push(line);
        log(line);
        await sleep(f.downMs);
        await leader.restart();
        log(`t+${Date.now() - started}: ${leader.name} restarted`);
      } else {
        const victim = workers.find(
          (w) => w.child.exitCode === null && w.child.signalCode === null,
        );
        if (!victim) return;
        victim.kill();
        const line = `t+${Date.now() - started}: SIGKILL worker ${victim.id}`;
        faultsDone.push(line);
        log(line);
        await sleep(f.replaceAfterMs);
        await startWorker();
      }
    });

    // The load: `rate` commands a second, at most 500 unacknowledged at once.
    const tick = 20;
    const perTick = (options.rate * tick) / 1000;
    let owed = 0;
    while (Date.now() - started < options.durationMs) {
      owed += perTick;
      while (owed >= 1) {
        owed -= 1;
        if (load.inFlight < 500) load.next();
      }
      await sleep(tick);
    }
    log(`load done: ${load.acked.size} acknowledged so far; waiting for faults and effects`);
    await Promise.all(faults);
    await load.settled();

    // Every acknowledged command gets time to show its effect, and every snooze due to wake.
    const drainUntil = Date.now() + (options.drainMs ?? 30_000);
    while (Date.now() < drainUntil) {
      const missing = [...load.acked.keys()].filter((id) => !load.effects.has(id));
      const dueUnwoken = load.dueUnwoken(Date.now() - 2_000);
      if (missing.length === 0 && dueUnwoken === 0) break;
      await sleep(250);
    }
    owners.stop();
    world.stop();
    backward.stop();
    events.stop();
    log(`events seen: ${JSON.stringify(Object.fromEntries(load.seen))}`);
    log('checking the events stream');
    await sleep(2_500); // the workers' last checkpoint (every second)
    const conversations = await kvm.open(BUCKETS.conversations);
    const checked = await check(js, load, owners, world, faultsDone);
    const diverged = await compareStored(conversations, checked.model, checked.trails);
    const { model: _model, trails: _trails, ...report } = checked;
    return {
      ...report,
      workerStartFailures,
      diverged: diverged.length,
      divergedWhat: diverged.slice(0, 20),
      backwardWrites: backward.seen.length,
      backwardWhat: backward.seen.slice(0, 20),
    };
  } finally {
    await nc?.close().catch(() => undefined);
    await Promise.all(workers.map((w) => w.stop()));
    await cluster.stop();
  }
}

/** The server that leads the commands stream now. */
async function streamLeader(jsm: JetStreamManager, cluster: NatsCluster) {
  for (let attempt = 0; attempt < 20; attempt++) {
    try {
      const info = await jsm.streams.info(STREAMS.commands);
      const leader = cluster.servers.find((s) => s.name === info.cluster?.leader);
      if (leader?.pid !== undefined) return leader;
    } catch {
      // an election under way
    }
    await sleep(250);
  }
  return undefined;
}

/** The commands a brand's traffic sends, chosen from what the events say of each conversation. */
class Load {
  readonly conversations = new Map<string, Conversation>();
  /** Acknowledged commands, by id: their type and conversation. */
  readonly acked = new Map<string, { type: string; conversation: string | null }>();
  /** Command ids with at least one event. */
  readonly effects = new Set<string>();
  refused = 0;
  inFlight = 0;
  /** Snoozes by conversation: the deadlines in force (a wake or another snooze ends one). */
  readonly snoozes: {
    conversation: string;
    until: number;
    ended: 'timer' | 'other' | null;
    wokenAt: number | null;
  }[] = [];
  readonly #pending = new Set<Promise<unknown>>();
  #n = 0;
  #messages = 0;

  constructor(
    readonly js: JetStreamClient,
    readonly groups: readonly string[],
  ) {}

  /** One more command, of a kind drawn from what is possible now. */
  next(): void {
    const r = Math.random();
    const open = [...this.conversations.values()].filter(
      (c) => c.state !== 'closed' && c.state !== 'new',
    );
    const assigned = open.filter((c) => c.state === 'assigned');
    const bot = open.filter((c) => c.state === 'bot' && !c.answered);
    if (r < 0.15 || open.length < 20) this.#start();
    else if (r < 0.25 && bot.length > 0) this.#answer(pick(bot));
    else if (r < 0.35 && assigned.length > 0) this.#snooze(pick(assigned));
    else if (r < 0.43 && assigned.length > 0) this.#close(pick(assigned));
    else if (r < 0.63 && assigned.length > 0) this.#agentMessage(pick(assigned));
    else if (open.length > 0) this.#visitorMessage(pick(open));
    else this.#start();
  }

  #start(): void {
    const id = `c${++this.#n}`;
    const r = Math.random();
    const ruleId = r < 0.4 ? 'direct' : r < 0.7 ? 'to-orders' : 'qualify';
    const group = ruleId === 'direct' ? 'tv' : ruleId === 'to-orders' ? 'orders' : 'general';
    const c: Conversation = {
      id,
      visitor: `v${this.#n}`,
      group,
      state: 'new',
      agent: null,
      answered: false,
    };
    this.conversations.set(id, c);
    void this.send(
      {
        type: 'StartConversation',
        id: `start-${id}`,
        conversation: id,
        visitor: c.visitor,
        rule: ruleId,
        message: { id: `${id}-first`, text: 'Hello' },
      },
      true,
      group,
    );
  }

  #answer(c: Conversation): void {
    c.answered = true;
    this.#message(c, { kind: 'visitor', id: c.visitor }, Math.random() < 0.5 ? 'Order' : 'Other');
  }

  #visitorMessage(c: Conversation): void {
    this.#message(c, { kind: 'visitor', id: c.visitor }, 'a question');
  }

  #agentMessage(c: Conversation): void {
    this.#message(c, { kind: 'agent', id: c.agent! }, 'an answer');
  }

  #message(c: Conversation, author: { kind: 'visitor' | 'agent'; id: string }, text: string): void {
    const m = ++this.#messages;
    void this.send(
      {
        type: 'SendMessage',
        id: `send-${m}`,
        conversation: c.id,
        author,
        message: { id: `m-${m}`, text },
      },
      true,
      c.group,
    );
  }

  #snooze(c: Conversation): void {
    void this.send(
      {
        type: 'Snooze',
        id: `snooze-${++this.#messages}`,
        conversation: c.id,
        agent: c.agent!,
        durationMs: 500 + Math.floor(Math.random() * 2_500),
      },
      true,
      c.group,
    );
  }

  #close(c: Conversation): void {
    void this.send(
      { type: 'Close', id: `close-${c.id}`, conversation: c.id, by: { agent: c.agent! } },
      true,
      c.group,
    );
  }

  /** Publishes until JetStream acknowledges it (a retry carries the same id: stored once). */
  send(command: Command, counted: boolean, group = 'tv'): Promise<void> {
    const subject =
      command.type === 'SetAgentPresence'
        ? agentCommandSubject(command.agent)
        : commandSubject(group, command.conversation);
    const data = JSON.stringify(command);
    this.inFlight++;
    const work = (async () => {
      // For up to 20 s, as a client riding out a leader election would.
      const giveUp = Date.now() + 20_000;
      while (Date.now() < giveUp) {
        try {
          await this.js.publish(subject, data, { msgID: commandMsgId(command), timeout: 2_000 });
          if (counted) {
            this.acked.set(commandMsgId(command), {
              type: command.type,
              conversation: 'conversation' in command ? command.conversation : null,
            });
          }
          return;
        } catch {
          await sleep(300);
        }
      }
      if (counted) this.refused++;
    })().finally(() => {
      this.inFlight--;
      this.#pending.delete(work);
    });
    this.#pending.add(work);
    return work;
  }

  async settled(): Promise<void> {
    while (this.#pending.size > 0) await Promise.all([...this.#pending]);
  }

  /** What an event says of its conversation and of the command that caused it (`id`: its msgID). */
  readonly seen = new Map<string, number>();

  observe(e: DomainEvent, id: string | undefined, storedAt: number): void {
    this.seen.set(e.type, (this.seen.get(e.type) ?? 0) + 1);
    if (id) this.effects.add(commandOf(id));
    if (!('conversation' in e) || !e.conversation) return;
    const c = this.conversations.get(e.conversation);
    if (!c) return;
    if ('group' in e && e.group) c.group = e.group;
    switch (e.type) {
      case 'ConversationStarted':
        c.state = 'bot';
        break;
      case 'ConversationQueued':
      case 'ConversationParked':
        c.state = e.type === 'ConversationQueued' ? 'queued' : 'bot';
        c.agent = null;
        break;
      case 'ConversationAssigned':
        c.state = 'assigned';
        c.agent = e.agent;
        break;
      case 'ConversationSnoozed':
        this.#endSnooze(c.id, 'other', storedAt);
        c.state = 'snoozed';
        this.snoozes.push({ conversation: c.id, until: e.until, ended: null, wokenAt: null });
        break;
      case 'ConversationWoken':
        this.#endSnooze(c.id, e.by === 'timer' ? 'timer' : 'other', storedAt);
        c.state = 'queued';
        break;
      case 'ConversationClosed':
        this.#endSnooze(c.id, 'other', storedAt);
        c.state = 'closed';
        break;
      default:
        break;
    }
  }

  #endSnooze(conversation: string, by: 'timer' | 'other', at: number): void {
    for (let i = this.snoozes.length - 1; i >= 0; i--) {
      const s = this.snoozes[i]!;
      if (s.conversation !== conversation) continue;
      if (s.ended === null) {
        s.ended = by;
        s.wokenAt = at;
      }
      return;
    }
  }

  /** Snoozes whose deadline passed before `before` and that nothing ended yet. */
  dueUnwoken(before: number): number {
    return this.snoozes.filter((s) => s.ended === null && s.until < before).length;
  }
}

const pick = <T>(xs: readonly T[]): T => xs[Math.floor(Math.random() * xs.length)]!;

/** The unit of an event id (`<unit>:<index>`): a command's msgID (a forwarded command keeps it). */
function commandOf(eventId: string): string {
  const i = eventId.lastIndexOf(':');
  return i < 0 ? eventId : eventId.slice(0, i);
}

/** Follows the events stream (an ordered consumer: it survives a server's death) into the load's model. */
function followEvents(js: JetStreamClient, load: Load): { stop(): void } {
  let stopped = false;
  let messages: { stop(): void } | undefined;
  void (async () => {
    while (!stopped) {
      try {
        const consumer = await js.consumers.get(STREAMS.events);
        const it = await consumer.consume();
        messages = { stop: () => void it.stop() };
        for await (const m of it) {
          load.observe(
            m.json<DomainEvent>(),
            m.headers?.get('Nats-Msg-Id'),
            Number(m.timestampNanos / 1_000_000n),
          );
          if (stopped) break;
        }
      } catch (error) {
        process.stderr.write(`follow: ${String(error)}\n`);
        await sleep(250);
      }
    }
  })();
  return {
    stop() {
      stopped = true;
      messages?.stop();
    },
  };
}

/** Samples every lease: the time each spent without a live holder. */
class OwnerWatch {
  readonly unownedMs = new Map<string, number>();
  readonly longestMs = new Map<string, number>();
  readonly #since = new Map<string, number>();
  readonly last = new Map<string, boolean>();
  #timer: NodeJS.Timeout;

  constructor(
    readonly kv: KV,
    readonly leases: readonly string[],
  ) {
    let previous = Date.now();
    this.#timer = setInterval(async () => {
      const now = Date.now();
      const step = now - previous;
      previous = now;
      for (const lease of leases) {
        let owned: boolean;
        try {
          const e = await kv.get(lease);
          owned = e?.operation === 'PUT' && (e.json<{ until: number }>().until ?? 0) > Date.now();
        } catch {
          continue; // unknown: the cluster is electing
        }
        this.last.set(lease, owned);
        if (owned) {
          this.#since.delete(lease);
          continue;
        }
        this.unownedMs.set(lease, (this.unownedMs.get(lease) ?? 0) + step);
        const since = this.#since.get(lease) ?? now;
        this.#since.set(lease, since);
        this.longestMs.set(lease, Math.max(this.longestMs.get(lease) ?? 0, now - since + step));
      }
    }, 200);
  }

  stop(): void {
    clearInterval(this.#timer);
  }
}

/** Samples the world: seats of each waiting list against its cap, agents' load against their slots. */
class WorldWatch {
  capExceeded = 0;
  slotsExceeded = 0;
  #timer: NodeJS.Timeout;

  constructor(groups: KV, agents: KV, settings: ReturnType<typeof chaosSettings>) {
    this.#timer = setInterval(async () => {
      try {
        for (const g of settings.groups) {
          const seats = (await groups.get(`seats.${g.id}`))?.json<string[]>() ?? [];
          if (seats.length > g.cap) this.capExceeded++;
        }
        for (const a of settings.agents) {
          const e = await agents.get(a.id);
          const held =
            e?.operation === 'PUT'
              ? e.json<{ context: { conversations: string[] } }>().context.conversations
              : [];
          if (held.length > a.slots) this.slotsExceeded++;
        }
      } catch {
        // the cluster is electing: next sample
      }
    }, 500);
  }

  stop(): void {
    clearInterval(this.#timer);
  }
}

/** Every write of the stored conversations, to catch one that goes back (fewer messages than before). */
async function watchBackward(kv: KV): Promise<{ seen: string[]; stop(): void }> {
  const seen: string[] = [];
  const last = new Map<string, { nextSeq: number; revision: number }>();
  const it = await kv.watch({ key: '>' });
  void (async () => {
    for await (const e of it) {
      if (e.operation !== 'PUT') continue;
      try {
        const nextSeq = e.json<{ record: { context: { nextSeq: number } } | null }>().record
          ?.context.nextSeq;
        if (nextSeq === undefined) continue;
        const before = last.get(e.key);
        if (before && nextSeq < before.nextSeq) {
          seen.push(
            `${e.key}: revision ${e.revision} has nextSeq ${nextSeq}, revision ${before.revision} had ${before.nextSeq}`,
          );
        }
        last.set(e.key, { nextSeq, revision: e.revision });
      } catch {
        // not a record
      }
    }
  })();
  return { seen, stop: () => it.stop() };
}

/** Each conversation's stored record against the state its events gave it (the load's model). */
async function compareStored(kv: KV, load: Load, trails: Map<string, string[]>): Promise<string[]> {
  const out: string[] = [];
  for (const c of load.conversations.values()) {
    if (c.state === 'new') continue;
    let stored:
      | { group: string; record: { value: unknown; context: { agent: string | null } } | null }
      | undefined;
    for (let attempt = 1; attempt <= 5 && stored === undefined; attempt++) {
      try {
        stored = (await kv.get(c.id))?.json() ?? undefined;
      } catch {
        await sleep(500);
      }
    }
    if (!stored?.record) {
      out.push(`${c.id}: ${c.state} by its events, not stored`);
      continue;
    }
    const value = stored.record.value;
    const state = typeof value === 'string' ? value : Object.keys(value as object)[0];
    const agent = stored.record.context.agent;
    if (state !== c.state || (c.state === 'assigned' && agent !== c.agent)) {
      out.push(
        `${c.id}: ${c.state}${c.agent ? ` (${c.agent})` : ''} by its events, stored ${state}${agent ? ` (${agent})` : ''}: ${(trails.get(c.id) ?? []).join(' ')}`,
      );
    }
  }
  return out;
}

/** Reads the whole events stream once more and compares it with what was acknowledged. */
async function check(
  js: JetStreamClient,
  load: Load,
  owners: OwnerWatch,
  world: WorldWatch,
  faults: string[],
): Promise<
  Omit<
    ChaosReport,
    'workerStartFailures' | 'diverged' | 'divergedWhat' | 'backwardWrites' | 'backwardWhat'
  > & {
    model: Load;
    trails: Map<string, string[]>;
  }
> {
  // The conversations' states as the whole stream tells them, in its order.
  const model = new Load(js, load.groups);
  const trails = new Map<string, string[]>();
  const effects = new Set<string>();
  const added = new Map<string, number>();
  const starts = new Map<string, number>();
  const threads = new Map<string, number[]>();
  for (let attempt = 1; ; attempt++) {
    try {
      effects.clear();
      model.conversations.clear();
      trails.clear();
      for (const c of load.conversations.values()) {
        model.conversations.set(c.id, { ...c, state: 'new', agent: null });
      }
      added.clear();
      starts.clear();
      threads.clear();
      const consumer = await js.consumers.get(STREAMS.events);
      const info = await consumer.info();
      let left = info.num_pending;
      while (left > 0) {
        const batch = await consumer.fetch({ max_messages: 1_000, expires: 5_000 });
        for await (const m of batch) {
          left = m.info.pending;
          const id = m.headers?.get('Nats-Msg-Id');
          if (id) effects.add(commandOf(id));
          const e = m.json<DomainEvent>();
          model.observe(e, id, Number(m.timestampNanos / 1_000_000n));
          if ('conversation' in e && e.conversation) {
            const trail = trails.get(e.conversation) ?? [];
            const what =
              e.type === 'MessageAdded'
                ? `msg#${e.message.seq}(${e.message.author.kind})`
                : `${e.type}${'agent' in e && e.agent ? `(${e.agent})` : ''}`;
            trail.push(`${what}[${'group' in e ? (e.group ?? '-') : '-'}]@${id}/${m.seq}`);
            trails.set(e.conversation, trail);
          }
          if (e.type === 'MessageAdded') {
            const key = `${e.conversation}/${e.message.id}`;
            added.set(key, (added.get(key) ?? 0) + 1);
            const seqs = threads.get(e.conversation) ?? [];
            seqs.push(e.message.seq);
            threads.set(e.conversation, seqs);
          }
          if (e.type === 'ConversationStarted')
            starts.set(e.conversation, (starts.get(e.conversation) ?? 0) + 1);
          if (left === 0) break;
        }
      }
      break;
    } catch (error) {
      if (attempt >= 10) throw error;
      await sleep(1_000);
    }
  }
  const lostIds = [...load.acked.keys()].filter((id) => !effects.has(id));
  const duplicatedWhat: string[] = [];
  for (const [key, count] of added)
    if (count > 1) duplicatedWhat.push(`message ${key} added ${count} times`);
  for (const [c, count] of starts)
    if (count > 1) duplicatedWhat.push(`conversation ${c} started ${count} times`);
  for (const [c, seqs] of threads) {
    const expected = seqs.map((_, i) => i + 1);
    if (seqs.join() !== expected.join())
      duplicatedWhat.push(
        `thread of ${c} numbered ${seqs.join(',')}: ${(trails.get(c) ?? []).join(' ')}`,
      );
  }
  const end = Date.now();
  const due = model.snoozes.filter((s) => s.until < end - 2_000);
  const lateness = due
    .filter((s) => s.ended === 'timer' && s.wokenAt !== null)
    .map((s) => Math.max(0, s.wokenAt! - s.until))
    .sort((a, b) => a - b);
  const quantile = (q: number) =>
    lateness.length === 0
      ? 0
      : lateness[Math.min(lateness.length - 1, Math.ceil(q * lateness.length) - 1)]!;
  const unowned = [...owners.unownedMs.values()].reduce((a, b) => a + b, 0);
  return {
    acked: load.acked.size,
    applied: load.acked.size - lostIds.length,
    lost: lostIds.length,
    lostIds: lostIds.slice(0, 20),
    duplicated: duplicatedWhat.length,
    duplicatedWhat: duplicatedWhat.slice(0, 20),
    refused: load.refused,
    unownedSeconds: Math.round(unowned / 100) / 10,
    longestUnownedMs: Math.max(0, ...owners.longestMs.values()),
    unownedAtEnd: [...owners.last].filter(([, owned]) => !owned).map(([lease]) => lease),
    snoozesDue: due.length,
    unwoken: due.filter((s) => s.ended === null).length,
    unwokenWhat: due
      .filter((s) => s.ended === null)
      .slice(0, 10)
      .map(
        (s) =>
          `${s.conversation} until ${s.until}: ${(trails.get(s.conversation) ?? []).join(' ')}`,
      ),
    wakeLatenessMaxMs: lateness.at(-1) ?? 0,
    wakeLatenessP99Ms: quantile(0.99),
    wakeLatenessMedianMs: quantile(0.5),
    capExceeded: world.capExceeded,
    slotsExceeded: world.slotsExceeded,
    faults,
    model,
    trails,
  };
}
