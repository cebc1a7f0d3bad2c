// Hosts one routing group on NATS: takes its commands from JetStream in batches, applies them to
// the engine, commits the shared world by compare-and-set, stores each touched conversation's
// snapshot and the group's once per batch, publishes the events, and only then acknowledges the
// batch (ARCHITECTURE.md rules 1–3): the next batch is applied while a batch's events wait for
// their PubAcks, and acknowledgements follow the batches' order (in-order.ts). Also the group's
// timer index for snooze deadlines (rule 5).

import type { ConsumerMessages } from '@nats-io/jetstream';
import {
  AckPolicy,
  DeliverPolicy,
  type JetStreamClient,
  type JetStreamManager,
  type JsMsg,
} from '@nats-io/jetstream';
import type { KV } from '@nats-io/kv';
import { headers, type NatsConnection, nanos } from '@nats-io/transport-node';
import type { Logger } from 'pino';
import {
  type ConversationJSON,
  Engine,
  type Handover,
  type Repaired,
  type SnoozeDeadline,
  type StepResult,
} from '../../actors/engine.ts';
import type { Command, DomainEvent } from '../../actors/events.ts';
import type { RoutingGroupContext } from '../../actors/routing-group.ts';
import type { Settings } from '../../actors/settings.ts';
import { parseCommand } from '../commands.ts';
import { connectionOf, type Publication, Publisher } from '../nats/publisher.ts';
import {
  commandMsgId,
  commandSubject,
  eventSubject,
  groupCommandFilter,
  parseCommandSubject,
  STREAMS,
  UNIT_END_HEADER,
} from '../nats/streams.ts';
import { consumeBatches } from './batches.ts';
import { InOrder } from './in-order.ts';
import type { Lock } from './lock.ts';
import { indexOpen, unindexOpen } from './open-index.ts';
import { type KvWorld, WorldConflictError } from './world.ts';

/** What the host stores for its group, fenced by compare-and-set on its revision. */
export interface GroupRecord {
  readonly context: RoutingGroupContext;
  /**
   * The conversations a new owner loads at once: those waiting or snoozed (the waiting list and the
   * timers need them). The group's other open conversations are listed in its open index
   * (open-index.ts) and loaded when a command comes for them.
   */
  readonly resident: readonly string[];
  /** Written before the open index existed: every open conversation of the group. */
  readonly open?: readonly string[];
  /** The last command stream sequence applied: a redelivered command at or below it is skipped. */
  readonly lastSeq: number;
  readonly owner: string;
}

/** What is stored for each conversation: the group hosting it, and its record. */
export interface StoredConversation {
  readonly group: string;
  /** Null while the conversation is claimed by its group and not yet checkpointed. */
  readonly record: ConversationJSON | null;
  /** Whose claim it is, while `record` is null. */
  readonly visitor?: string;
}

export interface HostDeps {
  readonly js: JetStreamClient;
  readonly jsm: JetStreamManager;
  readonly conversations: KV;
  /** Where a visitor's conversations are listed (`conv.<visitor>.<conversation>`). */
  readonly visitorData?: KV;
  readonly groups: KV;
  readonly world: KvWorld;
  readonly settings: Settings;
  readonly worker: string;
  readonly log: Logger;
  /** True while this worker holds the group's lease. */
  readonly holds: (group: string) => boolean;
  /** Called when the host finds its group written by another owner. */
  readonly onFenced?: (group: string) => void;
  /** Largest batch applied at once. */
  readonly batch?: number;
  /** Serialises work with the other hosts of the worker, which share the world. */
  readonly lock: Lock;
  /** How often changed conversations are stored (default 1 s); between, the command log is the record. */
  readonly checkpointMs?: number;
  /** How long a stored conversation with nothing to do stays in memory (default 60 s). */
  readonly idleMs?: number;
  /**
   * How often the group looks for places held without their conversation (default 60 s; the first
   * time a few seconds after taking the group over): see `Engine.repair`.
   */
  readonly repairMs?: number;
}

const ADMIT = 'Parley-Admit';
/** How long an expiry sent waits to be applied before it is sent again. */
const RESEND_MS = 1_000;
/** Units of work whose events may wait for their PubAcks while the next ones are applied. */
const MAX_STORING = 8;
const UNIT_END = { [UNIT_END_HEADER]: '1' } as const;
const encoder = new TextEncoder();
const decoder = new TextDecoder();
const json = (value: unknown) => encoder.encode(JSON.stringify(value));
const parse = <T>(data: Uint8Array): T => JSON.parse(decoder.decode(data)) as T;

