// Tells a visitor who is away when an agent answers, by email and by text message (each if set up
// and if the visitor gave an address or a number): the agent's messages they have not read, once
// the answer has waited `delayMs` unread (so an answer seen in the widget sends nothing, and a few
// messages in a row make one email, one text). Reads the events through a durable consumer shared by every
// gateway, so each answer is handled by one of them; the wait is JetStream's redelivery delay
// (a nak with a delay), so a gateway that stops hands its waiting answers to another.
import {
  AckPolicy,
  type ConsumerMessages,
  DeliverPolicy,
  type JetStreamClient,
  type JetStreamManager,
  type JsMsg,
} from '@nats-io/jetstream';
import type { KV } from '@nats-io/kv';
import { nanos } from '@nats-io/transport-node';
import type { Logger } from 'pino';
import type { DomainEvent, Message } from '../../actors/events.ts';
import type { Settings } from '../../actors/settings.ts';
import { isRevisionConflict } from '../nats/leases.ts';
import { STREAMS, SUBJECT_ROOTS } from '../nats/streams.ts';
import type { Backend } from './backend.ts';
import type { Mail, NotificationOptions, TextMessage } from './notifications.ts';

export interface NotifierOptions {
  readonly backend: Backend;
  /**
   * Where the last message each channel told a conversation's visitor of is kept:
   * `notified.<conversation>` (email), `texted.<conversation>` (text message).
   */
  readonly visitorData: KV;
  readonly settings: () => Settings;
  readonly log: Logger;
  /** The channels, and how long an answer stays unread before they are used. */
  readonly notifications: NotificationOptions;
}

type Channel = 'email' | 'sms';
const KEY_PREFIX: Record<Channel, string> = { email: 'notified', sms: 'texted' };

/** The durable consumer every gateway shares. */
export const NOTIFIER_CONSUMER = 'notifier';
const RETRY_MS = 30_000;

type MessageAdded = Extract<DomainEvent, { type: 'MessageAdded' }>;

export class Notifier {
  readonly #o: NotifierOptions;
  readonly #delayMs: number;
  readonly #log: Logger;
  #messages: ConsumerMessages | undefined;
  readonly #handling = new Set<Promise<void>>();

  private constructor(options: NotifierOptions) {
    this.#o = options;
    this.#delayMs = options.notifications.delayMs;
    this.#log = options.log.child({ part: 'notifier' });
  }

