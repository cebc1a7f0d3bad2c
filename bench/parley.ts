// Parley end to end, as an integrator drives it: a worker (in its own process, bench/worker-main.ts)
// hosting two routing groups, agents online, conversations started and assigned; then SendMessage
// commands (~256 bytes of JSON each) published from this process with a window in flight, until
// the worker has published every MessageAdded event, counted by a core subscription on
// `parley.evt.>`.
import { fileURLToPath } from 'node:url';
import { type JetStreamClient, jetstream } from '@nats-io/jetstream';
import { Kvm, KvWatchInclude } from '@nats-io/kv';
import type { NatsConnection, Subscription } from '@nats-io/transport-node';
import type { DomainEvent } from '../actors/events.ts';
import {
  type AgentSettings,
  GROUP_DEFAULTS,
  type RoutingRule,
  type Settings,
} from '../actors/settings.ts';
import { agentCommandSubject, BUCKETS, commandSubject, STREAMS } from '../lib/nats/streams.ts';
import { consumerName } from '../lib/worker/host.ts';
import {
  type BenchChild,
  benchConnect,
  type CpuUse,
  cpuMeter,
  inFlight,
  startChild,
  until,
} from './util.ts';

const WORKER_MAIN = fileURLToPath(new URL('./worker-main.ts', import.meta.url));

export const GROUPS = ['tv', 'orders'] as const;
const AGENTS = 10;

/** Two routing groups served by ten agents with room for every conversation of the benchmark. */
export function benchSettings(conversations: number): Settings {
  const direct = (group: string): RoutingRule => ({
    id: `to-${group}`,
    match: { pages: [], attributes: {} },
    showChatButton: true,
    hideWhenFull: false,
    target: { group, byAnswer: [] },
  });
  const agents: AgentSettings[] = Array.from({ length: AGENTS }, (_, i) => ({
    id: `agent-${i}`,
    name: `Agent ${i}`,
    groups: [...GROUPS],
    slots: Math.ceil(conversations / AGENTS) + 1,
  }));
  return {
    groups: GROUPS.map((id) => ({
      ...GROUP_DEFAULTS,
      id,
      name: id,
      cap: Math.max(GROUP_DEFAULTS.cap, conversations),
    })),
    rules: GROUPS.map(direct),
    agents,
    cannedAnswers: [],
  };
}

interface Conversation {
  readonly id: string;
  readonly group: string;
  readonly visitor: string;
  agent: string | undefined;
}

/** The event types the benchmark waits for or counts. */
const COUNTED = [
  'AgentPresenceChanged',
  'ConversationAssigned',
  'MessageAdded',
  'CommandRejected',
  'MessageRefused',
] as const;

/**
 * The integrator's side: one connection that publishes commands and follows the events it waits
 * for, one core subscription per type (`parley.evt.*.*.<type>`), counting them without reading
 * them, as raw JetStream's side counts its messages (bench/raw.ts).
 */
export class Client {
  readonly nc: NatsConnection;
  readonly js: JetStreamClient;
  readonly #subs: Subscription[] = [];
  readonly #counts = new Map<string, { n: number }>();
  /** Called with every event whose type is watched (reading every event would cost this process CPU). */
  onEvent: ((event: DomainEvent, received: number) => void) | undefined;
  watched = new Set<string>();

  private constructor(nc: NatsConnection) {
    this.nc = nc;
    this.js = jetstream(nc);
    for (const type of COUNTED) {
      const count = { n: 0 };
      this.#counts.set(type, count);
      this.#subs.push(
        nc.subscribe(`parley.evt.*.*.${type}`, {
          callback: (error, msg) => {
            if (error) return;
            count.n++;
            if (!this.watched.has(type)) return;
            const received = performance.now();
            this.onEvent?.(msg.json<DomainEvent>(), received);
          },
        }),
      );
    }
  }

  static async connect(url: string): Promise<Client> {
    const client = new Client(await benchConnect(url, 'bench-integrator'));
    await client.nc.flush();
    return client;
  }

  count(type: (typeof COUNTED)[number]): number {
    return this.#counts.get(type)!.n;
  }

  async close(): Promise<void> {
    for (const sub of this.#subs) sub.unsubscribe();
    await this.nc.drain();
  }
}

