// Raw JetStream, the baseline: publish N messages with a window in flight (each with a message id,
// as Parley's commands carry one for de-duplication) to a file stream, and at the same time consume
// them with a durable pull consumer, in batches of what is pending, acknowledging either the last
// message of each batch (AckPolicy.All, as a Parley worker does) or every message (AckPolicy.Explicit).
import {
  AckPolicy,
  DeliverPolicy,
  DiscardPolicy,
  type JsMsg,
  jetstream,
  jetstreamManager,
  RetentionPolicy,
  StorageType,
} from '@nats-io/jetstream';
import { connect, nanos } from '@nats-io/transport-node';
import { type CpuUse, cpuMeter, inFlight } from './util.ts';

export interface RawOptions {
  readonly url: string;
  readonly count: number;
  readonly size: number;
  readonly inFlight: number;
  /** Largest batch taken from the consumer at once (its max_messages). */
  readonly batch: number;
  /** 'all': one ack of the batch's last message; 'each': every message acknowledged. */
  readonly ack: 'all' | 'each';
  readonly serverPid?: number | undefined;
}

export interface RawResult {
  readonly msgsPerS: number;
  readonly ms: number;
  readonly meanBatch: number;
  readonly cpu: CpuUse;
}

export async function runRaw(o: RawOptions): Promise<RawResult> {
  // Two connections, as a publisher and a worker would have.
  const pubConn = await connect({ servers: o.url, name: 'bench-raw-publisher' });
  const subConn = await connect({ servers: o.url, name: 'bench-raw-consumer' });
  try {
    const stream = `BENCH_RAW_${o.ack.toUpperCase()}`;
    const root = `bench.raw.${o.ack}`;
    const jsm = await jetstreamManager(pubConn);
    await jsm.streams.add({
      name: stream,
      subjects: [`${root}.>`],
      retention: RetentionPolicy.Limits,
      storage: StorageType.File,
      discard: DiscardPolicy.Old,
      duplicate_window: nanos(120_000),
    });
    await jsm.consumers.add(stream, {
      durable_name: 'bench',
      ack_policy: o.ack === 'all' ? AckPolicy.All : AckPolicy.Explicit,
      deliver_policy: DeliverPolicy.All,
      ack_wait: nanos(30_000),
      max_ack_pending: 20_000,
    });
    const consumer = await jetstream(subConn).consumers.get(stream, 'bench');
    // A batch is what has arrived when the event loop gets to it, as lib/worker/batches.ts does:
    // messages are gathered by the callback and taken together on the next turn. (The iterator's
    // getPending() also counts its queued pull requests, so it cannot tell when a batch ends.)
    let received = 0;
    let batches = 0;
    let arrived: JsMsg[] = [];
    let scheduled = false;
    let finish: () => void = () => undefined;
    const consumed = new Promise<void>((resolve) => {
      finish = resolve;
    });
    const take = () => {
      scheduled = false;
      while (arrived.length > 0) {
        const batch = arrived.slice(0, o.batch);
        arrived = arrived.slice(batch.length);
        if (o.ack === 'each') for (const m of batch) m.ack();
        else batch[batch.length - 1]!.ack();
        received += batch.length;
        batches++;
      }
      if (received >= o.count) finish();
    };
    const messages = await consumer.consume({
      max_messages: o.batch,
      callback: (m) => {
        arrived.push(m);
        if (!scheduled) {
          scheduled = true;
          setImmediate(take);
        }
      },
    });

    const payload = new Uint8Array(o.size).fill(0x61);
    const js = jetstream(pubConn);
    const cpu = cpuMeter(o.serverPid);
    const started = performance.now();
    await inFlight(o.count, o.inFlight, (i) =>
      js.publish(`${root}.c${i % 200}`, payload, { msgID: `raw-${o.ack}-${i}` }),
    );
    await consumed;
    await subConn.flush(); // the last acknowledgement reached the server
    const ms = performance.now() - started;
    const used = cpu();
    await messages.close().catch(() => undefined);
    await jsm.streams.delete(stream).catch(() => undefined);
    return { msgsPerS: o.count / (ms / 1000), ms, meanBatch: received / batches, cpu: used };
  } finally {
    await subConn.close();
    await pubConn.close();
  }
}