  /** Creates the shared consumer if it is missing (from the events to come) and consumes it. */
  static async start(
    js: JetStreamClient,
    jsm: JetStreamManager,
    options: NotifierOptions,
  ): Promise<Notifier> {
    const notifier = new Notifier(options);
    const exists = await jsm.consumers.info(STREAMS.events, NOTIFIER_CONSUMER).catch(() => null);
    if (!exists) {
      await jsm.consumers.add(STREAMS.events, {
        durable_name: NOTIFIER_CONSUMER,
        filter_subject: `${SUBJECT_ROOTS.events}.*.*.MessageAdded`,
        ack_policy: AckPolicy.Explicit,
        deliver_policy: DeliverPolicy.New,
        ack_wait: nanos(60_000),
        // A failure is tried again every 30 s, for about half an hour, then given up.
        max_deliver: 60,
        // An answer waits unread, redelivered after its delay; many may wait at once.
        max_ack_pending: 100_000,
      });
    }
    const consumer = await js.consumers.get(STREAMS.events, NOTIFIER_CONSUMER);
    notifier.#messages = await consumer.consume({
      max_messages: 256,
      callback: (m) => notifier.#handle(m),
    });
    const { email, sms } = options.notifications;
    notifier.#log.info(
      { delayMs: notifier.#delayMs, email: email !== undefined, sms: sms !== undefined },
      'notifications of answers given while away on',
    );
    return notifier;
  }

  /** Stops consuming, and waits for the answers being handled. */
  async stop(): Promise<void> {
    await this.#messages?.close().catch(() => undefined);
    await Promise.allSettled(this.#handling);
  }

  #handle(msg: JsMsg): void {
    const handling = this.#handleOne(msg).finally(() => this.#handling.delete(handling));
    this.#handling.add(handling);
  }

  async #handleOne(msg: JsMsg): Promise<void> {
    // (After the connection closed, an ack or a nak throws: the answer is delivered again.)
    const settle = (how: () => void) => {
      try {
        how();
      } catch (error) {
        this.#log.debug({ err: error, seq: msg.seq }, 'answer not settled; delivered again');
      }
    };
    // Sending may take longer than the consumer's ack wait: tell the server it is in hand.
    const working = setInterval(() => settle(() => msg.working()), 20_000);
    try {
      const event = msg.json<MessageAdded>();
      if (event.type !== 'MessageAdded' || event.message.author.kind !== 'agent') {
        settle(() => msg.ack());
        return;
      }
      const wait = event.at + this.#delayMs - Date.now();
      if (wait > 0) {
        settle(() => msg.nak(wait)); // back when the answer has waited long enough
        return;
      }
      const done = await this.#notify(event);
      settle(() => (done ? msg.ack() : msg.nak(RETRY_MS)));
    } catch (error) {
      this.#log.warn({ err: error, seq: msg.seq }, 'answer notification failed; tried again later');
      settle(() => msg.nak(RETRY_MS));
    } finally {
      clearInterval(working);
    }
  }

  /**
   * Tells the visitor, on each channel set up, of the agent messages they have not read and that
   * channel did not tell them of yet, unless they are on the site. False to be tried again.
   */
  async #notify(event: MessageAdded): Promise<boolean> {
    const conversation = await this.#o.backend.live(event.conversation);
    const ctx = conversation.context;
    if (ctx.visitorOnline || ctx.readSeq >= event.message.seq) {
      this.#log.debug(
        { conversation: event.conversation, online: ctx.visitorOnline, readSeq: ctx.readSeq },
        'answer seen or visitor on the site: nothing sent',
      );
      return true;
    }
    let thread: Promise<Message[]> | undefined;
    const messages = () => {
      thread ??= this.#o.backend.thread(event.conversation);
      return thread;
    };
    let done = true;
    for (const channel of ['email', 'sms'] as const) {
      if (!this.#o.notifications[channel]) continue;
      done = (await this.#tell(channel, event, ctx, messages)) && done;
    }
    return done;
  }

  /** One channel: claims what it covers in KV before sending (two gateways never both send it). */
  async #tell(
    channel: Channel,
    event: MessageAdded,
    ctx: { readonly visitor: string; readonly readSeq: number; readonly group: string | null },
    messages: () => Promise<Message[]>,
  ): Promise<boolean> {
    const { backend, visitorData } = this.#o;
    const key = `${KEY_PREFIX[channel]}.${event.conversation}`;
    const entry = await visitorData.get(key);
    const covered = entry?.operation === 'PUT' ? Number(entry.string()) : 0;
    if (covered >= event.message.seq) return true; // told already
    const to =
      channel === 'email'
        ? await backend.visitorEmail(ctx.visitor)
        : await backend.visitorPhone(ctx.visitor);
    if (!to) {
      this.#log.debug({ conversation: event.conversation, channel }, 'no address: nothing sent');
      return true;
    }
    const unread = (await messages()).filter(
      (m) => m.author.kind === 'agent' && m.seq > Math.max(ctx.readSeq, covered),
    );
    if (unread.length === 0) return true;
    const last = unread[unread.length - 1]!.seq;
    const revision = entry?.revision ?? 0;
    let claimed: number;
    try {
      claimed =
        revision === 0
          ? await visitorData.create(key, String(last))
          : await visitorData.update(key, String(last), revision);
    } catch (error) {
      if (isRevisionConflict(error)) return true; // another gateway claimed it first
      throw error; // (tried again later)
    }
    try {
      if (channel === 'email')
        await this.#o.notifications.email?.(this.#mail(to, ctx.group, unread));
      else await this.#o.notifications.sms?.(this.#text(to, ctx.group, unread));
    } catch (error) {
      // Given back, unless claimed again since: another gateway told of later answers meanwhile
      // (then these are not told again: it needs two gateways and a failure at once).
      await visitorData.update(key, String(covered), claimed).catch(() => undefined);
      this.#log.warn(
        { err: error, conversation: event.conversation, channel },
        'answer notification not sent',
      );
      return false;
    }
    this.#log.info(
      { conversation: event.conversation, channel, messages: unread.length },
      'visitor told of answers given while away',
    );
    return true;
  }

  #team(group: string | null): string {
    return this.#o.settings().groups.find((g) => g.id === group)?.name ?? 'the team';
  }

  /** A text message: the team, the last answer (cut at 120 characters), how many more. */
  #text(to: string, group: string | null, messages: readonly Message[]): TextMessage {
    const last = messages[messages.length - 1]!.text.replace(/\s+/g, ' ').trim();
    const cut = last.length > 120 ? `${last.slice(0, 119)}…` : last;
    const more = messages.length > 1 ? ` (+${messages.length - 1} more)` : '';
    return { to, text: `${this.#team(group)}: ${cut}${more} Reply on the site's chat.` };
  }

  #mail(to: string, group: string | null, messages: readonly Message[]): Mail {
    const settings = this.#o.settings();
    const team = this.#team(group);
    const name = ({ author }: Message) =>
      (author.kind === 'agent' && settings.agents.find((a) => a.id === author.id)?.name) ||
      'An agent';
    const lines = messages.map((m) => {
      const files = m.attachments.map((a) => `  [${a.name ?? a.ref}]`).join('\n');
      return `${name(m)}:\n${m.text}${files ? `\n${files}` : ''}`;
    });
    return {
      to,
      subject:
        messages.length === 1 ? `A reply from ${team}` : `${messages.length} replies from ${team}`,
      text: `${lines.join('\n\n')}\n\nOpen the chat on the site to answer.\n`,
    };
  }
}