/** The id of SendMessage command number `i` of a run. */
const commandId = (prefix: string, i: number) => `${prefix}-${String(i).padStart(6, '0')}`;

export interface ParleyRig {
  /** The worker's process. */
  readonly worker: BenchChild;
  /** Bytes of JSON per command. */
  readonly size: number;
  readonly client: Client;
  readonly conversations: Conversation[];
  /** The SendMessage command number `i` (unique ids from `prefix`), JSON of `size` bytes. */
  command(prefix: string, i: number): { subject: string; id: string; data: string };
  /** The subject of command number `i`. */
  subject(i: number): string;
  stop(): Promise<void>;
}

/** Starts a worker, brings the agents online, and starts `count` conversations, all assigned. */
export async function startParley(o: {
  url: string;
  conversations: number;
  size: number;
  batch?: number;
}): Promise<ParleyRig> {
  const settings = benchSettings(o.conversations);
  // Ready once it hosts both groups.
  const worker = await startChild(WORKER_MAIN, {
    NATS_URL: o.url,
    PARLEY_SETTINGS: JSON.stringify(settings),
    PARLEY_GROUPS: GROUPS.join(','),
    PARLEY_BATCH: String(o.batch ?? 0),
  });
  const client = await Client.connect(o.url).catch(async (error: unknown) => {
    await worker.stop();
    throw error;
  });
  try {
    const { js } = client;
    await Promise.all(
      settings.agents.map((a) => {
        const cmd = { type: 'SetAgentPresence', id: `presence-${a.id}`, agent: a.id };
        return js.publish(
          agentCommandSubject(a.id),
          JSON.stringify({ ...cmd, presence: 'online' }),
          { msgID: cmd.id },
        );
      }),
    );
    await until(
      () => client.count('AgentPresenceChanged') >= settings.agents.length,
      10_000,
      'the agents to be online',
    );

    const conversations: Conversation[] = Array.from({ length: o.conversations }, (_, i) => ({
      id: `c-${String(i).padStart(5, '0')}`,
      group: GROUPS[i % GROUPS.length]!,
      visitor: `v-${String(i).padStart(5, '0')}`,
      agent: undefined,
    }));
    const byId = new Map(conversations.map((c) => [c.id, c]));
    client.watched.add('ConversationAssigned');
    client.onEvent = (event) => {
      if (event.type === 'ConversationAssigned') byId.get(event.conversation)!.agent = event.agent;
    };
    await inFlight(conversations.length, 256, (i) => {
      const c = conversations[i]!;
      const cmd = {
        type: 'StartConversation',
        id: `start-${c.id}`,
        conversation: c.id,
        visitor: c.visitor,
        rule: `to-${c.group}`,
        message: { text: 'Hello, my new television shows no picture at all. Can you help?' },
      };
      return js.publish(commandSubject(c.group, c.id), JSON.stringify(cmd), { msgID: cmd.id });
    });
    await until(
      () => conversations.every((c) => c.agent !== undefined),
      30_000,
      'every conversation to be assigned',
    );
    client.onEvent = undefined;
    client.watched.clear();

    const command = (prefix: string, i: number) => {
      const c = conversations[i % conversations.length]!;
      const id = commandId(prefix, i);
      // Visitor and agent take turns, as in a conversation.
      const author =
        Math.floor(i / conversations.length) % 2 === 0
          ? { kind: 'visitor', id: c.visitor }
          : { kind: 'agent', id: c.agent! };
      const cmd = { type: 'SendMessage', id, conversation: c.id, author, message: { text: '' } };
      const pad = o.size - Buffer.byteLength(JSON.stringify(cmd));
      cmd.message.text = `Any news about my order? ${'x'.repeat(Math.max(0, pad - 25))}`;
      return { subject: commandSubject(c.group, c.id), id, data: JSON.stringify(cmd) };
    };
    const subjects = conversations.map((c) => commandSubject(c.group, c.id));
    return {
      worker,
      size: o.size,
      client,
      conversations,
      command,
      subject: (i) => subjects[i % subjects.length]!,
      stop: async () => {
        await client.close().catch(() => undefined);
        await worker.stop();
      },
    };
  } catch (error) {
    await client.close().catch(() => undefined);
    await worker.stop().catch(() => undefined);
    throw error;
  }
}

