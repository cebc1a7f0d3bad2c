// The gateway's window on Parley, through NATS only: commands published to JetStream (a caller
// hears of success only once a command is stored), their outcome read back from the events they
// caused, and reads from the KV buckets and the events stream. Holds no state of its own, so any
// number of gateways can run side by side.
import {
  DeliverPolicy,
  type JetStreamClient,
  type JetStreamManager,
  jetstream,
  jetstreamManager,
} from '@nats-io/jetstream';
import { type KV, Kvm } from '@nats-io/kv';
import type { NatsConnection } from '@nats-io/transport-node';
import type { Command, DomainEvent, Message, RejectionCode } from '../../actors/events.ts';
import type { RoutingGroupContext } from '../../actors/routing-group.ts';
import type { Settings } from '../../actors/settings.ts';
import { type ErrorCode, isParleyError, ParleyError } from '../errors.ts';
import { type ConversationInspection, inspectConversation } from '../inspect.ts';
import type { Logger } from '../log.ts';
import { type Sent, sendCommand } from '../nats/command-outcome.ts';
import { BUCKETS, bucketKeys, STREAMS, SUBJECT_ROOTS, validateId } from '../nats/streams.ts';
import type { GroupRecord, StoredConversation } from '../worker/host.ts';
import { indexedOpen } from '../worker/open-index.ts';

/** What became of a command the gateway sent. */
export interface SendResult {
  readonly id: string;
  /** JetStream already held a command with this id (a retry): its outcome is not repeated. */
  readonly duplicate: boolean;
  /** False when no event answered in time: the command is stored and will be applied. */
  readonly applied: boolean;
  /** The events the command caused, in order (empty when not applied yet or a duplicate). */
  readonly events: readonly DomainEvent[];
}

/** An event as read from the events stream: its stream sequence is its id for SSE. */
export interface StoredEvent {
  readonly seq: number;
  readonly subject: string;
  readonly event: DomainEvent;
}

export interface BackendOptions {
  readonly log: Logger;
  /** How long a request waits for its command's events before answering 202 (default 3 s). */
  readonly outcomeMs?: number;
  /** How long a publish waits for JetStream's acknowledgement (default 5 s). */
  readonly publishTimeoutMs?: number;
}

const decoder = new TextDecoder();
const parse = <T>(data: Uint8Array): T => JSON.parse(decoder.decode(data)) as T;

/** The problem a rejection becomes, by the code the engine gave. */
const REJECTION_ERRORS: Record<RejectionCode, ErrorCode> = {
  'unknown-conversation': 'PARLEY_ERR_NOT_FOUND',
  'unknown-agent': 'PARLEY_ERR_NOT_FOUND',
  'unknown-group': 'PARLEY_ERR_NOT_FOUND',
  'unknown-rule': 'PARLEY_ERR_NOT_FOUND',
  'not-assigned-agent': 'PARLEY_ERR_FORBIDDEN',
  'not-the-visitor': 'PARLEY_ERR_FORBIDDEN',
  'visitor-blocked': 'PARLEY_ERR_FORBIDDEN',
  'snooze-out-of-bounds': 'PARLEY_ERR_OUT_OF_RANGE',
  'survey-out-of-range': 'PARLEY_ERR_OUT_OF_RANGE',
  'conversation-exists': 'PARLEY_ERR_COMMAND_REJECTED',
  'not-allowed-in-state': 'PARLEY_ERR_COMMAND_REJECTED',
  'waiting-list-full': 'PARLEY_ERR_COMMAND_REJECTED',
  'no-free-slot': 'PARLEY_ERR_COMMAND_REJECTED',
  'survey-answered': 'PARLEY_ERR_COMMAND_REJECTED',
};

/** Throws the problem for a command the engine rejected or refused; returns otherwise. */
export function throwIfRefused(result: SendResult): void {
  for (const e of result.events) {
    if (e.type === 'CommandRejected') {
      const code = REJECTION_ERRORS[e.code];
      const details = { rejection: e.code };
      if (code === 'PARLEY_ERR_NOT_FOUND') {
        throw new ParleyError(code, [e.code.replace('unknown-', '').replace('-', ' ')], {
          details,
        });
      }
      if (code === 'PARLEY_ERR_FORBIDDEN') throw new ParleyError(code, [e.reason], { details });
      throw new ParleyError(code, [e.code, e.reason], { details });
    }
    if (e.type === 'MessageRefused') {
      const details = { rejection: e.reason };
      if (e.reason === 'visitor-blocked') {
        throw new ParleyError('PARLEY_ERR_FORBIDDEN', ['the visitor is blocked'], { details });
      }
      throw new ParleyError(
        'PARLEY_ERR_COMMAND_REJECTED',
        [e.reason, 'the conversation is closed'],
        {
          details,
        },
      );
    }
  }
}

