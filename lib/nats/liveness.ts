// Telling a dead worker from a slow one, fast. Every worker answers pings on its own subject
// (`parley.worker.<id>`); once the worker's connection is gone (a SIGKILL closes its socket at
// once) the server answers "no responders" to a ping, long before the worker's leases or its
// heartbeat run out. The survivors take its groups then, so a snooze due just after a worker
// died still wakes within a second (ARCHITECTURE.md rule 5). A worker that is only slow (a
// pause, a busy event loop) keeps its subscription: a ping that times out proves nothing, and
// its leases are left to run out as before.
import { type NatsConnection, RequestError, type Subscription } from '@nats-io/transport-node';
import type { Logger } from '../log.ts';
import { validateId } from './streams.ts';

/** `parley.worker.<id>`: where a worker answers pings (and, one day, other requests of its own). */
export function workerSubject(worker: string): string {
  return `parley.worker.${validateId('worker id', worker)}`;
}

/** Answers every ping on this worker's subject until unsubscribed. */
export function answerPings(nc: NatsConnection, worker: string): Subscription {
  const body = JSON.stringify({ worker });
  return nc.subscribe(workerSubject(worker), {
    callback: (error, msg) => {
      if (!error) msg.respond(body);
    },
  });
}

export type Probe = 'alive' | 'gone' | 'unknown';

/** One ping: `gone` only when the server says nobody listens on the worker's subject. */
export async function probe(nc: NatsConnection, worker: string, timeoutMs = 500): Promise<Probe> {
  try {
    await nc.request(workerSubject(worker), '', { timeout: timeoutMs });
    return 'alive';
  } catch (error) {
    if (error instanceof RequestError && error.isNoResponders()) return 'gone';
    return 'unknown'; // a timeout, a connection being re-established: no proof either way
  }
}

export interface DeathWatchOptions {
  /** Between two rounds of pings, in ms (default 250). */
  readonly intervalMs?: number;
  /** How long a worker must answer "gone" without a break before it counts as dead (default 500 ms). */
  readonly confirmMs?: number;
  readonly log?: Logger;
  readonly onDead: (worker: string) => void;
}

/**
 * Pings the workers it is told of, and calls `onDead` once for each that stays gone for
 * `confirmMs` (two rounds at least): the server's "no responders" can flicker while routes
 * between servers are being re-established, a worker dead for half a second does not.
 */
export class DeathWatch {
  readonly #nc: NatsConnection;
  readonly #options: DeathWatchOptions;
  readonly #gone = new Map<string, { since: number; rounds: number }>();
  readonly #dead = new Set<string>();
  #workers: readonly string[] = [];
  #timer: NodeJS.Timeout | undefined;
  #busy = false;

  constructor(nc: NatsConnection, options: DeathWatchOptions) {
    this.#nc = nc;
    this.#options = options;
  }

  /** The workers to ping from now on (the live members but this one). */
  watch(workers: readonly string[]): void {
    this.#workers = [...workers];
    for (const w of [...this.#gone.keys()]) if (!workers.includes(w)) this.#gone.delete(w);
  }

  /** True for a worker found dead and not seen alive since. */
  isDead(worker: string): boolean {
    return this.#dead.has(worker);
  }

  start(): void {
    if (this.#timer) return;
    this.#timer = setInterval(() => void this.#round(), this.#options.intervalMs ?? 250);
    this.#timer.unref();
  }

  stop(): void {
    clearInterval(this.#timer);
    this.#timer = undefined;
  }

  async #round(): Promise<void> {
    if (this.#busy || this.#nc.isClosed()) return;
    this.#busy = true;
    try {
      const now = Date.now();
      const results = await Promise.all(
        this.#workers.map(async (w) => [w, await probe(this.#nc, w)] as const),
      );
      for (const [worker, result] of results) {
        if (result === 'alive') {
          this.#gone.delete(worker);
          this.#dead.delete(worker);
          continue;
        }
        if (result === 'unknown' || this.#dead.has(worker)) continue;
        const gone = this.#gone.get(worker) ?? { since: now, rounds: 0 };
        gone.rounds++;
        this.#gone.set(worker, gone);
        if (gone.rounds >= 2 && now - gone.since >= (this.#options.confirmMs ?? 500)) {
          this.#dead.add(worker);
          this.#options.log?.warn({ dead: worker, goneMs: now - gone.since }, 'a worker is gone');
          this.#options.onDead(worker);
        }
      }
    } finally {
      this.#busy = false;
    }
  }
}
