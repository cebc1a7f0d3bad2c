// Publishing to JetStream with one inbox subscription per connection, against a real nats-server:
// a call resolves only once every message is acknowledged as stored, and fails on a refusal, a
// subject no stream captures, a missing acknowledgement, or a closed connection.

import { DiscardPolicy, jetstream, jetstreamManager } from '@nats-io/jetstream';
import { connect } from '@nats-io/transport-node';
import t from 'tap';
import { connectNats } from '../../lib/nats/connection.ts';
import {
  connectionOf,
  type Publication,
  PublishError,
  Publisher,
} from '../../lib/nats/publisher.ts';
import { startNatsServer } from '../helpers/nats-server.ts';

const server = await startNatsServer({ t });
const nc = await connectNats(server.url);
t.teardown(() => nc.close());
const jsm = await jetstreamManager(nc);
await jsm.streams.add({ name: 'STORED', subjects: ['stored.>'] });
await jsm.streams.add({
  name: 'FULL',
  subjects: ['full.>'],
  max_msgs: 3,
  discard: DiscardPolicy.New,
});

const encoder = new TextEncoder();
const items = (prefix: string, subject: string, count: number): Publication[] =>
  Array.from({ length: count }, (_, i) => ({
    subject: `${subject}.${i % 7}`,
    data: encoder.encode(JSON.stringify({ i })),
    msgID: `${prefix}-${i}`,
  }));

const stored = async (stream: string, subject: string) =>
  (await jsm.streams.info(stream, { subjects_filter: subject })).state.subjects ?? {};
const count = async (stream: string, subject: string) =>
  Object.values(await stored(stream, subject)).reduce((a, b) => a + b, 0);

t.test('every message of a call is acknowledged, and stored once', async (t) => {
  const publisher = new Publisher(nc);
  t.teardown(() => publisher.close());
  await publisher.publishAll(items('all', 'stored.all', 1_000), 5_000);
  t.equal(await count('STORED', 'stored.all.>'), 1_000);
  const js = jetstream(nc);
  const first = await js.publish('stored.all.0', encoder.encode('x'), { msgID: 'all-0' });
  t.ok(first.duplicate, 'the ids reached the stream');
  await publisher.publishAll([], 5_000);
  t.pass('an empty call resolves');
});

t.test('a duplicate counts as stored', async (t) => {
  const publisher = new Publisher(nc);
  t.teardown(() => publisher.close());
  const batch = items('dup', 'stored.dup', 20);
  await publisher.publishAll(batch, 5_000);
  await publisher.publishAll(batch, 5_000);
  await publisher.publishAll([...batch.slice(0, 5), ...items('dup2', 'stored.dup', 1)], 5_000);
  t.equal(await count('STORED', 'stored.dup.>'), 21, 'each id stored once');
});

t.test('a subject no stream captures fails the call (no responders)', async (t) => {
  const publisher = new Publisher(nc);
  t.teardown(() => publisher.close());
  const batch = [...items('nr', 'stored.nr', 3), ...items('nr', 'nowhere', 1)];
  const error = await publisher.publishAll(batch, 5_000).catch((e: unknown) => e);
  t.ok(error instanceof PublishError);
  t.equal((error as PublishError).code, 503);
  t.equal((error as PublishError).subject, 'nowhere.0');
  t.match((error as Error).message, /no responders/);
  await publisher.publishAll(items('nr-after', 'stored.nr', 3), 5_000);
  t.pass('the publisher works on after a failed call');
});

t.test('a message the stream refuses fails the call', async (t) => {
  const publisher = new Publisher(nc);
  t.teardown(() => publisher.close());
  const error = await publisher.publishAll(items('full', 'full.x', 5), 5_000).catch((e) => e);
  t.ok(error instanceof PublishError);
  t.match((error as Error).message, /maximum messages/);
  t.equal((error as PublishError).code, 10077, 'JetStream err_code');
  t.equal(await count('FULL', 'full.>'), 3, 'the stream took what it had room for');
});

t.test('a call without every acknowledgement in time fails', async (t) => {
  const publisher = new Publisher(nc);
  t.teardown(() => publisher.close());
  // A core subscriber that never answers: the server finds a responder, nobody acknowledges.
  const silent = nc.subscribe('silent.>', { callback: () => undefined });
  t.teardown(() => silent.unsubscribe());
  const began = Date.now();
  const error = await publisher
    .publishAll([...items('late', 'stored.late', 3), ...items('late', 'silent', 1)], 300)
    .catch((e) => e);
  t.ok(error instanceof PublishError);
  t.match((error as Error).message, /1 of 4 publications not acknowledged in 300 ms/);
  t.ok(Date.now() - began >= 290, 'after the timeout');
  await publisher.publishAll(items('late-after', 'stored.late', 2), 5_000);
  t.pass('a late call does not disturb the next');
});

t.test('an answer that is not a PubAck fails the call', async (t) => {
  const publisher = new Publisher(nc);
  t.teardown(() => publisher.close());
  const impostor = nc.subscribe('impostor.>', {
    callback: (_, msg) => {
      msg.respond(encoder.encode(JSON.stringify({ ok: true })));
    },
  });
  t.teardown(() => impostor.unsubscribe());
  const error = await publisher.publishAll(items('imp', 'impostor', 1), 5_000).catch((e) => e);
  t.ok(error instanceof PublishError);
  t.match((error as Error).message, /invalid acknowledgement/);
});

t.test('a closed connection fails the calls waiting and those after', async (t) => {
  const own = await connectNats(server.url);
  const publisher = new Publisher(own);
  const silent = own.subscribe('silent.>', { callback: () => undefined });
  const waiting = publisher.publishAll(items('closed', 'silent', 2), 10_000).catch((e) => e);
  await own.flush();
  silent.unsubscribe();
  await own.close();
  const error = await waiting;
  t.ok(error instanceof PublishError);
  t.match((error as Error).message, /connection closed/);
  t.ok(publisher.closed);
  const after = await publisher
    .publishAll(items('closed', 'stored.closed', 1), 100)
    .catch((e) => e);
  t.ok(after instanceof PublishError);
});

t.test('one publisher per connection, under its inbox prefix', async (t) => {
  const own = await connect({ servers: server.url, inboxPrefix: 'parley_test_inbox' });
  t.teardown(() => own.close());
  t.equal(connectionOf(jetstream(own)), own);
  const publisher = Publisher.of(own);
  t.equal(Publisher.of(own), publisher, 'the same publisher again');
  const replies: string[] = [];
  const spy = nc.subscribe('parley_test_inbox.>', {
    callback: (_, msg) => {
      replies.push(msg.subject);
    },
  });
  t.teardown(() => spy.unsubscribe());
  await nc.flush();
  await publisher.publishAll(items('prefix', 'stored.prefix', 2), 5_000);
  await nc.flush();
  t.equal(replies.length, 2, 'the acknowledgements came to the inbox under the prefix');
  publisher.close();
  t.not(Publisher.of(own), publisher, 'a closed publisher is replaced');
});
