// Group leases: one writer per routing group (ARCHITECTURE rule 1), held in the parley-leases
// bucket by compare-and-set and kept by a heartbeat.
//
// A lease is the KV entry `<group>` = `{ worker, until }`. It is taken by KV create (only if
// absent), or by update on the last revision when the holder's `until` has passed; renewed by
// update on the revision this worker last wrote; released by a delete on that revision. Expiry
// is read from `until`, not only from the bucket's TTL, whose enforcement may lag. So the
// workers' clocks must agree to well within a lease period (NTP, or one machine).
//
// A holder stops trusting its lease at its own `until` even if it could not hear from NATS,
// which is when the others may take it; a snapshot write fenced by `revision(group)` catches
// the rest (a pause between the check and the write).

import type { KV } from '@nats-io/kv';
import { Kvm } from '@nats-io/kv';
import type { NatsConnection } from '@nats-io/transport-node';
import { ParleyError } from '../errors.ts';
import type { Logger } from '../log.ts';
import { AGENT_TOKEN, BUCKETS, DEFAULTS, validateGroupId, validateId } from './streams.ts';

/** A lease names a routing group, or the agents' commands (`_agent`). */
const validateLease = (name: string) => (name === AGENT_TOKEN ? name : validateGroupId(name));

/** The value of a lease entry. `until` is a time in ms since the epoch. */
export interface LeaseRecord {
  worker: string;
  until: number;
}

/** A live lease as read from the bucket, with the revision that fences writes. */
export interface LeaseOwner extends LeaseRecord {
  revision: number;
}

export interface LeasesOptions {
  /** This worker's id (a KV-safe token). */
  worker: string;
  /** Lease period in ms (default 5000); must not exceed the bucket's TTL. Renewed every third of it. */
  leaseMs?: number;
  /** Called once per lease this worker held and lost (taken over, expired unrenewed). */
  onLost?: (group: string, reason: string) => void;
  log?: Logger;
  /** The clock, in ms since the epoch (tests may pass another). */
  now?: () => number;
}

interface Held {
  revision: number;
  until: number;
}

/** The leases this worker holds, and the means to take, keep and give up others. */
export class Leases {
  readonly worker: string;
  readonly leaseMs: number;
  readonly #kv: KV;
  readonly #onLost: ((group: string, reason: string) => void) | undefined;
  readonly #log: Logger | undefined;
  readonly #now: () => number;
  readonly #held = new Map<string, Held>();
  readonly #queues = new Map<string, Promise<unknown>>();
  #timer: NodeJS.Timeout | undefined;
  #beating = false;

  /**
   * Opens the leases bucket (created by `ensureStreams`) and checks that a lease period fits in
   * its TTL; throws PARLEY_ERR_NATS_SETUP otherwise.
   */
  static async open(nc: NatsConnection, options: LeasesOptions): Promise<Leases> {
    const leaseMs = options.leaseMs ?? DEFAULTS.leaseTtlMs;
    let kv: KV;
    let ttl: number;
    try {
      kv = await new Kvm(nc).open(BUCKETS.leases);
      ttl = (await kv.status()).ttl;
    } catch (error) {
      const reason = `${error instanceof Error ? error.message : String(error)} (ensureStreams creates it)`;
      throw new ParleyError('PARLEY_ERR_NATS_SETUP', [`bucket ${BUCKETS.leases}`, reason], {
        cause: error,
      });
    }
    if (ttl > 0 && leaseMs > ttl) {
      throw new ParleyError('PARLEY_ERR_NATS_SETUP', [
        `bucket ${BUCKETS.leases}`,
        `a lease of ${leaseMs} ms outlives the bucket's TTL of ${ttl} ms; another worker could take a lease still held`,
      ]);
    }
    return new Leases(kv, { ...options, leaseMs });
  }

  constructor(kv: KV, options: LeasesOptions) {
    this.#kv = kv;
    this.worker = validateId('worker id', options.worker);
    this.leaseMs = options.leaseMs ?? DEFAULTS.leaseTtlMs;
    this.#onLost = options.onLost;
    this.#log = options.log;
    this.#now = options.now ?? Date.now;
  }