export interface WorkerActivity {
  /** Acknowledgements the worker sent for group commands: one ack-all per applied batch. */
  acks: number;
  /** Writes of the group records (checkpoints, ARCHITECTURE.md), and the size of the last one. */
  groupWrites: number;
  groupRecordBytes: number;
}

/**
 * Watches, from outside, what the worker does per batch: its acknowledgements (core
 * subscription on the commands stream's ack subjects) and its group-record writes (KV watch).
 * Call the result to stop and read the counts.
 */
export async function watchWorker(client: Client): Promise<() => WorkerActivity> {
  const activity: WorkerActivity = { acks: 0, groupWrites: 0, groupRecordBytes: 0 };
  const acks = client.nc.subscribe(`$JS.ACK.${STREAMS.commands}.>`, {
    callback: (error, msg) => {
      if (!error && GROUPS.some((g) => msg.subject.includes(`.${consumerName(g)}.`)))
        activity.acks++;
    },
  });
  const kv = await new Kvm(client.nc).open(BUCKETS.groups);
  // One key per watch: several need nats-server 2.10.
  const watch = await kv.watch({ key: '>', include: KvWatchInclude.UpdatesOnly });
  const keys = new Set<string>(GROUPS);
  void (async () => {
    for await (const entry of watch) {
      if (!keys.has(entry.key)) continue;
      activity.groupWrites++;
      activity.groupRecordBytes = entry.length;
    }
  })();
  await client.nc.flush();
  return () => {
    acks.unsubscribe();
    watch.stop();
    return { ...activity };
  };
}

export interface ThroughputResult {
  readonly cmdsPerS: number;
  readonly ms: number;
  /** Time until the last command was stored by JetStream (the publish side alone). */
  readonly publishMs: number;
  readonly refused: number;
  readonly cpu: CpuUse;
}

/** Publishes `count` SendMessage commands, `window` in flight; done when as many MessageAdded arrived. */
export async function runThroughput(
  rig: ParleyRig,
  o: { count: number; inFlight: number; prefix: string; serverPid?: number | undefined },
): Promise<ThroughputResult> {
  const { client } = rig;
  const added = client.count('MessageAdded');
  const refused = client.count('CommandRejected') + client.count('MessageRefused');
  // Every command's bytes in one block, ready before the clock starts, as raw JetStream's
  // payload is (bench/raw.ts): 20,000 objects held through the run would cost this process
  // garbage collection that raw's does not have. Subjects and ids are made as they are sent, as
  // raw's are.
  const block = Buffer.allocUnsafe(o.count * (4 * rig.size + 64));
  const ends = new Uint32Array(o.count + 1);
  for (let i = 0; i < o.count; i++) {
    ends[i + 1] = ends[i]! + block.write(rig.command(o.prefix, i).data, ends[i]!);
  }
  const cpu = cpuMeter({ serverPid: o.serverPid, workerPid: rig.worker.pid });
  const started = performance.now();
  let publishMs = 0;
  await inFlight(o.count, o.inFlight, (i) => {
    const data = new Uint8Array(block.buffer, block.byteOffset + ends[i]!, ends[i + 1]! - ends[i]!);
    return client.js.publish(rig.subject(i), data, { msgID: commandId(o.prefix, i) });
  });
  publishMs = performance.now() - started;
  await until(
    () => client.count('MessageAdded') - added >= o.count,
    60_000,
    () => `${o.count} MessageAdded events (${client.count('MessageAdded') - added} arrived)`,
  );
  const ms = performance.now() - started;
  const used = cpu();
  return {
    cmdsPerS: o.count / (ms / 1000),
    ms,
    publishMs,
    refused: client.count('CommandRejected') + client.count('MessageRefused') - refused,
    cpu: used,
  };
}
