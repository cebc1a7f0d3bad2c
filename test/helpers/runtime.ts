// Drives a running Parley the way a backend integrator does: commands published on NATS subjects,
// every event followed on the events stream.
import { type JetStreamClient, jetstream } from '@nats-io/jetstream';
import type { NatsConnection, Subscription } from '@nats-io/transport-node';
import pino from 'pino';
import type { Command, DomainEvent } from '../../actors/events.ts';
import { HOUR_MS } from '../../actors/settings.ts';
import { connectNats } from '../../lib/nats/connection.ts';
import {
  agentCommandSubject,
  commandMsgId,
  commandSubject,
  STREAMS,
} from '../../lib/nats/streams.ts';
import { Worker, type WorkerOptions } from '../../lib/worker/worker.ts';
import { type NatsServer, startNatsServer, type Teardown } from './nats-server.ts';
import { group, testSettings } from './settings.ts';

/** Quiet logs unless PARLEY_TEST_LOG names a level. */
export const testLog = pino({ level: process.env.PARLEY_TEST_LOG ?? 'silent' });

/** The test settings with snoozes short enough to wait for. */
export const runtimeSettings = () =>
  testSettings({
    groups: [
      group('tv', { cap: 3, snooze: { defaultMs: 400, minMs: 100, maxMs: HOUR_MS } }),
      group('orders', { cap: 2, snooze: { defaultMs: 400, minMs: 100, maxMs: HOUR_MS } }),
    ],
  });

let n = 0;

export class Integrator {
  readonly events: DomainEvent[] = [];
  readonly #waiters: { test: (e: DomainEvent) => boolean; resolve: (e: DomainEvent) => void }[] =
    [];

  private constructor(
    readonly nc: NatsConnection,
    readonly js: JetStreamClient,
    readonly sub: Subscription,
  ) {}

  static async connect(url: string): Promise<Integrator> {
    const nc = await connectNats(url, { name: 'integrator' });
    const sub = nc.subscribe('parley.evt.>');
    const it = new Integrator(nc, jetstream(nc), sub);
    void (async () => {
      for await (const m of sub) {
        const e = m.json<DomainEvent>();
        it.events.push(e);
        for (const w of [...it.#waiters]) {
          if (w.test(e)) {
            it.#waiters.splice(it.#waiters.indexOf(w), 1);
            w.resolve(e);
          }
        }
      }
    })();
    await nc.flush();
    return it;
  }

  /** Publishes a command to its subject; resolves once JetStream stored it. */
  async send(
    command: Record<string, unknown> & { type: Command['type'] },
    group = 'tv',
  ): Promise<string> {
    const cmd = { id: `t-${process.pid}-${++n}`, ...command } as Command;
    const subject =
      cmd.type === 'SetAgentPresence'
        ? agentCommandSubject(cmd.agent)
        : commandSubject(group, cmd.conversation);
    await this.js.publish(subject, JSON.stringify(cmd), { msgID: commandMsgId(cmd) });
    return cmd.id;
  }

  /** The first event, already seen or to come, that passes `test`. */
  waitFor(
    test: (e: DomainEvent) => boolean,
    timeoutMs = 10_000,
    what = 'an event',
  ): Promise<DomainEvent> {
    const seen = this.events.find(test);
    if (seen) return Promise.resolve(seen);
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`timed out waiting for ${what}`)), timeoutMs);
      this.#waiters.push({
        test,
        resolve: (e) => {
          clearTimeout(timer);
          resolve(e);
        },
      });
    });
  }

  /** Every event stored in the events stream under `filter`, each once (the stream de-duplicates). */
  async stored(filter = 'parley.evt.>'): Promise<DomainEvent[]> {
    // A cluster that just lost a server may time a first read out while it elects leaders.
    for (let attempt = 1; ; attempt++) {
      try {
        return await this.#stored(filter);
      } catch (error) {
        if (attempt >= 20) throw error;
        await new Promise((r) => setTimeout(r, 500));
      }
    }
  }

  async #stored(filter: string): Promise<DomainEvent[]> {
    const consumer = await this.js.consumers.get(STREAMS.events, { filter_subjects: filter });
    const out: DomainEvent[] = [];
    for (;;) {
      const batch = await consumer.fetch({ max_messages: 1000, expires: 2_000 });
      let last: number | undefined;
      for await (const m of batch) {
        out.push(m.json<DomainEvent>());
        last = m.info.pending;
        if (last === 0) break;
      }
      if (last === undefined || last === 0) return out;
    }
  }

  of(conversation: string): DomainEvent[] {
    return this.events.filter((e) => 'conversation' in e && e.conversation === conversation);
  }

  async close(): Promise<void> {
    this.sub.unsubscribe();
    await this.nc.drain();
  }
}

/** A worker of this process on `url` (one worker hosts every group), stopped with the test. */
export async function startWorker(
  t: Teardown,
  url: string | string[],
  options: Partial<WorkerOptions> = {},
): Promise<Worker> {
  const worker = await Worker.start({
    url,
    settings: runtimeSettings(),
    log: testLog,
    leaseMs: 1_000,
    ...options,
  });
  t.teardown(() => worker.stop());
  return worker;
}

/** An integrator connected to `url`, closed with the test. */
export async function connectIntegrator(t: Teardown, url: string): Promise<Integrator> {
  const it = await Integrator.connect(url);
  t.teardown(() => it.close());
  return it;
}

export interface Runtime {
  readonly server: NatsServer;
  readonly worker: Worker;
  readonly it: Integrator;
}

/** A nats-server, one worker hosting every group, and an integrator, all stopped with the test. */
export async function startRuntime(
  t: Teardown,
  options: Partial<WorkerOptions> = {},
): Promise<Runtime> {
  const server = await startNatsServer({ t });
  const worker = await startWorker(t, server.url, options);
  const it = await connectIntegrator(t, server.url);
  return { server, worker, it };
}
