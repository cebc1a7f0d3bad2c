// Raw JetStream, the baseline: publish N messages with a window in flight (each with a message id,
// as Parley's commands carry one for de-duplication) to a file stream, and at the same time consume
// them with a durable pull consumer, in batches of what is pending, acknowledging either the last
// message of each batch (AckPolicy.All, as a Parley worker does) or every message (AckPolicy.Explicit).
// The publisher is this process; the consumer is another (bench/raw-consumer.ts), as a Parley
// worker is another process than the integrator publishing its commands.
import { fileURLToPath } from 'node:url';
import {
  AckPolicy,
  DeliverPolicy,
  DiscardPolicy,
  jetstream,
  jetstreamManager,
  RetentionPolicy,
  StorageType,
} from '@nats-io/jetstream';
import { nanos } from '@nats-io/transport-node';
import {
  type BenchChild,
  benchConnect,
  type CpuUse,
  cpuMeter,
  inFlight,
  startChild,
  until,
} from './util.ts';

const CONSUMER = fileURLToPath(new URL('./raw-consumer.ts', import.meta.url));

export interface RawOptions {
  readonly url: string;
  readonly count: number;
  readonly size: number;
  readonly inFlight: number;
  /** Largest batch taken from the consumer at once (its max_messages). */
  readonly batch: number;
  /** 'all': one ack of the batch's last message; 'each': every message acknowledged. */
  readonly ack: 'all' | 'each';
  /**
   * Relay (with ack 'all'): the consumer publishes each message again to a second stream, as a
   * worker publishes an event, before acknowledging the batch; the run ends when a core
   * subscription here has seen every relayed message (bench/raw-consumer.ts).
   */
  readonly relay?: boolean;
  readonly serverPid?: number | undefined;
}

export interface RawResult {
  readonly msgsPerS: number;
  readonly ms: number;
  readonly meanBatch: number;
  readonly cpu: CpuUse;
}

/** The consuming process, kept for every raw run (so that it is as warm as a worker is). */
export function startRawConsumer(url: string): Promise<BenchChild> {
  return startChild(CONSUMER, { NATS_URL: url });
}

let runs = 0;

export async function runRaw(consumer: BenchChild, o: RawOptions): Promise<RawResult> {
  const pubConn = await benchConnect(o.url, 'bench-raw-publisher');
  const stream = `BENCH_RAW_${o.ack.toUpperCase()}_${++runs}`;
  const root = `bench.raw.${o.ack}.${runs}`;
  const relayStream = `BENCH_RELAY_${runs}`;
  const relayRoot = `bench.relay.${runs}`;
  const jsm = await jetstreamManager(pubConn);
  const streamConfig = {
    retention: RetentionPolicy.Limits,
    storage: StorageType.File,
    discard: DiscardPolicy.Old,
    duplicate_window: nanos(120_000),
  };
  let relayed = 0;
  const sub = o.relay
    ? pubConn.subscribe(`${relayRoot}.>`, {
        callback: () => {
          relayed++;
        },
      })
    : undefined;
  try {
    await jsm.streams.add({ name: stream, subjects: [`${root}.>`], ...streamConfig });
    if (o.relay) {
      await jsm.streams.add({ name: relayStream, subjects: [`${relayRoot}.>`], ...streamConfig });
    }
    await jsm.consumers.add(stream, {
      durable_name: 'bench',
      ack_policy: o.ack === 'all' ? AckPolicy.All : AckPolicy.Explicit,
      deliver_policy: DeliverPolicy.All,
      ack_wait: nanos(30_000),
      max_ack_pending: 20_000,
    });
    const run = {
      stream,
      durable: 'bench',
      count: o.count,
      batch: o.batch,
      ack: o.ack,
      ...(o.relay ? { relay: relayRoot } : {}),
    };
    consumer.send(JSON.stringify(run));
    await consumer.next('consuming');

    const payload = new Uint8Array(o.size).fill(0x61);
    const js = jetstream(pubConn);
    const cpu = cpuMeter({ serverPid: o.serverPid, workerPid: consumer.pid });
    const started = performance.now();
    const done = consumer.next('done', 120_000);
    done.catch(() => undefined); // awaited below; a publish failing first must not leave it unhandled
    await inFlight(o.count, o.inFlight, (i) =>
      js.publish(`${root}.c${i % 200}`, payload, { msgID: `raw-${o.ack}-${i}` }),
    );
    const line = await done;
    const [, received, batches] = line.split(' ');
    if (received === 'failed:') throw new Error(`bench/raw-consumer.ts: ${line}`);
    if (o.relay) await until(() => relayed >= o.count, 60_000, 'every relayed message');
    const ms = performance.now() - started;
    const used = cpu();
    return {
      msgsPerS: o.count / (ms / 1000),
      ms,
      meanBatch: Number(received) / Number(batches),
      cpu: used,
    };
  } finally {
    sub?.unsubscribe();
    await jsm.streams.delete(stream).catch(() => undefined);
    if (o.relay) await jsm.streams.delete(relayStream).catch(() => undefined);
    await pubConn.close();
  }
}