interface Buckets {
  readonly conversations: KV;
  readonly groups: KV;
  readonly agents: KV;
  readonly visitorData: KV;
}

export class Backend {
  readonly nc: NatsConnection;
  readonly jsm: JetStreamManager;
  readonly #js: JetStreamClient;
  readonly #kv: Buckets;
  readonly #log: Logger;
  readonly #outcomeMs: number;
  readonly #publishTimeoutMs: number;
  #settings: Settings;
  /** True between a disconnect from NATS and the reconnect. */
  #disconnected = false;
  /** Commands being sent: a gateway that stops lets them finish before it lets NATS go. */
  #sending = 0;
  #settled: (() => void) | undefined;

  private constructor(
    nc: NatsConnection,
    settings: Settings,
    kv: Buckets,
    jsm: JetStreamManager,
    options: BackendOptions,
  ) {
    this.nc = nc;
    this.jsm = jsm;
    this.#js = jetstream(nc);
    this.#kv = kv;
    this.#settings = settings;
    this.#log = options.log;
    this.#outcomeMs = options.outcomeMs ?? 3_000;
    this.#publishTimeoutMs = options.publishTimeoutMs ?? 5_000;
    void (async () => {
      for await (const status of nc.status()) {
        if (status.type === 'disconnect') this.#disconnected = true;
        if (status.type === 'reconnect') this.#disconnected = false;
      }
    })().catch(() => undefined);
  }

  /** Opens the buckets the gateway reads (they must exist: a worker creates them). */
  static async open(
    nc: NatsConnection,
    settings: Settings,
    options: BackendOptions,
  ): Promise<Backend> {
    const kvm = new Kvm(nc);
    try {
      const [conversations, groups, agents, visitorData] = await Promise.all([
        kvm.open(BUCKETS.conversations),
        kvm.open(BUCKETS.groups),
        kvm.open(BUCKETS.agents),
        kvm.open(BUCKETS.visitorData),
      ]);
      const jsm = await jetstreamManager(nc);
      return new Backend(
        nc,
        settings,
        { conversations, groups, agents, visitorData },
        jsm,
        options,
      );
    } catch (error) {
      throw new ParleyError('PARLEY_ERR_NATS_SETUP', ['the gateway', String(error)], {
        cause: error,
      });
    }
  }

  get settings(): Settings {
    return this.#settings;
  }

  set settings(settings: Settings) {
    this.#settings = settings;
  }

  /** True when JetStream answers (the gateway's health). */
  async healthy(timeoutMs = 1_000): Promise<boolean> {
    if (this.nc.isClosed()) return false;
    let timer: NodeJS.Timeout | undefined;
    const late = new Promise<false>((resolve) => {
      timer = setTimeout(() => resolve(false), timeoutMs);
    });
    try {
      return await Promise.race([this.nc.rtt().then(() => true), late]);
    } catch {
      return false;
    } finally {
      clearTimeout(timer);
    }
  }

  // Commands ------------------------------------------------------------------------------------

