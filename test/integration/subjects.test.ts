// The commands stream captures the configured groups only: a command published to a group that is
// not configured fails at once instead of being stored and never applied; a group added to the
// live configuration is captured before a worker takes it; a worker that starts later does not
// widen the subjects again.
import { jetstreamManager } from '@nats-io/jetstream';
import t from 'tap';
import type { DomainEvent } from '../../actors/events.ts';
import { LiveConfig } from '../../lib/nats/live-config.ts';
import { ensureStreams, STREAMS } from '../../lib/nats/streams.ts';
import { startRuntime, testLog } from '../helpers/runtime.ts';

t.test('a command to a group that is not configured is refused at once', async (t) => {
  const { it, worker } = await startRuntime(t);
  const jsm = await jetstreamManager(it.nc);
  const subjects = async () => (await jsm.streams.info(STREAMS.commands)).config.subjects ?? [];
  t.same(await subjects(), ['parley.cmd._agent.>', 'parley.cmd.orders.>', 'parley.cmd.tv.>']);

  const start = (group: string, conversation: string) =>
    it.send({ type: 'StartConversation', conversation, visitor: 'v1', rule: 'direct' }, group);
  await t.rejects(start('vip', 'c1'), 'no stream captures parley.cmd.vip.c1');
  t.equal((await jsm.streams.info(STREAMS.commands)).state.messages, 0, 'nothing was stored');

  // Another worker starting (its ensureStreams) leaves the subjects as the workers set them.
  const report = await ensureStreams(it.nc);
  t.ok(report.unchanged.includes(STREAMS.commands), 'not widened again');
  t.same(await subjects(), ['parley.cmd._agent.>', 'parley.cmd.orders.>', 'parley.cmd.tv.>']);

  // A group added to the live configuration is captured, taken and applied.
  const live = await LiveConfig.open(it.nc, worker.settings, testLog);
  t.teardown(() => live.close());
  await live.update((doc) => ({ ...doc, groups: [...doc.groups, { id: 'vip', name: 'VIP' }] }));
  const deadline = Date.now() + 10_000;
  while (!worker.hosted().includes('vip') && Date.now() < deadline) {
    await new Promise((r) => setTimeout(r, 50));
  }
  t.ok((await subjects()).includes('parley.cmd.vip.>'), 'captured');
  t.ok(worker.hosted().includes('vip'), 'and taken');
  await start('vip', 'c2');
  const started = await it.waitFor(
    (e: DomainEvent) => e.type === 'ConversationStarted' && e.conversation === 'c2',
    10_000,
    'the conversation started in vip',
  );
  t.ok(started, 'applied');
});
