// Live connections make presence: a visitor with a conversation's stream open is online in it;
// an agent or a visitor whose last stream closed longer than the grace period ago is offline
// (the grace covers a page reload or a network blip without flapping).
import { randomBytes } from 'node:crypto';
import type { Logger } from '../log.ts';
import type { Backend } from './backend.ts';

type Key = `agent:${string}` | `visitor:${string}:${string}`;

export class Presence {
  readonly #backend: Backend;
  readonly #graceMs: number;
  readonly #log: Logger;
  readonly #open = new Map<Key, number>();
  readonly #leaving = new Map<Key, NodeJS.Timeout>();
  readonly #instance = randomBytes(4).toString('hex');
  #n = 0;

  constructor(backend: Backend, graceMs: number, log: Logger) {
    this.#backend = backend;
    this.#graceMs = graceMs;
    this.#log = log.child({ part: 'presence' });
  }

  #id(what: string): string {
    return `${what}:${this.#instance}:${++this.#n}`;
  }

  /** An agent's stream opened; returns what to call when it closes. */
  agentConnected(agent: string): () => void {
    return this.#connected(`agent:${agent}`, async () => {
      await this.#backend.send({
        type: 'SetAgentPresence',
        id: this.#id(`gone:${agent}`),
        agent,
        presence: 'offline',
      });
    });
  }

  /** A visitor's stream on a conversation opened: they are online in it. */
  visitorConnected(visitor: string, conversation: string): () => void {
    const key: Key = `visitor:${visitor}:${conversation}`;
    if (!this.#leaving.has(key) && !this.#open.has(key)) {
      void this.#send(() =>
        this.#backend.send({
          type: 'SetVisitorPresence',
          id: this.#id(`here:${conversation}`),
          conversation,
          online: true,
        }),
      );
    }
    return this.#connected(key, async () => {
      await this.#backend.send({
        type: 'SetVisitorPresence',
        id: this.#id(`gone:${conversation}`),
        conversation,
        online: false,
      });
    });
  }

  #connected(key: Key, wentAway: () => Promise<void>): () => void {
    clearTimeout(this.#leaving.get(key));
    this.#leaving.delete(key);
    this.#open.set(key, (this.#open.get(key) ?? 0) + 1);
    let closed = false;
    return () => {
      if (closed) return;
      closed = true;
      const left = (this.#open.get(key) ?? 1) - 1;
      if (left > 0) {
        this.#open.set(key, left);
        return;
      }
      this.#open.delete(key);
      const timer = setTimeout(() => {
        this.#leaving.delete(key);
        this.#log.info({ who: key }, 'live connection gone past the grace period');
        void this.#send(wentAway);
      }, this.#graceMs);
      timer.unref();
      this.#leaving.set(key, timer);
    };
  }

  async #send(work: () => Promise<unknown>): Promise<void> {
    try {
      await work();
    } catch (error) {
      this.#log.warn({ err: error }, 'presence change not sent');
    }
  }

  close(): void {
    for (const t of this.#leaving.values()) clearTimeout(t);
    this.#leaving.clear();
  }
}
