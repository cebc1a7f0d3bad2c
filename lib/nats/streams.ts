// Parley's streams, subjects and KV buckets, named in one place, and their creation or upgrade
// at start. This file is the integrators' NATS contract in code (docs/integration.md tells it).

import {
  DiscardPolicy,
  type JetStreamManager,
  jetstreamManager,
  RetentionPolicy,
  StorageType,
  type StreamConfig,
  type StreamInfo,
} from '@nats-io/jetstream';
import { Kvm } from '@nats-io/kv';
import { type NatsConnection, nanos } from '@nats-io/transport-node';
import { type Command, commandKey } from '../../actors/events.ts';
import { ID_PATTERN } from '../config.ts';
import { ParleyError } from '../errors.ts';
import { checkJetStream } from './connection.ts';

const DAY_MS = 24 * 60 * 60 * 1000;

export const STREAMS = {
  /** Commands to conversations and agents, de-duplicated by command id. */
  commands: 'PARLEY_COMMANDS',
  /** Events: every transition of every actor. */
  events: 'PARLEY_EVENTS',
} as const;

export const SUBJECT_ROOTS = { commands: 'parley.cmd', events: 'parley.evt' } as const;

/** Set on the last event of each unit of work: a reader waiting for an outcome has all of it. */
export const UNIT_END_HEADER = 'Parley-Unit-End';

/** The token that puts agents beside groups in subjects; group ids cannot start with `_`. */
export const AGENT_TOKEN = '_agent';

export const BUCKETS = {
  /** Conversation snapshots, key = conversation id. */
  conversations: 'parley-conversations',
  /** Routing-group snapshots (waiting list), key = group id. */
  groups: 'parley-groups',
  /** Agents' presence and load, key = agent id; changed only by compare-and-set. */
  agents: 'parley-agents',
  /** Group leases, key = group id, value JSON `{ worker, until }` (see leases.ts). */
  leases: 'parley-leases',
  /** Live workers' heartbeats, key = worker id. */
  workers: 'parley-workers',
  /** The live configuration. */
  config: 'parley-config',
  /** Blocked visitors, key = visitor id. */
  visitors: 'parley-visitors',
  /**
   * What Parley knows of a visitor besides blocking: `conv.<visitor>.<conversation>` for each
   * conversation they started (written when the id is claimed), `email.<visitor>` for notifications.
   */
  visitorData: 'parley-visitor-data',
  /**
   * Gateways' open event streams, `agent.<agent>.<gateway>` and
   * `visitor.<visitor>.<conversation>.<gateway>`, heartbeated: presence across gateways.
   */
  connections: 'parley-connections',
} as const;

export type BucketName = (typeof BUCKETS)[keyof typeof BUCKETS];

export const DEFAULTS = {
  commandsMaxAgeMs: 7 * DAY_MS,
  eventsMaxAgeMs: 30 * DAY_MS,
  duplicateWindowMs: 2 * 60 * 1000,
  leaseTtlMs: 5_000,
  workerTtlMs: 5_000,
  /** Three heartbeats of a gateway's open streams (lib/gateway/presence.ts). */
  connectionTtlMs: 60_000,
} as const;

// ─── Ids and subjects ──────────────────────────────────────────────────────────────────────

const TOKEN = /^[A-Za-z0-9_-]{1,128}$/;
const GROUP = new RegExp(ID_PATTERN);
const EVENT_TYPE = /^[A-Z][A-Za-z0-9]{0,127}$/;

/**
 * Returns `value` if it may be a subject token and a KV key (conversation, agent, worker,
 * visitor ids: 1 to 128 of `A-Z a-z 0-9 _ -`, so no dots, no wildcards, no spaces);
 * throws PARLEY_ERR_INVALID_ID otherwise. `kind` names it in the message.
 */
export function validateId(kind: string, value: unknown): string {
  if (typeof value === 'string' && TOKEN.test(value)) return value;
  throw new ParleyError('PARLEY_ERR_INVALID_ID', [
    kind,
    JSON.stringify(value) ?? String(value),
    'use 1 to 128 letters, digits, "_" or "-" (no dots, spaces or wildcards)',
  ]);
}

/** Returns `value` if it is a routing group id (`[a-z0-9][a-z0-9-]*`, at most 128); throws PARLEY_ERR_INVALID_ID. */
export function validateGroupId(value: unknown): string {
  if (typeof value === 'string' && value.length <= 128 && GROUP.test(value)) return value;
  throw new ParleyError('PARLEY_ERR_INVALID_ID', [
    'routing group id',
    JSON.stringify(value) ?? String(value),
    'use lower-case letters, digits and "-", starting with a letter or digit',
  ]);
}