/**
 * A command's stream sequence, its consumer sequence and the server's stamp on it in ms, read from
 * one split of the reply subject (`$JS.ACK.[<domain>.<account>.]<stream>.<consumer>.<delivered>.<seq>.<consumer
 * seq>.<ns>.<pending>[.<token>]`). `msg.seq` and `msg.timestampNanos` split it once each and
 * build an object and a BigInt: ~2 µs a command. The ms are the ns without their last six digits,
 * exactly `Number(msg.timestampNanos / 1_000_000n)`. Anything else is left to nats.js.
 */
function deliveryOf(msg: JsMsg): { seq: number; consumerSeq: number; at: number } {
  const reply = (msg as { reply?: unknown }).reply;
  if (typeof reply === 'string' && reply.startsWith('$JS.ACK.')) {
    // Where each of the first 12 tokens starts (a token ends one before the next starts).
    const starts = [0];
    for (let i = reply.indexOf('.'); i >= 0 && starts.length <= 12; i = reply.indexOf('.', i + 1)) {
      starts.push(i + 1);
    }
    const count = starts.length;
    const o = count === 9 ? -2 : 0; // the old form, without domain and account hash
    if (count === 9 || count >= 11) {
      // Tokens 7 and 9 of the new form are never the last one.
      const seq = reply.slice(starts[7 + o], starts[8 + o]! - 1);
      const consumerSeq = reply.slice(starts[8 + o], starts[9 + o]! - 1);
      const ns = reply.slice(starts[9 + o], starts[10 + o]! - 1);
      if (/^\d+$/.test(seq) && /^\d+$/.test(consumerSeq) && /^\d{7,}$/.test(ns)) {
        return { seq: Number(seq), consumerSeq: Number(consumerSeq), at: Number(ns.slice(0, -6)) };
      }
    }
  }
  return {
    seq: msg.seq,
    consumerSeq: msg.info.deliverySequence,
    at: Number(msg.timestampNanos / 1_000_000n),
  };
}

/** The durable consumer of a group's commands. */
export const consumerName = (group: string) => `group-${group}`;

type Item =
  | {
      readonly kind: 'command';
      readonly msg: JsMsg;
      readonly command: Command;
      readonly at: number;
    }
  | {
      readonly kind: 'admit';
      readonly msg: JsMsg;
      readonly conversation: string;
      readonly at: number;
    };

/** What one unit of work produced, before it is stored and published. */
interface Outcome {
  /** `last`: the last event of its unit of work (a command, an admit, a poke). */
  events: { event: DomainEvent; id: string; last: boolean }[];
  handovers: Handover[];
  forwards: { subject: string; data: Uint8Array; id: string }[];
  touched: Set<string>;
}

export class GroupHost {
  readonly group: string;
  readonly #deps: HostDeps;
  readonly #log: Logger;
  #engine: Engine;
  #record: GroupRecord | undefined;
  #groupRevision = 0;
  readonly #revisions = new Map<string, number>();
  /** Conversations in memory that this host listed in the open index since loading them. */
  readonly #indexed = new Set<string>();
  #messages: ConsumerMessages | undefined;
  #timer: NodeJS.Timeout | undefined;
  #repairTimer: NodeJS.Timeout | undefined;
  #queue: Promise<void> = Promise.resolve();
  #stopped = false;
  #pokes = 0;
  /** Expiries sent and not yet seen applied, by conversation: its deadline, tries, when last sent. */
  readonly #expiring = new Map<string, { until: number; tries: number; at: number }>();
  /** The last command stream sequence applied (the group record holds the last checkpointed). */
  #appliedSeq = 0;
  /** The consumer sequence of the last message of the last batch handled (this consumer's). */
  #handledConsumerSeq = 0;
  #admits = 0;
  /** Conversations changed since the last checkpoint. */
  readonly #dirty = new Set<string>();
  #lastCheckpoint = Date.now();
  #checkpointTimer: NodeJS.Timeout | undefined;
  readonly #checkpointMs: number;
  /** When each conversation in memory last changed. */
  readonly #lastActive = new Map<string, number>();
  readonly #idleMs: number;
  /** The connection whose publisher stores a unit's events and forwards in one call. */
  readonly #connection: NatsConnection;
  readonly #publishTimeoutMs: number;
  /**
   * The units whose events wait for JetStream's PubAcks. The next units are applied meanwhile
   * (and the worker's other hosts take the lock); what must follow the events' storage waits on
   * it: the acks, checkpoints, handovers. A refusal lets the group go.
   */
  readonly #stored = new InOrder((error) => this.#fail(error));