  /**
   * Publishes a command to its subject and waits for its events. `group` is where a conversation
   * command goes; left out, it is read from KV (a StartConversation goes to its rule's group).
   * Throws PARLEY_ERR_NOT_STORED (503) when JetStream did not acknowledge it: then nothing of
   * it was accepted, and the caller must not answer 2xx.
   */
  async send(
    command: Command,
    group?: string,
    options: { wait?: boolean } = {},
  ): Promise<SendResult> {
    if (this.#disconnected) {
      // Fail fast: a publish now would wait out its timeout for an acknowledgement.
      throw new ParleyError('PARLEY_ERR_NOT_STORED', ['NATS is unreachable']);
    }
    this.#sending++;
    try {
      return await this.#send(command, group, options.wait ?? true);
    } finally {
      if (--this.#sending === 0) this.#settled?.();
    }
  }

  /** Resolves once no command is being sent, or after `timeoutMs`. */
  async settled(timeoutMs: number): Promise<void> {
    if (this.#sending === 0) return;
    let timer: NodeJS.Timeout | undefined;
    await new Promise<void>((resolve) => {
      this.#settled = resolve;
      timer = setTimeout(resolve, timeoutMs);
    });
    clearTimeout(timer);
  }

  async #send(command: Command, group: string | undefined, wait: boolean): Promise<SendResult> {
    const to =
      command.type === 'SetAgentPresence' ? undefined : (group ?? (await this.#groupFor(command)));
    let sent: Sent;
    try {
      sent = await sendCommand(this.nc, command, to, {
        publishTimeoutMs: this.#publishTimeoutMs,
        waitMs: wait ? this.#outcomeMs : 0,
      });
    } catch (error) {
      this.#log.warn({ err: error, command: command.id }, 'command not stored');
      throw new ParleyError('PARLEY_ERR_NOT_STORED', [(error as Error).message], { cause: error });
    }
    const events = sent.seen.map((e) => e.event);
    return { id: command.id, duplicate: sent.duplicate, applied: events.length > 0, events };
  }

  async #groupFor(command: Exclude<Command, { type: 'SetAgentPresence' }>): Promise<string> {
    if (command.type === 'StartConversation') {
      const rule = this.#settings.rules.find((r) => r.id === command.rule);
      if (!rule) throw new ParleyError('PARLEY_ERR_NOT_FOUND', [`routing rule ${command.rule}`]);
      return rule.target.group;
    }
    const stored = await this.conversation(command.conversation);
    if (!stored) {
      throw new ParleyError('PARLEY_ERR_NOT_FOUND', [`conversation ${command.conversation}`]);
    }
    return stored.group;
  }

  // Reads ---------------------------------------------------------------------------------------

  /** The conversation as stored: its group now, and its record as of the last checkpoint. */
  async conversation(id: string): Promise<StoredConversation | undefined> {
    validateId('conversation id', id);
    const entry = await this.#kv.conversations.get(id);
    return entry?.operation === 'PUT' ? parse<StoredConversation>(entry.value) : undefined;
  }

  /**
   * The conversation as its group's owner sees it now; when no worker answers (a failover under
   * way), its record at the last checkpoint. Throws PARLEY_ERR_NOT_FOUND when it does not exist.
   */
  async live(id: string): Promise<ConversationInspection> {
    const stored = await this.conversation(id);
    if (!stored) throw new ParleyError('PARLEY_ERR_NOT_FOUND', [`conversation ${id}`]);
    try {
      return await inspectConversation(this.nc, stored.group, id, { timeoutMs: 2_000 });
    } catch (error) {
      if (!isParleyError(error, 'PARLEY_ERR_NOT_HOSTED') || !stored.record) throw error;
      const record = stored.record;
      const value = record.value as string | Record<string, string>;
      const state = (
        typeof value === 'string' ? value : Object.keys(value)[0]
      ) as ConversationInspection['state'];
      return {
        worker: '',
        group: stored.group,
        conversation: id,
        state,
        path: typeof value === 'string' ? value : `${state}.${Object.values(value)[0]}`,
        context: record.context,
        inMemory: false,
        position: null,
        timers: [],
        recentCommands: record.recentCommands,
        at: Date.now(),
      };
    }
  }

  /** True when `visitor` started `conversation` (the worker lists it when it claims the id). */
  async startedBy(visitor: string, conversation: string): Promise<boolean> {
    const entry = await this.#kv.visitorData.get(`conv.${visitor}.${conversation}`);
    return entry?.operation === 'PUT';
  }

  /** The routing group's record at its last checkpoint. */
  async groupRecord(group: string): Promise<GroupRecord | undefined> {
    const entry = await this.#kv.groups.get(group);
    return entry?.operation === 'PUT' ? parse<GroupRecord>(entry.value) : undefined;
  }

  /**
   * The conversations stored open under the group: its open index, and the list a record from
   * before the index holds (a group not yet taken over by a worker that keeps the index).
   */
  async openConversations(group: string): Promise<string[]> {
    const [indexed, record] = await Promise.all([
      indexedOpen(this.jsm, group),
      this.groupRecord(group),
    ]);
    return [...new Set([...indexed, ...(record?.open ?? [])])];
  }

  /** The conversations holding a seat of the group's waiting list now. */
  async seatsTaken(group: string): Promise<number> {
    const entry = await this.#kv.groups.get(`seats.${group}`);
    return entry?.operation === 'PUT' ? parse<readonly string[]>(entry.value).length : 0;
  }

  /** The group's waiting-list figures for visitors. */
  async groupContext(group: string): Promise<RoutingGroupContext | undefined> {
    return (await this.groupRecord(group))?.context;
  }

  /** An agent's presence and the conversations they hold, as the workers share them. */
  async agent(
    id: string,
  ): Promise<{ presence: string; conversations: readonly string[] } | undefined> {
    const entry = await this.#kv.agents.get(id);
    if (entry?.operation !== 'PUT') return undefined;
    const record = parse<{ presence: string; context: { conversations: readonly string[] } }>(
      entry.value,
    );
    return { presence: record.presence, conversations: record.context.conversations };
  }

  /** The conversations a visitor started, oldest first by id claim order. */
  async visitorConversations(visitor: string): Promise<string[]> {
    validateId('visitor id', visitor);
    const prefix = `conv.${visitor}.`;
    const keys = await bucketKeys(this.jsm, BUCKETS.visitorData, `${prefix}*`);
    return keys.map((key) => key.slice(prefix.length));
  }

  /** Records where a visitor wants to hear of answers given while away. */
  async setVisitorEmail(visitor: string, email: string): Promise<void> {
    await this.#kv.visitorData.put(`email.${validateId('visitor id', visitor)}`, email);
  }

  /** Records the mobile number a visitor gave for text messages of answers given while away. */
  async setVisitorPhone(visitor: string, phone: string): Promise<void> {
    await this.#kv.visitorData.put(`phone.${validateId('visitor id', visitor)}`, phone);
  }

  async visitorPhone(visitor: string): Promise<string | undefined> {
    const entry = await this.#kv.visitorData.get(`phone.${validateId('visitor id', visitor)}`);
    return entry?.operation === 'PUT' ? entry.string() : undefined;
  }

  async visitorEmail(visitor: string): Promise<string | undefined> {
    const entry = await this.#kv.visitorData.get(`email.${validateId('visitor id', visitor)}`);
    return entry?.operation === 'PUT' ? entry.string() : undefined;
  }

  /** A conversation's thread, from its MessageAdded events, in order and each message once. */
  async thread(conversation: string): Promise<Message[]> {
    validateId('conversation id', conversation);
    const events = await this.events(
      `${SUBJECT_ROOTS.events}.*.${conversation}.MessageAdded`,
      0,
      Number.POSITIVE_INFINITY,
    );
    const bySeq = new Map<number, Message>();
    for (const { event } of events) {
      if (event.type === 'MessageAdded') bySeq.set(event.message.seq, event.message);
    }
    return [...bySeq.values()].sort((a, b) => a.seq - b.seq);
  }

  /** Events stored under `filter` after stream sequence `after`, at most `limit` of them. */
  async events(filter: string, after: number, limit: number): Promise<StoredEvent[]> {
    const consumer = await this.#js.consumers.get(STREAMS.events, {
      filter_subjects: filter,
      ...(after > 0
        ? { deliver_policy: DeliverPolicy.StartSequence, opt_start_seq: after + 1 }
        : { deliver_policy: DeliverPolicy.All }),
    });
    const out: StoredEvent[] = [];
    if ((await consumer.info(true)).num_pending === 0) return out;
    while (out.length < limit) {
      const batch = await consumer.fetch({
        max_messages: Math.min(1_000, limit - out.length),
        expires: 2_000,
      });
      let pending: number | undefined;
      for await (const m of batch) {
        out.push({ seq: m.seq, subject: m.subject, event: m.json<DomainEvent>() });
        pending = m.info.pending;
        if (pending === 0 || out.length >= limit) break;
      }
      if (pending === undefined || pending === 0) break;
    }
    return out;
  }

  /**
   * Follows the events under `filter` stored after stream sequence `after` (0: from the first,
   * -1: only those stored from now), then live, until the returned stop is called.
   */
  async follow(
    filter: string,
    after: number,
    onEvent: (e: StoredEvent) => void,
  ): Promise<() => void> {
    const consumer = await this.#js.consumers.get(STREAMS.events, {
      filter_subjects: filter,
      ...(after > 0
        ? { deliver_policy: DeliverPolicy.StartSequence, opt_start_seq: after + 1 }
        : { deliver_policy: after < 0 ? DeliverPolicy.New : DeliverPolicy.All }),
    });
    const messages = await consumer.consume();
    void (async () => {
      for await (const m of messages) {
        try {
          onEvent({ seq: m.seq, subject: m.subject, event: m.json<DomainEvent>() });
        } catch (error) {
          this.#log.warn({ err: error, seq: m.seq }, 'event not passed on');
        }
      }
    })().catch((error) => this.#log.warn({ err: error }, 'event stream ended'));
    return () => void messages.close().catch(() => undefined);
  }
}