function validateEventType(value: unknown): string {
  if (typeof value === 'string' && EVENT_TYPE.test(value)) return value;
  throw new ParleyError('PARLEY_ERR_INVALID_ID', [
    'event type',
    JSON.stringify(value) ?? String(value),
    'use a PascalCase name such as ConversationQueued',
  ]);
}

/**
 * The `Nats-Msg-Id` a command is published with, and the unit id its events carry
 * (`<unit>:<n>`): `<conversation>:<command key>` (`_agent.<agent>:<command key>` for an agent's
 * command), the key being its kind, its sender and its id (actors/events.ts `commandKey`). So
 * equal ids chosen in two conversations, by two senders, or for two kinds of command are two
 * commands; only a true retry is dropped.
 */
export function commandMsgId(command: Command): string {
  const scope =
    command.type === 'SetAgentPresence' ? `${AGENT_TOKEN}.${command.agent}` : command.conversation;
  return `${scope}:${commandKey(command)}`;
}

/** `parley.cmd.<group>.<conversation>`: a command to a conversation of a routing group. */
export function commandSubject(group: string, conversation: string): string {
  return `${SUBJECT_ROOTS.commands}.${validateGroupId(group)}.${validateId('conversation id', conversation)}`;
}

/** `parley.cmd._agent.<agent>`: a command to an agent (presence, slots). */
export function agentCommandSubject(agent: string): string {
  return `${SUBJECT_ROOTS.commands}.${AGENT_TOKEN}.${validateId('agent id', agent)}`;
}

/** `parley.evt.<group>.<conversation>.<EventType>`. */
export function eventSubject(group: string, conversation: string, type: string): string {
  return `${SUBJECT_ROOTS.events}.${validateGroupId(group)}.${validateId('conversation id', conversation)}.${validateEventType(type)}`;
}

/** `parley.evt._agent.<agent>.<EventType>`. */
export function agentEventSubject(agent: string, type: string): string {
  return `${SUBJECT_ROOTS.events}.${AGENT_TOKEN}.${validateId('agent id', agent)}.${validateEventType(type)}`;
}

/** `parley.cmd.<group>.>`: every command of a routing group (a group's consumer filter). */
export function groupCommandFilter(group: string): string {
  return `${SUBJECT_ROOTS.commands}.${validateGroupId(group)}.>`;
}

/** `parley.cmd._agent.>`: every agent command. */
export const AGENT_COMMANDS_FILTER = `${SUBJECT_ROOTS.commands}.${AGENT_TOKEN}.>`;

/** `parley.evt.<group>.>`: every event of a routing group's conversations. */
export function groupEventFilter(group: string): string {
  return `${SUBJECT_ROOTS.events}.${validateGroupId(group)}.>`;
}

/** `parley.evt.<group>.<conversation>.*`: every event of one conversation. */
export function conversationEventFilter(group: string, conversation: string): string {
  return `${SUBJECT_ROOTS.events}.${validateGroupId(group)}.${validateId('conversation id', conversation)}.*`;
}

export type CommandAddress =
  | { kind: 'conversation'; group: string; conversation: string }
  | { kind: 'agent'; agent: string };

/** Reads a command subject back; undefined when it is not one (a worker logs and terminates those). */
export function parseCommandSubject(subject: string): CommandAddress | undefined {
  const [p, c, first, second, ...rest] = subject.split('.');
  if (`${p}.${c}` !== SUBJECT_ROOTS.commands || first === undefined || second === undefined) {
    return undefined;
  }
  if (rest.length > 0 || !TOKEN.test(second)) return undefined;
  if (first === AGENT_TOKEN) return { kind: 'agent', agent: second };
  return GROUP.test(first)
    ? { kind: 'conversation', group: first, conversation: second }
    : undefined;
}

export type EventAddress =
  | { kind: 'conversation'; group: string; conversation: string; type: string }
  | { kind: 'agent'; agent: string; type: string };

/** Reads an event subject back; undefined when it is not one. */
export function parseEventSubject(subject: string): EventAddress | undefined {
  const [p, e, first, second, type, ...rest] = subject.split('.');
  if (`${p}.${e}` !== SUBJECT_ROOTS.events || first === undefined || second === undefined) {
    return undefined;
  }
  if (type === undefined || rest.length > 0 || !TOKEN.test(second) || !EVENT_TYPE.test(type)) {
    return undefined;
  }
  if (first === AGENT_TOKEN) return { kind: 'agent', agent: second, type };
  return GROUP.test(first)
    ? { kind: 'conversation', group: first, conversation: second, type }
    : undefined;
}

// ─── Creation and upgrade ──────────────────────────────────────────────────────────────────