  /**
   * Takes the lease of `group` if nobody holds it, or if its holder let it pass its `until`, or
   * if its holder is `from`, a worker found dead (liveness.ts) whose lease has not run out yet:
   * by compare-and-set on the revision read, so a holder that renewed in between keeps it.
   * True when this worker holds it now (also when it already did: that renews it).
   */
  acquire(group: string, options: { from?: string } = {}): Promise<boolean> {
    validateLease(group);
    return this.#serially(group, async () => {
      for (let attempt = 0; attempt < 3; attempt++) {
        const until = this.#now() + this.leaseMs;
        const value = this.#value(until);
        try {
          this.#hold(group, await this.#kv.create(group, value), until);
          return true;
        } catch (error) {
          if (!isRevisionConflict(error)) throw error;
        }
        const entry = await this.#kv.get(group);
        if (entry === null) continue; // expired between the two calls: create again
        if (entry.operation === 'PUT') {
          const record = parseRecord(entry.value);
          const dead = options.from !== undefined && record?.worker === options.from;
          if (record && record.worker !== this.worker && record.until > this.#now() && !dead) {
            this.#lose(group, `held by ${record.worker}`);
            return false;
          }
        }
        try {
          this.#hold(group, await this.#kv.update(group, value, entry.revision), until);
          return true;
        } catch (error) {
          if (!isRevisionConflict(error)) throw error;
          // Someone wrote in between: look again.
        }
      }
      this.#lose(group, 'taken by another worker');
      return false;
    });
  }

  /**
   * Extends this worker's lease of `group` by a lease period, by compare-and-set on the revision
   * it last wrote. False when the lease is lost (taken over, or its `until` passed before the
   * renewal): onLost is called. Throws when NATS could not be asked (the lease still holds until
   * its `until`; the heartbeat tries again).
   */
  renew(group: string): Promise<boolean> {
    return this.#serially(group, async () => {
      const held = this.#held.get(group);
      if (held === undefined) return false;
      const now = this.#now();
      if (now >= held.until) {
        this.#lose(group, 'expired before it could be renewed');
        return false;
      }
      const until = now + this.leaseMs;
      try {
        this.#hold(group, await this.#kv.update(group, this.#value(until), held.revision), until);
        return true;
      } catch (error) {
        if (isRevisionConflict(error)) {
          this.#lose(group, 'taken over by another worker');
          return false;
        }
        throw error;
      }
    });
  }

  /** Gives up the lease of `group` if it is still this worker's. True when it was. */
  release(group: string): Promise<boolean> {
    return this.#serially(group, async () => {
      const held = this.#held.get(group);
      if (held === undefined) return false;
      this.#held.delete(group);
      try {
        await this.#kv.delete(group, { previousSeq: held.revision });
        return true;
      } catch (error) {
        if (isRevisionConflict(error)) return false;
        // Unreachable NATS: the lease runs out by itself.
        this.#log?.warn({ group, err: error }, 'could not release lease');
        return false;
      }
    });
  }

  /** The live holder of `group`'s lease, or null when none (never taken, released or expired). */
  async owner(group: string): Promise<LeaseOwner | null> {
    const entry = await this.#kv.get(validateLease(group));
    if (entry === null || entry.operation !== 'PUT') return null;
    const record = parseRecord(entry.value);
    if (record === undefined || record.until <= this.#now()) return null;
    return { ...record, revision: entry.revision };
  }

  /** The revision of `group`'s lease entry this worker last wrote, while it holds the lease. */
  revision(group: string): number | undefined {
    return this.holds(group) ? this.#held.get(group)?.revision : undefined;
  }

  /** True while this worker holds `group`'s lease and its `until` has not passed. */
  holds(group: string): boolean {
    const held = this.#held.get(group);
    return held !== undefined && this.#now() < held.until;
  }

  /** The groups whose lease this worker holds. */
  held(): string[] {
    return [...this.#held.keys()].filter((group) => this.holds(group));
  }

  /** Starts renewing every held lease each `leaseMs / 3`. */
  start(): void {
    if (this.#timer) return;
    this.#timer = setInterval(() => void this.#beat(), Math.max(1, Math.floor(this.leaseMs / 3)));
    this.#timer.unref();
  }

  /** Stops the heartbeat; the leases run out unless released. */
  stop(): void {
    clearInterval(this.#timer);
    this.#timer = undefined;
  }

  /** Stops the heartbeat and releases every lease, so others may take them at once. */
  async close(): Promise<void> {
    this.stop();
    await Promise.all([...this.#held.keys()].map((group) => this.release(group)));
  }

  async #beat(): Promise<void> {
    if (this.#beating) return;
    this.#beating = true;
    try {
      await Promise.all(
        [...this.#held.keys()].map(async (group) => {
          try {
            await this.renew(group);
          } catch (error) {
            this.#log?.warn({ group, err: error }, 'could not renew lease');
            const held = this.#held.get(group);
            if (held && this.#now() >= held.until)
              this.#lose(group, 'could not be renewed in time');
          }
        }),
      );
    } finally {
      this.#beating = false;
    }
  }

  #hold(group: string, revision: number, until: number): void {
    this.#held.set(group, { revision, until });
  }

  #lose(group: string, reason: string): void {
    if (!this.#held.delete(group)) return;
    this.#log?.warn({ group, worker: this.worker, reason }, 'lease lost');
    try {
      this.#onLost?.(group, reason);
    } catch (error) {
      this.#log?.error({ group, err: error }, 'onLost callback failed');
    }
  }

  #value(until: number): string {
    return JSON.stringify({ worker: this.worker, until } satisfies LeaseRecord);
  }

  /** Runs the operations on one group one after the other (a renew never races a release). */
  #serially<T>(group: string, operation: () => Promise<T>): Promise<T> {
    const previous = this.#queues.get(group) ?? Promise.resolve();
    const result = previous.then(operation, operation);
    const settled = result.then(
      () => undefined,
      () => undefined,
    );
    this.#queues.set(group, settled);
    void settled.then(() => {
      if (this.#queues.get(group) === settled) this.#queues.delete(group);
    });
    return result;
  }
}

/** True for JetStream's answer to a compare-and-set on a revision that is no longer the last. */
export function isRevisionConflict(error: unknown): boolean {
  const code = (error as { code?: unknown } | null)?.code;
  return code === 10071 || code === 10164;
}

function parseRecord(value: Uint8Array): LeaseRecord | undefined {
  try {
    const record = JSON.parse(new TextDecoder().decode(value)) as Partial<LeaseRecord>;
    if (typeof record.worker === 'string' && typeof record.until === 'number') {
      return { worker: record.worker, until: record.until };
    }
  } catch {
    // not a lease: treated as none
  }
  return undefined;
}
