// Sending one command the way an integrator does and reading back what it did: published with
// JetStream (de-duplicated by its key, streams.ts commandMsgId), then its events, recognised by
// their ids `<that key>:<n>`
// until the one a worker marks as the last of the unit. The gateway and `parley send` share it.
import { jetstream } from '@nats-io/jetstream';
import type { Msg, NatsConnection, Subscription } from '@nats-io/transport-node';
import type { Command, DomainEvent } from '../../actors/events.ts';
import {
  AGENT_TOKEN,
  agentCommandSubject,
  commandMsgId,
  commandSubject,
  SUBJECT_ROOTS,
  UNIT_END_HEADER,
} from './streams.ts';

/** An event as it was received. */
export interface SeenEvent {
  /** Its sequence in PARLEY_EVENTS, when read from the stream. */
  readonly seq?: number;
  readonly subject: string;
  /** Its Nats-Msg-Id: `<unit>:<n>`. */
  readonly id: string;
  readonly event: DomainEvent;
}

export interface Sent {
  readonly subject: string;
  /** The command's sequence in PARLEY_COMMANDS. */
  readonly seq: number;
  /** JetStream held a command with this id already: it was not stored again, and changes nothing. */
  readonly duplicate: boolean;
  /** Its events, in order: all of them when `complete`, else those that came in time. */
  readonly seen: readonly SeenEvent[];
  readonly complete: boolean;
}

export interface SendOptions {
  /** How long to wait for JetStream's acknowledgement (default 5 s). */
  readonly publishTimeoutMs?: number;
  /** How long to wait for the events (0: not at all). */
  readonly waitMs: number;
  /** Without the last-event mark (an older worker), a quiet this long ends the outcome. */
  readonly quietMs?: number;
}

/**
 * Publishes `command` (to `group` for a conversation command) and collects its events. A failed
 * publish throws the client's error: the command was then not stored.
 */
export async function sendCommand(
  nc: NatsConnection,
  command: Command,
  group: string | undefined,
  options: SendOptions,
): Promise<Sent> {
  let subject: string;
  let follow: string;
  if (command.type === 'SetAgentPresence') {
    subject = agentCommandSubject(command.agent);
    follow = `${SUBJECT_ROOTS.events}.${AGENT_TOKEN}.${command.agent}.*`;
  } else {
    subject = commandSubject(group ?? '', command.conversation);
    follow = `${SUBJECT_ROOTS.events}.*.${command.conversation}.*`;
  }
  // Subscribed before publishing: the server sees the subscription before the command.
  const outcome =
    options.waitMs > 0
      ? new Outcome(nc.subscribe(follow), `${commandMsgId(command)}:`, options.quietMs ?? 50)
      : undefined;
  try {
    const ack = await jetstream(nc).publish(subject, JSON.stringify(command), {
      msgID: commandMsgId(command),
      timeout: options.publishTimeoutMs ?? 5_000,
    });
    if (ack.duplicate || !outcome) {
      return { subject, seq: ack.seq, duplicate: ack.duplicate, seen: [], complete: false };
    }
    const { seen, complete } = await outcome.wait(options.waitMs);
    return { subject, seq: ack.seq, duplicate: false, seen, complete };
  } finally {
    outcome?.close();
  }
}

/** Collects the events of one unit of work (ids `<prefix><n>`) from a subscription. */
class Outcome {
  readonly #sub: Subscription;
  readonly #prefix: string;
  readonly #quietMs: number;
  readonly #events = new Map<number, SeenEvent>();
  #ended = false;
  #marked = false;
  #done: (() => void) | undefined;
  #quiet: NodeJS.Timeout | undefined;

  constructor(sub: Subscription, prefix: string, quietMs: number) {
    this.#sub = sub;
    this.#prefix = prefix;
    this.#quietMs = quietMs;
    void (async () => {
      for await (const m of sub) this.#take(m);
    })();
  }

  #take(m: Msg): void {
    const id = m.headers?.get('Nats-Msg-Id') ?? '';
    if (!id.startsWith(this.#prefix)) return;
    const n = Number(id.slice(this.#prefix.length));
    if (!Number.isInteger(n) || this.#events.has(n)) return;
    this.#events.set(n, { subject: m.subject, id, event: m.json<DomainEvent>() });
    clearTimeout(this.#quiet);
    if (m.headers?.get(UNIT_END_HEADER)) {
      this.#marked = true;
      this.#end();
    } else {
      this.#quiet = setTimeout(() => this.#end(), this.#quietMs);
    }
  }

  #end(): void {
    this.#ended = true;
    this.#done?.();
  }

  /** The events once the unit is complete, or what came within `ms`. */
  async wait(ms: number): Promise<{ seen: SeenEvent[]; complete: boolean }> {
    if (!this.#ended && ms > 0) {
      let timer: NodeJS.Timeout | undefined;
      await new Promise<void>((resolve) => {
        this.#done = resolve;
        timer = setTimeout(resolve, ms);
      });
      clearTimeout(timer);
    }
    const seen = [...this.#events.entries()].sort(([a], [b]) => a - b).map(([, e]) => e);
    return { seen, complete: this.#marked || (this.#ended && seen.length > 0) };
  }

  close(): void {
    clearTimeout(this.#quiet);
    this.#sub.unsubscribe();
  }
}
