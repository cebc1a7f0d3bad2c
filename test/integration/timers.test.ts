// Many snoozes that end together: each conversation wakes within a second of its deadline, the
// expiries sent together rather than one command round trip after another.
import { jetstreamManager } from '@nats-io/jetstream';
import t from 'tap';
import type { DomainEvent } from '../../actors/events.ts';
import { HOUR_MS } from '../../actors/settings.ts';
import { STREAMS } from '../../lib/nats/streams.ts';
import { startNatsServer } from '../helpers/nats-server.ts';
import { waitUntil } from '../helpers/poll.ts';
import { connectIntegrator, startWorker } from '../helpers/runtime.ts';
import { agent, group, testSettings } from '../helpers/settings.ts';

const N = 1_000;
const id = (i: number) => `s${i}`;

t.test(`${N} snoozes ending within the same second all wake within a second`, async (t) => {
  const server = await startNatsServer({ t });
  const settings = testSettings({
    groups: [group('tv', { cap: N, snooze: { defaultMs: 400, minMs: 100, maxMs: HOUR_MS } })],
    rules: [testSettings().rules[0]!],
    agents: [agent('alice', ['tv'], N)],
  });
  const it = await connectIntegrator(t, server.url);
  await startWorker(t, server.url, { settings });

  const inFlight = async (send: (i: number) => Promise<unknown>) => {
    let next = 0;
    await Promise.all(
      Array.from({ length: 128 }, async () => {
        while (next < N) await send(next++);
      }),
    );
  };
  await it.send({ type: 'SetAgentPresence', agent: 'alice', presence: 'online' });
  await inFlight((i) =>
    it.send({ type: 'StartConversation', conversation: id(i), visitor: `v${i}`, rule: 'direct' }),
  );
  const count = (type: string) => it.events.filter((e) => e.type === type).length;
  await waitUntil(() => count('ConversationAssigned') === N, `${N} assignments`, 60_000);

  // Snoozed for 2 s each (a snoozed conversation holds a seat of the waiting list: the cap is N),
  // sent within a few hundred ms: the deadlines fall within about one second.
  await inFlight((i) =>
    it.send({ type: 'Snooze', conversation: id(i), agent: 'alice', durationMs: 2_000 }),
  );
  await waitUntil(() => count('ConversationSnoozed') === N, `${N} snoozes`, 60_000);
  await waitUntil(() => count('ConversationWoken') === N, `${N} wakes`, 60_000);

  const deadlines = new Map<string, number>();
  for (const e of it.events) {
    if (e.type === 'ConversationSnoozed') deadlines.set(e.conversation, e.until);
  }
  const late = it.events
    .filter(
      (e): e is Extract<DomainEvent, { type: 'ConversationWoken' }> =>
        e.type === 'ConversationWoken',
    )
    .map((e) => e.at - deadlines.get(e.conversation)!);
  // Every command in the stream is a start, a snooze, the presence, or an expiry.
  const jsm = await jetstreamManager(it.nc);
  const stored = (await jsm.streams.info(STREAMS.commands)).state.messages;
  const expiries = stored - (2 * N + 1);
  t.ok(
    expiries >= N && expiries <= N * 1.05,
    `an expiry each, not sent again and again (${expiries})`,
  );
  t.ok(
    late.every((ms) => ms >= 0),
    'none before its deadline',
  );
  t.ok(
    Math.max(...late) < 1_000,
    `each within a second of its deadline (the latest: ${Math.max(...late)} ms)`,
  );
  t.equal(
    new Set(
      it.events
        .filter((e) => e.type === 'ConversationWoken')
        .map((e) => 'conversation' in e && e.conversation),
    ).size,
    N,
    'each woke once',
  );
});
