// Live connections make presence: a visitor with a conversation's stream open is online in it;
// an agent or a visitor whose last stream closed longer than the grace period ago is offline
// (the grace covers a page reload or a network blip without flapping). Gateways share their
// open streams in the parley-connections bucket, so a stream that moved to another gateway keeps
// its agent online; a gateway that dies stops heartbeating its entries, which then expire.
import { randomBytes } from 'node:crypto';
import type { JetStreamManager } from '@nats-io/jetstream';
import type { KV } from '@nats-io/kv';
import type { Logger } from '../log.ts';
import { BUCKETS, bucketKeys } from '../nats/streams.ts';
import type { Backend } from './backend.ts';

/** `agent.<agent>` or `visitor.<visitor>.<conversation>`: whose presence a stream makes. */
type Who = `agent.${string}` | `visitor.${string}.${string}`;

/** How often a gateway writes its open streams again (the bucket forgets them after 3 times this). */
export const CONNECTION_HEARTBEAT_MS = 20_000;

export class Presence {
  readonly #backend: Backend;
  readonly #graceMs: number;
  readonly #log: Logger;
  readonly #shared: KV | undefined;
  readonly #jsm: JetStreamManager;
  readonly #open = new Map<Who, number>();
  readonly #leaving = new Map<Who, NodeJS.Timeout>();
  readonly #instance = randomBytes(6).toString('hex');
  readonly #heartbeat: NodeJS.Timeout;
  #n = 0;

  constructor(backend: Backend, graceMs: number, log: Logger, shared?: KV) {
    this.#backend = backend;
    this.#jsm = backend.jsm;
    this.#graceMs = graceMs;
    this.#log = log.child({ part: 'presence' });
    this.#shared = shared;
    this.#heartbeat = setInterval(() => {
      for (const who of this.#open.keys()) void this.#mark(who);
    }, CONNECTION_HEARTBEAT_MS);
    this.#heartbeat.unref();
  }

  #id(what: string): string {
    return `${what}:${this.#instance}:${++this.#n}`;
  }

  /** An agent's stream opened; returns what to call when it closes. */
  agentConnected(agent: string): () => void {
    return this.#connected(`agent.${agent}`, () =>
      this.#backend.send(
        { type: 'SetAgentPresence', id: this.#id(`gone:${agent}`), agent, presence: 'offline' },
        undefined,
        { wait: false },
      ),
    );
  }

  /** A visitor's stream on a conversation opened: they are online in it. */
  visitorConnected(visitor: string, conversation: string): () => void {
    const who: Who = `visitor.${visitor}.${conversation}`;
    if (!this.#leaving.has(who) && !this.#open.has(who)) {
      void this.#send(() =>
        this.#backend.send(
          {
            type: 'SetVisitorPresence',
            id: this.#id(`here:${conversation}`),
            conversation,
            online: true,
          },
          undefined,
          { wait: false },
        ),
      );
    }
    return this.#connected(who, () =>
      this.#backend.send(
        {
          type: 'SetVisitorPresence',
          id: this.#id(`gone:${conversation}`),
          conversation,
          online: false,
        },
        undefined,
        { wait: false },
      ),
    );
  }

  #connected(who: Who, wentAway: () => Promise<unknown>): () => void {
    clearTimeout(this.#leaving.get(who));
    this.#leaving.delete(who);
    const first = !this.#open.has(who);
    this.#open.set(who, (this.#open.get(who) ?? 0) + 1);
    if (first) void this.#mark(who);
    let closed = false;
    return () => {
      if (closed) return;
      closed = true;
      const left = (this.#open.get(who) ?? 1) - 1;
      if (left > 0) {
        this.#open.set(who, left);
        return;
      }
      this.#open.delete(who);
      void this.#unmark(who);
      const timer = setTimeout(() => {
        this.#leaving.delete(who);
        void this.#send(async () => {
          if (await this.#elsewhere(who)) return;
          this.#log.info({ who }, 'live connection gone past the grace period');
          await wentAway();
        });
      }, this.#graceMs);
      timer.unref();
      this.#leaving.set(who, timer);
    };
  }

  /** True when another gateway holds a stream for the same presence now. */
  async #elsewhere(who: Who): Promise<boolean> {
    if (!this.#shared || this.#open.has(who)) return this.#open.has(who);
    for (const key of await bucketKeys(this.#jsm, BUCKETS.connections, `${who}.*`)) {
      // A stream closed elsewhere leaves its key as a PURGE marker until the TTL drops it.
      if ((await this.#shared.get(key))?.operation === 'PUT') return true;
    }
    return false;
  }

  async #mark(who: Who): Promise<void> {
    await this.#shared?.put(`${who}.${this.#instance}`, String(Date.now())).catch((error) => {
      this.#log.debug({ err: error, who }, 'open stream not shared');
    });
  }

  async #unmark(who: Who): Promise<void> {
    await this.#shared?.purge(`${who}.${this.#instance}`).catch(() => undefined);
  }

  async #send(work: () => Promise<unknown>): Promise<void> {
    try {
      await work();
    } catch (error) {
      this.#log.warn({ err: error }, 'presence change not sent');
    }
  }

  close(): void {
    clearInterval(this.#heartbeat);
    for (const t of this.#leaving.values()) clearTimeout(t);
    this.#leaving.clear();
    for (const who of this.#open.keys()) void this.#unmark(who);
  }
}
