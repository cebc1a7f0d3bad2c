// Live workers and the fair share of routing groups each should own. Workers announce
// themselves in the parley-workers bucket by heartbeat; every worker computes the same
// assignment from the same lists, and takes or gives up leases to match it.

import { type JetStreamManager, jetstreamManager } from '@nats-io/jetstream';
import type { KV } from '@nats-io/kv';
import { Kvm } from '@nats-io/kv';
import type { NatsConnection } from '@nats-io/transport-node';
import { ParleyError } from '../errors.ts';
import type { Logger } from '../log.ts';
import { BUCKETS, bucketKeys, DEFAULTS, validateId } from './streams.ts';

/** A worker's heartbeat entry. Times are ms since the epoch. */
export interface WorkerRecord {
  worker: string;
  /** When this worker joined. */
  since: number;
  /** Its last heartbeat. */
  seen: number;
  /** Whatever the worker adds about itself (host, pid, version). */
  info?: Record<string, unknown>;
}

export interface MembersOptions {
  /** This worker's id (a KV-safe token). */
  worker: string;
  /** How long a heartbeat keeps a worker alive, in ms; default: the bucket's TTL, else 5000. */
  ttlMs?: number;
  info?: Record<string, unknown>;
  log?: Logger;
  now?: () => number;
}

/** This worker's membership, and the list of live workers. */
export class Members {
  readonly worker: string;
  readonly ttlMs: number;
  readonly #kv: KV;
  readonly #jsm: JetStreamManager;
  readonly #info: Record<string, unknown> | undefined;
  readonly #log: Logger | undefined;
  readonly #now: () => number;
  #since = 0;
  #timer: NodeJS.Timeout | undefined;

  /** Opens the workers bucket (created by `ensureStreams`); throws PARLEY_ERR_NATS_SETUP if missing. */
  static async open(nc: NatsConnection, options: MembersOptions): Promise<Members> {
    try {
      const kv = await new Kvm(nc).open(BUCKETS.workers);
      const ttl = (await kv.status()).ttl;
      const jsm = await jetstreamManager(nc);
      return new Members(kv, jsm, {
        ...options,
        ttlMs: options.ttlMs ?? (ttl || DEFAULTS.workerTtlMs),
      });
    } catch (error) {
      if (error instanceof ParleyError) throw error;
      const reason = `${error instanceof Error ? error.message : String(error)} (ensureStreams creates it)`;
      throw new ParleyError('PARLEY_ERR_NATS_SETUP', [`bucket ${BUCKETS.workers}`, reason], {
        cause: error,
      });
    }
  }

  private constructor(kv: KV, jsm: JetStreamManager, options: MembersOptions) {
    this.#kv = kv;
    this.#jsm = jsm;
    this.worker = validateId('worker id', options.worker);
    this.ttlMs = options.ttlMs ?? DEFAULTS.workerTtlMs;
    this.#info = options.info;
    this.#log = options.log;
    this.#now = options.now ?? Date.now;
  }

  /** Announces this worker and keeps announcing it every `ttlMs / 3`. */
  async join(): Promise<void> {
    this.#since = this.#now();
    await this.heartbeat();
    if (this.#timer) return;
    this.#timer = setInterval(
      () => {
        this.heartbeat().catch((error: unknown) => {
          this.#log?.warn({ err: error }, 'worker heartbeat failed');
        });
      },
      Math.max(1, Math.floor(this.ttlMs / 3)),
    );
    this.#timer.unref();
  }

