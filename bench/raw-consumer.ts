// Raw JetStream's consuming side, in its own process as a Parley worker is: started by bench/raw.ts
// (NATS_URL in the environment), it prints `ready` once connected. Each line on stdin is a run,
// as JSON `{ stream, durable, count, batch, ack }`: it consumes the durable pull consumer in
// batches of what has arrived, acknowledges the last message of each batch (ack 'all') or every
// message ('each'), prints `consuming` once its pulls are out, and `done <received> <batches>`
// once `count` messages are acknowledged and the server has the last acknowledgement (or
// `done failed: <why>`). It exits when its stdin closes.
//
// With `relay: <subject>`, it does what a Parley worker does with a batch, without Parley: each
// message is published again under `<subject>.<n>` (its data as it came, with a `Nats-Msg-Id` and
// the unit-end header, through lib/nats/publisher.ts as a worker publishes its events), and the
// batch is acknowledged once every one of those and of the batches before is stored; the next
// batch is taken meanwhile (lib/worker/in-order.ts), as a worker does.
import { createInterface } from 'node:readline';
import { type JsMsg, jetstream } from '@nats-io/jetstream';
import { type Publication, Publisher } from '../lib/nats/publisher.ts';
import { UNIT_END_HEADER } from '../lib/nats/streams.ts';
import { InOrder } from '../lib/worker/in-order.ts';
import { benchConnect } from './util.ts';

interface Run {
  readonly stream: string;
  readonly durable: string;
  readonly count: number;
  readonly batch: number;
  readonly ack: 'all' | 'each';
  readonly relay?: string;
}

const UNIT_END = { [UNIT_END_HEADER]: '1' };

const nc = await benchConnect(process.env.NATS_URL ?? '', 'bench-raw-consumer');
const js = jetstream(nc);
const say = (line: string) => process.stdout.write(`${line}\n`);

async function consume(run: Run): Promise<void> {
  const consumer = await js.consumers.get(run.stream, run.durable);
  // A batch is what has arrived when the event loop gets to it, as lib/worker/batches.ts does:
  // messages are gathered by the callback and taken together on the next turn. (The iterator's
  // getPending() also counts its queued pull requests, so it cannot tell when a batch ends.)
  let received = 0;
  let batches = 0;
  let arrived: JsMsg[] = [];
  let scheduled = false;
  let finish: () => void = () => undefined;
  let fail: (error: unknown) => void = () => undefined;
  const consumed = new Promise<void>((resolve, reject) => {
    finish = resolve;
    fail = reject;
  });
  // As a worker does: each batch's messages go out at once, the next batch is taken while they
  // wait for their PubAcks, and a batch is acknowledged once it and every one before are stored.
  const relayed = new InOrder(fail);
  const relay = (batch: JsMsg[], subject: string) => {
    const publications: Publication[] = batch.map((m, i) => ({
      subject: `${subject}.${i % 200}`,
      data: m.data,
      msgID: `relay-${m.seq}`,
      headers: UNIT_END,
    }));
    relayed.add(Publisher.of(nc).publishAll(publications, 5_000));
    relayed.after(() => {
      batch[batch.length - 1]!.ack();
      received += batch.length;
      batches++;
      if (received >= run.count) finish();
    });
  };
  const take = () => {
    scheduled = false;
    while (arrived.length > 0) {
      const batch = arrived.slice(0, run.batch);
      arrived = arrived.slice(batch.length);
      if (run.relay) {
        relay(batch, run.relay);
        continue;
      }
      if (run.ack === 'each') for (const m of batch) m.ack();
      else batch[batch.length - 1]!.ack();
      received += batch.length;
      batches++;
    }
    if (received >= run.count) finish();
  };
  const messages = await consumer.consume({
    max_messages: run.batch,
    callback: (m) => {
      arrived.push(m);
      if (!scheduled) {
        scheduled = true;
        setImmediate(take);
      }
    },
  });
  await nc.flush(); // the pull requests reached the server
  say('consuming');
  await consumed;
  await nc.flush(); // the last acknowledgement reached the server
  say(`done ${received} ${batches}`);
  await messages.close().catch(() => undefined);
}

// One run at a time, in the order given.
let queue = Promise.resolve();
createInterface({ input: process.stdin })
  .on('line', (line) => {
    queue = queue.then(() =>
      consume(JSON.parse(line) as Run).catch((error: unknown) => {
        say(`done failed: ${error instanceof Error ? error.message : String(error)}`);
      }),
    );
  })
  .on('close', () => {
    void queue.then(() => nc.close()).finally(() => process.exit(0));
  });
say('ready');
