// A routing group with more open conversations than a KV value can list (1 MB by default): the
// group's record lists only those a new owner must load at once, the open index lists every one,
// and a worker that takes the group over loads the others when a command comes for them.
import { jetstreamManager } from '@nats-io/jetstream';
import { Kvm } from '@nats-io/kv';
import t from 'tap';
import { inspectGroup } from '../../lib/inspect.ts';
import { BUCKETS } from '../../lib/nats/streams.ts';
import type { GroupRecord } from '../../lib/worker/host.ts';
import { indexedOpen } from '../../lib/worker/open-index.ts';
import { startNatsServer } from '../helpers/nats-server.ts';
import { waitUntil } from '../helpers/poll.ts';
import { connectIntegrator, startWorker } from '../helpers/runtime.ts';

/** 12,000 ids of 100 characters: ~1.2 MB as a JSON list, over the server's 1 MB payload limit. */
const N = 12_000;
const idOf = (i: number) => `c-${String(i).padStart(6, '0')}-${'x'.repeat(91)}`;

t.test('more open conversations than one KV value holds: indexed, and taken over', async (t) => {
  const server = await startNatsServer({ t });
  const a = await startWorker(t, server.url, { id: 'worker-a' });
  const it = await connectIntegrator(t, server.url);
  const jsm = await jetstreamManager(it.nc);
  const groups = await new Kvm(it.nc).open(BUCKETS.groups);

  // Visitors who start with the bot and never answer it: open, in the bot, as many as come.
  const send = async (i: number) => {
    await it.send({
      type: 'StartConversation',
      conversation: idOf(i),
      visitor: `v${i}`,
      rule: 'qualify',
    });
  };
  let next = 0;
  await Promise.all(
    Array.from({ length: 256 }, async () => {
      while (next < N) await send(next++);
    }),
  );
  await waitUntil(
    async () => (await indexedOpen(jsm, 'tv')).length === N,
    `${N} conversations in tv's open index`,
    120_000,
    200,
  );
  const listed = await indexedOpen(jsm, 'tv');
  t.equal(listed[0], idOf(0));
  t.equal(listed[N - 1], idOf(N - 1));
  const limit = it.nc.info?.max_payload ?? 0;
  t.ok(
    limit > 0 && JSON.stringify(listed).length > limit,
    `the list would not fit in one KV value (${JSON.stringify(listed).length} B > ${limit} B)`,
  );

  const entry = await groups.get('tv');
  t.ok(entry && entry.length < 16_384, `the group's record stays small (${entry?.length} B)`);
  const record = entry!.json<GroupRecord>();
  t.same(record.resident, [], 'conversations with the bot need not be loaded by a new owner');
  t.equal(record.open, undefined, 'the record does not list every open conversation');
  t.equal((await inspectGroup(it.nc, 'tv')).open, N, 'inspection counts them all');

  // A second worker takes the group over once the first hands it over.
  const b = await startWorker(t, server.url, { id: 'worker-b' });
  await a.stop(); // (its teardown stops it again: a no-op)
  await waitUntil(() => b.hosted().includes('tv'), 'worker-b to host tv', 30_000);

  // A conversation it never loaded answers the bot: loaded from KV, then routed.
  const old = idOf(4_321);
  await it.send({
    type: 'SendMessage',
    conversation: old,
    author: { kind: 'visitor', id: 'v4321' },
    message: { text: 'Product' },
  });
  await it.waitFor(
    (e) => e.type === 'BotAnswerRecorded' && e.conversation === old,
    20_000,
    'the bot answer of a conversation not in memory',
  );
  await it.send({
    type: 'Close',
    conversation: idOf(7),
    by: { visitor: 'v7' },
  });
  await it.waitFor(
    (e) => e.type === 'ConversationClosed' && e.conversation === idOf(7),
    20_000,
    'a close after the takeover',
  );
  await waitUntil(
    async () => (await indexedOpen(jsm, 'tv')).length === N - 1,
    'the closed conversation to leave the index',
    20_000,
    200,
  );
  t.notOk((await indexedOpen(jsm, 'tv')).includes(idOf(7)), 'closed: no longer listed');
  t.equal((await inspectGroup(it.nc, 'tv')).open, N - 1);
});
