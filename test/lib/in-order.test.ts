// InOrder: a host acknowledges a batch only once its events and those of every batch before it
// are stored, though the next batches are applied (and their events published) meanwhile.
import t from 'tap';
import { InOrder } from '../../lib/worker/in-order.ts';

/** A promise with its settling functions, settled by the test when it chooses. */
function later() {
  let resolve: () => void = () => undefined;
  let reject: (error: Error) => void = () => undefined;
  const promise = new Promise<void>((res, rej) => {
    resolve = res;
    reject = rej;
  });
  return { promise, resolve, reject };
}

/** Lets every settled promise run its handlers. */
const turn = () => new Promise((resolve) => setImmediate(resolve));

t.test('a step waits for every outcome added before it, whatever order they come in', async (t) => {
  const failures: unknown[] = [];
  const order = new InOrder((error) => failures.push(error));
  const ran: string[] = [];
  const first = later();
  const second = later();
  order.add(first.promise);
  order.after(() => ran.push('ack 1'));
  order.add(second.promise);
  order.after(() => ran.push('ack 2'));
  t.equal(order.pending, 2);

  second.resolve(); // the later unit's PubAcks come first
  await turn();
  t.same(ran, [], 'no ack while the first unit waits, not even the second one’s');
  t.equal(order.pending, 2, 'an outcome counts as in only once the earlier ones are');

  first.resolve();
  await turn();
  t.same(ran, ['ack 1', 'ack 2'], 'then both, in order');
  t.equal(order.pending, 0);
  await order.settled();
  t.same(failures, []);
});

t.test('a failure stops every later step, and is reported once', async (t) => {
  const failures: unknown[] = [];
  const order = new InOrder((error) => failures.push(error));
  const ran: string[] = [];
  const first = later();
  const second = later();
  const third = later();
  order.add(first.promise);
  order.after(() => ran.push('ack 1'));
  order.add(second.promise);
  order.after(() => ran.push('ack 2'));
  order.add(third.promise);
  order.after(() => ran.push('ack 3'));

  first.resolve();
  third.resolve();
  const refused = new Error('JetStream refused an event');
  second.reject(refused);
  await turn();
  t.same(ran, ['ack 1'], 'what was stored before the refusal is acknowledged; nothing after');
  t.same(failures, [refused], 'the first failure, once');
  await t.rejects(order.settled(), refused, 'settled() rejects (a checkpoint must not run)');

  order.add(Promise.resolve());
  order.after(() => ran.push('ack 4'));
  await turn();
  t.same(ran, ['ack 1'], 'nor anything added after it');
  t.equal(failures.length, 1);
});

t.test('a step that throws is a failure too', async (t) => {
  const failures: unknown[] = [];
  const order = new InOrder((error) => failures.push(error));
  const ran: string[] = [];
  order.after(() => {
    throw new Error('the connection closed');
  });
  order.after(() => ran.push('after'));
  await turn();
  t.same(ran, []);
  t.equal(failures.length, 1);
  t.match(String(failures[0]), /connection closed/);
});

t.test('drained() waits for every outcome, even after a failure', async (t) => {
  const order = new InOrder(() => undefined);
  const first = later();
  const second = later();
  order.add(first.promise);
  order.add(second.promise);
  let drained = false;
  void order.drained().then(() => {
    drained = true;
  });
  first.reject(new Error('refused'));
  await turn();
  await t.rejects(order.settled(), 'settled() fails at the first failure');
  t.notOk(drained, 'drained() still waits for the second, which may yet be stored');
  second.resolve();
  await turn();
  t.ok(drained);
});