  /** Writes this worker's heartbeat once. */
  async heartbeat(): Promise<void> {
    const record: WorkerRecord = {
      worker: this.worker,
      since: this.#since || this.#now(),
      seen: this.#now(),
      ...(this.#info ? { info: this.#info } : {}),
    };
    await this.#kv.put(this.worker, JSON.stringify(record));
  }

  /** Stops the heartbeat: the others forget this worker after `ttlMs` (as if it had died). */
  stop(): void {
    clearInterval(this.#timer);
    this.#timer = undefined;
  }

  /** Stops the heartbeat and removes this worker from the list at once. */
  async leave(): Promise<void> {
    this.stop();
    await this.#kv.delete(this.worker);
  }

  /**
   * Removes another worker from the list, found dead before its heartbeat ran out: every worker
   * then shares its groups out at once. (Alive after all, it writes itself back at its next beat.)
   */
  async forget(worker: string): Promise<void> {
    await this.#kv.delete(validateId('worker id', worker));
  }

  /**
   * The live workers, sorted by id: those whose last heartbeat is younger than `ttlMs`
   * (not only those the bucket's TTL has not removed yet).
   */
  async members(): Promise<WorkerRecord[]> {
    // Not kv.keys(): it was seen never to finish on this busy bucket, holding the rebalance up.
    const keys = await bucketKeys(this.#jsm, BUCKETS.workers);
    const entries = await Promise.all(keys.map((key) => this.#kv.get(key)));
    const now = this.#now();
    const live: WorkerRecord[] = [];
    for (const entry of entries) {
      if (entry === null || entry.operation !== 'PUT') continue;
      try {
        const record = entry.json<WorkerRecord>();
        if (typeof record.seen === 'number' && record.seen + this.ttlMs > now) live.push(record);
      } catch {
        // not a heartbeat: ignored
      }
    }
    return live.sort((a, b) => compare(a.worker, b.worker));
  }
}

/**
 * Assigns every group to exactly one of `workers`, each worker getting ⌊n/w⌋ or ⌈n/w⌉ of the n
 * groups: rendezvous hashing with bounded loads. Every (group, worker) pair gets a hash weight;
 * pairs are taken from the heaviest down, a group going to the first worker of its pairs that
 * has room. Deterministic (same lists, in any order, give the same map).
 *
 * The trade-off: exact balance costs some stability. Plain rendezvous hashing moves only the
 * groups of a worker that leaves (about n/w) but leaves counts uneven; dealing sorted groups
 * round-robin balances exactly but moves almost every group when the list of workers changes.
 * Bounded loads balance exactly and, measured, move about 1.1–1.4× the minimum when a worker
 * joins or leaves (e.g. 100 groups, 3 → 4 workers: 27 moves, 25 at least; 1000 groups,
 * 10 → 11: 113, 91 at least).
 */
export function assignGroups(
  groups: readonly string[],
  workers: readonly string[],
): Map<string, string> {
  const assignment = new Map<string, string>();
  const ids = [...new Set(workers)];
  const all = [...new Set(groups)];
  if (ids.length === 0) return assignment;
  const floor = Math.floor(all.length / ids.length);
  const extra = all.length % ids.length; // how many workers get one more
  const pairs: { weight: number; group: string; worker: string }[] = [];
  for (const group of all) {
    for (const worker of ids) pairs.push({ weight: weight(group, worker), group, worker });
  }
  pairs.sort(
    (a, b) => b.weight - a.weight || compare(a.group, b.group) || compare(a.worker, b.worker),
  );
  const counts = new Map(ids.map((worker) => [worker, 0]));
  let atCeiling = 0;
  for (const { group, worker } of pairs) {
    if (assignment.has(group)) continue;
    const count = counts.get(worker)!;
    if (count < floor || (count === floor && atCeiling < extra)) {
      assignment.set(group, worker);
      counts.set(worker, count + 1);
      if (count + 1 === floor + 1) atCeiling++;
    }
  }
  return assignment;
}

/** The groups worker `me` should own among `workers` (sorted); none if `me` is not one of them. */
export function fairShare(
  groups: readonly string[],
  workers: readonly string[],
  me: string,
): string[] {
  const mine: string[] = [];
  for (const [group, worker] of assignGroups(groups, workers)) if (worker === me) mine.push(group);
  return mine.sort(compare);
}

function compare(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

/** A 32-bit hash of the pair (FNV-1a, then murmur3's finaliser to spread it). */
function weight(group: string, worker: string): number {
  const text = `${group}\u0000${worker}`;
  let hash = 0x811c9dc5;
  for (let i = 0; i < text.length; i++) {
    hash ^= text.charCodeAt(i);
    hash = Math.imul(hash, 0x01000193);
  }
  hash ^= hash >>> 16;
  hash = Math.imul(hash, 0x85ebca6b);
  hash ^= hash >>> 13;
  hash = Math.imul(hash, 0xc2b2ae35);
  hash ^= hash >>> 16;
  return hash >>> 0;
}