  private constructor(deps: HostDeps, group: string) {
    this.#deps = deps;
    this.group = group;
    this.#log = deps.log.child({ group });
    this.#engine = this.#newEngine();
    this.#checkpointMs = deps.checkpointMs ?? 1_000;
    this.#idleMs = deps.idleMs ?? 60_000;
    this.#connection = connectionOf(deps.js);
    this.#publishTimeoutMs = deps.js.getOptions().timeout ?? 5_000;
  }

  /** Takes the group over: loads its state, fences the previous owner, and starts consuming. */
  static async start(deps: HostDeps, group: string): Promise<GroupHost> {
    const host = new GroupHost(deps, group);
    await host.#hydrate(true);
    await host.#consume();
    host.#armTimer();
    host.#scheduleRepair(Math.min(5_000, deps.repairMs ?? 60_000));
    host.#log.info(
      { lastSeq: host.#record?.lastSeq ?? 0, loaded: host.#engine.conversationIds().length },
      'group hosted',
    );
    return host;
  }

  /** The engine, for the live inspection the CLI asks for. */
  get engine(): Engine {
    return this.#engine;
  }

  /** An agent changed elsewhere: returns under a 'return' policy, and hands out freed slots. */
  poke(agent: string, wentOffline: boolean): Promise<void> {
    return this.#serial(async () => {
      const at = Date.now();
      const id = `poke:${this.group}:${++this.#pokes}:${at}`;
      await this.#unit(async () => {
        const outcome: Outcome = { events: [], handovers: [], forwards: [], touched: new Set() };
        if (wentOffline) {
          // Conversations of theirs out of memory (idle, or never loaded since a takeover): a
          // 'return' policy needs them back first. (Those of other groups are left alone.)
          for (const c of this.#deps.world.agent(agent)?.context.conversations ?? []) {
            if (!this.#engine.conversation(c)) await this.#admitFromStore(c, at, outcome);
          }
        }
        this.#merge(this.#engine.agentChanged(agent, wentOffline, at), id, outcome);
        return outcome;
      });
      await this.#checkpointSoon();
      this.#armTimer();
    });
  }

  /**
   * The live configuration changed (`deps.settings` reads it): the engine is rebuilt on it with
   * the conversations and the waiting list it holds, then hands out what the change allows (more
   * slots, say). Between two units of work, so no command sees half of each configuration.
   */
  reconfigure(): Promise<void> {
    return this.#serial(async () => {
      const old = this.#engine;
      const records = old
        .conversationIds()
        .map((id) => old.record(id))
        .filter((r) => r !== undefined);
      const engine = this.#newEngine();
      engine.hydrate(this.group, old.group(this.group), records);
      this.#engine = engine;
      const at = Date.now();
      await this.#unit(async () => {
        const outcome: Outcome = { events: [], handovers: [], forwards: [], touched: new Set() };
        this.#merge(
          this.#engine.agentChanged('', false, at),
          `config:${this.group}:${++this.#pokes}:${at}`,
          outcome,
        );
        return outcome;
      });
      await this.#checkpointSoon();
      this.#armTimer();
    });
  }

  /** Stops consuming, stores what was applied (so the next owner replays nothing), and lets go. */
  async stop(): Promise<void> {
    clearTimeout(this.#timer);
    clearTimeout(this.#repairTimer);
    clearTimeout(this.#checkpointTimer);
    await this.#messages?.close().catch(() => undefined);
    if (!this.#stopped) await this.#serial(() => this.#checkpoint()).catch(() => undefined);
    this.#stopped = true;
    await this.#queue.catch(() => undefined);
    // Publications still under way settle (stored or not) before another owner may start.
    await this.#stored.drained();
    this.#log.info('group released');
  }

  // Loading ---------------------------------------------------------------------------------------

  #newEngine(): Engine {
    return new Engine(this.#deps.settings, { world: this.#deps.world, hosts: [this.group] });
  }

  /**
   * Loads the group and the conversations it needs in memory from KV; on takeover, writes the group
   * to fence the old owner.
   */
  async #hydrate(takeover: boolean): Promise<void> {
    const { groups, conversations, worker } = this.#deps;
    const entry = await groups.get(this.group);
    const record = entry?.operation === 'PUT' ? parse<GroupRecord>(entry.value) : undefined;
    this.#groupRevision = entry?.operation === 'PUT' ? entry.revision : 0;
    const engine = this.#newEngine();
    const records: ConversationJSON[] = [];
    this.#revisions.clear();
    this.#indexed.clear();
    // What the record lists, and every conversation the world seats in this group: a checkpoint
    // cut short may have stored a conversation that entered the list after the record was written.
    const load = [
      ...new Set([
        ...(record?.resident ?? record?.open ?? []),
        ...this.#deps.world.seats(this.group),
      ]),
    ];
    for (let i = 0; i < load.length; i += 64) {
      const entries = await Promise.all(load.slice(i, i + 64).map((id) => conversations.get(id)));
      for (const c of entries) {
        if (c?.operation !== 'PUT') continue;
        const stored = parse<StoredConversation>(c.value);
        if (stored.group !== this.group || stored.record === null) continue;
        records.push(stored.record);
        this.#revisions.set(c.key, c.revision);
      }
    }
    if (takeover && record && !record.resident) {
      // A record from before the open index: index what it listed, once.
      await Promise.all(records.map((r) => indexOpen(groups, this.group, r.context.id)));
    }
    engine.hydrate(this.group, record?.context, records);
    this.#engine = engine;
    const now = Date.now();
    this.#lastActive.clear();
    for (const r of records) this.#lastActive.set(r.context.id, now);
    this.#record = record;
    this.#appliedSeq = record?.lastSeq ?? 0;
    this.#dirty.clear();
    if (takeover) {
      const claimed: GroupRecord = {
        context: engine.group(this.group)!,
        resident: this.#resident(),
        lastSeq: record?.lastSeq ?? 0,
        owner: worker,
      };
      await this.#writeGroup(claimed);
    }
  }

  async #consume(): Promise<void> {
    const { jsm, js } = this.#deps;
    const name = consumerName(this.group);
    // The group record, not the consumer, knows what was applied: start right after it.
    await jsm.consumers.delete(STREAMS.commands, name).catch(() => undefined);
    const lastSeq = this.#record?.lastSeq ?? 0;
    await jsm.consumers.add(STREAMS.commands, {
      durable_name: name,
      filter_subject: groupCommandFilter(this.group),
      ack_policy: AckPolicy.All,
      ack_wait: nanos(30_000),
      max_ack_pending: 20_000,
      ...(lastSeq > 0
        ? { deliver_policy: DeliverPolicy.StartSequence, opt_start_seq: lastSeq + 1 }
        : { deliver_policy: DeliverPolicy.All }),
    });
    const consumer = await js.consumers.get(STREAMS.commands, name);
    this.#handledConsumerSeq = 0; // a new consumer counts from 1
    const messages = await consumeBatches(
      consumer,
      this.#deps.batch ?? 256,
      (batch) => void this.#serial(() => this.#applyBatch(batch)),
    );
    this.#messages = messages;
    void messages.closed().then((error) => {
      if (error) this.#log.error({ err: error }, 'command loop ended');
    });
  }

  // Applying --------------------------------------------------------------------------------------

  #serial(work: () => Promise<void>): Promise<void> {
    const next = this.#queue.then(async () => {
      if (this.#stopped) return;
      try {
        await this.#deps.lock(work);
      } catch (error) {
        this.#fail(error);
      }
    });
    this.#queue = next;
    return next;
  }

  async #applyBatch(msgs: JsMsg[]): Promise<void> {
    const applied = this.#appliedSeq;
    const items: Item[] = [];
    let lastSeq = applied;
    let consumerSeq = this.#handledConsumerSeq;
    for (const msg of msgs) {
      const delivery = deliveryOf(msg);
      lastSeq = delivery.seq;
      consumerSeq = Math.max(consumerSeq, delivery.consumerSeq);
      if (delivery.seq <= applied) continue; // applied already (redelivered)
      const item = this.#decode(msg, delivery.at);
      if (item) items.push(item);
    }
    const last = msgs[msgs.length - 1]!;
    if (items.length > 0) await this.#unit(() => this.#applyItems(items));
    this.#appliedSeq = Math.max(applied, lastSeq);
    this.#handledConsumerSeq = consumerSeq;
    // Acknowledged (ack-all) once its events, and those of every batch before it, are stored.
    // The stream keeps every command: one applied but not yet in a checkpoint is applied again
    // from the checkpoint by whoever takes the group over, so the ack need not wait for that.
    this.#stored.after(() => last.ack());
    await this.#checkpointSoon();
    this.#armTimer();
  }

  /**
   * Turns a message into work, or terminates it with a reason when it can never be applied.
   * Time is `at`, the server's stamp on the command: the same when the batch is applied again.
   */
  #decode(msg: JsMsg, at: number): Item | undefined {
    const address = parseCommandSubject(msg.subject);
    const data = msg.data; // (a new view of the message's bytes at each read)
    // An admit is an empty message (docs/integration.md): only those need their headers parsed.
    if (data.length === 0 && msg.headers?.get(ADMIT)) {
      return { kind: 'admit', msg, conversation: msg.headers.get(ADMIT), at };
    }
    try {
      const command = parseCommand(data);
      if (
        command.type === 'SetAgentPresence' ||
        address?.kind !== 'conversation' ||
        address.group !== this.group ||
        address.conversation !== command.conversation
      ) {
        throw new Error(
          `subject ${msg.subject} does not name this command's group and conversation`,
        );
      }
      return { kind: 'command', msg, command, at };
    } catch (error) {
      this.#log.warn(
        { seq: msg.seq, subject: msg.subject, reason: (error as Error).message },
        'command refused',
      );
      msg.term(`invalid command: ${(error as Error).message}`);
      return undefined;
    }
  }

  async #applyItems(items: Item[]): Promise<Outcome> {
    const outcome: Outcome = { events: [], handovers: [], forwards: [], touched: new Set() };
    // The batch's new ids are claimed together, not one round trip after another.
    const claims = new Map<string, Promise<string>>();
    for (const item of items) {
      const cmd = item.kind === 'command' ? item.command : undefined;
      if (
        cmd?.type === 'StartConversation' &&
        !claims.has(cmd.conversation) &&
        !this.#engine.conversation(cmd.conversation)
      ) {
        claims.set(cmd.conversation, this.#claim(cmd.conversation, cmd.visitor));
      }
    }
    const claimed = Promise.allSettled(claims.values());
    for (const item of items) {
      if (item.kind === 'admit') {
        await this.#admitFromStore(item.conversation, item.at, outcome);
        continue;
      }
      const cmd = item.command;
      if (cmd.type !== 'SetAgentPresence' && !this.#engine.conversation(cmd.conversation)) {
        // Not in memory: handed over (maybe in this very batch), evicted after close, or new.
        const moved = outcome.handovers.find((h) => h.conversation === cmd.conversation);
        const claim = cmd.type === 'StartConversation' && claims.get(cmd.conversation);
        const where = moved
          ? moved.group
          : claim
            ? await claim
            : await this.#whereIs(cmd.conversation);
        if (where && where !== this.group) {
          // Listed here still if this worker died between storing a handover and unlisting it.
          if (!moved && !claim) await unindexOpen(this.#deps.jsm, this.group, cmd.conversation);
          outcome.forwards.push({
            subject: commandSubject(where, cmd.conversation),
            data: item.msg.data,
            id: `fwd:${commandMsgId(cmd)}`,
          });
          continue;
        }
        if (where === this.group) await this.#admitFromStore(cmd.conversation, item.at, outcome);
      }
      this.#merge(this.#engine.step(cmd, item.at), commandMsgId(cmd), outcome);
    }
    await claimed; // (a claim not needed after all, its id admitted earlier in the batch, say)
    return outcome;
  }

  /**
   * Claims a new conversation id for this group in KV before it is started, so that an id is
   * taken once for good, whichever group sees it first. Returns the group that holds it.
   */
  async #claim(conversation: string, visitor: string): Promise<string> {
    const kv = this.#deps.conversations;
    try {
      const rev = await kv.create(conversation, json({ group: this.group, record: null, visitor }));
      this.#revisions.set(conversation, rev);
      await this.#listForVisitor(visitor, conversation);
      return this.group;
    } catch {
      const entry = await kv.get(conversation);
      if (entry?.operation !== 'PUT') throw new Error(`cannot claim conversation ${conversation}`);
      const stored = parse<StoredConversation>(entry.value);
      if (stored.group === this.group && stored.record === null && stored.visitor === visitor) {
        this.#revisions.set(conversation, entry.revision); // our own claim, before a crash
        await this.#listForVisitor(visitor, conversation);
      }
      return stored.group;
    }
  }

  /** Lists a claimed conversation under its visitor: what the gateway shows them, and checks. */
  async #listForVisitor(visitor: string, conversation: string): Promise<void> {
    await this.#deps.visitorData?.put(`conv.${visitor}.${conversation}`, String(Date.now()));
  }

  async #whereIs(conversation: string): Promise<string | undefined> {
    const entry = await this.#deps.conversations.get(conversation);
    return entry?.operation === 'PUT' ? parse<StoredConversation>(entry.value).group : undefined;
  }

  /** Takes in a conversation stored under this group (a handover, or one evicted after close). */
  async #admitFromStore(conversation: string, at: number, outcome: Outcome): Promise<void> {
    if (this.#engine.conversation(conversation)) return;
    const entry = await this.#deps.conversations.get(conversation);
    if (entry?.operation !== 'PUT') return;
    const stored = parse<StoredConversation>(entry.value);
    if (stored.group !== this.group || stored.record === null) return;
    this.#revisions.set(conversation, entry.revision);
    const result = this.#engine.admit(
      { group: this.group, conversation, record: stored.record },
      at,
    );
    outcome.touched.add(conversation);
    this.#merge(result, `admit:${conversation}:${entry.revision}`, outcome);
  }

  #merge(result: StepResult, id: string, outcome: Outcome): void {
    const { events } = result;
    for (let i = 0; i < events.length; i++) {
      const event = events[i]!;
      outcome.events.push({ event, id: `${id}:${i}`, last: i === events.length - 1 });
      if ('conversation' in event && event.conversation) outcome.touched.add(event.conversation);
    }
    if (result.handovers.length > 0) outcome.handovers.push(...result.handovers);
  }

  /**
   * Applies a unit of work, commits the shared world (on a conflict with another worker, the
   * engine and the world go back to before the work, which is applied again), publishes its
   * events, and stores at once the conversations it handed to other groups. Everything else
   * waits for the next checkpoint.
   */
  async #unit(work: () => Promise<Outcome>): Promise<void> {
    for (let attempt = 1; ; attempt++) {
      this.#engine.begin();
      const outcome = await work();
      try {
        await this.#deps.world.commit();
      } catch (error) {
        if (!(error instanceof WorldConflictError) || attempt >= 8) throw error;
        this.#log.debug(
          { attempt, reason: error.message },
          'world changed under the work; applying it again',
        );
        this.#engine.rollback();
        await this.#deps.world.rollback();
        continue;
      }
      this.#engine.commit();
      if (!this.#deps.holds(this.group)) throw new Error(`lease on ${this.group} lost`);
      // (Checkpoints wait for the events before storing what touched these.)
      const now = Date.now();
      for (const id of outcome.touched) {
        this.#dirty.add(id);
        this.#lastActive.set(id, now);
      }
      this.#stored.add(this.#publishEvents(outcome));
      if (outcome.handovers.length > 0) {
        // The other group must not publish events of a conversation before this one's are stored.
        await this.#stored.settled();
        await this.#storeHandovers(outcome.handovers);
      } else if (this.#stored.pending > MAX_STORING) {
        await this.#stored.settled(); // a bound on the memory held by units in flight
      }
      return;
    }
  }

  /** Work failed: the host stops, for another owner (or this worker again) to resume from the checkpoint. */
  #fail(error: unknown): void {
    if (this.#stopped) return;
    this.#log.error({ err: error }, 'work failed; the group is let go for another owner to resume');
    this.#stopped = true;
    this.#deps.onFenced?.(this.group);
  }

  /** A conversation that left for another group is stored under it now, then that group is told. */
  async #storeHandovers(handovers: readonly Handover[]): Promise<void> {
    if (handovers.length === 0) return;
    await Promise.all(
      handovers.map(async (h) => {
        // Listed under the other group before it is stored there, unlisted here after.
        await indexOpen(this.#deps.groups, h.group, h.conversation);
        await this.#writeConversation(h.conversation, { group: h.group, record: h.record });
        this.#dirty.delete(h.conversation);
        await unindexOpen(this.#deps.jsm, this.group, h.conversation);
        this.#indexed.delete(h.conversation);
      }),
    );
    // (If this worker dies before telling, the command, applied again here from the checkpoint,
    // finds the conversation stored elsewhere and is forwarded there, which loads it from KV.)
    await Promise.all(
      handovers.map((h) => {
        const hdrs = headers();
        hdrs.set(ADMIT, h.conversation);
        const msgID = `admit:${h.conversation}:${this.group}:${this.#appliedSeq}:${++this.#admits}`;
        return this.#deps.js.publish(commandSubject(h.group, h.conversation), new Uint8Array(), {
          msgID,
          headers: hdrs,
        });
      }),
    );
  }

  /** Checkpoints now if the last one is old enough, else makes sure one comes soon. */
  async #checkpointSoon(): Promise<void> {
    if (this.#dirty.size === 0) return;
    const due =
      Date.now() - this.#lastCheckpoint >= this.#checkpointMs || this.#dirty.size >= 5_000;
    if (due) return this.#checkpoint();
    if (this.#checkpointTimer) return;
    this.#checkpointTimer = setTimeout(() => {
      this.#checkpointTimer = undefined;
      void this.#serial(() => this.#checkpoint());
    }, this.#checkpointMs);
  }

  /**
   * Stores every conversation changed since the last checkpoint, then the group with the last
   * applied stream sequence: the point a new owner resumes from.
   */
  async #checkpoint(): Promise<void> {
    clearTimeout(this.#checkpointTimer);
    this.#checkpointTimer = undefined;
    this.#lastCheckpoint = Date.now();
    // What is stored must not be ahead of the events: a new owner would not publish them again.
    await this.#stored.settled();
    if (!this.#deps.holds(this.group))
      throw new Error(`lease on ${this.group} lost before storing`);
    const ids = [...this.#dirty];
    this.#dirty.clear();
    const closed: string[] = [];
    await Promise.all(
      ids.map(async (id) => {
        const record = this.#engine.record(id);
        if (!record) return;
        const open = this.#engine.conversation(id)?.state !== 'closed';
        // Listed before it is stored open, unlisted after it is stored closed: a crash in between
        // leaves it listed (counted once too many), never stored open and unlisted.
        if (open && !this.#indexed.has(id)) {
          await indexOpen(this.#deps.groups, this.group, id);
          this.#indexed.add(id);
        }
        await this.#writeConversation(id, { group: this.group, record });
        if (open) return;
        await unindexOpen(this.#deps.jsm, this.group, id);
        closed.push(id);
      }),
    );
    for (const id of closed) {
      this.#forget(id); // stored: a later command (a survey) loads it again
    }
    this.#evictIdle();
    if (ids.length > 0 || this.#appliedSeq > (this.#record?.lastSeq ?? 0)) {
      await this.#writeGroup(this.#groupRecord(this.#appliedSeq));
    }
  }

  /**
   * Lets stored conversations that have been idle for `idleMs` out of memory, but those the engine
   * needs (Engine.resident: waiting or snoozed). The next command for one loads it again from KV.
   */
  #evictIdle(): void {
    const before = Date.now() - this.#idleMs;
    for (const [id, at] of this.#lastActive) {
      if (at > before || this.#dirty.has(id)) continue;
      if (!this.#engine.resident(id)) this.#forget(id);
    }
  }

  /** Lets a stored conversation out of memory, with what the host kept beside it. */
  #forget(id: string): void {
    this.#engine.evict(id);
    this.#lastActive.delete(id);
    this.#indexed.delete(id);
    this.#revisions.delete(id); // (read again with the record when it is loaded)
  }

  async #writeConversation(id: string, stored: StoredConversation): Promise<void> {
    const rev = this.#revisions.get(id) ?? 0;
    const kv = this.#deps.conversations;
    const next =
      rev === 0 ? await kv.create(id, json(stored)) : await kv.update(id, json(stored), rev);
    if (stored.group === this.group) this.#revisions.set(id, next);
    else this.#revisions.delete(id);
  }

  #groupRecord(lastSeq: number): GroupRecord {
    return {
      context: this.#engine.group(this.group)!,
      resident: this.#resident(),
      lastSeq,
      owner: this.#deps.worker,
    };
  }

  /** The conversations in memory that must stay there (Engine.resident): a new owner loads them. */
  #resident(): string[] {
    return this.#engine.conversationIds().filter((id) => this.#engine.resident(id));
  }

  async #writeGroup(record: GroupRecord): Promise<void> {
    const kv = this.#deps.groups;
    try {
      this.#groupRevision =
        this.#groupRevision === 0
          ? await kv.create(this.group, json(record))
          : await kv.update(this.group, json(record), this.#groupRevision);
      this.#record = record;
    } catch (error) {
      throw new Error(`group ${this.group} was written by another owner: ${String(error)}`);
    }
  }

  /** Resolves once JetStream has stored (or found already stored) every event and forward. */
  async #publishEvents(outcome: Outcome): Promise<void> {
    const publications: Publication[] = [];
    for (const { event, id, last } of outcome.events) {
      const conversation =
        'conversation' in event && event.conversation ? event.conversation : '_none';
      const group = ('group' in event && event.group) || this.group;
      // The last event of a unit of work says so: a reader waiting for a command's outcome
      // (the gateway) knows it has all of it.
      publications.push({
        subject: eventSubject(group, conversation, event.type),
        // (Buffer.from: small strings share a pool, where TextEncoder allocates each.)
        data: Buffer.from(JSON.stringify(event)),
        msgID: id,
        ...(last ? { headers: UNIT_END } : {}),
      });
    }
    for (const f of outcome.forwards) {
      publications.push({ subject: f.subject, data: f.data, msgID: f.id });
    }
    // One inbox and one timer for them all, not a request each: the cost of a core publish apiece.
    await Publisher.of(this.#connection).publishAll(publications, this.#publishTimeoutMs);
  }

  // Repair ----------------------------------------------------------------------------------------

  #scheduleRepair(delayMs: number): void {
    if (this.#stopped) return;
    this.#repairTimer = setTimeout(() => {
      this.#repair()
        .catch((error: unknown) => this.#log.warn({ err: error }, 'repair could not run'))
        .finally(() => this.#scheduleRepair(this.#deps.repairMs ?? 60_000));
    }, delayMs);
    this.#repairTimer.unref();
  }

  /**
   * Releases places held without their conversation (Engine.repair), once the group has applied
   * every command delivered to it: before, after a takeover, a place taken again by a command
   * still to apply would be judged, and freed, too early.
   */
  async #repair(): Promise<void> {
    // (The consumer's delivered stream sequence is the last one it looked at, of any subject:
    // its consumer sequence counts what it delivered to this group.)
    const info = await this.#deps.jsm.consumers.info(STREAMS.commands, consumerName(this.group));
    if (info.num_pending > 0) return;
    const delivered = info.delivered.consumer_seq;
    let repaired: Pick<Repaired, 'released' | 'retaken' | 'unmended'> | undefined;
    await this.#serial(async () => {
      if (this.#handledConsumerSeq < delivered) return;
      const at = Date.now();
      await this.#unit(async () => {
        const outcome: Outcome = { events: [], handovers: [], forwards: [], touched: new Set() };
        // The conversations of this group that the world holds places for are judged in memory.
        for (const c of this.#engine.placesHeld()) {
          if (!this.#engine.conversation(c)) await this.#admitFromStore(c, at, outcome);
        }
        const result = this.#engine.repair(at);
        repaired = result;
        this.#merge(result, `repair:${this.group}:${++this.#pokes}:${at}`, outcome);
        return outcome;
      });
      await this.#checkpointSoon();
      this.#armTimer();
    });
    if (repaired && repaired.released.length > 0) {
      this.#log.warn(
        { released: repaired.released },
        'places held without their conversation released',
      );
    }
    if (repaired && repaired.retaken.length > 0) {
      this.#log.warn({ retaken: repaired.retaken }, 'places the world had lost taken again');
    }
    if (repaired && repaired.unmended.length > 0) {
      this.#log.error(
        { unmended: repaired.unmended },
        'places the world had lost and that are taken by others now: left as they are',
      );
    }
  }

  // Timers ----------------------------------------------------------------------------------------

  /**
   * Sleeps until a snooze deadline needs the timer (see #actionAt), then sends through the group's
   * own stream the expiry of every deadline that needs it by then: many snoozes that end together
   * wake together, not one command round trip after another.
   */
  #armTimer(): void {
    clearTimeout(this.#timer);
    this.#timer = undefined;
    if (this.#stopped) return;
    // (After every batch: one pass over the deadlines, none sorted.)
    const next =
      this.#expiring.size === 0
        ? this.#engine.nextSnoozeDeadline()
        : this.#engine.nextSnoozeDeadline((d) => this.#actionAt(d));
    if (!next) {
      this.#expiring.clear();
      return;
    }
    const delay = Math.max(0, this.#actionAt(next) - Date.now());
    this.#timer = setTimeout(() => this.#fire(), Math.min(delay, 2 ** 31 - 1));
  }

  /**
   * When a deadline needs the timer: when it ends; once its expiry is sent, a second later, to send
   * it again if it was not applied by then (a stamp a hair early by another clock, a lost publish).
   */
  #actionAt(deadline: SnoozeDeadline): number {
    const sent = this.#expiring.get(deadline.conversation);
    return sent && sent.until === deadline.until ? sent.at + RESEND_MS : deadline.until;
  }

  #fire(): void {
    this.#timer = undefined;
    if (this.#stopped) return;
    const now = Date.now();
    const deadlines = this.#engine.snoozeDeadlines();
    // Expiries applied: their snooze is gone (or is another one now).
    const current = new Map(deadlines.map((d) => [d.conversation, d.until]));
    for (const [conversation, sent] of this.#expiring) {
      if (current.get(conversation) !== sent.until) this.#expiring.delete(conversation);
    }
    for (const d of deadlines) {
      if (this.#actionAt(d) <= now) void this.#expire(d, now);
    }
    this.#armTimer();
  }

  /** Publishes the expiry of one snooze deadline; each new try of it under a new id. */
  async #expire(deadline: SnoozeDeadline, now: number): Promise<void> {
    const sent = this.#expiring.get(deadline.conversation);
    const tries = sent && sent.until === deadline.until ? sent.tries + 1 : 1;
    this.#expiring.set(deadline.conversation, { until: deadline.until, tries, at: now });
    const key = `${deadline.conversation}:${deadline.until}`;
    const cmd = {
      type: 'SnoozeExpired',
      id: tries === 1 ? `timer:${key}` : `timer:${key}:${tries}`,
      conversation: deadline.conversation,
      until: deadline.until,
    } as const;
    try {
      await this.#deps.js.publish(commandSubject(this.group, deadline.conversation), json(cmd), {
        msgID: commandMsgId(cmd),
      });
    } catch (error) {
      this.#log.warn(
        { err: error },
        'timer could not send an expiry; it is sent again in a second',
      );
    }
  }
}
