// Hosts the agents' commands (presence): one worker at a time, under the `_agent` lease, applies
// them to the agent actors in the shared world and publishes their events. The routing groups
// learn of the change through the world and hand out or return conversations themselves.
import {
  AckPolicy,
  type ConsumerMessages,
  DeliverPolicy,
  type JetStreamClient,
  type JetStreamManager,
  type JsMsg,
} from '@nats-io/jetstream';
import type { KV } from '@nats-io/kv';
import { headers, nanos } from '@nats-io/transport-node';
import type { Logger } from 'pino';
import { Engine } from '../../actors/engine.ts';
import type { DomainEvent } from '../../actors/events.ts';
import type { Settings } from '../../actors/settings.ts';
import { parseCommand } from '../commands.ts';
import {
  AGENT_COMMANDS_FILTER,
  AGENT_TOKEN,
  agentEventSubject,
  commandMsgId,
  STREAMS,
  UNIT_END_HEADER,
} from '../nats/streams.ts';
import { consumeBatches } from './batches.ts';
import type { Lock } from './lock.ts';
import { type KvWorld, WorldConflictError } from './world.ts';

export interface AgentHostDeps {
  readonly js: JetStreamClient;
  readonly jsm: JetStreamManager;
  readonly groups: KV;
  readonly world: KvWorld;
  readonly settings: Settings;
  readonly log: Logger;
  readonly holds: (lease: string) => boolean;
  /** Serialises work with the other hosts of the worker, which share the world. */
  readonly lock: Lock;
}

/** The key, in the groups bucket, of the agents host's progress. */
const PROGRESS_KEY = AGENT_TOKEN;
const encoder = new TextEncoder();
const decoder = new TextDecoder();

export class AgentHost {
  readonly #deps: AgentHostDeps;
  readonly #log: Logger;
  #lastSeq = 0;
  #revision = 0;
  #messages: ConsumerMessages | undefined;
  #queue: Promise<void> = Promise.resolve();
  #stopped = false;

  private constructor(deps: AgentHostDeps) {
    this.#deps = deps;
    this.#log = deps.log.child({ host: AGENT_TOKEN });
  }

  static async start(deps: AgentHostDeps): Promise<AgentHost> {
    const host = new AgentHost(deps);
    const entry = await deps.groups.get(PROGRESS_KEY);
    if (entry?.operation === 'PUT') {
      host.#lastSeq = (JSON.parse(decoder.decode(entry.value)) as { lastSeq: number }).lastSeq;
      host.#revision = entry.revision;
    }
    await host.#consume();
    return host;
  }

  async stop(): Promise<void> {
    this.#stopped = true;
    await this.#messages?.close().catch(() => undefined);
    await this.#queue.catch(() => undefined);
  }

  async #consume(): Promise<void> {
    const { jsm, js } = this.#deps;
    const name = 'agents';
    await jsm.consumers.delete(STREAMS.commands, name).catch(() => undefined);
    await jsm.consumers.add(STREAMS.commands, {
      durable_name: name,
      filter_subject: AGENT_COMMANDS_FILTER,
      ack_policy: AckPolicy.All,
      ack_wait: nanos(30_000),
      ...(this.#lastSeq > 0
        ? { deliver_policy: DeliverPolicy.StartSequence, opt_start_seq: this.#lastSeq + 1 }
        : { deliver_policy: DeliverPolicy.All }),
    });
    const consumer = await js.consumers.get(STREAMS.commands, name);
    const messages = await consumeBatches(consumer, 256, (batch) => {
      this.#queue = this.#queue
        .then(() => (this.#stopped ? undefined : this.#deps.lock(() => this.#apply(batch))))
        .catch((error) => {
          this.#log.error({ err: error }, 'agent commands stopped');
          this.#stopped = true;
        });
    });
    this.#messages = messages;
    void messages.closed().then((error) => {
      if (error) this.#log.error({ err: error }, 'agent command loop ended');
    });
  }

  async #apply(msgs: JsMsg[]): Promise<void> {
    const fresh = msgs.filter((m) => m.seq > this.#lastSeq);
    for (let attempt = 1; ; attempt++) {
      // Presence does not depend on the groups: an engine that hosts none applies it.
      const engine = new Engine(this.#deps.settings, { world: this.#deps.world, hosts: [] });
      const events: { event: DomainEvent; id: string; agent: string }[] = [];
      for (const m of fresh) {
        try {
          const cmd = parseCommand(m.data);
          if (cmd.type !== 'SetAgentPresence' || m.subject.split('.')[3] !== cmd.agent) {
            throw new Error(`subject ${m.subject} does not name this command's agent`);
          }
          const at = Number(m.timestampNanos / 1_000_000n);
          engine.step(cmd, at).events.forEach((event, i) => {
            events.push({ event, id: `${commandMsgId(cmd)}:${i}`, agent: cmd.agent });
          });
        } catch (error) {
          if (attempt === 1) {
            this.#log.warn({ seq: m.seq, reason: (error as Error).message }, 'command refused');
            m.term(`invalid command: ${(error as Error).message}`);
          }
        }
      }
      try {
        await this.#deps.world.commit();
      } catch (error) {
        if (!(error instanceof WorldConflictError) || attempt >= 8) throw error;
        await this.#deps.world.rollback();
        continue;
      }
      const last = msgs[msgs.length - 1]!;
      // Events first, then the progress that makes them final (as the group hosts do).
      await Promise.all(
        events.map(({ event, id, agent }, i) => {
          const data = encoder.encode(JSON.stringify(event));
          // The last event of a command says so, as the groups' events do.
          const unit = id.slice(0, id.lastIndexOf(':'));
          const next = events[i + 1];
          const last = next === undefined || !next.id.startsWith(`${unit}:`);
          const h = headers();
          if (last) h.set(UNIT_END_HEADER, '1');
          return this.#deps.js.publish(agentEventSubject(agent, event.type), data, {
            msgID: id,
            headers: h,
          });
        }),
      );
      if (!this.#deps.holds(AGENT_TOKEN)) throw new Error('lease on agents lost');
      const progress = encoder.encode(JSON.stringify({ lastSeq: last.seq }));
      this.#revision =
        this.#revision === 0
          ? await this.#deps.groups.create(PROGRESS_KEY, progress)
          : await this.#deps.groups.update(PROGRESS_KEY, progress, this.#revision);
      this.#lastSeq = Math.max(this.#lastSeq, last.seq);
      last.ack();
      return;
    }
  }
}