export interface StreamsOptions {
  /**
   * Replicas of every stream and bucket, exactly (an existing one is brought to it, up or down).
   * Left out: `defaultReplicas` of the server or cluster, and an existing stream is never lowered.
   */
  replicas?: number;
  commandsMaxAgeMs?: number;
  eventsMaxAgeMs?: number;
  /** TTL of the leases bucket; a lease period must not exceed it. */
  leaseTtlMs?: number;
  /** TTL of the workers bucket. */
  workerTtlMs?: number;
}

/** What `ensureStreams` did, by stream name (`KV_<bucket>` for buckets). */
export interface EnsureReport {
  created: string[];
  updated: string[];
  unchanged: string[];
}

/** The settings Parley owns on a stream; fields it does not name are left as they are. */
type Owned = Pick<
  StreamConfig,
  'subjects' | 'max_age' | 'duplicate_window' | 'num_replicas' | 'max_msgs_per_subject'
> & { description: string };

interface BucketSpec {
  bucket: BucketName;
  description: string;
  history: number;
  ttlMs: number;
}

/**
 * Creates Parley's streams and KV buckets, or upgrades them to this version's settings
 * (subjects, ages, duplicate window, history, TTL, replicas). Idempotent, and safe when several
 * processes call it at once. Throws PARLEY_ERR_NATS_SETUP when a stream cannot be brought to
 * the settings (e.g. one of the same name with another storage type), and
 * PARLEY_ERR_JETSTREAM_DISABLED on a server without JetStream.
 */
export async function ensureStreams(
  nc: NatsConnection,
  options: StreamsOptions = {},
): Promise<EnsureReport> {
  const o = {
    replicas: options.replicas ?? defaultReplicas(nc),
    exactReplicas: options.replicas !== undefined,
    commandsMaxAgeMs: options.commandsMaxAgeMs ?? DEFAULTS.commandsMaxAgeMs,
    eventsMaxAgeMs: options.eventsMaxAgeMs ?? DEFAULTS.eventsMaxAgeMs,
    leaseTtlMs: options.leaseTtlMs ?? DEFAULTS.leaseTtlMs,
    workerTtlMs: options.workerTtlMs ?? DEFAULTS.workerTtlMs,
  };
  await checkJetStream(nc);
  const jsm = await jetstreamManager(nc, { timeout: 10_000, checkAPI: false });
  const report: EnsureReport = { created: [], updated: [], unchanged: [] };
  const streams: (Owned & { name: string })[] = [
    {
      name: STREAMS.commands,
      description: 'Parley commands to conversations and agents',
      subjects: [`${SUBJECT_ROOTS.commands}.>`],
      max_age: nanos(o.commandsMaxAgeMs),
      duplicate_window: nanos(DEFAULTS.duplicateWindowMs),
      num_replicas: o.replicas,
      max_msgs_per_subject: -1,
    },
    {
      name: STREAMS.events,
      description: 'Parley events: every transition of every actor',
      subjects: [`${SUBJECT_ROOTS.events}.>`],
      max_age: nanos(o.eventsMaxAgeMs),
      duplicate_window: nanos(DEFAULTS.duplicateWindowMs),
      num_replicas: o.replicas,
      max_msgs_per_subject: -1,
    },
  ];
  const work = streams.map((stream) =>
    ensureStream(jsm, stream, report, o.exactReplicas, () =>
      jsm.streams.add({
        ...stream,
        retention: RetentionPolicy.Limits,
        storage: StorageType.File,
        discard: DiscardPolicy.Old,
      }),
    ),
  );

  const buckets: BucketSpec[] = [
    {
      bucket: BUCKETS.conversations,
      description: 'Parley conversation snapshots',
      history: 1,
      ttlMs: 0,
    },
    { bucket: BUCKETS.groups, description: 'Parley routing-group snapshots', history: 1, ttlMs: 0 },
    {
      bucket: BUCKETS.agents,
      description: "Parley agents' presence and load",
      history: 1,
      ttlMs: 0,
    },
    { bucket: BUCKETS.leases, description: 'Parley group leases', history: 1, ttlMs: o.leaseTtlMs },
    {
      bucket: BUCKETS.workers,
      description: 'Parley live workers',
      history: 1,
      ttlMs: o.workerTtlMs,
    },
    { bucket: BUCKETS.config, description: 'Parley live configuration', history: 10, ttlMs: 0 },
    { bucket: BUCKETS.visitors, description: 'Parley blocked visitors', history: 1, ttlMs: 0 },
    {
      bucket: BUCKETS.visitorData,
      description: "Parley visitors' conversations and contact",
      history: 1,
      ttlMs: 0,
    },
    {
      bucket: BUCKETS.connections,
      description: "Parley gateways' open event streams",
      history: 1,
      ttlMs: DEFAULTS.connectionTtlMs,
    },
  ];
  const kvm = new Kvm(nc);
  for (const spec of buckets) {
    const ttl = nanos(spec.ttlMs);
    const owned: Owned & { name: string } = {
      name: `KV_${spec.bucket}`,
      description: spec.description,
      subjects: [`$KV.${spec.bucket}.>`],
      max_age: ttl,
      // The server refuses a duplicate window longer than the max age.
      duplicate_window:
        ttl > 0
          ? Math.min(ttl, nanos(DEFAULTS.duplicateWindowMs))
          : nanos(DEFAULTS.duplicateWindowMs),
      num_replicas: o.replicas,
      max_msgs_per_subject: spec.history,
    };
    work.push(
      ensureStream(jsm, owned, report, o.exactReplicas, async () => {
        await kvm.create(spec.bucket, {
          description: spec.description,
          history: spec.history,
          replicas: o.replicas,
          storage: StorageType.File,
          ...(spec.ttlMs > 0 ? { ttl: spec.ttlMs } : {}),
        });
        // Kvm.create leaves the duplicate window to the server; align it with ours.
        return jsm.streams.info(owned.name);
      }),
    );
  }
  // All at once: on a cluster each creation waits for its replicas.
  await Promise.all(work);
  return report;
}

async function ensureStream(
  jsm: JetStreamManager,
  owned: Owned & { name: string },
  report: EnsureReport,
  exactReplicas: boolean,
  create: () => Promise<StreamInfo>,
): Promise<void> {
  const { name, ...settings } = owned;
  try {
    let info = await streamInfo(jsm, name);
    if (info === undefined) {
      try {
        info = await create();
        report.created.push(name);
      } catch (error) {
        // Another process created it first: go on to compare its settings with ours.
        info = await streamInfo(jsm, name);
        if (info === undefined) throw error;
      }
    }
    const changes = differences(info.config, settings);
    // Asked for nothing in particular, a stream someone made larger stays so.
    if (!exactReplicas && info.config.num_replicas > settings.num_replicas)
      delete changes.num_replicas;
    if (Object.keys(changes).length === 0) {
      if (!report.created.includes(name)) report.unchanged.push(name);
      return;
    }
    await jsm.streams.update(name, changes);
    if (!report.created.includes(name)) report.updated.push(name);
  } catch (error) {
    if (error instanceof ParleyError) throw error;
    const reason = error instanceof Error ? error.message : String(error);
    throw new ParleyError('PARLEY_ERR_NATS_SETUP', [`stream ${name}`, reason], { cause: error });
  }
}

async function streamInfo(jsm: JetStreamManager, name: string): Promise<StreamInfo | undefined> {
  try {
    return await jsm.streams.info(name);
  } catch (error) {
    if ((error as { code?: unknown }).code === 10059) return undefined; // stream not found
    throw error;
  }
}

/**
 * The number of servers of the cluster `nc` is connected to, as the server tells its clients
 * (its `connect_urls`, itself included); 1 on a lone server.
 */
export function clusterSize(nc: NatsConnection): number {
  const info = nc.info;
  if (!info?.cluster) return 1;
  return Math.max(1, new Set(info.connect_urls ?? []).size);
}

/** Replicas Parley asks for when nothing says otherwise: 3 on a cluster (fewer if it is smaller), 1 on one server. */
export function defaultReplicas(nc: NatsConnection): number {
  return Math.min(3, clusterSize(nc));
}

/** The owned settings whose value on the server differs from ours. */
function differences(current: StreamConfig, wanted: Omit<Owned, never>): Partial<Owned> {
  const changes: Partial<Owned> = {};
  const have = [...(current.subjects ?? [])].sort().join(' ');
  if (have !== [...wanted.subjects].sort().join(' ')) changes.subjects = wanted.subjects;
  if ((current.description ?? '') !== wanted.description) changes.description = wanted.description;
  for (const key of [
    'max_age',
    'duplicate_window',
    'num_replicas',
    'max_msgs_per_subject',
  ] as const) {
    if (current[key] !== wanted[key]) changes[key] = wanted[key];
  }
  return changes;
}

/**
 * A bucket's keys under `filter` (a key, or with `*`/`>` wildcards), from its stream's subjects:
 * one request, where `kv.keys()` reads until no write is pending, which a bucket renewed every
 * few hundred ms (leases, heartbeats) may never be. A deleted key is listed too (its entry reads
 * as a DEL or PURGE) until the bucket's history or TTL drops it.
 */
export async function bucketKeys(
  jsm: JetStreamManager,
  bucket: string,
  filter = '>',
): Promise<string[]> {
  const prefix = `$KV.${bucket}.`;
  const info = await jsm.streams.info(`KV_${bucket}`, { subjects_filter: `${prefix}${filter}` });
  return Object.keys(info.state.subjects ?? {})
    .map((subject) => subject.slice(prefix.length))
    .sort();
}
